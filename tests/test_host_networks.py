"""Runbook: "Networks (CRITICAL)": the worker needs coolify AND the Supabase network.

``docker inspect pms-worker-v2 | grep -A 10 '"Networks"'`` and
``docker exec pms-worker-v2 nslookup supabase-db``, as checks, against the real Docker engine
(its embedded DNS, real networks and aliases; tests/host_engine.py).
"""

from __future__ import annotations

import json

import pytest

from host_engine import GOOD_URL, host, monkeypatch_module, _engine_env  # noqa: F401  (the real engine, tests/host_engine.py)
from pmsops.host.networks import intended_host

DB_URL = "postgresql://postgres:pw@supabase-db:5432/postgres"


def results_by_name(stdout: str) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(stdout)["results"]}


def address_of(docker_scenario, container: str, network: str) -> str:
    return docker_scenario.engine.inspect(container, '{{(index .NetworkSettings.Networks "' + network + '").IPAddress}}')


def test_worker_on_both_networks_resolving_db_and_redis_is_ok(cli, host, docker_scenario):
    name = host("nw-both", {"REDIS_URL": GOOD_URL, "DATABASE_URL": DB_URL})

    result = cli("host", "networks", name)

    assert result.exit_code == 0, result.stdout
    assert "on coolify, supabase" in result.stdout
    assert f"supabase-db (database) resolves to {address_of(docker_scenario, docker_scenario.PG, 'supabase')} inside {name}" in result.stdout
    assert f"coolify-redis (redis) resolves to {address_of(docker_scenario, 'coolify-redis', 'coolify')} inside {name}" in result.stdout


def test_worker_missing_the_supabase_network_cannot_resolve_supabase_db_and_gets_the_connect_command(cli, host):
    name = host("nw-coolify-only", {"REDIS_URL": GOOD_URL, "DATABASE_URL": DB_URL}, networks=("coolify",))

    report = results_by_name(cli("host", "networks", name, "--json").stdout)

    assert report["networks"]["status"] == "warn"
    assert "only on coolify: the worker needs coolify AND the Supabase network" in report["networks"]["summary"]
    assert report["dns supabase-db"]["status"] == "fail"
    assert report["dns supabase-db"]["summary"] == f"supabase-db (database) does not resolve inside {name}"
    assert (
        f"docker network connect <supabase-network, e.g. bccg4gs4o4kgsowocw08wkw4> {name}; docker restart {name}" in report["dns supabase-db"]["hint"]
    )


def test_required_network_missing_fails_with_docker_network_connect(cli, host):
    name = host("nw-supabase-only", {"REDIS_URL": GOOD_URL, "DATABASE_URL": DB_URL}, networks=("supabase",))

    result = cli("host", "networks", name, "--require", "coolify", "--require", "supabase")

    assert result.exit_code == 1
    assert f"{name} is not on coolify (it is on: supabase)" in result.stdout
    assert f"docker network connect coolify {name}; docker restart {name}" in result.stdout


def test_unresolvable_redis_host_points_at_the_coolify_network(cli, host):
    name = host("nw-no-redis", {"REDIS_URL": GOOD_URL, "DATABASE_URL": DB_URL}, networks=("supabase",))

    hint = results_by_name(cli("host", "networks", name, "--json").stdout)["dns coolify-redis"]["hint"]

    assert hint.startswith(f"docker network connect coolify {name}")
    assert "DNS flapping" in hint


def test_hosts_to_resolve_come_from_the_containers_own_urls(cli, host):
    host("nw-db-alias", {}, networks=("supabase",), aliases=("db.internal",))
    host("nw-redis-alias", {}, networks=("coolify",), aliases=("redis.internal",))
    name = host(
        "nw-own-urls", {"DATABASE_URL": "postgresql://postgres:p%2Fw@db.internal:5432/postgres", "REDIS_URL": "redis://:p/w@rd@redis.internal:6379/0"}
    )

    result = cli("host", "networks", name)

    assert result.exit_code == 0, result.stdout
    assert "db.internal (database) resolves to" in result.stdout
    assert "redis.internal (redis) resolves to" in result.stdout


def test_resolve_overrides_the_hosts(cli, host):
    result = cli("host", "networks", "pms-worker-v2", "--resolve", "pms-backend", "--json")

    report = results_by_name(result.stdout)
    assert result.exit_code == 0, result.stdout
    assert report["dns pms-backend"]["summary"].startswith("pms-backend (host) resolves to")
    assert "dns supabase-db" not in report


def test_image_without_getent_falls_back_to_python3(cli, host, docker_scenario):
    name = host("nw-python-only", {"REDIS_URL": GOOD_URL, "DATABASE_URL": DB_URL})
    assert docker_scenario.engine.docker("exec", name, "getent", "hosts", "x", check=False).returncode == 126  # busybox has no getent

    result = cli("host", "networks", name)

    assert result.exit_code == 0, result.stdout
    assert "supabase-db (database) resolves to" in result.stdout


def test_stopped_worker_still_shows_its_networks_and_says_why_dns_was_not_tested(cli, host, docker_scenario):
    name = host("nw-stopped", {"REDIS_URL": GOOD_URL, "DATABASE_URL": DB_URL}, script="exit 1")
    docker_scenario.engine.wait_exit(name, 20)

    report = results_by_name(cli("host", "networks", name, "--json").stdout)

    assert report["networks"]["status"] == "ok"
    assert report["dns supabase-db"]["summary"] == f"container {name} is not running (status exited, exit code 1)"


@pytest.mark.parametrize(
    "url, host",
    [
        ("postgresql+asyncpg://postgres:pw@supabase-db:5432/postgres", "supabase-db"),
        ("redis://:p/ss?w#rd@coolify-redis:6379/0", "coolify-redis"),  # a raw '/' must not make a piece of the password the host
        ("redis://:pw@[fd00::3]:6379/0", "fd00::3"),
        ("redis://coolify-redis", "coolify-redis"),
        ("not a url", None),
        ("redis://:pw@/0", None),
    ],
)
def test_the_host_is_the_one_the_author_meant(url, host):
    assert intended_host(url) == host
