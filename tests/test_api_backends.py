"""Right against any backend (#25): what real FastAPI, GoTrue and reverse proxies answer, judged by the runbook.

A real HTTP server on loopback answers as the API does (FastAPI's shapes, 429 with Retry-After, a /health/ready that
takes seconds because it waits on its own Celery inspect, redirects). The real nginx in front of the real reference
API (TLS on loopback, a self-signed CA) is in tests/test_api_proxies.py.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest


def _part(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


TOKEN = f"{_part({'alg': 'HS256', 'typ': 'JWT'})}.{_part({'sub': 'ops', 'aud': 'authenticated', 'exp': 4102444800})}.c2ln"
UP = {"status": "up", "components": {"db": {"status": "up"}, "redis": {"status": "up"}, "celery": {"status": "up", "details": {"workers": ["w@h"]}}}}


def _log(log_id: str, task: str, status: str) -> dict:
    return {
        "id": log_id,
        "task_id": task,
        "operation_type": "availability_update",
        "direction": "outbound",
        "status": status,
        "created_at": "2026-12-08T00:00:00Z",
        "updated_at": "2026-12-08T00:00:01Z",
        "details": {},
        "error": None,
    }


@pytest.fixture
def backend(http_stub, monkeypatch):
    """One connection whose trigger queues one task; its log is final ('success') unless a test says otherwise."""
    cid, task, log = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    http_stub.json("/health/ready", UP)
    http_stub.json("/api/v1/channel-connections/", [{"id": cid, "platform_type": "airbnb", "status": "active"}])
    http_stub.json(f"/api/v1/channel-connections/{cid}", {"id": cid, "platform_type": "airbnb", "status": "active"})
    http_stub.json(f"/api/v1/channel-connections/{cid}/sync", {"status": "triggered", "task_ids": [task], "created_log_ids": [log]})
    http_stub.json(f"/api/v1/channel-connections/{cid}/sync-logs", {"logs": [_log(log, task, "success")]})
    for name, value in {"PMS_API_URL": http_stub.url, "TOKEN": TOKEN, "CID": cid}.items():
        monkeypatch.setenv(name, value)
    http_stub.cid, http_stub.task, http_stub.log = cid, task, log
    return http_stub


# --- 429 and Retry-After (#25 item 7) -------------------------------------------------------------------------------


def test_a_429_whose_retry_after_fits_the_wait_is_waited_out_and_the_list_is_shown(cli, backend):
    backend.first("/api/v1/channel-connections/", {"detail": "Too Many Requests"}, 429, {"retry-after": "1"})
    result = cli("connections", "list", "--timeout", "5")
    assert result.exit_code == 0, result.output
    assert "airbnb" in result.stdout
    assert [r[1].split("?")[0] for r in backend.requests] == ["/api/v1/channel-connections/"] * 2


def test_smoke_as_a_ci_gate_passes_through_a_one_second_rate_limit_mid_poll(cli, backend):
    backend.first(f"/api/v1/channel-connections/{backend.cid}/sync-logs", {"detail": "Too Many Requests"}, 429, {"retry-after": "1"})
    result = cli("smoke", "--json", "--sync-type", "availability", "--wait", "30")
    report = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    assert (result.exit_code, report["sync-logs"]["status"]) == (0, "ok"), result.output


def test_a_429_longer_than_the_wait_ends_naming_its_seconds_and_keeps_the_task_ids(cli, backend):
    path = f"/api/v1/channel-connections/{backend.cid}/sync-logs"
    backend.json(path, {"detail": "Too Many Requests"}, status=429, headers={"retry-after": "120"})
    result = cli("sync", "trigger", "--type", "availability", "--wait", "5", "--json")
    report = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    assert result.exit_code == 1
    assert report["trigger"]["details"]["task_ids"] == [backend.task]
    assert report["sync-logs"]["status"] == "fail"
    assert "HTTP 429 rate limited: Retry-After 120 s, more than the" in report["sync-logs"]["summary"]
    assert (report["sync-logs"]["details"]["retry_after"], report["sync-logs"]["details"]["task_ids"]) == (120, [backend.task])
    assert "run it again in 120 s" in report["sync-logs"]["hint"]


# --- a slow /health/ready (#25 item 3) ------------------------------------------------------------------------------


def test_a_health_endpoint_that_waits_on_its_own_celery_inspect_is_read_as_celery_down_not_black_holed(cli, backend):
    down = {"status": "up", "components": {"db": {"status": "up"}, "redis": {"status": "up"}, "celery": {"status": "down", "error": "no workers"}}}
    backend.json("/health/ready", down)
    backend.delay("/health/ready", 4.0)  # the backend's own 3-s inspect, plus its database and Redis checks
    result = cli("check", "health", "--json")  # --timeout stays 3 s
    found = json.loads(result.stdout)["results"][0]
    assert (result.exit_code, found["summary"]) == (1, "HTTP 200, status up, degraded: celery down"), result.output


def test_a_health_endpoint_that_never_answers_is_named_as_stuck_in_its_own_checks(cli, backend):
    backend.delay("/health/ready", 11.0)  # the fault: longer than the 10 s the readiness answer may take
    result = cli("check", "health", "--json", "--timeout", "1")
    found = json.loads(result.stdout)["results"][0]
    assert result.exit_code == 1
    assert found["summary"].endswith("/health/ready: connected, but no answer within 10 s")
    assert "stuck in its own readiness checks" in found["hint"]


# --- redirects a client must not follow (#25 items 1, 2) ----------------------------------------------------------


def test_a_301_on_the_trigger_post_is_named_as_a_post_turned_get_with_the_address_to_use(cli, backend):
    path = f"/api/v1/channel-connections/{backend.cid}/sync"
    target = backend.url.replace("http://", "https://") + path
    backend.json(path, {}, status=301, headers={"location": target})
    result = cli("sync", "trigger", "--type", "availability")
    assert result.exit_code == 1
    assert f"HTTP 301 redirect to {target}: a client repeats a POST there as a GET, which the API refuses (HTTP 405)" in result.stderr
    assert "set PMS_API_URL to https://127.0.0.1:" in result.stderr
    assert [r[0] for r in backend.requests] == ["POST"]  # not followed: no GET, no 405


def test_a_redirect_to_another_origin_is_not_followed_with_the_token(cli, backend, http_stub):
    backend.json("/api/v1/channel-connections/", {}, status=307, headers={"location": "http://127.0.0.2:9/api/v1/channel-connections/"})
    result = cli("connections", "list")
    assert result.exit_code == 1
    assert "HTTP 307 redirect to another origin (http://127.0.0.2:9): the token is not sent there" in result.stderr


# --- sync trigger --wait reaches smoke's no-worker verdict (#24 item 9) --------------------------------------------


def test_sync_trigger_wait_600_with_no_worker_says_so_once_the_broker_is_asked(cli, backend, redis_server, monkeypatch):
    backend.json(f"/api/v1/channel-connections/{backend.cid}/sync-logs", {"logs": [_log(backend.log, backend.task, "triggered")]})
    monkeypatch.setenv("CELERY_BROKER_URL", redis_server.url_for_db(9))
    result = cli("sync", "trigger", "--type", "availability", "--wait", "600", "--json")
    report = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    assert result.exit_code == 1
    assert report["sync-logs"]["summary"] == "no worker: the logs stayed 'triggered' for 8 s and no worker answers a ping on the broker"


# --- GoTrue's two error generations (emulated: GoTrue does not install here) ----------------------------------------

GOTRUE_ERRORS = {
    "older GoTrue": {"error": "invalid_grant", "error_description": "Invalid login credentials"},
    "newer GoTrue": {"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"},
}


@pytest.mark.parametrize("generation", list(GOTRUE_ERRORS))
@pytest.mark.parametrize("output", ["text", "json"])
def test_a_refused_password_grant_reads_the_same_in_both_gotrue_error_generations(cli, backend, monkeypatch, generation, output):
    backend.json("/auth/v1/token", GOTRUE_ERRORS[generation], status=400)
    monkeypatch.delenv("TOKEN")
    for name, value in {"SB_URL": backend.url, "ANON_KEY": "anon-key-for-tests", "EMAIL": "ops@example.com", "PASSWORD": "pw-for-tests-1"}.items():
        monkeypatch.setenv(name, value)
    result = cli("token", *(["--json"] if output == "json" else []))
    said = json.loads(result.stdout)["error"]["message"] if output == "json" else result.stderr
    assert result.exit_code == 1
    assert "token request failed: HTTP 400 (Invalid login credentials)" in said
    assert "wrong EMAIL/PASSWORD, or ANON_KEY of another project" in (json.loads(result.stdout)["error"]["hint"] if output == "json" else said)
