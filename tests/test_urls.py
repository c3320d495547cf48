"""Runbook: "Redis URL Format + Password Encoding" and "Special Characters MUST Be URL-Encoded".

``pmsops redis-url check [URL]`` must find everything that makes redis-py (the
backend) or kombu (Celery's broker layer) read a Redis URL differently from the
person who wrote it. Where a message makes a claim about those parsers, the test
checks the claim against the real parsers too.
"""

from __future__ import annotations

import json

import pytest

from pmsops.urls import (
    build_redis_url,
    lint_redis_url,
    mask_url,
    parse_with_kombu,
    parse_with_redis_py,
    verify_round_trip,
)

RUNBOOK_URL = "redis://:my_secure_password_123@coolify-redis:6379/0"
ENCODED_URL = "redis://:complex%2Bpass%3Dword@coolify-redis:6379/0"


def codes(url: str) -> set[str]:
    return {f.code for f in lint_redis_url(url).findings}


def report(result) -> dict:
    return json.loads(result.stdout)


# --- what a good URL looks like ---------------------------------------------------------------


def test_runbook_example_url_passes_with_exit_0(cli):
    result = cli("redis-url", "check", RUNBOOK_URL)

    assert result.exit_code == 0
    assert result.stdout.startswith("✓ URL")


def test_report_names_host_port_and_db_the_clients_will_use(cli):
    result = cli("redis-url", "check", "redis://:pw0rd123@coolify-redis:6380/2")

    assert "host coolify-redis, port 6380, db 2" in result.stdout


def test_url_is_shown_with_its_password_masked(cli):
    result = cli("redis-url", "check", RUNBOOK_URL)

    assert "redis://:***@coolify-redis:6379/0" in result.stdout
    assert "my_secure_password_123" not in result.output


def test_password_is_shown_only_as_length_and_salted_fingerprint(cli):
    import hashlib

    result = cli("--fingerprint-salt", "urls-test", "redis-url", "check", RUNBOOK_URL)

    digest = hashlib.pbkdf2_hmac("sha256", b"my_secure_password_123", b"urls-test", 100_000).hex()[:16]
    assert f"password len=22 pbkdf2={digest} salt=urls-test" in result.stdout


def test_rediss_scheme_is_accepted(cli):
    assert (
        cli("redis-url", "check", "rediss://:pw0rd123@coolify-redis:6380/0?ssl_cert_reqs=required").exit_code == 0
    )  # without it Celery refuses the URL (tests/test_variants_redis.py)


def test_unix_socket_url_skips_host_and_port_checks(cli):
    result = cli("redis-url", "check", "unix:///run/redis/redis.sock")

    assert result.exit_code == 0
    assert "unix socket URL" in result.stdout


def test_ipv6_host_is_read_as_the_host_not_as_a_piece_of_the_password(cli):
    result = cli("redis-url", "check", "redis://:pw0rd123@[::1]:6379/0")

    assert result.exit_code == 0
    assert "host ::1, port 6379" in result.stdout


def test_missing_db_is_a_note_that_database_0_is_used(cli):
    result = cli("redis-url", "check", "redis://:pw0rd123@coolify-redis:6379")

    assert result.exit_code == 0
    assert "database 0 is used" in result.stdout


# --- "Wrong Redis URL format" (Troubleshooting: Redis Authentication Errors) ------------------


def test_password_without_leading_colon_is_reported_as_user_name_without_password(cli):
    result = cli("redis-url", "check", "redis://my_secure_password_123@coolify-redis:6379/0")

    assert result.exit_code == 1
    assert "userinfo has no ':'" in result.stdout
    assert "Authentication required" in result.stdout


def test_password_without_leading_colon_is_masked_whole(cli):
    result = cli("redis-url", "check", "redis://my_secure_password_123@coolify-redis:6379/0")

    assert "redis://***@coolify-redis:6379/0" in result.stdout
    assert "my_secure_password_123" not in result.output


def test_user_name_in_url_is_a_warning(cli):
    result = cli("redis-url", "check", "redis://user:pw0rd123@coolify-redis:6379/0")

    assert result.exit_code == 0
    assert "warning: a user name is set" in result.stdout


def test_default_user_name_is_not_a_warning(cli):
    result = cli("redis-url", "check", "redis://default:pw0rd123@coolify-redis:6379/0")

    assert result.exit_code == 0
    assert "user name" not in result.stdout


def test_empty_password_after_colon_is_an_error(cli):
    result = cli("redis-url", "check", "redis://:@coolify-redis:6379/0")

    assert result.exit_code == 1
    assert "the password after ':' is empty" in result.stdout


def test_port_out_of_range_is_bad_input_because_redis_py_cannot_read_it(cli):
    result = cli("redis-url", "check", "redis://:pw0rd123@coolify-redis:99999/0")

    assert result.exit_code == 2
    assert "redis-py cannot read the port (not a number between 0 and 65535)" in result.stderr


def test_port_that_is_not_a_number_is_bad_input_because_redis_py_cannot_read_it(cli):
    result = cli("redis-url", "check", "redis://:pw0rd123@coolify-redis:63a9/0")

    assert result.exit_code == 2
    assert "cannot read the port" in result.stderr and "63a9" not in result.output


def test_database_that_is_not_a_number_is_an_error(cli):
    result = cli("redis-url", "check", "redis://:pw0rd123@coolify-redis:6379/zero")

    assert result.exit_code == 1
    assert "database must be a number" in result.stdout


def test_missing_host_says_the_clients_fall_back_to_localhost(cli):
    result = cli("redis-url", "check", "redis://")

    assert result.exit_code == 0
    assert "host localhost, port 6379" in result.stdout
    assert "no host in the URL: redis-py and kombu fall back to localhost:6379" in result.stdout


def test_leading_whitespace_is_an_error_because_redis_py_rejects_the_url(cli):
    url = " " + RUNBOOK_URL

    result = cli("redis-url", "check", url)

    assert result.exit_code == 2
    assert "whitespace before the scheme" in result.stderr and "redis-py rejects" in result.stderr
    with pytest.raises(ValueError, match="must specify one of the following schemes"):
        parse_with_redis_py(url)
    assert parse_with_kombu(url)["password"] is None


def test_trailing_whitespace_is_a_warning(cli):
    result = cli("redis-url", "check", RUNBOOK_URL + "\n")

    assert result.exit_code == 0
    assert "whitespace after the URL" in result.stdout


# --- raw / ? # end the host part ----------------------------------------------------------------


@pytest.mark.parametrize("char", ["/", "?", "#"])
def test_unencoded_delimiter_in_password_is_bad_input_naming_the_character_to_encode(cli, char):
    result = cli("redis-url", "check", f"redis://:pa{char}ss@coolify-redis:6379/0")

    assert result.exit_code == 2
    assert f"password contains raw '{char}' (encode as %{ord(char):02X})" in result.stderr
    assert "redis-py cannot read the port" in result.stderr
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1


def test_parser_error_never_quotes_the_password_piece(cli):
    result = cli("redis-url", "check", "redis://:pa/ss1234@coolify-redis:6379/0")

    assert "ss1234" not in result.output


def test_unencoded_hash_in_password_is_reported_as_truncation(cli):
    # The worst case: both parsers accept it, and connect to host "rd" with password "p+ss=w".
    url = "redis://:p+ss=w@rd/#1@host:6379/0"
    assert parse_with_redis_py(url)["host"] == "rd"
    assert parse_with_redis_py(url)["password"] == "p+ss=w"

    result = cli("redis-url", "check", url)

    assert result.exit_code == 2
    assert "password contains raw '/' '#' (encode as %2F %23)" in result.stderr
    assert "redis-py would send a password of 6 characters to a host made of a piece of the password (not host)" in result.stderr
    assert "p+ss" not in result.output


def test_password_piece_read_as_host_is_never_shown(cli):
    result = cli("redis-url", "check", "redis://:pa55@evilhost/#x@coolify-redis:6379/0", "--json")

    assert result.exit_code == 2
    assert "evilhost" not in result.output


def test_password_piece_read_as_host_is_never_shown_when_urls_disagree(cli):
    env = {
        "REDIS_URL": "redis://:pa55%40evilhost%2F%23x@coolify-redis:6379/0",
        "CELERY_BROKER_URL": "redis://:pa55@evilhost/#x@coolify-redis:6379/0",
    }

    result = cli("redis-url", "check", env=env)

    assert result.exit_code == 2
    assert "CELERY_BROKER_URL: the password contains raw '/' '#'" in result.stderr
    assert "evilhost" not in result.output


# --- [ ] ; %xx -------------------------------------------------------------------------------


def test_bracket_in_password_is_reported_as_invalid_ipv6_url(cli):
    result = cli("redis-url", "check", "redis://:pa[ss@coolify-redis:6379/0")

    assert result.exit_code == 2
    assert "'[' (encode as %5B)" in result.stderr and "'[' and ']' do not enclose an IPv6 address" in result.stderr


def test_percent_escape_in_password_is_a_note_that_it_is_decoded(cli):
    url = "redis://:pa%41ss@coolify-redis:6379/0"

    result = cli("redis-url", "check", url)

    assert result.exit_code == 0
    assert "note: password is URL-encoded" in result.stdout
    assert parse_with_redis_py(url)["password"] == "paAss"
    assert parse_with_kombu(url)["password"] == "paAss"


def test_semicolon_in_password_is_reported_as_kombu_failover_split(cli):
    result = cli("redis-url", "check", "redis://:pa;ss@coolify-redis:6379/0")

    assert result.exit_code == 1
    assert "kombu splits the broker URL there into a failover list" in result.stdout


def test_tab_in_password_is_bad_input_because_parsers_drop_it(cli):
    url = "redis://:zq\tx9@coolify-redis:6379/0"
    assert parse_with_redis_py(url)["password"] == "zqx9"

    result = cli("redis-url", "check", url)

    assert result.exit_code == 2
    assert "password contains raw tab (encode as %09)" in result.stderr
    assert "zqx9" not in result.output


# --- + = @ : & space and non-ASCII: kept literally today, but the runbook says encode ----------


@pytest.mark.parametrize("char", ["+", "=", "@", ":", "&", " ", "ü"])
def test_runbook_special_character_is_a_warning_not_an_error(cli, char):
    result = cli("redis-url", "check", f"redis://:pa{char}ss@coolify-redis:6379/0")

    assert result.exit_code == 0
    assert result.stdout.startswith("! URL")


@pytest.mark.parametrize("char", ["+", "=", "@", ":", "&", " ", "ü"])
def test_warning_truthfully_says_todays_parsers_keep_the_character(char):
    url = f"redis://:pa{char}ss@coolify-redis:6379/0"

    messages = " ".join(f.message for f in lint_redis_url(url).warnings)

    assert "kept literally" in messages or "keep these literally" in messages
    assert parse_with_redis_py(url)["password"] == f"pa{char}ss"
    assert parse_with_kombu(url)["password"] == f"pa{char}ss"


def test_plus_warning_says_quote_plus_is_wrong(cli):
    result = cli("redis-url", "check", "redis://:pa+ss@coolify-redis:6379/0")

    assert "quote_plus is wrong" in result.stdout
    assert "urllib.parse.quote(pw, safe='')" in result.stdout


def test_lone_percent_is_a_warning_to_write_it_as_25(cli):
    result = cli("redis-url", "check", "redis://:100%sure@coolify-redis:6379/0")

    assert result.exit_code == 0
    assert "encode it as %25" in result.stdout


def test_encoded_runbook_url_has_no_warnings(cli):
    result = cli("redis-url", "check", "--strict", ENCODED_URL)

    assert result.exit_code == 0


# --- the corrected URL ------------------------------------------------------------------------


def test_check_shows_what_changes_instead_of_a_masked_url_and_offers_the_encoder(cli):
    result = cli("redis-url", "check", "redis://:my+pa=ss@123@coolify-redis:6379/0")

    assert "corrected (masked)" not in result.output  # masked, a "corrected" URL looks like the input and cannot be used
    assert "characters to encode: '+' → %2B, '=' → %3D, '@' → %40" in result.stdout
    assert "the exact URLs: pmsops encode-redis-password --host coolify-redis --port 6379 --db 0 (prompted, never echoed)" in result.stdout
    assert "my%2Bpa" not in result.output


def test_corrected_url_gives_back_the_intended_password():
    corrected = lint_redis_url("redis://:my+pass=word@123@coolify-redis:6379/0").corrected

    assert corrected == "redis://:my%2Bpass%3Dword%40123@coolify-redis:6379/0"
    assert all(check.ok for check in verify_round_trip(corrected, "my+pass=word@123"))


def test_a_wrong_port_is_never_corrected_to_6379():
    report = lint_redis_url("redis://:pa+ss@coolify-redis:6379/x")  # the db is wrong: only the author knows the right one

    assert report.corrected is None
    assert report.encode_command == "pmsops encode-redis-password --host coolify-redis --port 6379 --db DB"


# --- bad input and exit codes ------------------------------------------------------------------


def test_unknown_scheme_is_bad_input_exit_2(cli):
    result = cli("redis-url", "check", "http://coolify-redis:6379/0")

    assert result.exit_code == 2
    assert "unknown scheme 'http://'" in result.stderr
    assert "Traceback" not in result.output


def test_text_that_is_not_a_url_is_bad_input_exit_2(cli):
    result = cli("redis-url", "check", "coolify-redis:6379")

    assert result.exit_code == 2
    assert "not a URL" in result.stderr


def test_missing_url_and_no_environment_is_bad_input_exit_2(cli):
    result = cli("redis-url", "check")

    assert result.exit_code == 2
    assert "none of REDIS_URL, CELERY_BROKER_URL, CELERY_RESULT_BACKEND is set" in result.stderr


def test_bad_input_error_is_one_line_plus_hint_on_stderr(cli):
    result = cli("redis-url", "check", "http://coolify-redis")

    lines = result.stderr.splitlines()
    assert result.stdout == ""
    assert len(lines) == 2 and lines[0].startswith("✗ error:") and lines[1].lstrip().startswith("→")


def test_warnings_alone_exit_0(cli):
    assert cli("redis-url", "check", "redis://:pa+ss@coolify-redis:6379/0").exit_code == 0


def test_warnings_exit_1_with_strict(cli):
    assert cli("redis-url", "check", "--strict", "redis://:pa+ss@coolify-redis:6379/0").exit_code == 1


# --- --json ------------------------------------------------------------------------------------


def test_json_report_follows_schema_pmsops_report_v1(cli):
    result = cli("redis-url", "check", "--json", "redis://:pa+ss@coolify-redis:6379/0")

    data = report(result)
    assert set(data) >= {"schema", "command", "status", "exit_code", "duration_ms", "results"}
    assert data["schema"] == "pmsops.report/v1"
    assert data["command"] == "redis-url check"
    assert (data["status"], data["exit_code"]) == ("warn", 0)
    assert isinstance(data["duration_ms"], (int, float))
    for item in data["results"]:
        assert set(item) == {"name", "status", "summary", "hint", "notes", "details", "duration_ms"}
        assert item["status"] in {"ok", "warn", "fail", "skip"}
        assert isinstance(item["notes"], list) and isinstance(item["details"], dict)


def test_json_report_exit_code_follows_strict(cli):
    result = cli("redis-url", "check", "--json", "--strict", "redis://:pa+ss@coolify-redis:6379/0")

    assert result.exit_code == 1
    assert report(result)["exit_code"] == 1


def test_json_report_lists_each_finding_with_a_code(cli):
    result = cli("redis-url", "check", "--json", "redis://:pa+ss;x@coolify-redis:6379")

    findings = report(result)["results"][0]["details"]["findings"]
    assert {(f["level"], f["code"]) for f in findings} >= {("warning", "raw-special"), ("error", "raw-semicolon"), ("note", "default-db")}


def test_json_report_has_nothing_on_stdout_but_json(cli):
    result = cli("redis-url", "check", "--json", "redis://:pa;ss@coolify-redis:6379/0")

    assert report(result)["status"] == "fail"


def test_json_mode_bad_input_is_one_line_on_stderr_and_one_error_report_on_stdout(cli):
    result = cli("redis-url", "check", "--json", "redis://:pa/ss@coolify-redis:6379/0")

    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    report = json.loads(result.stdout)  # issue #17: every --json exit writes one report (jq -e on empty input passes)
    assert report["exit_code"] == 2 and report["status"] == "fail" and report["error"]["type"] == "usage" and report["results"] == []


# --- the three variables of the environment ------------------------------------------------------


def same_three(url: str) -> dict[str, str]:
    return {"REDIS_URL": url, "CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url}


def test_without_url_the_three_variables_are_checked(cli):
    result = cli("redis-url", "check", env=same_three(ENCODED_URL))

    assert result.exit_code == 0
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        assert f"✓ {name}" in result.stdout
    assert "all 3 Redis URLs agree" in result.stdout


def test_broker_url_on_another_host_is_an_error_naming_the_variable(cli):
    env = same_three(ENCODED_URL) | {"CELERY_BROKER_URL": ENCODED_URL.replace("coolify-redis", "old-redis")}

    result = cli("redis-url", "check", env=env)

    assert result.exit_code == 1
    assert "CELERY_BROKER_URL points at another host than REDIS_URL" in result.stdout


def test_result_backend_on_another_port_is_an_error_naming_the_variable(cli):
    env = same_three(ENCODED_URL) | {"CELERY_RESULT_BACKEND": ENCODED_URL.replace(":6379", ":6380")}

    result = cli("redis-url", "check", env=env)

    assert result.exit_code == 1
    assert "CELERY_RESULT_BACKEND points at another port than REDIS_URL" in result.stdout


def test_broker_url_with_another_password_is_an_error_naming_the_variable(cli):
    env = same_three(ENCODED_URL) | {"CELERY_BROKER_URL": "redis://:complex%2Bpass%3Dw0rd@coolify-redis:6379/0"}

    result = cli("redis-url", "check", env=env)

    assert result.exit_code == 1
    assert "CELERY_BROKER_URL has another password than REDIS_URL" in result.stdout


def test_raw_and_encoded_forms_of_the_same_password_agree(cli):
    # redis-py and kombu read a raw '+' literally: the effective passwords are equal.
    env = same_three(ENCODED_URL) | {"CELERY_BROKER_URL": "redis://:complex+pass=word@coolify-redis:6379/0"}

    result = cli("redis-url", "check", env=env)

    assert result.exit_code == 0
    assert "another password" not in result.stdout


def test_another_db_for_the_result_backend_is_only_a_warning(cli):
    env = same_three(ENCODED_URL) | {"CELERY_RESULT_BACKEND": ENCODED_URL[:-1] + "1"}

    result = cli("redis-url", "check", env=env)

    assert result.exit_code == 0
    assert "CELERY_RESULT_BACKEND uses db 1" in result.stdout


def test_unset_variables_are_a_warning_naming_them(cli):
    result = cli("redis-url", "check", env={"REDIS_URL": ENCODED_URL})

    assert result.exit_code == 0
    assert "not set: CELERY_BROKER_URL, CELERY_RESULT_BACKEND" in result.stdout


def test_variable_that_is_not_a_url_is_bad_input_naming_it(cli):
    result = cli("redis-url", "check", env={"REDIS_URL": ENCODED_URL, "CELERY_BROKER_URL": "coolify-redis:6379"})

    assert result.exit_code == 2
    assert "CELERY_BROKER_URL: not a URL" in result.stderr


def test_url_argument_wins_over_the_environment(cli):
    result = cli("redis-url", "check", RUNBOOK_URL, env=same_three("redis://:pa/ss@elsewhere:6379/0"))

    assert result.exit_code == 0
    assert "elsewhere" not in result.stdout


# --- the library functions others build on ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:p+ss=w@rd/#1@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://secret@host:6379/0", "redis://***@host:6379/0"),
        ("redis://user:pw@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://host:6379/0?password=hunter22", "redis://host:6379/0?password=***"),
    ],
)
def test_mask_url_hides_every_form_of_password(url, masked):
    assert mask_url(url) == masked


def test_build_redis_url_has_the_runbook_form():
    assert build_redis_url("complex+pass=word", "coolify-redis") == ENCODED_URL


def test_lint_finds_only_a_note_in_an_encoded_url():
    assert codes(ENCODED_URL) == {"encoded"}


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("redis://password@host:6379/0", "missing-colon"),
        ("redis://:pa/ss@host:6379/0", "raw-delimiter"),
        ("redis://:pa[ss@host:6379/0", "raw-bracket"),
        ("redis://:pa;ss@host:6379/0", "raw-semicolon"),
        ("redis://:pa%41ss@host:6379/0", "encoded"),
        ("redis://:pa+ss@host:6379/0", "raw-special"),
        ("redis://:päss@host:6379/0", "non-ascii"),
        ("redis://:p+ss=w@rd/#1@host:6379/0", "wrong-host"),
    ],
)
def test_lint_reports_each_runbook_problem_with_a_stable_code(url, code):
    assert code in codes(url)
