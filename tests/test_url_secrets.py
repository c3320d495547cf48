"""Issue #10 (High): pieces of a password must never reach the output through URL parser errors.

An operator pastes a password unencoded into REDIS_URL, CELERY_BROKER_URL,
CELERY_RESULT_BACKEND or DATABASE_URL. Every command that takes a URL must then
stop with exit 2 and ONE line naming the raw characters to encode — never a
parser's own words ("Port could not be cast to integer value as 'PrefixQz7'",
"invalid literal for int() with base 10: '9+Yb@127.0.0.1:5432'", "bad query
field: 'Lm'"), in text, --json or --debug. The sweep checks every substring of
length >= 4 of the password (raw and lower-cased: urlsplit lower-cases hosts).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmsops.errors import UsageError
from pmsops.redaction import ANYWHERE_LENGTH, REDACTOR, redact
from pmsops.urlread import asyncpg_parse, read_url, register_url_secrets

SENTINELS = [
    "PrefixQz7/tail",  # the issue's reproduction
    "Qx7@Vk:9/Zp?Lm#Nw",  # the issue's database case
    "Jq9#Wz4@Kv8x",
    "Zk[8Qv]Xw3J",
    "Vw;Kq/Jz9X",
    "Mq9 ?Xz8@Wv",
    "Xq\tZv/Wk8J",
    "HqZT9QX/Kz",  # upper case: urlsplit lower-cases a piece it reads as host
    "Wq8:Zx/Vk9:Jy",
    "Zü9/Kä8#Qö",
]
DB_ONLY_SENTINELS = ["Qx7@Vk:9+Yb", "Rw4@Tz8,Uq2"]
"""A raw '@' (and ',') is read fine by redis-py and kombu, but asyncpg cuts at the first '@'."""


def fragments(password: str) -> set[str]:
    """Every substring of 8 characters or more that holds a letter or digit: the settled redaction rule (#23 item 6)
    leaves a shorter fragment of a password visible inside other text ("tail" of PrefixQz7/tail in "details")."""
    out = set()
    for text in (password, password.lower(), password.replace("\t", "")):
        for i in range(len(text)):
            for j in range(i + ANYWHERE_LENGTH, len(text) + 1):
                piece = text[i:j]
                if any(c.isalnum() for c in piece):
                    out.add(piece)
    return out


def leaked(password: str, output: str) -> list[str]:
    return sorted(f for f in fragments(password) if f in output)


def redis_url(password: str) -> str:
    return f"redis://:{password}@127.0.0.1:1/0"


def db_url(password: str) -> str:
    return f"postgresql://u:{password}@127.0.0.1:1/db"


# (command, variable that holds the bad URL)
COMMANDS = [
    (("celery", "ping"), "CELERY_BROKER_URL"),
    (("celery", "ping"), "REDIS_URL"),  # the broker falls back to REDIS_URL
    (("celery", "registered"), "CELERY_BROKER_URL"),
    (("celery", "stats"), "CELERY_BROKER_URL"),
    (("celery", "active"), "CELERY_BROKER_URL"),
    (("check", "redis"), "REDIS_URL"),
    (("check", "db"), "DATABASE_URL"),
    (("redis-url", "check"), "REDIS_URL"),
    (("redis-url", "check"), "CELERY_RESULT_BACKEND"),
    (("wait-for-deps",), "REDIS_URL"),
    (("wait-for-deps",), "DATABASE_URL"),
]
MULTI_CHECK = [((c,), v) for c in ("doctor", "worker-check") for v in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "DATABASE_URL")]
"""Commands that run several checks: a bad variable is one failed result naming it, and the other checks still run."""
JSON_COMMANDS = {
    ("celery", "ping"),
    ("celery", "registered"),
    ("celery", "stats"),
    ("celery", "active"),
    ("doctor",),
    ("worker-check",),
    ("check", "redis"),
    ("check", "db"),
    ("redis-url", "check"),
}


def bad_url(variable: str, password: str) -> str:
    return db_url(password) if variable == "DATABASE_URL" else redis_url(password)


def run(cli, command: tuple[str, ...], variable: str, password: str, mode: str):
    args = list(command)
    if mode == "json":
        args.append("--json")
    if mode == "debug":
        args = ["--debug", *args]
    REDACTOR.forget_all()  # each run starts as a fresh process would
    return cli(*args, env={variable: bad_url(variable, password)})


@pytest.mark.parametrize("mode", ["text", "json", "debug"])
@pytest.mark.parametrize(("command", "variable"), COMMANDS, ids=lambda v: "-".join(v) if isinstance(v, tuple) else v)
def test_unencoded_password_in_any_url_is_one_line_exit_2_without_a_fragment(cli, command, variable, mode):
    if mode == "json" and command not in JSON_COMMANDS:
        pytest.skip("no --json")
    passwords = SENTINELS + (DB_ONLY_SENTINELS if variable == "DATABASE_URL" else [])
    for password in passwords:
        result = run(cli, command, variable, password, mode)
        assert result.exit_code == 2, (password, result.output)
        assert leaked(password, result.output) == [], (password, result.output)
        errors = [line for line in result.stderr.splitlines() if line.startswith("✗ error:")]
        assert len(errors) == 1 and errors[0].startswith(f"✗ error: {variable}: "), (password, result.output)
        assert "encode as %" in errors[0], (password, errors[0])
        if mode == "text":
            assert result.stdout == "" and result.stderr.splitlines() == errors, (password, result.output)
        elif mode == "json":  # issue #17: one error report on stdout, so a jq gate cannot pass on empty input
            report = json.loads(result.stdout)
            assert report["exit_code"] == 2 and report["error"]["type"] == "usage" and report["results"] == [], (password, result.output)
            assert result.stderr.splitlines() == errors, (password, result.output)


@pytest.mark.parametrize("mode", ["text", "json"])
@pytest.mark.parametrize(("command", "variable"), MULTI_CHECK, ids=lambda v: "-".join(v) if isinstance(v, tuple) else v)
def test_unencoded_password_fails_one_result_of_a_multi_check_command_and_the_rest_run_without_a_fragment(cli, command, variable, mode):
    """#24 item 2, #28: one bad URL no longer stops doctor or worker-check; one failed result names the variable and the character."""
    passwords = SENTINELS + (DB_ONLY_SENTINELS if variable == "DATABASE_URL" else [])
    for password in passwords:
        result = run(cli, command, variable, password, mode)
        assert (result.exit_code, leaked(password, result.output)) == (1, []), (password, result.output)
        if mode == "json":
            found = json.loads(result.stdout)["results"]
            named = [r for r in found if r["status"] == "fail" and r["summary"].startswith(f"{variable}: ") and "encode as %" in r["summary"]]
            assert (len(named), len(found) >= 4) == (1, True), (password, result.output)
        else:
            assert f"FAILED  {variable}: " in result.stdout and "encode as %" in result.stdout, (password, result.output)


def test_issue_reproduction_celery_ping_names_the_slash_not_the_port_error(cli):
    result = cli("celery", "ping", env={"REDIS_URL": "redis://:PrefixQz7/tail@127.0.0.1:1/0"})

    assert result.exit_code == 2
    assert result.stderr == (
        "✗ error: REDIS_URL: the password contains raw '/' (encode as %2F): kombu (Celery's broker) "
        "cannot read the port (not a number between 0 and 65535) (pmsops encode-redis-password prints the encoded URL)\n"
    )


def test_issue_reproduction_check_db_names_the_at_sign_not_the_int_error(cli):
    result = cli("check", "db", env={"DATABASE_URL": "postgresql://u:Qx7@Vk:9+Yb@127.0.0.1:5432/db"})

    assert result.exit_code == 2
    assert "password contains raw '@' (encode as %40): asyncpg cannot read the port" in result.stderr
    assert "9+Yb" not in result.output and "invalid literal" not in result.output


def test_issue_reproduction_bad_query_field_is_named_without_its_text(cli):
    result = cli("check", "db", env={"DATABASE_URL": "postgresql://u:Qx7@Vk:9/Zp?Lm#Nw@127.0.0.1:5432/db"})

    assert result.exit_code == 2
    assert "'/' '?' '#' '@' (encode as %2F %3F %23 %40)" in result.stderr
    assert "bad query field" not in result.output and "'Lm'" not in result.output


# --- the redaction layer knows every piece, so even a library's own text is masked ------------------

_ALPHABET = "QXZJVKWqxzjvkw0123456789üä" + "/?#@[];,&=+: \t%"
_MUST = "/?#["


def _library_errors(url: str) -> list[str]:
    """The raw exception texts of every parser the clients use, for the same string."""
    from urllib.parse import urlsplit

    texts = []
    attempts = []

    def redis_py():
        from redis.connection import parse_url

        parse_url(url)

    def kombu():
        from kombu.utils.url import url_to_parts

        url_to_parts(url)

    def split():
        urlsplit(url).port

    def asyncpg():

        asyncpg_parse(url.replace("redis://", "postgresql://", 1))

    attempts = [redis_py, kombu, split, asyncpg]
    for attempt in attempts:
        try:
            attempt()
        except Exception as exc:  # noqa: BLE001 - we want every library's words
            texts.append(f"{type(exc).__name__}: {exc}")
    return texts


@settings(derandomize=True, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=_ALPHABET, min_size=4, max_size=24).filter(lambda p: any(c in p for c in _MUST)))
def test_library_error_texts_are_masked_once_the_url_is_registered(password):
    url = f"redis://:{password}@127.0.0.1:6379/0"
    REDACTOR.forget_all()
    register_url_secrets(url)
    for text in _library_errors(url) + _library_errors(url.replace("redis://", "postgresql://", 1)):
        assert leaked(password, redact(text)) == [], (password, text, redact(text))


@settings(derandomize=True, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(alphabet=_ALPHABET, min_size=4, max_size=24).filter(lambda p: any(c in p for c in _MUST)),
    st.sampled_from(["redis-py", "kombu", "celery-backend", "asyncpg"]),
)
def test_every_client_refuses_a_password_it_would_misread_without_quoting_it(password, client):
    url = db_url(password) if client == "asyncpg" else redis_url(password)
    REDACTOR.forget_all()
    with pytest.raises(UsageError) as caught:
        read_url(url, client, "URL")
    message = caught.value.message + (caught.value.hint or "")
    assert leaked(password, message) == [], (password, message)
    assert "\n" not in caught.value.message


# --- a check states the address it reached -------------------------------------------------------------


def test_redis_url_without_host_says_redis_py_falls_back_to_localhost(cli, redis_server):
    import redis

    # what the client does, measured: a URL with no host connects to localhost:6379
    pool = redis.ConnectionPool.from_url("redis://")
    assert (pool.connection_class(**pool.connection_kwargs).host, pool.connection_class(**pool.connection_kwargs).port) == ("localhost", 6379)

    result = cli("check", "redis", "--url", f"redis://:x@:{redis_server.port}/0", "--timeout", "1")

    assert f"at localhost:{redis_server.port} (no host in the URL: redis-py falls back to localhost)" in result.stdout


def test_check_redis_names_the_address_it_reached(cli, redis_server):
    result = cli("check", "redis", "--url", redis_server.url)

    assert result.exit_code == 0
    assert f"at 127.0.0.1:{redis_server.port}: PONG" in result.stdout


def test_check_db_names_the_first_host_asyncpg_uses(cli, postgres, refused_port):
    # a multi-host DSN: asyncpg tries the hosts in order; the check names the first
    url = postgres.url.replace(f"127.0.0.1:{postgres.port}", f"127.0.0.1:{postgres.port},127.0.0.1:{refused_port}")
    result = cli("check", "db", "--url", url)

    assert result.exit_code == 0, result.output
    assert f"at 127.0.0.1:{postgres.port} (first of 2)" in result.stdout


def test_a_piece_of_an_unencoded_password_never_eats_part_of_an_ordinary_word():
    """The settled rule (#23 item 6): a fragment shorter than 8 characters ('tail' of 'PrefixQz7/tail') is masked only
    where it is the whole text, never inside "details" of every JSON report; a longer one as a whole token."""
    REDACTOR.forget_all()
    register_url_secrets(redis_url("PrefixQz7/tail"))
    assert redact('{"details": {}, "summary": "retail"}') == '{"details": {}, "summary": "retail"}'
    assert redact("host 'tail@127.0.0.1' does not resolve") == "host 'tail@127.0.0.1' does not resolve"
    assert redact("tail") == "tail"  # and where it is the whole text, it is still one of pmsops's own words
    register_url_secrets(redis_url("PrefixQz7/Vkq8"))
    assert (redact("Vkq8"), redact("port 'Vkq8'")) == ("***", "port 'Vkq8'")
    assert redact("value as 'PrefixQz7'") == "value as '***'"
    assert redact("PrefixQz7x") == "PrefixQz7x"
