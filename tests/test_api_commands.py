"""token, connections list, sync trigger, sync logs: against the sandbox API and stub servers."""

from __future__ import annotations

import json
import uuid

import pytest


@pytest.fixture
def as_operator(sandbox, monkeypatch):
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    return sandbox.env()


def _token(env, **claims):
    from pmsops.sandbox.auth import issue_token

    return issue_token(env["SUPABASE_JWT_SECRET"], str(uuid.uuid4()), env["EMAIL"], **claims)


def test_token_shows_length_parts_and_claims_never_the_token(cli, as_operator):
    result = cli("token", "--json")
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)["results"][0]["details"]
    assert details["parts"] == 3 and details["length"] > 100
    assert details["claims"]["aud"] == "authenticated"
    assert "eyJ" not in result.stdout


def test_token_print_writes_the_raw_token_alone(cli, as_operator):
    result = cli("token", "--print")
    assert result.exit_code == 0
    token = result.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token and result.stderr == ""


def test_token_verify_accepts_the_right_secret_and_names_a_mismatch(cli, as_operator, monkeypatch):
    assert cli("token", "--verify").exit_code == 0
    monkeypatch.setenv("SUPABASE_JWT_SECRET", "a-different-secret-0123456789-abcdef")
    result = cli("token", "--verify")
    assert result.exit_code == 1
    assert "signature does not match" in result.stdout and "SUPABASE_JWT_SECRET" in result.stdout


def test_expired_token_gets_401_with_the_refetch_hint(cli, as_operator, monkeypatch):
    monkeypatch.setenv("TOKEN", _token(as_operator, lifetime=-120))
    result = cli("connections", "list")
    assert result.exit_code == 1
    assert "HTTP 401 Token has expired" in result.stderr
    assert "fetch a new one (pmsops token)" in result.stderr


def test_token_signed_with_another_secret_gets_401_secret_mismatch_hint(cli, as_operator, monkeypatch):
    from pmsops.sandbox.auth import issue_token

    monkeypatch.setenv("TOKEN", issue_token("not-the-backend-secret-xyz-0123456789", str(uuid.uuid4()), "x@y.test"))
    result = cli("connections", "list")
    assert result.exit_code == 1
    assert "Invalid authentication token" in result.stderr and "JWT_SECRET" in result.stderr


def test_connections_list_asks_the_slashed_path_and_shows_platforms(cli, as_operator):
    """#25 item 1: the slashed path the API serves, so no 307 (which behind a TLS proxy points at http://)."""
    result = cli("connections", "list")
    assert result.exit_code == 0, result.output
    assert "airbnb" in result.stdout and "booking_com" in result.stdout
    assert "redirect" not in result.stdout
    assert "google" not in result.stdout  # the other agency's connection is not visible


def test_unslashed_list_path_answers_307(as_operator):
    import httpx

    response = httpx.get(as_operator["PMS_API_URL"] + "/api/v1/channel-connections", follow_redirects=False, timeout=5)
    assert response.status_code == 307
    assert response.headers["location"].endswith("/api/v1/channel-connections/")


def test_other_agencys_connection_is_404_not_visible(cli, sandbox, as_operator):
    other = [c for c in sandbox.load().seed["connections"] if c["agency"] == "b"][0]["id"]
    result = cli("sync", "trigger", other, "--type", "pricing")
    assert result.exit_code == 1
    assert "HTTP 404 Connection not found" in result.stderr


def test_unknown_sync_type_is_rejected_by_the_api_with_400(as_operator):
    from pmsops.api.client import ApiClient
    from pmsops.api.errors import ApiError
    from pmsops.api.token import obtain
    from pmsops.settings import Settings

    with ApiClient(as_operator["PMS_API_URL"], obtain(Settings.from_environ(as_operator)).token) as client:
        cid = client.list_connections()[0][0]["id"]
        with pytest.raises(ApiError) as caught:
            client.trigger_sync(cid, "everything")
    assert caught.value.status == 400
    assert "Invalid sync_type. Must be one of" in caught.value.message


def test_missing_body_field_is_422(as_operator):
    import httpx

    from pmsops.api.token import obtain
    from pmsops.settings import Settings

    token = obtain(Settings.from_environ(as_operator)).token
    response = httpx.post(
        f"{as_operator['PMS_API_URL']}/api/v1/channel-connections/{uuid.uuid4()}/sync",
        json={},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 422 and isinstance(response.json()["detail"], list)


def test_get_on_sync_is_405(as_operator):
    import httpx

    response = httpx.get(f"{as_operator['PMS_API_URL']}/api/v1/channel-connections/{uuid.uuid4()}/sync", timeout=5)
    assert response.status_code == 405


def test_bad_sync_type_and_non_uuid_are_exit_2_before_any_request(cli, http_stub, monkeypatch):
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "a.b.c")
    assert cli("sync", "trigger", "not-a-uuid", "--type", "full").exit_code == 2
    bad_type = cli("sync", "trigger", str(uuid.uuid4()), "--type", "everything")
    assert bad_type.exit_code == 2 and "'everything' is not one of 'full', 'availability', 'pricing', 'bookings'" in bad_type.stderr
    assert http_stub.requests == []


def test_sync_trigger_wait_follows_the_logs_to_success(cli, as_operator):
    cid = [c for c in json.loads(cli("connections", "list", "--json").stdout)["results"][0]["details"]["connections"] if c["status"] == "active"][0][
        "id"
    ]
    result = cli("sync", "trigger", cid, "--type", "full", "--wait", "30")
    assert result.exit_code == 0, result.output
    assert "batch " in result.stdout and "all 3 operation(s) succeeded" in result.stdout


def test_sync_logs_show_the_runbook_summary(cli, as_operator, tmp_path):
    cid = json.loads(cli("connections", "list", "--json").stdout)["results"][0]["details"]["connections"][0]["id"]
    cli("sync", "trigger", cid, "--type", "bookings", "--wait", "30")
    saved = tmp_path / "logs.json"
    result = cli("sync", "logs", cid, "--limit", "5", "--save", str(saved))
    assert result.exit_code == 0, result.output
    assert "last operation: bookings_sync" in result.stdout and "last status: success" in result.stdout
    assert json.loads(saved.read_text())["logs"][0]["operation_type"] == "bookings_sync"


def test_sync_logs_accept_details_as_json_strings_and_warn_about_stale_logs(cli, http_stub, monkeypatch):
    cid = str(uuid.uuid4())
    old = "2020-01-01T00:00:00Z"
    page = {
        "connection_id": cid,
        "limit": 20,
        "offset": 0,
        "logs": [
            {
                "id": str(uuid.uuid4()),
                "operation_type": "availability_update",
                "direction": "outbound",
                "status": "running",
                "created_at": old,
                "updated_at": old,
                "details": ['{"retry_count": 2}', '{"error_type": "database_unavailable", "next_retry_seconds": 4}'],
                "error": None,
                "task_id": "t1",
            },
        ],
    }
    http_stub.json(f"/api/v1/channel-connections/{cid}/sync-logs", page)
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")
    result = cli("sync", "logs", cid, "--json")
    report = json.loads(result.stdout)["results"]
    assert result.exit_code == 1  # a log stuck open is a failure now, not a ✓
    assert "retry 2, database_unavailable, next in 4 s" in " ".join(report[0]["notes"])
    assert report[0]["status"] == "fail"
    assert report[-1]["name"] == "stale" and report[-1]["status"] == "fail" and "stuck open" in report[-1]["summary"]


def test_html_instead_of_json_is_named_not_a_json_error(cli, http_stub, monkeypatch):
    http_stub.raw("/api/v1/channel-connections/", b"<html>Bad Gateway</html>", status=200, headers={"content-type": "text/html"})
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")
    result = cli("connections", "list")
    assert result.exit_code == 1
    assert "the body is not JSON" in result.stderr and "Traceback" not in result.output


def test_wrapped_items_list_is_accepted(cli, http_stub, monkeypatch):
    http_stub.json("/api/v1/channel-connections/", {"items": [{"id": str(uuid.uuid4()), "platform_type": "airbnb", "status": "active"}]})
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")
    result = cli("connections", "list")
    assert result.exit_code == 0 and "airbnb" in result.stdout


def test_legacy_queued_trigger_response_is_accepted(cli, http_stub, monkeypatch):
    cid = str(uuid.uuid4())
    http_stub.json(f"/api/v1/channel-connections/{cid}/sync", {"status": "queued", "message": "Sync queued successfully", "task_ids": ["abc123"]})
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")
    result = cli("sync", "trigger", cid, "--type", "full")
    assert result.exit_code == 0 and "full sync queued: 1 task(s)" in result.stdout


def test_unwritable_save_path_is_bad_input_not_a_traceback(cli, http_stub, monkeypatch):
    cid = str(uuid.uuid4())
    http_stub.json(f"/api/v1/channel-connections/{cid}/sync-logs", {"connection_id": cid, "logs": []})
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")
    result = cli("sync", "logs", cid, "--save", "/nonexistent-dir/logs.json")
    assert result.exit_code == 2 and "cannot write" in result.stderr and "Traceback" not in result.output


def test_a_connection_with_a_null_status_is_listed_as_unknown_not_none(cli, http_stub, monkeypatch):
    cid = str(uuid.uuid4())
    http_stub.json("/api/v1/channel-connections/", [{"id": cid, "platform_type": None, "status": None, "last_sync_at": None}])
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")

    result = cli("connections", "list")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if cid in line)
    assert row.split() == [cid, "?", "?", "never"]


NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
    b"<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n"
)
PROXY_PAGES = {
    "nginx-502": (502, NGINX_502, "text/html"),
    "traefik-503": (503, b"no available server\n", "text/plain; charset=utf-8"),
    "caddy-502": (502, b"", "text/plain"),
}


@pytest.mark.parametrize("case", sorted(PROXY_PAGES))
def test_a_reverse_proxys_own_error_page_is_named_as_the_proxy_with_no_healthy_backend_never_as_raw_html(cli, http_stub, monkeypatch, case):
    status, body, kind = PROXY_PAGES[case]
    http_stub.raw("/api/v1/channel-connections/", body, status=status, headers={"content-type": kind})
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")

    result = cli("connections", "list")

    assert result.exit_code == 1
    assert "<" not in result.stderr  # no markup in the one-line error (#25 item 6)
    assert "no healthy backend container" in result.stderr  # not "Database or Redis down" (#25 item 5)
    assert "pmsops db check" not in result.stderr


def test_the_runbooks_404_for_no_sync_logs_yet_is_an_empty_page_not_a_wrong_url(cli, http_stub, monkeypatch):
    """The runbook reads a 404 from …/sync-logs as "no sync logs exist; the sync may not have completed yet" (#25 item 8)."""
    cid = str(uuid.uuid4())
    http_stub.json(f"/api/v1/channel-connections/{cid}/sync-logs", {"detail": "No sync logs found for this connection"}, status=404)
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")

    result = cli("sync", "logs", cid)

    assert result.exit_code == 0, result.output
    assert "no sync logs for this connection" in result.stdout and "Wrong URL" not in result.output


def test_a_404_that_names_the_connection_is_still_not_found(cli, http_stub, monkeypatch):
    cid = str(uuid.uuid4())
    http_stub.json(f"/api/v1/channel-connections/{cid}/sync-logs", {"detail": "Connection not found"}, status=404)
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")

    result = cli("sync", "logs", cid)

    assert result.exit_code == 1
    assert "Connection not found" in result.stderr


def test_an_open_log_waiting_on_a_platform_error_shows_that_error_in_sync_logs(cli, http_stub, monkeypatch):
    """A platform outage is visible while the operation is still open (#24 item 5): the error column was empty."""
    cid = str(uuid.uuid4())
    page = {
        "logs": [
            {
                "id": str(uuid.uuid4()),
                "operation_type": "availability_update",
                "direction": "outbound",
                "status": "running",
                "created_at": "2026-12-07T10:00:00Z",
                "updated_at": "2026-12-07T10:00:01Z",
                "details": {"retry_count": 1, "error_type": "platform_error", "last_error": "airbnb unreachable: connection refused"},
                "error": None,
                "task_id": "t1",
            }
        ]
    }
    http_stub.json(f"/api/v1/channel-connections/{cid}/sync-logs", page)
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")

    result = cli("sync", "logs", cid)

    row = next(line for line in result.stdout.splitlines() if "availability_update  outbound" in line)
    assert row.rstrip().endswith("waiting: airbnb unreachable: connection refused"), result.stdout
