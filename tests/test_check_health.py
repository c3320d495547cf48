"""check health: /health/ready in the current and the legacy shape, and what goes wrong around it."""

import json

import pytest

CURRENT_UP = {
    "status": "up",
    "components": {
        "db": {"status": "up"},
        "redis": {"status": "up"},
        "celery": {"status": "up", "details": {"workers": ["celery@pms-worker-v2"]}},
    },
    "checked_at": "2026-11-28T10:00:00Z",
}
LEGACY_READY = {"status": "ready", "checks": {"database": "up", "redis": "up", "celery": "up"}, "celery_workers": ["celery@pms-worker-abc123"]}


def test_current_shape_reports_components_and_workers(cli, http_stub):
    http_stub.json("/health/ready", CURRENT_UP)
    result = cli("check", "health", "--url", http_stub.url)
    assert result.exit_code == 0, result.output
    assert "db: up" in result.stdout and "celery@pms-worker-v2" in result.stdout


def test_legacy_checks_shape_is_read_too(cli, http_stub):
    http_stub.json("/health/ready", LEGACY_READY)
    result = cli("check", "health", "--url", http_stub.url, "--json")
    report = json.loads(result.stdout)["results"][0]
    assert report["status"] == "ok"
    assert report["details"]["shape"] == "checks"
    assert report["details"]["workers"] == ["celery@pms-worker-abc123"]
    assert report["details"]["components"]["db"]["status"] == "up"


def test_database_down_is_a_503_with_the_database_hint(cli, http_stub):
    body = {**CURRENT_UP, "status": "down", "components": {**CURRENT_UP["components"], "db": {"status": "down", "error": "connection refused"}}}
    http_stub.json("/health/ready", body, status=503)
    result = cli("check", "health", "--url", http_stub.url)
    assert result.exit_code == 1
    assert "HTTP 503" in result.stdout and "down: db" in result.stdout
    assert "DATABASE_URL" in result.stdout


def test_legacy_degraded_redis_points_at_url_encoding(cli, http_stub):
    http_stub.json(
        "/health/ready", {"status": "degraded", "checks": {"database": "up", "redis": "down", "celery": "up"}, "celery_workers": []}, status=503
    )
    result = cli("check", "health", "--url", http_stub.url)
    assert result.exit_code == 1
    assert "redis-url check" in result.stdout


@pytest.mark.parametrize(
    "celery", [{"status": "up", "details": {"skipped": True}}, {"status": "skipped"}, {"status": "disabled"}], ids=["details", "status", "disabled"]
)
def test_skipped_component_is_not_a_failure(cli, http_stub, celery):
    body = {**CURRENT_UP, "components": {**CURRENT_UP["components"], "celery": celery}}
    http_stub.json("/health/ready", body)
    result = cli("check", "health", "--url", http_stub.url)
    assert result.exit_code == 0
    assert "celery: skipped" in result.stdout


def test_html_page_from_a_proxy_gets_a_clear_message(cli, http_stub):
    http_stub.raw("/health/ready", b"<!DOCTYPE html><html><body>404 page not found</body></html>", status=404, headers={"content-type": "text/html"})
    result = cli("check", "health", "--url", http_stub.url)
    assert result.exit_code == 1
    assert "returned an HTML page" in result.stdout
    assert "JSONDecodeError" not in result.output


def test_redirect_is_reported_not_followed_silently(cli, http_stub):
    http_stub.raw("/health/ready", b"", status=307, headers={"location": "https://api.example.test/health/ready"})
    result = cli("check", "health", "--url", http_stub.url)
    assert result.exit_code == 1
    assert "redirect to https://api.example.test/health/ready" in result.stdout


def test_empty_body_is_reported(cli, http_stub):
    http_stub.raw("/health/ready", b"", status=200)
    result = cli("check", "health", "--url", http_stub.url)
    assert result.exit_code == 1
    assert "empty body" in result.stdout


def test_full_ready_url_is_accepted(cli, http_stub):
    http_stub.json("/health/ready", CURRENT_UP)
    assert cli("check", "health", "--url", http_stub.url + "/health/ready").exit_code == 0


def test_an_api_port_that_takes_connections_and_never_answers_is_named_after_the_readiness_wait(cli, black_hole):
    """#25 item 3: the answer may take 10 s (the backend waits on its own checks); then the verdict names that."""
    result = cli("check", "health", "--url", f"http://127.0.0.1:{black_hole}", "--timeout", "1", "--json")
    found = json.loads(result.stdout)["results"][0]
    assert (result.exit_code, found["details"]["error"]) == (1, "read-timeout"), result.output
    assert found["summary"].endswith("connected, but no answer within 10 s")


def test_api_url_aliases_are_read(cli, http_stub, monkeypatch):
    http_stub.json("/health/ready", CURRENT_UP)
    monkeypatch.setenv("API_BASE_URL", http_stub.url)
    assert cli("check", "health").exit_code == 0


def test_worker_down_with_database_up_is_degraded_and_fails(cli, http_stub):
    body = {**CURRENT_UP, "components": {**CURRENT_UP["components"], "celery": {"status": "down", "details": {"workers": []}}}}
    http_stub.json("/health/ready", body)
    result = cli("check", "health", "--url", http_stub.url)
    assert result.exit_code == 1  # the backend answers 200, but no sync will run: a failure, not a warning
    assert "✗ health FAILED  HTTP 200, status up, degraded: celery down" in result.stdout
