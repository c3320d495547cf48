"""The Quick Smoke end to end against the reference stack, and what operators see when it breaks."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import pytest


def _env(sandbox, monkeypatch, **extra):
    for key, value in {**sandbox.env(), **extra}.items():
        monkeypatch.setenv(key, value)


def test_smoke_passes_against_the_sandbox_and_prints_six_steps(cli, sandbox):
    result = cli("--env-file", str(sandbox.env_path), "smoke")
    assert result.exit_code == 0, result.output
    for step in ("1 load environment", "2 token", "3 health", "4 channel connection", "5 trigger sync", "6 sync logs"):
        assert f"✓ {step}" in result.stdout
    assert "redirect" not in result.stdout  # the slashed path the API serves: no 307 (#25 item 1)


def test_smoke_json_and_junit_match_the_steps(cli, sandbox, tmp_path):
    junit = tmp_path / "smoke.xml"
    result = cli("smoke", "--env-file", str(sandbox.env_path), "--json", "--junit", str(junit), "--sync-type", "availability")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["schema"] == "pmsops.report/v1" and report["command"] == "smoke"
    assert [r["name"] for r in report["results"]] == ["env", "token", "health", "connection", "trigger", "sync-logs"]  # stable keys
    assert [r["label"] for r in report["results"]] == [
        "1 load environment",
        "2 token",
        "3 health",
        "4 channel connection",
        "5 trigger sync",
        "6 sync logs",
    ]
    assert len(report["context"]["task_ids"]) == 1
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "6" and suite.get("failures") == "0"
    assert [case.get("name") for case in suite] == [r["label"] for r in report["results"]]  # CI views show the labels


def test_smoke_output_never_shows_a_secret_or_the_token(cli, sandbox):
    env = sandbox.env()
    result = cli("--env-file", str(sandbox.env_path), "smoke", "--json")
    for name in ("PASSWORD", "ANON_KEY", "JWT_SECRET", "ENCRYPTION_KEY"):
        assert env[name] not in result.output, name
    from urllib.parse import quote

    redis_password = env["REDIS_URL"].split("://:")[1].rsplit("@", 1)[0]
    assert redis_password not in result.output and quote(redis_password) not in result.output
    assert "eyJ" not in result.output


def test_stopped_worker_fails_smoke_at_step_3_naming_the_worker_without_triggering(cli, sandbox):
    sandbox.stop("worker")
    try:
        started = time.monotonic()
        result = cli("--env-file", str(sandbox.env_path), "smoke", "--json")  # default --wait 60: nothing may wait for it
        elapsed = time.monotonic() - started
    finally:
        sandbox.start("worker")
    report = json.loads(result.stdout)["results"]
    assert result.exit_code == 1
    assert [r["status"] for r in report] == ["ok", "ok", "fail", "ok", "skip", "skip"]
    assert "degraded: celery down" in report[2]["summary"]
    assert report[4]["summary"].startswith("not triggered: step 3 says celery down")
    assert elapsed < 20, elapsed  # the bound for a verdict; the 60 s wait is never entered


def test_stopped_database_fails_health_with_503_at_step_3(cli, sandbox, monkeypatch):
    from pmsops.api.token import obtain
    from pmsops.settings import Settings

    token = obtain(Settings.from_environ(sandbox.env())).token  # a valid token from before the outage
    _env(sandbox, monkeypatch, TOKEN=token)
    sandbox.stop("db")
    try:
        result = cli("smoke", "--json", "--wait", "5")
    finally:
        sandbox.start("db")
    report = json.loads(result.stdout)["results"]
    assert result.exit_code == 1
    assert [r["status"] for r in report] == ["ok", "ok", "fail", "fail", "skip", "skip"]  # step 4 still runs: it needs the token, not health
    assert "HTTP 503" in report[2]["summary"] and "down: db" in report[2]["summary"]
    assert "DATABASE_URL" in report[2]["hint"]


def test_wrong_credentials_fail_at_the_token_step(cli, sandbox, monkeypatch):
    _env(sandbox, monkeypatch, PASSWORD="not-the-password")
    result = cli("smoke")
    assert result.exit_code == 1
    assert "✗ 2 token FAILED" in result.stdout and "wrong EMAIL/PASSWORD" in result.stdout
    assert "✓ 3 health" in result.stdout  # health needs no token: it still runs
    assert "- 4 channel connection skipped  skipped: needs step 2 token, which failed" in result.stdout


def test_sandbox_status_lists_every_component(cli, sandbox):
    result = cli("sandbox", "status", "--dir", str(sandbox.directory), "--json")
    statuses = {r["name"]: r["status"] for r in json.loads(result.stdout)["results"]}
    assert result.exit_code == 0
    assert all(statuses[name] == "ok" for name in ("redis", "db", "platform", "worker", "api"))


def test_doctor_against_the_sandbox_is_green(cli, sandbox):
    result = cli("--env-file", str(sandbox.env_path), "doctor", "--expect-workers", "1")
    assert result.exit_code == 0, result.output


def test_sync_batches_report_the_contracts_batch_status(sandbox):
    from pmsops.api.client import ApiClient
    from pmsops.api.token import obtain
    from pmsops.settings import Settings

    env = sandbox.env()
    settings = Settings.from_environ(env)
    with ApiClient(env["PMS_API_URL"], obtain(settings).token) as client:
        items, _ = client.list_connections()
        cid = items[0]["id"]
        body = client.trigger_sync(cid, "full")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            batches = client.request("GET", f"/api/v1/channel-connections/{cid}/sync-batches").body["items"]
            mine = [b for b in batches if b["batch_id"] == body["batch_id"]]
            if mine and mine[0]["status"] == "success":
                break
            time.sleep(0.3)
    assert mine[0]["status"] == "success" and len(mine[0]["operations"]) == 3


def test_sandbox_up_in_a_directory_of_its_own_says_how_to_take_that_one_down(cli, tmp_path):
    """The next steps it prints are copyable as they stand (#24 item 10): the --dir it was given, quoted."""
    import json
    import shlex

    directory = tmp_path / "my sandbox"
    try:
        result = cli("sandbox", "up", "--dir", str(directory), "--json")
        assert result.exit_code == 0, result.output
        notes = json.loads(result.stdout)["results"][0]["notes"]
        assert notes[-1] == f"pmsops sandbox down --dir {shlex.quote(str(directory))}"
    finally:
        down = cli("sandbox", "down", "--dir", str(directory))
    assert down.exit_code == 0, down.output
