"""Runbook: "Deep Diagnostics → Common HTTP Responses Reference".

``pmsops explain CODE`` prints the runbook's table row for a status: meaning,
common causes and the fix.
"""

from __future__ import annotations

import json

import pytest

# (code, meaning, a phrase of the runbook's cause or solution the fix must carry)
RUNBOOK_TABLE = [
    (200, "Success", "GET/POST/PATCH"),
    (201, "Created", "POST"),
    (307, "Temporary Redirect", "trailing slash"),
    (401, "Unauthorized", "Re-fetch the JWT"),
    (403, "Forbidden", "role"),
    (404, "Not Found", "resource id"),
    (405, "Method Not Allowed", "POST"),
    (422, "Validation Error", "UUID"),
    (500, "Internal Server Error", "backend logs"),
    (503, "Service Unavailable", "/health/ready"),
]


@pytest.mark.parametrize(("code", "meaning", "phrase"), RUNBOOK_TABLE, ids=[str(row[0]) for row in RUNBOOK_TABLE])
def test_runbook_status_is_explained_with_meaning_causes_and_fix(cli, code, meaning, phrase):
    result = cli("explain", str(code))

    assert result.exit_code == 0
    assert result.stdout.startswith(f"{code}  {meaning}\n")
    assert "causes:" in result.stdout and "fix:" in result.stdout
    assert phrase in result.stdout


def test_307_says_to_follow_redirects_because_scripts_get_an_empty_body(cli):
    result = cli("explain", "307")

    assert "curl -L" in result.stdout
    assert "JSONDecodeError" in result.stdout


def test_422_says_the_sync_body_needs_sync_type(cli):
    assert "sync_type" in cli("explain", "422").stdout


def test_503_names_database_or_redis_down(cli):
    assert "Database or Redis down" in cli("explain", "503").stdout


def test_several_codes_are_explained_in_order(cli):
    result = cli("explain", "404", "307")

    assert result.stdout.index("404  Not Found") < result.stdout.index("307  Temporary Redirect")


def test_without_codes_the_whole_table_is_printed(cli):
    result = cli("explain")

    assert result.exit_code == 0
    for code, meaning, _ in RUNBOOK_TABLE:
        assert f"{code}  {meaning}" in result.stdout


def test_json_output_parses_with_meaning_causes_and_fix(cli):
    result = cli("explain", "422", "--json")

    data = json.loads(result.stdout)
    assert data["schema"] == "pmsops.report/v1"  # the one schema of every command
    assert [(r["name"], r["status"], r["summary"]) for r in data["results"]] == [("422", "ok", "Validation Error")]
    [status] = data["statuses"]
    assert status["code"] == 422 and status["meaning"] == "Validation Error"
    assert status["causes"] and status["fix"]


def test_status_not_in_the_runbook_table_says_so_and_exits_1(cli):
    result = cli("explain", "418")

    assert result.exit_code == 1
    assert "418  not in the runbook's table" in result.stdout


@pytest.mark.parametrize("code", ["abc", "4o4", "", "42", "1000", "²"])
def test_text_that_is_no_status_code_is_bad_input_exit_2(cli, code):
    result = cli("explain", code)

    assert result.exit_code == 2
    assert "not an HTTP status code" in result.stderr
    assert "Traceback" not in result.output


def test_hint_for_a_status_is_the_same_text_as_explain():
    from pmsops.http_status import hint_for

    assert hint_for(307).startswith("Temporary Redirect: Missing trailing slash")
    assert "see pmsops explain" in hint_for(418)
