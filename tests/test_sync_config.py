"""Sync settings: parsed once, bad values are exit 2, the visibility-timeout invariant is enforced, and
the Celery app comes from a factory (a test can build a second app and run it as an embedded worker)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pmsops.sync.config import TIME_LIMIT_GRACE, ConfigError, SyncSettings, backoff


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SYNC_RETRY_BASE", "fast"),
        ("SYNC_MAX_RETRIES", "3.5"),
        ("CELERY_TIME_LIMIT", "-1"),
        ("SYNC_RATE_LIMITS", "maybe"),
        ("CELERY_VISIBILITY_TIMEOUT", "nan"),
        ("CELERY_CONCURRENCY", "0"),
    ],
)
def test_a_bad_sync_setting_is_a_clear_error_not_a_silent_default(name, value):
    with pytest.raises(ConfigError) as caught:
        SyncSettings.from_env({name: value})
    assert caught.value.message.startswith(f"{name} must be") and value in caught.value.message
    assert caught.value.exit_code == 2


def test_backoff_is_one_pure_function_with_sub_second_bases():
    assert [backoff(n, 0.05, 600) for n in range(4)] == [0.05, 0.1, 0.2, 0.4]
    assert [backoff(n, 1, 3) for n in range(4)] == [1, 2, 3, 3]
    assert SyncSettings(retry_base=0.05).backoff(2) == 0.2  # Celery's integer-only retry_backoff made this 1 s


def test_the_stale_window_follows_from_the_time_limit_and_the_retry_budget():
    short = SyncSettings(time_limit=10, retry_base=1, max_retries=3, visibility_timeout=100)
    assert short.hard_time_limit == 10 + TIME_LIMIT_GRACE
    assert short.stale_seconds == (1 + 2 + 4) + 4 * (10 + TIME_LIMIT_GRACE) + 100
    assert SyncSettings.from_env({"SYNC_LOG_STALE_MINUTES": "2"}).stale_seconds == 120


def test_product_defaults_keep_every_countdown_below_the_visibility_timeout():
    assert SyncSettings.from_env({}).invariant_violations() == []
    problems = SyncSettings.from_env({"CELERY_VISIBILITY_TIMEOUT": "300"}).invariant_violations()
    assert len(problems) == 1 and "CELERY_VISIBILITY_TIMEOUT=300 s must exceed" in problems[0]


def _worker(env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-P", "-m", "celery", "-A", "pmsops.sync.worker:celery_app", "worker", "--pool", "solo", "-l", "WARNING"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_worker_refuses_to_start_when_a_countdown_could_outlast_the_visibility_timeout(redis_server):
    result = _worker({"CELERY_BROKER_URL": redis_server.url_for_db(14), "CELERY_VISIBILITY_TIMEOUT": "120"})
    assert result.returncode == 2
    [line] = [l for l in result.stderr.splitlines() if l.startswith("pmsops worker:")]
    assert "CELERY_VISIBILITY_TIMEOUT=120 s must exceed CELERY_TIME_LIMIT + grace (310 s) + SYNC_RETRY_BACKOFF_MAX (300 s)" in line
    assert "Traceback" not in result.stderr


def test_worker_with_a_bad_setting_exits_2_with_one_line():
    result = _worker({"CELERY_BROKER_URL": "redis://127.0.0.1:1/0", "SYNC_MAX_RETRIES": "lots"})
    assert result.returncode == 2
    assert "pmsops worker: SYNC_MAX_RETRIES must be a whole number, got 'lots'" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_check_reports_a_visibility_timeout_that_a_countdown_can_outlast(cli, monkeypatch):
    import json

    monkeypatch.setenv("CELERY_VISIBILITY_TIMEOUT", "600")
    monkeypatch.setenv("SYNC_RETRY_BACKOFF_MAX", "300")
    result = cli("worker-check", "--destination", "celery@nobody", "--timeout", "0.3", "--allow-root", "--json")
    report = {r["name"]: r for r in json.loads(result.stdout.split("\nworker-check:")[0])["results"]}
    assert report["sync-config"]["status"] == "fail"
    assert report["sync-config"]["summary"].startswith("CELERY_VISIBILITY_TIMEOUT=600 s must exceed")


def test_a_second_app_from_the_factory_runs_as_an_embedded_worker(redis_server, sync_db, fake_platform):
    from celery.contrib.testing.worker import start_worker

    from conftest import ENCRYPTION_KEY
    from pmsops.sync.worker import create_app
    from sync_helpers import seed_connection, sender_for, wait_final

    broker = redis_server.url_for_db(15)
    settings = SyncSettings.from_env(
        {
            "CELERY_BROKER_URL": broker,
            "REDIS_URL": broker,
            "DATABASE_URL": sync_db,
            "ENCRYPTION_KEY": ENCRYPTION_KEY,
            "PLATFORM_BASE_URL": fake_platform.url,
            "SYNC_REAP_INTERVAL": "0",
        }
    )
    app = create_app(settings, name="embedded")
    ids = seed_connection(sync_db, platform="google")
    from pmsops.sync.runtime import close_runtime

    try:
        with start_worker(app, pool="threads", concurrency=1, perform_ping_check=False, shutdown_timeout=10):
            task_id = "embedded-" + ids["connection_id"]
            sender_for(broker)("pmsops.sync.pricing_push", ids["connection_id"], task_id)
            [log] = wait_final(sync_db, [task_id], timeout=20)
    finally:
        close_runtime()  # this process's loop, pool and HTTP client: no connection left open to the session's servers
    assert (log["status"], log["details"]["worker"].split("#")[1]) == ("success", app.sync_incarnation)


def test_wait_for_deps_switch_with_an_unknown_word_is_bad_input_not_on(cli, monkeypatch):
    monkeypatch.setenv("WORKER_WAIT_FOR_DEPS", "maybe")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    result = cli("wait-for-deps", "--timeout", "0.2")
    assert result.exit_code == 2
    assert "WORKER_WAIT_FOR_DEPS must be true or false, got 'maybe'" in result.output
