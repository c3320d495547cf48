"""A secret given to pmsops never comes back out, in any form.

Runbook: "Do NOT paste raw password in production logs/docs", "Store in variable
(don't echo to logs)". A sentinel secret with every character the runbook warns
about is fed to each command through the environment, an ``--env-file``, stdin and
files; stdout and stderr must never contain it raw, ``quote()``-d or
``quote_plus()``-ed, base64-encoded or JSON-escaped, in text or ``--json`` mode; a
secret shorter than 4 characters included.

To cover a new command, add its argv to ``COMMANDS`` (placeholders: ``{redis_conf}``,
a redis.conf whose requirepass is the sentinel; ``{sentinel_file}``, a file holding
only the sentinel; ``{url}``, the sentinel's URL as an argument). Every command
gets the sentinel on stdin too.
"""

from __future__ import annotations

import base64
import json
import os
from urllib.parse import quote, quote_plus

import pytest

SENTINELS = [
    "S3ntinel+=@:/?#&%ß",
    "S3nt inel'\"+=@:/?#&%[];`$\\ß",  # space, both quotes, brackets, backtick, dollar, backslash
    "Q7!",  # shorter than 4 characters: masked wherever it stands as a whole token
]
SENTINEL_IDS = ["runbook-specials", "quotes-and-spaces", "short"]

COMMANDS: list[tuple[str, ...]] = [
    ("redis-url", "check"),
    ("redis-url", "check", "--json"),
    ("redis-url", "check", "--strict"),
    ("redis-url", "check", "{url}"),
    ("redis-url", "check", "{url}", "--json"),
    ("compare-password-hash", "--requirepass-stdin"),
    ("compare-password-hash", "--requirepass-stdin", "--json"),
    ("compare-password-hash", "--url", "{url}", "--requirepass-stdin"),
    ("compare-password-hash", "--url", "{url}", "--requirepass-stdin", "--json"),
    ("compare-password-hash", "--redis-conf", "{redis_conf}"),
    ("compare-password-hash", "--redis-conf", "{redis_conf}", "--json"),
    ("explain",),
    ("explain", "401", "--json"),
    ("--debug", "redis-url", "check"),
    ("--debug", "compare-password-hash", "--requirepass-stdin"),
    ("--debug", "compare-password-hash", "--url", "{url}"),  # a usage error: its traceback is shown
]


def expected_exit_code(argv: tuple[str, ...], environment: str, secret: str) -> int:
    """The one right exit code of each case (a crash, exit 1 with a traceback, must not pass as "no leak")."""
    command = [arg for arg in argv if arg != "--debug"]
    if command[0] == "explain":
        return 0
    if command[0] == "compare-password-hash" and "--url" in command and "--requirepass-stdin" not in command:
        return 2  # a URL and nothing to compare it with: bad input
    if environment == "missing-colon":
        return 1  # REDIS_URL's password read as a user name: a finding, not bad input
    breaks_url = any(ch in secret for ch in "/?#@[]% ")
    if environment == "encoded-in-urls" or not breaks_url:
        return 1 if "--strict" in command and environment == "user-and-password" else 0
    return 2 if command[0] == "redis-url" else 1  # a raw '#', '/', '@' …: redis-url check's own target is unreadable


def forms(secret: str) -> dict[str, str]:
    return {
        "raw": secret,
        "quote(safe='')": quote(secret, safe=""),
        "quote()": quote(secret),
        "quote_plus()": quote_plus(secret),
        "base64": base64.b64encode(secret.encode()).decode().rstrip("="),
        "JSON-escaped": json.dumps(secret, ensure_ascii=False)[1:-1],
        "JSON-escaped ASCII": json.dumps(secret)[1:-1],
    }


def environments(secret: str) -> dict[str, dict[str, str]]:
    encoded = quote(secret, safe="")
    secrets = {
        "PASSWORD": secret,
        "REDIS_PASSWORD": secret,
        "JWT_SECRET": secret,
        "SUPABASE_JWT_SECRET": secret,
        "TOKEN": secret,
        "JWT_TOKEN": secret,
        "ANON_KEY": secret,
        "ENCRYPTION_KEY": secret,
        "DATABASE_URL": f"postgresql://pms:{encoded}@supabase-db:5432/postgres",
    }
    return {
        "raw-in-urls": secrets
        | {
            "REDIS_URL": f"redis://:{secret}@coolify-redis:6379/0",
            "CELERY_BROKER_URL": f"redis://:{encoded}@coolify-redis:6379/0",
            "CELERY_RESULT_BACKEND": f"redis://:{quote_plus(secret)}@coolify-redis:6379/0",
        },
        "encoded-in-urls": secrets
        | {name: f"redis://:{encoded}@coolify-redis:6379/0" for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")},
        "missing-colon": secrets | {"REDIS_URL": f"redis://{encoded}@coolify-redis:6379/0"},
        "user-and-password": secrets | {"REDIS_URL": f"redis://default:{secret}@coolify-redis:6379/0"},
    }


def as_env_file(values: dict[str, str]) -> str:
    """Double-quoted export lines, escaped as the shell (and pmsops.envfile) read them."""

    def escape(value: str) -> str:
        return "".join("\\" + ch if ch in '"\\$`' else ch for ch in value)

    return "".join(f'export {name}="{escape(value)}"\n' for name, value in values.items())


def as_redis_conf(secret: str) -> str:
    escaped = secret.replace("\\", "\\\\").replace('"', '\\"')
    return f'bind 0.0.0.0\nrequirepass "{escaped}"\n'


@pytest.fixture(autouse=True)
def _restore_environ():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def assert_never_leaks(result, secret: str, allowed: tuple[str, ...] = ()) -> None:
    for name, form in forms(secret).items():
        if form in allowed:
            continue
        assert form not in result.stdout, f"{name} form of the secret on stdout:\n{result.stdout}"
        assert form not in result.stderr, f"{name} form of the secret on stderr:\n{result.stderr}"


def run(cli, tmp_path, argv: tuple[str, ...], secret: str, env: dict[str, str], via_env_file: bool):
    conf = tmp_path / "redis.conf"
    conf.write_text(as_redis_conf(secret), encoding="utf-8")
    sentinel_file = tmp_path / "sentinel.txt"
    sentinel_file.write_text(secret, encoding="utf-8")
    placeholders = {"{redis_conf}": str(conf), "{sentinel_file}": str(sentinel_file), "{url}": env["REDIS_URL"]}
    args = [placeholders.get(arg, arg) for arg in argv]
    if via_env_file:
        env_file = tmp_path / "pms_env.sh"
        env_file.write_text(as_env_file(env), encoding="utf-8")
        return cli("--env-file", str(env_file), *args, input=secret + "\n")
    return cli(*args, input=secret + "\n", env=env)


@pytest.mark.parametrize("via_env_file", [False, True], ids=["process-env", "env-file"])
@pytest.mark.parametrize("environment", ["raw-in-urls", "encoded-in-urls", "missing-colon", "user-and-password"])
@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(argv) for argv in COMMANDS])
@pytest.mark.parametrize("secret", SENTINELS, ids=SENTINEL_IDS)
def test_secret_never_appears_in_any_form(cli, tmp_path, secret, argv, environment, via_env_file):
    result = run(cli, tmp_path, argv, secret, environments(secret)[environment], via_env_file)

    assert result.exit_code == expected_exit_code(argv, environment, secret), result.output
    if "--debug" not in argv:
        assert "Traceback" not in result.output
    assert_never_leaks(result, secret)


@pytest.mark.parametrize("fmt", ["text", "env", "json"])
@pytest.mark.parametrize("secret", SENTINELS, ids=SENTINEL_IDS)
def test_encode_redis_password_prints_only_the_encoded_value_it_was_asked_for(cli, secret, fmt):
    result = cli(
        "encode-redis-password", "--stdin", "--host", "coolify-redis", "--format", fmt, input=secret + "\n", env=environments(secret)["raw-in-urls"]
    )

    assert result.exit_code == 0
    assert quote(secret, safe="") in result.stdout
    assert_never_leaks(result, secret, allowed=(quote(secret, safe=""),))


@pytest.mark.parametrize("secret", SENTINELS, ids=SENTINEL_IDS)
def test_encode_redis_password_from_an_argument_does_not_echo_it(cli, secret):
    result = cli("encode-redis-password", secret)

    assert_never_leaks(result, secret, allowed=(quote(secret, safe=""),))


@pytest.mark.parametrize("secret", SENTINELS, ids=SENTINEL_IDS)
def test_the_sentinel_really_reaches_the_commands(cli, tmp_path, secret):
    """Guard against a vacuous table: env file, stdin and redis.conf deliver the exact secret."""
    from pmsops.envfile import parse_env_text
    from pmsops.passwords import read_requirepass_from_conf

    env = environments(secret)["encoded-in-urls"]
    assert parse_env_text(as_env_file(env)).values == env
    assert read_requirepass_from_conf(as_redis_conf(secret)) == secret

    via_stdin = run(cli, tmp_path, ("compare-password-hash", "--requirepass-stdin"), secret, env, via_env_file=True)
    via_conf = run(cli, tmp_path, ("compare-password-hash", "--redis-conf", "{redis_conf}"), secret, env, via_env_file=False)

    assert (via_stdin.exit_code, via_conf.exit_code) == (0, 0)
