"""Verdicts an operator can trust and one set of options, against real servers.

The exit-code rule (README "Exit codes"): 0 ok (warnings allowed), 1 something is wrong
now (or a warning with --strict), 2 bad input or nothing checked, 130 interrupted.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid

import pytest

from sync_helpers import logs_for, run, seed_connection


@pytest.fixture
def http_400_server():
    """A web server where Redis was expected: answers every request with an HTTP 400, as nginx does."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


def test_a_web_server_on_the_redis_port_is_named_not_an_unexpected_error(cli, http_400_server):
    result = cli("check", "redis", "--url", f"redis://:pw@127.0.0.1:{http_400_server}/0")

    assert result.exit_code == 1
    assert f"127.0.0.1:{http_400_server} answered in HTTP, not as Redis" in result.stdout
    assert "something other than Redis listens on that port" in result.stdout
    assert "unexpected error" not in result.stdout


def test_quiet_prints_nothing_and_the_exit_code_answers(cli, redis_server, refused_port):
    good = cli("check", "redis", "--url", redis_server.url, "--quiet")
    bad = cli("check", "redis", "--url", f"redis://:pw@127.0.0.1:{refused_port}/0", "-q")

    assert (good.exit_code, good.stdout) == (0, "")
    assert (bad.exit_code, bad.stdout) == (1, "")


def test_global_options_work_after_the_command(cli, redis_server, tmp_path):
    env_file = tmp_path / "pms_env.sh"
    env_file.write_text(f"export REDIS_URL='{redis_server.url}'\n")

    after = cli("check", "redis", "--env-file", str(env_file), "--no-color", "--json")
    before = cli("--env-file", str(env_file), "--no-color", "check", "redis", "--json")

    assert after.exit_code == before.exit_code == 0, after.output
    assert json.loads(after.stdout)["results"][0]["name"] == "redis"


def test_pmsops_env_file_is_read_and_env_file_beats_it(cli, redis_server, refused_port, tmp_path, monkeypatch):
    good, bad = tmp_path / "good.sh", tmp_path / "bad.sh"
    good.write_text(f"export REDIS_URL='{redis_server.url}'\n")
    bad.write_text(f"export REDIS_URL='redis://:pw@127.0.0.1:{refused_port}/0'\n")
    monkeypatch.setenv("PMSOPS_ENV_FILE", str(good))

    assert cli("check", "redis").exit_code == 0
    assert cli("check", "redis", "--env-file", str(bad)).exit_code == 1


def test_an_env_file_is_not_copied_into_the_process_environment(cli, redis_server, tmp_path):
    import os

    env_file = tmp_path / "pms_env.sh"
    env_file.write_text(f"export REDIS_URL='{redis_server.url}'\nexport PMSOPS_TEST_MARKER=1\n")

    assert cli("--env-file", str(env_file), "check", "redis").exit_code == 0
    assert "PMSOPS_TEST_MARKER" not in os.environ


def test_sync_logs_without_an_id_use_cid(cli, http_stub, monkeypatch):
    cid = str(uuid.uuid4())
    http_stub.json(
        f"/api/v1/channel-connections/{cid}/sync-logs",
        {
            "logs": [
                {
                    "id": str(uuid.uuid4()),
                    "operation_type": "availability_update",
                    "direction": "outbound",
                    "status": "success",
                    "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-01-01T00:00:00Z",
                    "details": {},
                    "error": None,
                    "task_id": "t",
                }
            ]
        },
    )
    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")
    monkeypatch.setenv("CID", cid)

    result = cli("sync", "logs")

    assert result.exit_code == 0, result.output
    assert "WHEN       OPERATION" in result.stdout  # a table header
    assert "availability_update" in result.stdout and " ago " in result.stdout  # relative times


def test_sync_logs_with_a_failed_latest_run_fail_and_an_older_failure_only_warns(cli, http_stub, monkeypatch):
    cid = str(uuid.uuid4())

    def log(op: str, status: str, when: str) -> dict:
        return {
            "id": str(uuid.uuid4()),
            "operation_type": op,
            "direction": "outbound",
            "status": status,
            "created_at": when,
            "updated_at": when,
            "details": {},
            "error": "platform said no" if status == "failed" else None,
            "task_id": str(uuid.uuid4()),
        }

    monkeypatch.setenv("PMS_API_URL", http_stub.url)
    monkeypatch.setenv("TOKEN", "x.y.z")
    http_stub.json(f"/api/v1/channel-connections/{cid}/sync-logs", {"logs": [log("pricing_update", "failed", "2026-01-02T00:00:00Z")]})
    failing = cli("sync", "logs", cid, "--json")
    http_stub.json(
        f"/api/v1/channel-connections/{cid}/sync-logs",
        {"logs": [log("pricing_update", "success", "2026-01-02T00:00:00Z"), log("pricing_update", "failed", "2026-01-01T00:00:00Z")]},
    )
    recovered = cli("sync", "logs", cid, "--json")

    assert failing.exit_code == 1
    assert [r["status"] for r in json.loads(failing.stdout)["results"]] == ["fail", "fail"]
    assert recovered.exit_code == 0
    assert [r["status"] for r in json.loads(recovered.stdout)["results"]] == ["ok", "warn"]
    assert cli("sync", "logs", cid, "--strict").exit_code == 1


def test_a_503_from_the_token_endpoint_names_the_auth_service_not_the_keys(cli, http_stub, monkeypatch):
    http_stub.json("/auth/v1/token", {"message": "upstream unavailable"}, status=503)
    for name, value in {"SB_URL": http_stub.url, "ANON_KEY": "anon", "EMAIL": "ops@example.com", "PASSWORD": "pw"}.items():
        monkeypatch.setenv(name, value)

    result = cli("token")

    assert result.exit_code == 1
    assert "the login failed on the auth side (HTTP 503), not your credentials" in result.stderr
    assert "pmsops check db" in result.stderr  # GoTrue's users live in Supabase's PostgreSQL: a database down fails every login
    assert "check SB_URL and ANON_KEY" not in result.stderr


# --- sync reap: production data --------------------------------------------------------------------------------


def _stale_log(sync_db) -> tuple[str, str]:
    ids = seed_connection(sync_db)
    task = f"stale-{uuid.uuid4()}"
    run(
        sync_db,
        lambda c: c.execute(
            "INSERT INTO channel_sync_logs (connection_id, operation_type, status, task_id, updated_at, due_at) "
            "VALUES ($1::uuid, 'pricing_update', 'running', $2, now() - interval '90 minutes', now() - interval '89 minutes')",
            ids["connection_id"],
            task,
        ),
    )
    return ids["connection_id"], task


def test_sync_reap_dry_run_lists_and_changes_nothing(cli, sync_db):
    cid, task = _stale_log(sync_db)

    result = cli("sync", "reap", "--older-than", "60m", "--database-url", sync_db, "--connection", cid, "--dry-run")

    assert result.exit_code == 0, result.output
    assert "would mark 1 stale log(s) failed" in result.stdout and "would be marked failed" in result.stdout
    assert logs_for(sync_db, [task])[0]["status"] == "running"


def test_sync_reap_without_a_terminal_needs_yes(cli, sync_db):
    cid, task = _stale_log(sync_db)

    refused = cli("sync", "reap", "--older-than", "60m", "--database-url", sync_db, "--connection", cid)

    assert refused.exit_code == 2
    assert "pass --yes to confirm" in refused.stderr
    assert logs_for(sync_db, [task])[0]["status"] == "running"
    assert cli("sync", "reap", "--older-than", "60m", "--database-url", sync_db, "--connection", cid, "--yes").exit_code == 0
    assert logs_for(sync_db, [task])[0]["status"] == "failed"


# --- smoke: the platform down is named from the log ----------------------------------------------------------


@pytest.fixture
def platform_down(sandbox):
    """The sandbox's platform stopped for one test. Breakers and buckets are reset before and after: an airbnb breaker
    left open by another test (observe_stack's outage) would turn this test's 'failed' into 'circuit_open', and the breaker
    this test opens must not do the same to the next test, whatever order the tests run in."""
    from observe_stack import reset_limits

    env = sandbox.env()
    reset_limits(env)
    sandbox.stop("platform")
    try:
        yield env
    finally:
        sandbox.start("platform")
        reset_limits(env)


def test_smoke_with_the_platform_down_names_the_platform_from_the_log(cli, sandbox, platform_down):
    from observe_stack import connection_of

    expedia = connection_of(platform_down, "expedia")  # no other test fails expedia syncs: its breaker is this test's alone

    result = cli("--env-file", str(sandbox.env_path), "smoke", "--json", "--wait", "30", "--sync-type", "availability", "--connection", expedia)

    report = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    assert result.exit_code == 1
    assert report["sync-logs"]["status"] == "fail"
    assert report["sync-logs"]["summary"] == "sync failed: the platform (channel API) answers with errors (platform_error)"
    assert report["sync-logs"]["notes"][0].startswith("availability_update: failed, retry 3/3, platform_error")
    assert "a task hangs or its worker died" not in (report["sync-logs"]["hint"] or "")


def test_sync_run_from_an_env_file_waits_with_the_same_poller_and_verdict(sync_worker, tmp_path):
    """The env file is not in os.environ, yet the Celery app of ``sync run`` reads its broker from there: handed over explicitly."""
    import subprocess
    import sys
    from pathlib import Path

    from sync_helpers import seed_connection

    ids = seed_connection(sync_worker["DATABASE_URL"], platform="google", rates_days=1)
    env_file = tmp_path / "worker.env"
    env_file.write_text("".join(f"export {k}='{v}'\n" for k, v in sync_worker.items()))
    src = str(Path(__file__).resolve().parent.parent / "src")
    clean = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("CELERY_", "REDIS_", "DATABASE_"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pmsops",
            "sync",
            "run",
            ids["connection_id"],
            "--type",
            "availability",
            "--wait",
            "30",
            "--env-file",
            str(env_file),
            "--json",
        ],
        env={**clean, "PYTHONPATH": src},
        capture_output=True,
        text=True,
        timeout=60,
    )

    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert [r["name"] for r in report["results"]] == ["trigger", "sync"]
    assert report["results"][1]["summary"] == "all 1 operation(s) succeeded"


def test_smoke_names_a_missing_worker_in_seconds_when_health_does_not_check_celery(cli, http_stub, redis_server, monkeypatch):
    """A backend with ENABLE_CELERY_HEALTHCHECK=false reports celery skipped; the logs never move; no worker listens on the broker."""
    import time

    cid, task, log = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    http_stub.json(
        "/health/ready",
        {"status": "up", "components": {"db": {"status": "up"}, "redis": {"status": "up"}, "celery": {"status": "up", "details": {"skipped": True}}}},
    )
    http_stub.json(f"/api/v1/channel-connections/{cid}", {"id": cid, "platform_type": "airbnb", "status": "active"})
    http_stub.json(f"/api/v1/channel-connections/{cid}/sync", {"status": "triggered", "task_ids": [task], "created_log_ids": [log], "batch_id": None})
    http_stub.json(
        f"/api/v1/channel-connections/{cid}/sync-logs",
        {
            "logs": [
                {
                    "id": log,
                    "task_id": task,
                    "operation_type": "availability_update",
                    "direction": "outbound",
                    "status": "triggered",
                    "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-01-01T00:00:00Z",
                    "details": {},
                    "error": None,
                }
            ]
        },
    )
    import base64

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    token = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': 'ops', 'aud': 'authenticated', 'exp': 4102444800})}.c2ln"
    for name, value in {"PMS_API_URL": http_stub.url, "TOKEN": token, "CID": cid, "CELERY_BROKER_URL": redis_server.url_for_db(9)}.items():
        monkeypatch.setenv(name, value)

    started = time.monotonic()
    result = cli("smoke", "--json", "--sync-type", "availability")  # --wait stays 60 s
    elapsed = time.monotonic() - started
    report = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    assert result.exit_code == 1
    assert report["sync-logs"]["summary"] == "no worker: the logs stayed 'triggered' for 8 s and no worker answers a ping on the broker"
    assert elapsed < 20, elapsed


def test_the_poller_stops_when_every_open_log_waits_for_a_retry_after_the_deadline():
    """A breaker open for 5 minutes: waiting 30 s cannot change the verdict, so it is given at once."""
    import time
    from datetime import datetime, timezone

    from pmsops.synclogs import final_verdict, wait_until_final

    now = datetime.now(timezone.utc).isoformat()
    log = {
        "id": "l1",
        "task_id": "t1",
        "operation_type": "availability_update",
        "status": "running",
        "updated_at": now,
        "error": None,
        "details": {"retry_count": 2, "error_type": "circuit_open", "next_retry_seconds": 300},
    }
    started = time.monotonic()
    found, finished = wait_until_final(lambda: [log], ["t1"], ["l1"], timeout=30, poll=0.5)

    assert (finished, time.monotonic() - started < 5) == (False, True)
    verdict = final_verdict("sync-logs", found, finished, 30)
    assert verdict.summary == "not final within the 30 s wait: the platform's circuit breaker is open after repeated platform errors (circuit_open)"
    assert verdict.notes == ["availability_update: running, retry 2/3, circuit_open, breaker open, next retry in 300 s"]


def test_smoke_with_redis_down_names_redis_not_the_worker(cli, http_stub, monkeypatch):
    """With the broker unreachable no worker can answer: the cause is Redis, and the fix is not 'start the worker' (#24 item 6)."""
    import base64

    cid = str(uuid.uuid4())
    http_stub.json(
        "/health/ready",
        {
            "status": "degraded",
            "components": {
                "db": {"status": "up"},
                "redis": {"status": "down", "error": "Connection refused"},
                "celery": {"status": "down", "error": "no broker"},
            },
        },
    )
    http_stub.json(f"/api/v1/channel-connections/{cid}", {"id": cid, "platform_type": "airbnb", "status": "active"})

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    token = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': 'ops', 'aud': 'authenticated', 'exp': 4102444800})}.c2ln"
    for name, value in {"PMS_API_URL": http_stub.url, "TOKEN": token, "CID": cid}.items():
        monkeypatch.setenv(name, value)

    result = cli("smoke", "--json", "--sync-type", "availability")

    steps = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    assert result.exit_code == 1
    assert "redis down (Connection refused): the broker is unreachable" in steps["trigger"]["summary"]
    assert "bring Redis back (pmsops check redis)" in steps["trigger"]["summary"]
    assert "start the worker" not in steps["trigger"]["summary"]
