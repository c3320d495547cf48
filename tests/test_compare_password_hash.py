"""Runbook: "Redis Connection Diagnostics → Verify Password Encoding".

``pmsops compare-password-hash`` does what the runbook's two snippets do (a hash
of the URL's decoded password, a hash of ``requirepass``) without showing either
password, decodes the URL exactly as redis-py does, and names the likely cause of
a mismatch. The hash is salted (PBKDF2-HMAC-SHA256, one salt for both sides); the
runbook's unsalted ``sha256sum | cut -c1-16`` only with ``--reveal-fingerprint``.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from pmsops.passwords import compare_result, read_requirepass_from_conf

PASSWORD = "my+pass=word@123"
ENCODED_URL = "redis://:my%2Bpass%3Dword%40123@coolify-redis:6379/0"


def sha16(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pbkdf2(text: str, salt: str) -> str:
    """The documented fingerprint, recomputed with nothing but hashlib (what another machine would run)."""
    return hashlib.pbkdf2_hmac("sha256", text.encode(), salt.encode(), 100_000).hex()[:16]


def compare(cli, url: str, requirepass: str, *args: str, env=None):
    return cli("compare-password-hash", "--url", url, "--requirepass-stdin", *args, input=requirepass + "\n", env=env)


def likely_cause(cli, url: str, requirepass: str) -> str:
    result = compare(cli, url, requirepass)
    assert result.exit_code == 1
    match = re.search(r"likely cause: (.*)", result.stdout)
    assert match, result.stdout
    return match.group(1)


# --- match and mismatch ------------------------------------------------------------------------------------


def test_encoded_url_matches_raw_requirepass_exit_0(cli):
    result = compare(cli, ENCODED_URL, PASSWORD)

    assert result.exit_code == 0
    assert "match: the URL's password is Redis's requirepass" in result.stdout


def test_different_password_is_a_mismatch_exit_1(cli):
    result = compare(cli, ENCODED_URL, "my+pass=word@124")

    assert result.exit_code == 1
    assert "mismatch" in result.stdout


def test_both_sides_are_shown_as_length_and_salted_fingerprint_under_one_salt(cli):
    result = compare(cli, ENCODED_URL, "another-password")

    salts = set(re.findall(r"salt=([0-9a-f]{8})\b", result.stdout))
    assert len(salts) == 1, result.stdout
    salt = salts.pop()
    assert f"URL password (as redis-py decodes it): len=16 pbkdf2={pbkdf2(PASSWORD, salt)} salt={salt}" in result.stdout
    assert f"requirepass (stdin): len=16 pbkdf2={pbkdf2('another-password', salt)} salt={salt}" in result.stdout


def test_unsalted_sha256_prefix_is_not_shown_by_default(cli):
    result = compare(cli, ENCODED_URL, PASSWORD)

    assert sha16(PASSWORD) not in result.output
    assert "sha256=" not in result.output


def test_two_runs_draw_different_salts_so_fingerprints_cannot_be_looked_up(cli):
    first, second = compare(cli, ENCODED_URL, PASSWORD), compare(cli, ENCODED_URL, PASSWORD)

    assert re.findall(r"pbkdf2=(\w+)", first.stdout) != re.findall(r"pbkdf2=(\w+)", second.stdout)


@pytest.mark.parametrize("how", ["option", "global-option", "environment"])
def test_same_salt_on_two_machines_gives_comparable_fingerprints(cli, how):
    if how == "option":
        result = compare(cli, ENCODED_URL, PASSWORD, "--salt", "incident-0412")
    elif how == "global-option":
        result = cli("--fingerprint-salt", "incident-0412", "compare-password-hash", "--url", ENCODED_URL, "--requirepass-stdin", input=PASSWORD)
    else:
        result = compare(cli, ENCODED_URL, PASSWORD, env={"PMSOPS_FINGERPRINT_SALT": "incident-0412"})

    assert result.exit_code == 0
    assert re.findall(r"pbkdf2=(\w+) salt=([\w.-]+)", result.stdout) == [(pbkdf2(PASSWORD, "incident-0412"), "incident-0412")] * 2


def test_reveal_fingerprint_shows_the_runbooks_16_hex_digits(cli):
    # Runbook: echo -n "$REDIS_PASS" | sha256sum | cut -c1-16
    result = compare(cli, ENCODED_URL, PASSWORD, "--reveal-fingerprint")

    prefixes = re.findall(r"sha256=([0-9a-f]+)", result.stdout)
    assert prefixes == [sha16(PASSWORD)] * 2
    assert "pbkdf2=" not in result.stdout


@pytest.mark.parametrize("salt", ["", "abc", "has space", "a" * 65, "semi;colon"])
def test_bad_salt_is_one_line_and_exit_2(cli, salt):
    result = compare(cli, ENCODED_URL, PASSWORD, "--salt", salt)

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.splitlines()[0] == "✗ error: a fingerprint salt is 4 to 64 letters, digits, '.', '_' or '-'"


def test_neither_password_is_ever_shown(cli):
    result = compare(cli, "redis://:my+pass=word@123@coolify-redis:6379/0", "my+pass=word@124")

    for secret in ("my+pass=word@123", "my+pass=word@124", "my%2Bpass%3Dword%40123", "my%2Bpass%3Dword%40124"):
        assert secret not in result.output


def test_url_defaults_to_redis_url_from_the_environment(cli):
    result = cli("compare-password-hash", "--requirepass-stdin", input=PASSWORD, env={"REDIS_URL": ENCODED_URL})

    assert result.exit_code == 0


def test_url_option_wins_over_redis_url(cli):
    result = cli(
        "compare-password-hash",
        "--url",
        ENCODED_URL,
        "--requirepass-stdin",
        input=PASSWORD,
        env={"REDIS_URL": "redis://:something-else@coolify-redis:6379/0"},
    )

    assert result.exit_code == 0


def test_json_report_has_lengths_fingerprints_and_cause(cli):
    result = compare(cli, "redis://:my%252Bpass@coolify-redis:6379/0", "my+pass", "--json")

    data = json.loads(result.stdout)
    assert (data["schema"], data["status"], data["exit_code"]) == ("pmsops.report/v1", "fail", 1)
    details = data["results"][0]["details"]
    salt = details["requirepass"]["salt"]
    assert details["requirepass"] == {"length": 7, "pbkdf2": pbkdf2("my+pass", salt), "salt": salt, "source": "stdin"}
    assert details["url_password"] == {"length": 9, "pbkdf2": pbkdf2("my%2Bpass", salt), "salt": salt}
    assert details["match"] is False
    assert "encoded twice" in details["likely_cause"]


# --- likely causes -----------------------------------------------------------------------------------------


def test_raw_percent_escape_in_url_is_named_as_the_cause(cli):
    # requirepass really is "ab%41cd"; the URL holds it raw and parsers decode %41 to "A".
    assert "parsers decode the %xx" in likely_cause(cli, "redis://:ab%41cd@coolify-redis:6379/0", "ab%41cd")


def test_double_encoded_password_is_named_as_the_cause(cli):
    assert "encoded twice" in likely_cause(cli, "redis://:my%252Bpass@coolify-redis:6379/0", "my+pass")


def test_server_holding_the_encoded_password_is_named_as_the_cause(cli):
    cause = likely_cause(cli, "redis://:my%2Bpass@coolify-redis:6379/0", "my%2Bpass")

    assert "requirepass holds the *encoded* password" in cause


def test_quote_plus_encoding_is_named_as_the_cause(cli):
    cause = likely_cause(cli, "redis://:pass+word@coolify-redis:6379/0", "pass word")

    assert "quote_plus" in cause


def test_truncation_by_raw_slash_is_named_as_the_cause(cli):
    cause = likely_cause(cli, "redis://:p+ss=w@rd/#1@host:6379/0", "p+ss=w@rd/#1")

    assert "truncated" in cause


def test_raw_slash_that_breaks_the_url_is_named_as_the_cause(cli):
    cause = likely_cause(cli, "redis://:pa/ss@coolify-redis:6379/0", "pa/ss")

    assert "raw '/'" in cause


def test_url_without_password_is_named_as_the_cause(cli):
    assert "no password" in likely_cause(cli, "redis://my+pass@coolify-redis:6379/0", "my+pass")


def test_unexplained_mismatch_says_to_copy_requirepass_again(cli):
    result = compare(cli, ENCODED_URL, "completely-different")

    assert "copy requirepass again" in result.stdout


# --- sources of requirepass -------------------------------------------------------------------------------


def test_requirepass_is_read_from_redis_conf(cli, tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_text(f'# requirepass old\nbind 0.0.0.0\nrequirepass "{PASSWORD}"\n')

    result = cli("compare-password-hash", "--url", ENCODED_URL, "--redis-conf", str(conf))

    assert result.exit_code == 0
    assert f"requirepass ({conf})" in result.stdout


def test_last_requirepass_directive_wins_as_in_redis():
    assert read_requirepass_from_conf("requirepass first\nrequirepass second\n") == "second"


@pytest.mark.parametrize(
    ("line", "password"),
    [
        # Checked against redis-server 7: CONFIG GET requirepass after starting with each line.
        ("requirepass ab\\cd", "ab\\cd"),
        ('requirepass "a\\x41b\\tc"', "aAb\tc"),
        ("requirepass 'it\\'s'", "it's"),
        ('requirepass "p w"', "p w"),
        ('requirepass a"b c"', "ab c"),
        ("requirepass p#w", "p#w"),
        ("requirepass 'a\\b'", "a\\b"),
        ("REQUIREPASS Up", "Up"),
    ],
)
def test_redis_conf_value_is_read_exactly_as_redis_reads_it(line, password):
    assert read_requirepass_from_conf(line + "\n") == password


def test_redis_conf_with_unbalanced_quotes_is_bad_input(cli, tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_text('requirepass "unterminated\n')

    result = cli("compare-password-hash", "--url", ENCODED_URL, "--redis-conf", str(conf))

    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_split_redis_config_line_splits_like_sdssplitargs():
    from pmsops.passwords import split_redis_config_line

    assert split_redis_config_line('rename-command "CONFIG" ""') == ["rename-command", "CONFIG", ""]


def test_redis_conf_without_requirepass_is_bad_input_exit_2(cli, tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_text("bind 0.0.0.0\n# requirepass commented-out\n")

    result = cli("compare-password-hash", "--url", ENCODED_URL, "--redis-conf", str(conf))

    assert result.exit_code == 2
    assert "no requirepass directive" in result.stderr


def test_missing_redis_conf_is_bad_input_exit_2(cli, tmp_path):
    result = cli("compare-password-hash", "--url", ENCODED_URL, "--redis-conf", str(tmp_path / "nope.conf"))

    assert result.exit_code == 2
    assert "cannot read" in result.stderr
    assert "Traceback" not in result.output


# --- bad input --------------------------------------------------------------------------------------------


def test_neither_requirepass_source_is_bad_input_exit_2(cli):
    result = cli("compare-password-hash", "--url", ENCODED_URL)

    assert result.exit_code == 2
    assert "give exactly one of" in result.stderr


def test_both_requirepass_sources_is_bad_input_exit_2(cli, tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_text(f"requirepass {PASSWORD}\n")

    result = cli("compare-password-hash", "--url", ENCODED_URL, "--requirepass-stdin", "--redis-conf", str(conf), input=PASSWORD)

    assert result.exit_code == 2
    assert "give exactly one of" in result.stderr


def test_no_url_and_no_redis_url_is_bad_input_exit_2(cli):
    result = cli("compare-password-hash", "--requirepass-stdin", input=PASSWORD)

    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.stderr


def test_empty_requirepass_on_stdin_is_bad_input_exit_2(cli):
    result = cli("compare-password-hash", "--url", ENCODED_URL, "--requirepass-stdin", input="")

    assert result.exit_code == 2
    assert "empty requirepass" in result.stderr


def test_url_with_unknown_scheme_is_bad_input_exit_2(cli):
    result = compare(cli, "http://:pw@coolify-redis:6379/0", PASSWORD)

    assert result.exit_code == 2


# --- library ----------------------------------------------------------------------------------------------


def test_compare_result_fails_with_a_hint_on_mismatch():
    result = compare_result("redis://:my%252Bpass@h:6379/0", "my+pass", "stdin")

    assert result.status.value == "fail"
    assert result.hint.startswith("likely cause: the password in the URL is encoded twice")


def test_bad_salt_in_the_environment_is_one_line_and_exit_2(cli):
    result = compare(cli, ENCODED_URL, PASSWORD, env={"PMSOPS_FINGERPRINT_SALT": "no spaces allowed"})

    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "✗ error: a fingerprint salt is 4 to 64 letters, digits, '.', '_' or '-'"
