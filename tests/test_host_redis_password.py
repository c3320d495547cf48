"""Runbook: "Verify Redis Password" (Option A: docker inspect, Option B: redis.conf via docker exec).

``pmsops host redis-password`` finds requirepass where Coolify's Redis keeps it and
prints only where it was found, its length and its salted fingerprint. Redis runs in
containers on the session's real Docker engine (its command, environment and a
bind-mounted redis.conf read with ``docker exec cat``).
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from host_helpers import REDIS_PASSWORD
from pmsops.host.redis_password import find_requirepass

OTHER = "c0nf+only=pass/w0rd"
REDIS_SERVER = "/usr/bin/redis-server"


def sha16(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pbkdf2(text: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", text.encode(), salt.encode(), 100_000).hex()[:16]


@pytest.fixture
def redis_box(docker_scenario, monkeypatch, tmp_path):
    """``redis_box(cmd, env=…, conf=(path, text), run=True)``: a Redis container named coolify-redis on the real engine.

    ``cmd`` is its Config.Cmd (the image has no CMD of its own); ``conf`` is bind-mounted read-only at ``path``;
    ``run=False`` leaves it created, not started (inspect works the same, ``docker exec`` does not).
    """
    engine = docker_scenario.engine
    monkeypatch.setenv("DOCKER_HOST", engine.host)

    def make(cmd: list[str], env: dict[str, str] | None = None, conf: tuple[str, str] | None = None, run: bool = True) -> str:
        args = ["create", "--name", "coolify-redis", "--network", "coolify", "--user", "10002", "-v", "/usr:/usr:ro"]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        if conf:
            local = tmp_path / "redis.conf"
            local.write_text(conf[1])
            local.chmod(0o644)
            args += ["-v", f"{local}:{conf[0]}:ro"]
        engine.docker(*args, "pmsops-base", *cmd)
        if run:
            engine.docker("start", "coolify-redis")
        return "coolify-redis"

    yield make
    docker_scenario.remove("coolify-redis")


def plain_redis(*extra: str) -> list[str]:
    return [REDIS_SERVER, "--port", "6379", "--save", "", "--dir", "/tmp", *extra]


def only_in_conf(redis_box, conf_path: str = "/etc/redis/redis.conf", cmd: list[str] | None = None) -> None:
    """Coolify's Redis started from a config file: no --requirepass, no REDIS_PASSWORD."""
    redis_box(cmd or [REDIS_SERVER, conf_path], conf=(conf_path, f'port 6379\ndir /tmp\nsave ""\n# requirepass old-one\nrequirepass "{OTHER}"\n'))


def test_requirepass_in_coolifys_redis_command_is_found_and_shown_as_length_and_salted_fingerprint(cli, redis_box):
    redis_box(plain_redis("--requirepass", REDIS_PASSWORD))

    result = cli("host", "redis-password", "--container", "coolify-redis")

    assert result.exit_code == 0, result.output
    [salt] = re.findall(r"salt=([0-9a-f]{8})\b", result.stdout)
    assert f"set (Config.Cmd --requirepass): len={len(REDIS_PASSWORD)} pbkdf2={pbkdf2(REDIS_PASSWORD, salt)} salt={salt}" in result.stdout
    assert REDIS_PASSWORD not in result.output
    assert sha16(REDIS_PASSWORD) not in result.output


def test_reveal_fingerprint_shows_the_runbooks_unsalted_prefix_for_sha256sum_users(cli, redis_box):
    redis_box(plain_redis("--requirepass", REDIS_PASSWORD), run=False)

    result = cli("--reveal-fingerprint", "host", "redis-password", "--container", "coolify-redis")

    assert f"set (Config.Cmd --requirepass): len={len(REDIS_PASSWORD)} sha256={sha16(REDIS_PASSWORD)}" in result.stdout


def test_library_returns_the_value_and_its_source_but_never_shows_it_in_repr(redis_box):
    redis_box(plain_redis("--requirepass", REDIS_PASSWORD), run=False)

    found = find_requirepass("coolify-redis")

    assert (found.value, found.source) == (REDIS_PASSWORD, "Config.Cmd --requirepass")
    assert REDIS_PASSWORD not in repr(found)


def test_requirepass_inside_a_sh_c_string_is_split_as_the_shell_would(redis_box):
    redis_box(["/bin/sh", "-c", f"exec {REDIS_SERVER} --save '' --dir /tmp --appendonly no --requirepass '{REDIS_PASSWORD}'"])

    found = find_requirepass("coolify-redis")

    assert (found.value, found.source) == (REDIS_PASSWORD, "Config.Cmd (sh -c) --requirepass")


def test_sh_c_requirepass_naming_a_variable_takes_the_containers_value(redis_box, docker_scenario):
    redis_box(["sh", "-c", f"{REDIS_SERVER} --save '' --dir /tmp --requirepass ${{REDIS_PASSWORD}}"], env={"REDIS_PASSWORD": REDIS_PASSWORD})

    found = find_requirepass("coolify-redis")

    assert found.value == REDIS_PASSWORD
    assert found.source == "Config.Cmd (sh -c) --requirepass $REDIS_PASSWORD (env REDIS_PASSWORD)"


def test_exec_form_variable_reference_is_the_literal_password_and_is_pointed_out(cli, redis_box):
    redis_box(plain_redis("--requirepass", "$REDIS_PASSWORD"), env={"REDIS_PASSWORD": REDIS_PASSWORD})

    result = cli("host", "redis-password")

    assert result.exit_code == 0, result.output
    assert "the command passes an unexpanded $VARIABLE (exec form: no shell expands it)" in result.stdout
    assert "$REDIS_PASSWORD" not in result.stdout  # that text *is* the password here


def test_password_only_in_the_environment_is_found_there(redis_box):
    redis_box(plain_redis("--appendonly", "no"), env={"REDIS_PASSWORD": REDIS_PASSWORD}, run=False)

    found = find_requirepass("coolify-redis")

    assert (found.value, found.source) == (REDIS_PASSWORD, "env REDIS_PASSWORD")


def test_password_only_in_redis_conf_is_read_with_docker_exec_cat(redis_box):
    only_in_conf(redis_box)

    found = find_requirepass("coolify-redis")

    assert (found.value, found.source) == (OTHER, "/etc/redis/redis.conf")


def test_redis_conf_named_on_the_command_line_is_read_first(redis_box):
    only_in_conf(redis_box, "/opt/redis/custom.conf")

    found = find_requirepass("coolify-redis")

    assert found.source == "/opt/redis/custom.conf"


def test_redis_without_any_requirepass_fails_saying_authentication_looks_off(cli, redis_box):
    redis_box([REDIS_SERVER, "/etc/redis/redis.conf"], conf=("/etc/redis/redis.conf", 'port 6379\ndir /tmp\nsave ""\n'))

    result = cli("host", "redis-password")

    assert result.exit_code == 1
    assert "no requirepass found for coolify-redis" in result.stdout
    assert "/etc/redis/redis.conf (no requirepass directive)" in result.stdout
    assert "authentication looks off" in result.stdout


def test_stopped_redis_still_shows_the_password_from_its_command_and_fails_on_its_state(cli, redis_box, docker_scenario):
    redis_box([REDIS_SERVER, "--requirepass", REDIS_PASSWORD, "--no-such-directive", "x"])  # redis-server exits 1: "Bad directive"
    docker_scenario.engine.wait_exit("coolify-redis", 20)

    result = cli("--fingerprint-salt", "stopped-redis", "host", "redis-password", "--json")

    report = json.loads(result.stdout)
    assert result.exit_code == 1
    assert [(r["name"], r["status"]) for r in report["results"]] == [("coolify-redis state", "fail"), ("requirepass", "ok")]
    assert report["results"][0]["summary"] == "container coolify-redis is not running (status exited, exit code 1)"
    assert report["results"][1]["details"] == {
        "source": "Config.Cmd --requirepass",
        "length": len(REDIS_PASSWORD),
        "pbkdf2": pbkdf2(REDIS_PASSWORD, "stopped-redis"),
        "salt": "stopped-redis",
    }


# --- compare-password-hash --container uses it -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, code",
    [
        ("redis://:Xk9%2Bpq%3DLz%407w%2FQr@coolify-redis:6379/0", 0),
        ("redis://:Xk9+pq=Lz@7w/Qr@coolify-redis:6379/0", 1),
    ],
    ids=["encoded-url-matches", "raw-url-mismatches"],
)
def test_compare_password_hash_reads_requirepass_from_the_redis_container(cli, redis_box, url, code):
    redis_box(plain_redis("--requirepass", REDIS_PASSWORD), run=False)

    result = cli("compare-password-hash", "--url", url, "--container", "coolify-redis")

    assert result.exit_code == code
    assert "container coolify-redis (Config.Cmd --requirepass)" in result.stdout
    assert REDIS_PASSWORD not in result.output
