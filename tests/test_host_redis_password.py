"""Runbook: "Verify Redis Password" (Option A: docker inspect, Option B: redis.conf via docker exec).

``pmsops host redis-password`` finds requirepass where Coolify's Redis keeps it and
prints only where it was found, its length and its salted fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from host_helpers import REDIS_PASSWORD, fake_docker  # noqa: F401
from pmsops.host.redis_password import find_requirepass

OTHER = "c0nf+only=pass/w0rd"


def sha16(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pbkdf2(text: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", text.encode(), salt.encode(), 100_000).hex()[:16]


def only_in_conf(fake, conf_path: str = "/etc/redis/redis.conf", cmd: list[str] | None = None) -> None:
    """Coolify's Redis started from a config file: no --requirepass, no REDIS_PASSWORD."""
    fake.edit("coolify-redis", Cmd=cmd or ["redis-server"])
    fake.set_env("coolify-redis", REDIS_PASSWORD=None)
    fake.inside("coolify-redis", files={conf_path: f'bind 0.0.0.0\nport 6379\n# requirepass old-one\nrequirepass "{OTHER}"\nappendonly yes\n'})


def test_requirepass_in_coolifys_redis_command_is_found_and_shown_as_length_and_salted_fingerprint(cli, fake_docker):
    result = cli("host", "redis-password", "--container", "coolify-redis")

    assert result.exit_code == 0
    [salt] = re.findall(r"salt=([0-9a-f]{8})\b", result.stdout)
    assert f"set (Config.Cmd --requirepass): len={len(REDIS_PASSWORD)} pbkdf2={pbkdf2(REDIS_PASSWORD, salt)} salt={salt}" in result.stdout
    assert REDIS_PASSWORD not in result.output
    assert sha16(REDIS_PASSWORD) not in result.output


def test_reveal_fingerprint_shows_the_runbooks_unsalted_prefix_for_sha256sum_users(cli, fake_docker):
    result = cli("--reveal-fingerprint", "host", "redis-password", "--container", "coolify-redis")

    assert f"set (Config.Cmd --requirepass): len={len(REDIS_PASSWORD)} sha256={sha16(REDIS_PASSWORD)}" in result.stdout


def test_library_returns_the_value_and_its_source_but_never_shows_it_in_repr(fake_docker):
    found = find_requirepass("coolify-redis")

    assert (found.value, found.source) == (REDIS_PASSWORD, "Config.Cmd --requirepass")
    assert REDIS_PASSWORD not in repr(found)


def test_requirepass_inside_a_sh_c_string_is_split_as_the_shell_would(fake_docker):
    fake_docker.edit("coolify-redis", Entrypoint=None, Cmd=["/bin/sh", "-c", f"exec redis-server --appendonly yes --requirepass '{REDIS_PASSWORD}'"])

    found = find_requirepass("coolify-redis")

    assert (found.value, found.source) == (REDIS_PASSWORD, "Config.Cmd (sh -c) --requirepass")


def test_sh_c_requirepass_naming_a_variable_takes_the_containers_value(fake_docker):
    fake_docker.edit("coolify-redis", Cmd=["sh", "-c", "redis-server --requirepass ${REDIS_PASSWORD}"])

    found = find_requirepass("coolify-redis")

    assert found.value == REDIS_PASSWORD
    assert found.source == "Config.Cmd (sh -c) --requirepass $REDIS_PASSWORD (env REDIS_PASSWORD)"


def test_exec_form_variable_reference_is_the_literal_password_and_is_pointed_out(cli, fake_docker):
    fake_docker.edit("coolify-redis", Cmd=["redis-server", "--requirepass", "$REDIS_PASSWORD"])

    result = cli("host", "redis-password")

    assert result.exit_code == 0
    assert "the command passes an unexpanded $VARIABLE (exec form: no shell expands it)" in result.stdout
    assert "$REDIS_PASSWORD" not in result.stdout  # that text *is* the password here


def test_password_only_in_the_environment_is_found_there(fake_docker):
    fake_docker.edit("coolify-redis", Cmd=["redis-server", "--appendonly", "yes"])

    found = find_requirepass("coolify-redis")

    assert (found.value, found.source) == (REDIS_PASSWORD, "env REDIS_PASSWORD")


def test_password_only_in_redis_conf_is_read_with_docker_exec_cat(fake_docker):
    only_in_conf(fake_docker)

    found = find_requirepass("coolify-redis")

    assert (found.value, found.source) == (OTHER, "/etc/redis/redis.conf")
    assert ["exec", "coolify-redis", "cat", "/etc/redis/redis.conf"] in fake_docker.calls()


def test_redis_conf_named_on_the_command_line_is_read_first(fake_docker):
    only_in_conf(fake_docker, "/usr/local/etc/redis/custom.conf", ["redis-server", "/usr/local/etc/redis/custom.conf"])

    found = find_requirepass("coolify-redis")

    assert found.source == "/usr/local/etc/redis/custom.conf"


def test_redis_without_any_requirepass_fails_saying_authentication_looks_off(cli, fake_docker):
    fake_docker.edit("coolify-redis", Cmd=["redis-server"])
    fake_docker.set_env("coolify-redis", REDIS_PASSWORD=None)
    fake_docker.inside("coolify-redis", files={"/etc/redis/redis.conf": "bind 0.0.0.0\n"})

    result = cli("host", "redis-password")

    assert result.exit_code == 1
    assert "no requirepass found for coolify-redis" in result.stdout
    assert "/etc/redis/redis.conf (no requirepass directive)" in result.stdout
    assert "authentication looks off" in result.stdout


def test_stopped_redis_still_shows_the_password_from_its_command_and_fails_on_its_state(cli, fake_docker):
    fake_docker.stop("coolify-redis", exit_code=1)

    result = cli("--fingerprint-salt", "stopped-redis", "host", "redis-password", "--json")

    report = json.loads(result.stdout)
    assert result.exit_code == 1
    assert [(r["name"], r["status"]) for r in report["results"]] == [("coolify-redis state", "fail"), ("requirepass", "ok")]
    assert report["results"][0]["summary"] == "container coolify-redis is not running (status exited, exit code 1)"
    assert report["results"][1]["details"] == {"source": "Config.Cmd --requirepass", "length": len(REDIS_PASSWORD),
                                              "pbkdf2": pbkdf2(REDIS_PASSWORD, "stopped-redis"), "salt": "stopped-redis"}


# --- compare-password-hash --container uses it -------------------------------------------------------------------------


@pytest.mark.parametrize("url, code", [
    ("redis://:Xk9%2Bpq%3DLz%407w%2FQr@coolify-redis:6379/0", 0),
    ("redis://:Xk9+pq=Lz@7w/Qr@coolify-redis:6379/0", 1),
], ids=["encoded-url-matches", "raw-url-mismatches"])
def test_compare_password_hash_reads_requirepass_from_the_redis_container(cli, fake_docker, url, code):
    result = cli("compare-password-hash", "--url", url, "--container", "coolify-redis")

    assert result.exit_code == code
    assert "container coolify-redis (Config.Cmd --requirepass)" in result.stdout
    assert REDIS_PASSWORD not in result.output
