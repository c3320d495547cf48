"""No host command ever shows a secret it read from Docker.

A sentinel with every character the runbook warns about is put everywhere a real
deployment keeps secrets: Redis's ``--requirepass``, its ``REDIS_PASSWORD`` and
redis.conf, the backend's and worker's env (JWT secrets, ENCRYPTION_KEY,
DATABASE_URL, Coolify's ``SERVICE_PASSWORD_REDIS``), a raw unencoded Redis URL, and
worker log lines that quote it, in real containers on the real Docker engine. Every
command, in text and ``--json``, must show none of its forms (raw, ``quote()``-d,
``quote_plus()``-ed). Secrets nobody registered (issue #10) are planted the same way.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from urllib.parse import quote, quote_plus

import pytest

from host_engine import RecordedHost
from host_helpers import fake_docker  # noqa: F401  (the oddly named variable below)

SENTINELS = [
    "S3ntinel+=@:/?#&%ß",
    "S3nt inel'\"+=@:/?#&%[];`$\\ß",
    "Q7!",  # shorter than 4: masked as a whole token
]

COMMANDS: list[tuple[str, ...]] = [
    ("host", "redis-password"),
    ("host", "redis-password", "--container", "coolify-redis"),
    ("host", "worker-cmd"),
    ("host", "worker-cmd", "coolify-redis"),  # Redis's own command holds --requirepass
    ("host", "networks"),
    ("host", "code-hash", "--compare-commit", "pms-backend"),
    ("host", "logs"),
    ("host", "env-diff"),
    ("host", "env-diff", "pms-worker-v2", "coolify-redis"),
    ("host", "check"),
    ("compare-password-hash", "--container", "coolify-redis", "--url", "redis://:wrong@coolify-redis:6379/0"),
    ("--debug", "host", "check"),
]

EXIT_PLANTED = {
    ("host", "redis-password"): 0,
    ("host", "redis-password", "--container", "coolify-redis"): 0,
    ("host", "worker-cmd"): 0,  # the worker runs the recorded celery command
    ("host", "worker-cmd", "coolify-redis"): 1,  # redis-server is not a Celery worker
    ("host", "networks"): 0,
    ("host", "code-hash", "--compare-commit", "pms-backend"): 0,
    ("host", "logs"): 1,  # the planted log lines are Redis authentication errors
    ("host", "env-diff"): 1,  # the worker's REDIS_URL (raw) and JWT_SECRET differ from the backend's
    ("host", "env-diff", "pms-worker-v2", "coolify-redis"): 1,
    ("host", "check"): 1,
    ("compare-password-hash", "--container", "coolify-redis", "--url", "redis://:wrong@coolify-redis:6379/0"): 1,  # wrong on purpose
    ("--debug", "host", "check"): 1,
}
"""What each command answers on the planted host: the leak tests also pin the verdict, so a command that broke
(exit 2, or 0 where it should find the fault) cannot pass them by printing nothing."""


def forms(secret: str) -> dict[str, str]:
    return {
        "raw": secret,
        "quote(safe='')": quote(secret, safe=""),
        "quote()": quote(secret),
        "quote_plus()": quote_plus(secret),
        "JSON-escaped": json.dumps(secret, ensure_ascii=False)[1:-1],
        "JSON-escaped ASCII": json.dumps(secret)[1:-1],
        "a piece of it": secret[:6],
    }


def assert_never_leaks(result, secret: str) -> None:
    for name, form in forms(secret).items():
        assert form not in result.stdout, f"{name} form of the secret on stdout:\n{result.stdout}"
        assert form not in result.stderr, f"{name} form of the secret on stderr:\n{result.stderr}"


LIVE: list[RecordedHost] = []
"""The one planted host of this module: the container names are the runbook's, so a new one replaces the last."""


def fresh_host(docker_scenario, tmp_path_factory) -> RecordedHost:
    while LIVE:
        LIVE.pop().close()
    host = RecordedHost(docker_scenario, tmp_path_factory.mktemp("planted"))
    LIVE.append(host)
    return host


@pytest.fixture(scope="module", params=SENTINELS, ids=["runbook-specials", "quotes-and-spaces", "short"])
def planted(request, docker_scenario, tmp_path_factory):
    """The recorded host on the real Docker engine with one sentinel planted everywhere (built once per sentinel)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DOCKER_HOST", docker_scenario.engine.host)
    host = fresh_host(docker_scenario, tmp_path_factory)
    try:
        host.plant_secret(request.param)
        host.secret = request.param
        yield host
    finally:
        host.close()
        mp.undo()


@pytest.fixture
def on_engine(docker_scenario, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", docker_scenario.engine.host)


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_sentinel_secret_from_docker_never_appears_in_any_output(cli, planted, on_engine, argv, json_flag):
    result = cli(*argv, *json_flag)

    assert result.exit_code == EXIT_PLANTED[argv], result.output[-400:]
    if "--debug" not in argv:
        assert "Traceback" not in result.stderr
    assert_never_leaks(result, planted.secret)


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
@pytest.mark.parametrize("argv", [("host", "worker-cmd", "coolify-redis"), ("host", "redis-password")], ids=["worker-cmd", "redis-password"])
def test_secret_shell_quoted_inside_sh_c_is_not_shown_in_pieces(cli, planted, on_engine, argv, json_flag):
    """``sh -c "redis-server --requirepass 'p'\"'\"'w'"``: the quoting splits the secret, the redactor must not care."""
    secret = planted.secret
    planted.remove("coolify-redis")
    planted.redis(
        cmd=("sh", "-c", f"exec /usr/bin/redis-server --dir /tmp --appendonly yes --requirepass {shlex.quote(secret)} --save 60 1"),
        env={"REDIS_PASSWORD": secret},
    )
    try:
        result = cli(*argv, *json_flag)
    finally:
        planted.remove("coolify-redis")
        planted.redis(env={"REDIS_PASSWORD": secret}, conf='requirepass "' + secret.replace("\\", "\\\\").replace('"', '\\"') + '"\n')

    assert result.exit_code == EXIT_PLANTED[argv], result.output[-400:]
    assert_never_leaks(result, secret)
    assert "S3nt" not in result.output


def test_the_sentinel_really_reaches_the_commands(planted, on_engine):
    """Guard against a vacuous table: the real containers hold the exact secret and the diagnoses see it."""
    from pmsops.host.docker import container_logs
    from pmsops.host.envdiff import check_env_diff
    from pmsops.host.logs import scan_logs
    from pmsops.host.redis_password import find_requirepass

    secret = planted.secret
    assert find_requirepass("coolify-redis").value == secret
    diff = {r.name: r for r in check_env_diff()}
    assert diff["shared values"].details["differ"] == ["JWT_SECRET"]
    needs_encoding = secret != "Q7!"  # the worker's raw URL differs from the encoded ones only when the secret has characters to encode
    assert diff["redis urls"].status.value == ("fail" if needs_encoding else "ok")
    assert any(secret in line for line in scan_logs(container_logs("pms-worker-v2")).lines)


def test_container_with_a_secret_in_an_oddly_named_variable_is_masked_in_quoted_logs(cli, fake_docker):
    fake_docker.set_env("pms-worker-v2", SERVICE_PASSWORD_64_STRIPE="sk-live-oddly-named-9f8e7d6c")
    fake_docker.logs("pms-worker-v2", stderr="[ERROR/MainProcess] Traceback (most recent call last): key sk-live-oddly-named-9f8e7d6c rejected\n")

    result = cli("--fingerprint-salt", "odd-name", "host", "logs")

    digest = hashlib.pbkdf2_hmac("sha256", b"sk-live-oddly-named-9f8e7d6c", b"odd-name", 100_000).hex()[:16]
    assert f"key <len=28 pbkdf2={digest} salt=odd-name> rejected" in result.stdout
    assert "sk-live-oddly-named-9f8e7d6c" not in result.output


# --- secrets nobody registered, in every shape, in commands, env and logs (issue #10) -----------------------------------

from secret_shapes import SHAPES, UNKNOWN_SENTINELS, BLANK_SENTINEL, leaks  # noqa: E402


def plant_unknown_secret(host: RecordedHost, secret: str) -> None:
    """The secret in every shape, where only the patterns can find it: a Start Command script, exec-form
    commands, harmless-named variables and the worker's log lines (no secret-named variable holds it),
    in real containers: the worker's command prints the recorded and planted log lines, then runs the script."""
    lines = [shape.build(secret) for shape in SHAPES if shape.delimits_blanks or " " not in secret]
    script = "\n".join(
        [shlex.join(["echo", line]) for line in lines]
        + [
            f"redis-cli -u redis://:other@coolify-redis:6379 -a {shlex.quote(secret)} ping",
            f"exec celery -A app worker --broker-password {shlex.quote(secret)}",
        ]
    )
    host.env["pms-worker-v2"].update({f"APP_SETTING_{i}": line for i, line in enumerate(lines)})
    stderr = (host.logs / "stderr").read_text(encoding="utf-8")
    stderr += "".join(f"[ERROR/MainProcess] Traceback (most recent call last): {line}\n" for line in lines)
    stderr += "".join(f"[ERROR/MainProcess] Authentication required: {line}\n" for line in lines) + "planted.\n"
    (host.logs / "stderr").write_text(stderr, encoding="utf-8")
    host.redis(cmd=("/usr/bin/redis-server", "--dir", "/tmp", "--appendonly", "yes", "--requirepass", "Kn0wn-0ther-Pass", "--masterauth", secret))
    host.backend(cmd=("redis-cli", "-h", "coolify-redis", "-p", "6379", "-a", secret, "AUTH", "default", secret))
    host.worker(cmd=("sh", "-c", "cat /logs/stdout; cat /logs/stderr >&2; sleep 3600 &\n" + script + "\nwait"))
    host.wait_logs("pms-worker-v2", "planted.")


@pytest.fixture(
    scope="module",
    params=[UNKNOWN_SENTINELS["quotes-and-dollar"], UNKNOWN_SENTINELS["runbook-specials"], BLANK_SENTINEL],
    ids=["quotes-and-dollar", "runbook-specials", "blank"],
)
def unknown_planted(request, docker_scenario, tmp_path_factory):
    """The recorded host on the real engine with one unregistered secret planted in every shape (built once per secret)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DOCKER_HOST", docker_scenario.engine.host)
    host = fresh_host(docker_scenario, tmp_path_factory)
    try:
        plant_unknown_secret(host, request.param)
        host.secret = request.param
        yield host
    finally:
        host.close()
        mp.undo()


UNKNOWN_COMMANDS = [
    ("host", "worker-cmd"),
    ("host", "worker-cmd", "coolify-redis"),
    ("host", "worker-cmd", "pms-backend"),
    ("host", "logs"),
    ("host", "env-diff"),
    ("host", "check"),
    ("--debug", "host", "check"),
]
EXIT_UNKNOWN = {argv: 0 if argv == ("host", "env-diff") else 1 for argv in UNKNOWN_COMMANDS}
"""On the host with unregistered secrets only the backend and worker environments agree: the worker runs a shell
(not celery), Redis's requirepass is another password and the logs hold authentication errors."""


@pytest.mark.parametrize("json_flag", [(), ("--json",)], ids=["text", "json"])
@pytest.mark.parametrize("argv", UNKNOWN_COMMANDS, ids=[" ".join(a) for a in UNKNOWN_COMMANDS])
def test_unregistered_secret_in_commands_env_and_logs_never_appears(cli, unknown_planted, on_engine, argv, json_flag):
    result = cli(*argv, *json_flag)

    assert result.exit_code == EXIT_UNKNOWN[argv], result.output[-400:]
    assert leaks(result.stdout + result.stderr, unknown_planted.secret) == []


def test_the_unregistered_secret_really_reaches_the_commands(unknown_planted, on_engine):
    """Guard against a vacuous table: Docker itself hands the secret to the diagnoses (command, environment, logs)."""
    from pmsops.host.containers import inspect_container
    from pmsops.host.docker import container_logs

    secret = unknown_planted.secret
    worker = inspect_container("pms-worker-v2")
    assert secret in worker.cmd[-1] or shlex.quote(secret) in worker.cmd[-1]
    assert any(secret in value for value in worker.env.values())
    assert secret in " ".join(inspect_container("coolify-redis").cmd)
    assert secret in container_logs("pms-worker-v2")
