"""Runbook: "How to URL-Encode Password" and "Setting Encoded Password in Environment Variables".

``pmsops encode-redis-password`` replaces the runbook's python3 heredoc: it reads
the password without echoing it, prints ``urllib.parse.quote(pw, safe="")`` (and,
with ``--host``, the three URLs), and proves that redis-py and kombu decode the
result back to exactly the password.
"""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmsops.envfile import parse_env_text
from pmsops.urls import build_redis_url, verify_round_trip

THREE = ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")


def encode(cli, password: str, *args: str):
    return cli("encode-redis-password", "--stdin", *args, input=password + "\n")


# --- the runbook's examples ------------------------------------------------------------------------


def test_runbook_example_password_is_encoded_as_in_the_runbook(cli):
    result = encode(cli, "my+pass=word@123")

    assert result.exit_code == 0
    assert "Encoded password: my%2Bpass%3Dword%40123" in result.stdout


def test_every_character_of_the_runbook_reference_table_is_encoded(cli):
    # Password Special Characters Reference: + = @ : / ? # & % and space.
    result = encode(cli, "pass+=@:/?#&% word")

    assert "Encoded password: pass%2B%3D%40%3A%2F%3F%23%26%25%20word" in result.stdout


def test_with_host_prints_the_three_urls_of_the_runbook(cli):
    result = encode(cli, "complex+pass=word", "--host", "coolify-redis")

    for name in THREE:
        assert f"{name}=redis://:complex%2Bpass%3Dword@coolify-redis:6379/0" in result.stdout


def test_port_and_db_go_into_the_urls(cli):
    result = encode(cli, "complex+pass=word", "--host", "coolify-redis", "--port", "6380", "--db", "2")

    assert "REDIS_URL=redis://:complex%2Bpass%3Dword@coolify-redis:6380/2" in result.stdout


def test_round_trip_through_redis_py_and_kombu_is_confirmed(cli):
    result = encode(cli, "my+pass=word@123")

    assert "✓ round trip: decodes back to the exact password with redis-py and kombu" in result.stdout


def test_password_is_described_only_by_length_and_salted_fingerprint(cli):
    import hashlib

    result = cli("--fingerprint-salt", "encode-test", "encode-redis-password", "--stdin", input="my+pass=word@123")

    digest = hashlib.pbkdf2_hmac("sha256", b"my+pass=word@123", b"encode-test", 100_000).hex()[:16]
    assert f"Password: len=16 pbkdf2={digest} salt=encode-test" in result.stdout
    assert hashlib.sha256(b"my+pass=word@123").hexdigest()[:16] not in result.output


# --- formats ---------------------------------------------------------------------------------------------


def test_env_format_prints_export_lines_that_read_back_to_the_same_urls(cli):
    result = encode(cli, 'it\'s a "pa$$word"+=', "--host", "coolify-redis", "--format", "env")

    values = parse_env_text(result.stdout).values
    expected = build_redis_url('it\'s a "pa$$word"+=', "coolify-redis")
    assert values == {name: expected for name in THREE}


def test_env_format_without_host_prints_the_encoded_password(cli):
    result = encode(cli, "my+pass", "--format", "env")

    assert result.stdout == "export REDIS_PASSWORD_ENCODED=my%2Bpass\n"


def test_json_format_parses_and_reports_the_round_trip(cli):
    result = encode(cli, "my+pass=word@123", "--host", "coolify-redis", "--format", "json")

    data = json.loads(result.stdout)
    assert data["schema"] == "pmsops.encoded-password/v1"
    assert data["encoded"] == "my%2Bpass%3Dword%40123"
    assert data["length"] == 16 and data["fingerprint"]["length"] == 16 and len(data["fingerprint"]["pbkdf2"]) == 16
    assert data["urls"]["CELERY_BROKER_URL"] == "redis://:my%2Bpass%3Dword%40123@coolify-redis:6379/0"
    assert data["round_trip"] == {"redis-py": True, "kombu": True}
    assert data["problems"] == []


def test_unknown_format_is_bad_input_exit_2(cli):
    result = encode(cli, "my+pass", "--format", "yaml")

    assert result.exit_code == 2
    assert "unknown --format 'yaml'" in result.stderr


# --- where the password comes from ----------------------------------------------------------------------


def test_only_one_trailing_newline_of_stdin_is_dropped(cli):
    result = cli("encode-redis-password", "--stdin", input="pw  \n\n")

    assert "Encoded password: pw%20%20%0A" in result.stdout


def test_windows_line_ending_on_stdin_is_dropped(cli):
    result = cli("encode-redis-password", "--stdin", input="my+pass\r\n")

    assert "Encoded password: my%2Bpass\n" in result.stdout


def test_password_is_read_from_a_hidden_prompt_on_a_terminal(monkeypatch):
    import getpass
    import io

    from pmsops.cli.common import read_secret

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    prompts: list[str] = []
    monkeypatch.setattr("sys.stdin", Terminal(""))
    monkeypatch.setattr(getpass, "getpass", lambda prompt: prompts.append(prompt) or "my+pass")

    assert read_secret("Redis password (input hidden)", from_stdin=False) == "my+pass"
    assert prompts == ["Redis password (input hidden): "]


def test_password_as_argument_works_but_warns_about_shell_history(cli):
    result = cli("encode-redis-password", "my+pass")

    assert result.exit_code == 0
    assert "Encoded password: my%2Bpass" in result.stdout
    assert "shell history" in result.stderr


def test_empty_password_is_bad_input_exit_2_with_one_line(cli):
    result = cli("encode-redis-password", "--stdin", input="\n")

    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "✗ error: empty password"
    assert result.stdout == ""


def test_host_with_scheme_or_port_is_bad_input_exit_2(cli):
    result = encode(cli, "my+pass", "--host", "redis://coolify-redis:6379")

    assert result.exit_code == 2
    assert "--host must be a host name" in result.stderr


def test_port_that_is_not_a_number_is_bad_input_exit_2(cli):
    result = encode(cli, "my+pass", "--port", "redis")

    assert result.exit_code == 2
    assert "Traceback" not in result.output


# --- the raw password never appears -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "env", "json"])
def test_raw_password_is_never_printed(cli, fmt):
    password = "raw+pass=word@123"

    result = encode(cli, password, "--host", "coolify-redis", "--format", fmt)

    assert result.exit_code == 0
    assert password not in result.output
    assert quote(password, safe="") in result.stdout


def test_raw_password_given_as_argument_is_not_echoed(cli):
    password = "raw+pass=word@123"

    result = cli("encode-redis-password", password)

    assert password not in result.output


# --- the round trip is a real check -----------------------------------------------------------------


def test_wrong_encoder_is_caught_by_the_round_trip_and_exits_1(cli, monkeypatch):
    # quote_plus writes a space as '+', which redis-py and kombu keep as '+'.
    monkeypatch.setattr("pmsops.urls.encode_password", quote_plus)

    result = encode(cli, "pass word")

    assert result.exit_code == 1
    assert "ROUND TRIP FAILED" in result.stdout
    assert "round trip failed with redis-py" in result.stderr


def test_quote_plus_is_wrong_for_a_space():
    url = "redis://:" + quote_plus("pass word", safe="") + "@coolify-redis:6379/0"

    assert not any(check.ok for check in verify_round_trip(url, "pass word"))


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), min_size=1))
def test_any_unicode_password_survives_encode_then_decode_by_redis_py_and_kombu(password):
    from kombu.utils.url import url_to_parts
    from redis.connection import parse_url

    url = build_redis_url(password, "coolify-redis")

    assert parse_url(url)["password"] == password
    assert url_to_parts(url).password == password
    assert all(check.ok for check in verify_round_trip(url, password))
