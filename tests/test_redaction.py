"""The redaction layer: the last line of defence between a secret and the operator's terminal.

Runbook: "Do NOT paste raw password in production logs/docs" and "Mask password for
logging". Everything that leaves the process passes through ``pmsops.redaction``.
"""

from __future__ import annotations

import io
import json
import logging
import os
from urllib.parse import quote, quote_plus

import pytest

from pmsops.redaction import (
    MASK,
    RedactingFormatter,
    Secret,
    fingerprint,
    redact,
    redact_logging,
    redact_obj,
    register_secret,
    sha256_prefix,
)

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


# --- URLs -----------------------------------------------------------------------------------------------


def test_redis_url_password_is_masked_the_runbook_way():
    assert redact("connecting to redis://:hunter22@coolify-redis:6379/0") == "connecting to redis://:***@coolify-redis:6379/0"


def test_redis_url_with_password_but_no_colon_is_masked_whole():
    assert redact("redis://hunter22@coolify-redis:6379/0") == "redis://***@coolify-redis:6379/0"


def test_postgres_url_keeps_the_user_and_masks_the_password():
    assert redact("postgresql://pms:hunter22@supabase-db:5432/postgres") == "postgresql://pms:***@supabase-db:5432/postgres"


def test_url_with_unencoded_special_characters_in_password_is_masked():
    text = "Error 111 connecting to redis://:p+ss=w@rd/#1@host:6379/0."

    assert redact(text) == "Error 111 connecting to redis://:***@host:6379/0."


def test_url_without_userinfo_is_left_alone():
    assert redact("GET https://api.example.com/api/v1/health/ready") == "GET https://api.example.com/api/v1/health/ready"


# --- tokens and key=value pairs -----------------------------------------------------------------------------


def test_jwt_is_replaced_by_its_length_and_sha256_prefix():
    assert redact(f"token: {JWT}") == f"token: <jwt {fingerprint(JWT)}>"


def test_bearer_value_is_masked():
    assert redact("Authorization: Bearer abcdef0123456789") == f"Authorization: Bearer {MASK}"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("password=hunter22", "password=***"),
        ("host=db user=pms password=hunter22 dbname=pms", "host=db user=pms password=*** dbname=pms"),
        ("?requirepass=hunter22&db=0", "?requirepass=***&db=0"),
        ("JWT_SECRET='abc def'", "JWT_SECRET=***"),
        ('api_key="abc"', "api_key=***"),
    ],
)
def test_password_equals_value_pairs_are_masked(text, masked):
    assert redact(text) == masked


def test_fingerprints_are_not_masked_again():
    assert redact("password=len=8 sha256=0123456789abcdef") == "password=len=8 sha256=0123456789abcdef"


# --- registered secrets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", [str, lambda s: quote(s, safe=""), quote, quote_plus], ids=["raw", "quote-safe-empty", "quote", "quote_plus"])
def test_registered_secret_is_masked_in_every_encoded_form(form):
    secret = "S3cret +=@:/?#&%ß"
    register_secret(secret)

    assert redact(f"value is {form(secret)}!") == f"value is {MASK}!"


def test_registered_secret_is_masked_inside_json_escaping():
    secret = 'quote"and\\backslash'
    register_secret(secret)

    assert secret not in redact(json.dumps({"v": secret}))
    assert json.dumps(secret)[1:-1] not in redact(json.dumps({"v": secret}))


def test_short_registered_secret_is_masked_as_a_whole_token_but_not_inside_words():
    register_secret("Qz7")

    assert redact("AUTH failed for Qz7, retry 'Qz7' (pw=Qz7)") == "AUTH failed for ***, retry '***' (pw=***)"
    assert redact("xQz7y and Qz7x stay") == "xQz7y and Qz7x stay"


def test_one_letter_secret_masks_the_word_but_no_letter_inside_words():
    register_secret("a")

    assert redact("a cat ate data") == "*** cat ate data"


def test_short_punctuation_and_flag_values_are_never_registered_so_output_survives():
    for value in (":", "-", "1", "0", "on", "no", "yes"):
        register_secret(value)

    assert redact("h: 1 retry, 0 failed, logging on: yes - no") == "h: 1 retry, 0 failed, logging on: yes - no"


def test_redact_obj_masks_nested_strings_and_keys():
    register_secret("hunter22")

    assert redact_obj({"url": "redis://:x@h", "list": ["hunter22"], "hunter22": 1, "n": 3}) == {
        "url": "redis://:***@h",
        "list": [MASK],
        MASK: 1,
        "n": 3,
    }


# --- Secret -------------------------------------------------------------------------------------------------------------


def test_secret_str_repr_and_format_never_reveal():
    secret = Secret("hunter22")

    shown = [str(secret), repr(secret), f"{secret}", f"{secret!r}", f"{secret:>20}", "%s" % secret, "{}".format(secret)]

    assert all("hunter22" not in text for text in shown)
    assert str(secret) == MASK


def test_secret_reveals_only_when_asked():
    assert Secret("hunter22").reveal() == "hunter22"


def test_secret_inside_a_container_repr_does_not_reveal():
    assert "hunter22" not in repr({"password": Secret("hunter22")})


def test_secret_is_registered_so_its_value_is_masked_anywhere():
    Secret("hunter22")

    assert redact("raw hunter22 leaked") == "raw *** leaked"


@pytest.fixture
def fingerprint_settings():
    from pmsops.redaction import set_fingerprint_salt, set_reveal_fingerprint

    yield set_fingerprint_salt, set_reveal_fingerprint
    set_fingerprint_salt(None)
    set_reveal_fingerprint(None)


def test_fingerprint_is_length_and_salted_pbkdf2_not_the_bare_sha256(fingerprint_settings):
    import hashlib

    set_salt, _ = fingerprint_settings
    set_salt("test-salt")

    digest = hashlib.pbkdf2_hmac("sha256", b"hunter22", b"test-salt", 100_000).hex()[:16]
    assert fingerprint("hunter22") == f"len=8 pbkdf2={digest} salt=test-salt"
    assert hashlib.sha256(b"hunter22").hexdigest()[:16] not in fingerprint("hunter22")


def test_fingerprints_derived_together_on_every_core_are_the_same_as_one_by_one(fingerprint_settings, monkeypatch):
    import hashlib

    from pmsops.redaction import derive_fingerprints

    set_salt, _ = fingerprint_settings
    set_salt(f"together-{os.getpid()}")
    values = [f"value-{i}-{os.getpid()}" for i in range(5)]
    expected = {v: hashlib.pbkdf2_hmac("sha256", v.encode(), f"together-{os.getpid()}".encode(), 100_000).hex()[:16] for v in values}
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # derived together even on a one-core machine
    derive_fingerprints(values + [values[0], ""])

    # what fingerprint() shows now comes from what was derived together, not from a derivation of its own
    monkeypatch.setattr(hashlib, "pbkdf2_hmac", lambda *a: pytest.fail("derived again, one by one"))
    for value in values:
        assert fingerprint(value) == f"len={len(value)} pbkdf2={expected[value]} salt=together-{os.getpid()}"


def test_fingerprint_salt_is_random_per_invocation_so_no_lookup_table_applies(fingerprint_settings):
    set_salt, _ = fingerprint_settings
    set_salt(None)
    first = fingerprint("hunter22")
    set_salt(None)
    second = fingerprint("hunter22")

    assert first != second
    assert first.split()[0] == second.split()[0] == "len=8"


def test_the_library_takes_its_salt_from_the_entry_point_never_from_the_environment(fingerprint_settings, monkeypatch):
    # PMSOPS_FINGERPRINT_SALT reaches fingerprints through the CLI (test_compare_password_hash: "environment"); the
    # library reads no environment (#28), so a process that did not configure it gets a random salt
    set_salt, _ = fingerprint_settings
    monkeypatch.setenv("PMSOPS_FINGERPRINT_SALT", "incident-0412")
    set_salt(None)

    assert not fingerprint("hunter22").endswith(" salt=incident-0412")


def test_revealed_fingerprint_is_the_runbooks_sha256_prefix(fingerprint_settings):
    import hashlib

    _, reveal = fingerprint_settings
    reveal(True)

    assert fingerprint("hunter22") == f"len=8 sha256={hashlib.sha256(b'hunter22').hexdigest()[:16]}"
    assert sha256_prefix("hunter22") == hashlib.sha256(b"hunter22").hexdigest()[:16]


# --- exception texts and logging ---------------------------------------------------------------------------------------------


def test_exception_text_from_a_failing_check_is_redacted():
    from pmsops.results import run_check

    def broken():
        raise ConnectionError("Error connecting to redis://:hunter22@coolify-redis:6379/0")

    [result] = run_check("redis", broken)

    assert result.status.value == "fail"
    assert result.summary == "ConnectionError: Error connecting to redis://:***@coolify-redis:6379/0"


def test_unexpected_exception_in_a_command_is_one_redacted_line(cli, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("cannot reach redis://:hunter22@coolify-redis:6379/0 with password=hunter22")

    monkeypatch.setattr("pmsops.checks.urls.check_redis_urls", boom)

    result = cli("redis-url", "check", "redis://coolify-redis:6379/0")

    assert result.exit_code == 1
    assert "hunter22" not in result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines()[0] == "✗ error: RuntimeError: cannot reach redis://:***@coolify-redis:6379/0 with password=***"


def test_logging_formatter_redacts_messages_and_tracebacks():
    stream = io.StringIO()
    logger = logging.getLogger("pmsops.test.redaction")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        redact_logging(logger)
        try:
            raise ValueError("bad url redis://:hunter22@h:6379/0")
        except ValueError:
            logger.exception("connect failed to %s", "redis://:hunter22@h:6379/0")
    finally:
        logger.removeHandler(handler)

    text = stream.getvalue()
    assert "hunter22" not in text
    assert "ERROR connect failed to redis://:***@h:6379/0" in text
    assert "ValueError: bad url redis://:***@h:6379/0" in text


def test_redacting_formatter_wraps_the_existing_formatter_once():
    handler = logging.StreamHandler(io.StringIO())
    logger = logging.getLogger("pmsops.test.redaction.once")
    logger.addHandler(handler)
    try:
        redact_logging(logger)
        redact_logging(logger)
        assert isinstance(handler.formatter, RedactingFormatter)
        assert not isinstance(handler.formatter._inner, RedactingFormatter)
    finally:
        logger.removeHandler(handler)


# --- secrets nobody registered, in the shapes logs and configs carry them ------------------------------------------------

from secret_shapes import ORDINARY_LINES, cases, leaks  # noqa: E402

CASES = cases()


@pytest.mark.parametrize(("shape", "secret"), [(shape, secret) for _, shape, secret in CASES], ids=[c[0] for c in CASES])
def test_unregistered_secret_in_a_log_shape_is_masked_in_every_form(shape, secret):
    line = shape.build(secret)

    assert leaks(redact(line), secret) == []


@pytest.mark.parametrize(("shape", "secret"), [(shape, secret) for _, shape, secret in CASES], ids=[c[0] for c in CASES])
def test_unregistered_secret_in_a_log_shape_is_masked_inside_json_output(shape, secret):
    dumped = json.dumps(redact_obj({"notes": [shape.build(secret)], "line": shape.build(secret)}), ensure_ascii=False)

    assert leaks(dumped, secret) == []


@pytest.mark.parametrize("line", ORDINARY_LINES)
def test_ordinary_log_lines_with_secretish_words_are_not_mangled(line):
    assert redact(line) == line


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("+ redis-cli -h coolify-redis -a 'p@ss w' ping", "+ redis-cli -h coolify-redis -a *** ping"),
        ("redis-server --requirepass 'Qz7'\"'\"'x' --save 60", "redis-server --requirepass *** --save 60"),
        ('requirepass "a b"', "requirepass ***"),
        ("CONFIG SET masterauth Lm9x", "CONFIG SET masterauth ***"),
        ("AUTH default Lm9x", "AUTH default ***"),
        ("AUTH alice Lm9x", "AUTH *** ***"),
        ('"AUTH" "default" "Lm9x"', '"AUTH" "default" "***"'),
        ("PASSWORD: Lm9x", "PASSWORD: ***"),
        ("password = Lm9x", "password = ***"),
        ('  password: "Lm9x"', "  password: ***"),
        ("{'password': 'Lm9x', 'db': 0}", "{'password': '***', 'db': 0}"),
        ('{"api_key":"Lm9x","n":1}', '{"api_key":"***","n":1}'),
        ("X-Api-Key: Lm9x", "X-Api-Key: ***"),
        ("x-auth-token=Lm9x; path=/", "x-auth-token=***; path=/"),
        ("Authorization: Basic ZGVmYXVsdDpMbTl4", "Authorization: Basic ***"),
        ("Authorization: Token Lm9xLm9x", "Authorization: Token ***"),
        ("curl -H 'Authorization: Bearer Lm9x'", "curl -H 'Authorization: Bearer ***'"),
        ("sent Basic ZGVmYXVsdDpMbTl4 upstream", "sent Basic *** upstream"),
        ("mysql -u root -pLm9x db", "mysql -u root -p*** db"),
        ("pg_dump --password=Lm9x pms", "pg_dump --password=*** pms"),
        ('{"broker": "redis:\\/\\/:Lm9x@coolify-redis:6379\\/0"}', '{"broker": "redis:\\/\\/:***@coolify-redis:6379\\/0"}'),
        ("redis://:Lm 9x@coolify-redis:6379/0 refused", "redis://:***@coolify-redis:6379/0 refused"),
        ("postgresql://pms:it's@db:5432/pms", "postgresql://pms:***@db:5432/pms"),
        ("statement: ALTER ROLE pms WITH PASSWORD 'Lm 9x';", "statement: ALTER ROLE pms WITH PASSWORD ***;"),
        ('CREATE USER u IDENTIFIED BY "Lm9x"', "CREATE USER u IDENTIFIED BY ***"),
    ],
    ids=lambda v: v if len(v) < 40 else v[:40],
)
def test_secret_shapes_keep_the_keyword_and_lose_the_value(text, masked):
    assert redact(text) == masked


def test_port_flags_are_not_passwords():
    assert redact("redis-cli -p 6379 -h coolify-redis ping; psql -p 5432") == "redis-cli -p 6379 -h coolify-redis ping; psql -p 5432"


def test_redact_obj_masks_string_values_under_secret_keys_in_json_output():
    masked = redact_obj(
        {
            "password": "Lm9x",
            "X-Api-Key": "Lm9x",
            "details": {"client_secret": "Lm9x", "password_length": 4},
            "requirepass": {"length": 4},
            "token": None,
        }
    )

    assert masked == {
        "password": MASK,
        "X-Api-Key": MASK,
        "details": {"client_secret": MASK, "password_length": 4},
        "requirepass": {"length": 4},
        "token": None,
    }


def test_debug_traceback_with_secret_arguments_is_masked():
    import traceback

    def connect(password: str) -> None:
        raise ConnectionError(f"AUTH default {password} rejected; kwargs={{'password': {password!r}}}")

    secret = "-".join(["Lm9x", "never", "registered"])  # not a literal: the traceback quotes source lines
    try:
        connect(secret)
    except ConnectionError as exc:
        text = redact("".join(traceback.format_exception(exc)))

    assert "Lm9x" not in text
    assert "AUTH default *** rejected; kwargs={'password': '***'}" in text


def test_host_logs_style_redaction_shows_the_keyword_and_a_fingerprint(fingerprint_settings):
    from pmsops.redaction import redact_with_fingerprints

    set_salt, _ = fingerprint_settings
    set_salt("logs-salt")

    assert redact_with_fingerprints("AUTH default Lm9x-secret") == f"AUTH default <{fingerprint('Lm9x-secret')}>"


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (
            ["redis-server", "--appendonly", "yes", "--requirepass", "Lm9x", "--save", "60"],
            ["redis-server", "--appendonly", "yes", "--requirepass", MASK, "--save", "60"],
        ),
        (
            ["redis-cli", "-h", "coolify-redis", "-p", "6379", "-a", "Lm9x", "ping"],
            ["redis-cli", "-h", "coolify-redis", "-p", "6379", "-a", MASK, "ping"],
        ),
        (["/usr/local/bin/redis-cli", "AUTH", "default", "Lm9x"], ["/usr/local/bin/redis-cli", "AUTH", "default", MASK]),
        (["redis-server", "/etc/redis.conf", "--masterauth", "Lm 9x"], ["redis-server", "/etc/redis.conf", "--masterauth", MASK]),
        (["mysql", "-u", "root", "-pLm9x"], ["mysql", "-u", "root", "-p" + MASK]),
        (["psql", "--no-password", "-h", "db", "-p", "5432"], ["psql", "--no-password", "-h", "db", "-p", "5432"]),
        (["tar", "-a", "-cf", "x.tar"], ["tar", "-a", "-cf", "x.tar"]),
    ],
    ids=["--requirepass", "redis-cli -a", "AUTH default", "--masterauth with blank", "mysql -p", "psql -p port", "-a elsewhere"],
)
def test_exec_form_command_words_after_a_secret_taking_flag_are_masked(argv, shown):
    from pmsops.redaction import redact_argv

    assert redact_argv(argv) == shown
