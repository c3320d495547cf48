"""Runbook: "Networks (CRITICAL)": the worker needs coolify AND the Supabase network.

``docker inspect pms-worker-v2 | grep -A 10 '"Networks"'`` and
``docker exec pms-worker-v2 nslookup supabase-db``, as checks.
"""

from __future__ import annotations

import json

import pytest

from host_helpers import fake_docker  # noqa: F401
from pmsops.host.networks import intended_host

SUPABASE = "bccg4gs4o4kgsowocw08wkw4"


def results_by_name(stdout: str) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(stdout)["results"]}


def test_worker_on_both_networks_resolving_db_and_redis_is_ok(cli, fake_docker):
    result = cli("host", "networks", "pms-worker-v2")

    assert result.exit_code == 0
    assert f"on {SUPABASE}, coolify" in result.stdout
    assert "supabase-db (database) resolves to 172.20.0.2 inside pms-worker-v2" in result.stdout
    assert "coolify-redis (redis) resolves to 10.0.1.3 inside pms-worker-v2" in result.stdout
    assert ["exec", "pms-worker-v2", "getent", "hosts", "supabase-db"] in fake_docker.calls()


def test_worker_missing_the_supabase_network_cannot_resolve_supabase_db_and_gets_the_connect_command(cli, fake_docker):
    fake_docker.networks("pms-worker-v2", "coolify")
    fake_docker.unresolvable("pms-worker-v2", "supabase-db")

    report = results_by_name(cli("host", "networks", "--json").stdout)

    assert report["networks"]["status"] == "warn"
    assert "only on coolify: the worker needs coolify AND the Supabase network" in report["networks"]["summary"]
    assert report["dns supabase-db"]["status"] == "fail"
    assert report["dns supabase-db"]["summary"] == "supabase-db (database) does not resolve inside pms-worker-v2"
    assert "docker network connect <supabase-network, e.g. bccg4gs4o4kgsowocw08wkw4> pms-worker-v2; docker restart pms-worker-v2" in report["dns supabase-db"]["hint"]


def test_required_network_missing_fails_with_docker_network_connect(cli, fake_docker):
    fake_docker.networks("pms-worker-v2", SUPABASE)

    result = cli("host", "networks", "--require", "coolify", "--require", SUPABASE)

    assert result.exit_code == 1
    assert f"pms-worker-v2 is not on coolify (it is on: {SUPABASE})" in result.stdout
    assert "docker network connect coolify pms-worker-v2; docker restart pms-worker-v2" in result.stdout


def test_unresolvable_redis_host_points_at_the_coolify_network(cli, fake_docker):
    fake_docker.unresolvable("pms-worker-v2", "coolify-redis")

    hint = results_by_name(cli("host", "networks", "--json").stdout)["dns coolify-redis"]["hint"]

    assert hint.startswith("docker network connect coolify pms-worker-v2")
    assert "DNS flapping" in hint


def test_hosts_to_resolve_come_from_the_containers_own_urls(cli, fake_docker):
    fake_docker.set_env("pms-worker-v2", DATABASE_URL="postgresql://postgres:p%2Fw@db.internal:5432/postgres",
                        REDIS_URL="redis://:p/w@rd@redis.internal:6379/0")
    fake_docker.inside("pms-worker-v2", hosts={"db.internal": "172.20.0.3", "redis.internal": "10.0.1.4"})

    result = cli("host", "networks")

    assert result.exit_code == 0
    assert "db.internal (database) resolves to 172.20.0.3" in result.stdout
    assert "redis.internal (redis) resolves to 10.0.1.4" in result.stdout


def test_resolve_overrides_the_hosts(cli, fake_docker):
    result = cli("host", "networks", "--resolve", "pms-backend")

    assert result.exit_code == 0
    assert "pms-backend (host) resolves to 10.0.1.5" in result.stdout
    assert not any("supabase-db" in call for call in fake_docker.calls())


def test_image_without_getent_falls_back_to_python3(cli, fake_docker):
    fake_docker.inside("pms-worker-v2", missing=["getent"])

    result = cli("host", "networks")

    assert result.exit_code == 0
    assert "supabase-db (database) resolves to 172.20.0.2" in result.stdout


def test_image_without_getent_or_python_skips_dns_rather_than_guessing(cli, fake_docker):
    fake_docker.inside("pms-worker-v2", missing=["getent", "python3"])

    report = results_by_name(cli("host", "networks", "--json").stdout)

    assert report["dns supabase-db"]["status"] == "skip"
    assert "neither getent nor python3" in report["dns supabase-db"]["summary"]


def test_stopped_worker_still_shows_its_networks_and_says_why_dns_was_not_tested(cli, fake_docker):
    fake_docker.stop("pms-worker-v2", exit_code=1)

    report = results_by_name(cli("host", "networks", "--json").stdout)

    assert report["networks"]["status"] == "ok"
    assert report["dns supabase-db"]["summary"] == "container pms-worker-v2 is not running (status exited, exit code 1)"
    assert not any(call[0] == "exec" for call in fake_docker.calls())


@pytest.mark.parametrize("url, host", [
    ("postgresql+asyncpg://postgres:pw@supabase-db:5432/postgres", "supabase-db"),
    ("redis://:p/ss?w#rd@coolify-redis:6379/0", "coolify-redis"),  # a raw '/' must not make a piece of the password the host
    ("redis://:pw@[fd00::3]:6379/0", "fd00::3"),
    ("redis://coolify-redis", "coolify-redis"),
    ("not a url", None),
    ("redis://:pw@/0", None),
])
def test_the_host_is_the_one_the_author_meant(url, host):
    assert intended_host(url) == host
