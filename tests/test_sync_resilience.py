"""What must never happen: a log left 'running', a task run twice, a crash that loses a sync."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from conftest import start_worker, stop_worker, sync_worker_env
from sync_helpers import logs_for, run, seed_connection, trigger, wait_final


def test_database_down_during_a_run_is_retried_until_it_returns(sync_db, sync_worker, postgres, fake_platform):
    from sync_helpers import sender_for, wait_scheduled

    ids = seed_connection(sync_db, platform="google")
    task_id = str(uuid.uuid4())
    postgres.stop_server()
    try:
        # the log could not be created while the database is down: the task adopts it when it comes back
        sender_for(sync_worker["CELERY_BROKER_URL"])("pmsops.sync.availability_push", ids["connection_id"], task_id)
        wait_scheduled(sync_worker["CELERY_BROKER_URL"], task_id)  # it failed once and waits for its retry
    finally:
        postgres.restart_server()
    [log] = wait_final(sync_db, [task_id], timeout=20)
    assert log is not None, "no log was adopted"
    assert log["status"] == "success", log
    assert log["details"]["retry_count"] >= 1  # how many retries the restart took varies; at least one did happen
    assert log["details"]["manual_trigger"] is False


def test_database_down_for_every_retry_ends_failed_not_running(redis_server, sync_db, postgres, fake_platform):
    from pmsops.sync.trigger import trigger_sync
    from sync_helpers import WorkerOutput, sender_for

    # one retry (1 s), a sweep every 0.5 s for logs idle 1.2 s: the worker settles by itself what no handler could write
    env = sync_worker_env(redis_server, 13, sync_db, fake_platform.url, SYNC_MAX_RETRIES="1", SYNC_REAP_INTERVAL="0.5", SYNC_LOG_STALE_MINUTES="0.02")
    ids = seed_connection(sync_db, platform="airbnb")
    sent: list[tuple[str, str, str]] = []
    triggered = run(sync_db, lambda c: trigger_sync(c, ids["connection_id"], "pricing", send=lambda *task: sent.append(task)))
    [task_id] = triggered.task_ids
    postgres.stop_server()
    database_up = False
    try:
        worker = start_worker(env["CELERY_BROKER_URL"], "dbless@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=1, extra_env=env)
        output = WorkerOutput(worker)
        try:
            sender_for(env["CELERY_BROKER_URL"])(*sent[0])
            line = output.wait_for(f"Sync task {task_id} failed")
            assert "failed (database_unavailable): Database unavailable after 1 retries" in line, line
            postgres.restart_server()
            database_up = True
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and logs_for(sync_db, [task_id])[0]["status"] != "failed":
                time.sleep(0.1)
        finally:
            stop_worker(worker)
    finally:
        if not database_up:
            postgres.restart_server()
    [log] = logs_for(sync_db, [task_id])
    assert log["status"] == "failed", log
    assert log["error"].startswith("Marked stale") and log["details"]["error_type"] == "stale", log


@pytest.fixture
def crash_worker_env(redis_server, sync_db, fake_platform):
    return sync_worker_env(redis_server, 4, sync_db, fake_platform.url, CELERY_VISIBILITY_TIMEOUT="3", CELERY_UNACKED_RESTORE_INTERVAL="1")


def test_worker_killed_mid_task_is_redelivered_to_the_next_worker(crash_worker_env, sync_db, fake_platform):
    fake_platform.reset()
    env = crash_worker_env
    ids = seed_connection(sync_db, platform="expedia")
    first = start_worker(env["CELERY_BROKER_URL"], "doomed@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=2, extra_env=env)
    fake_platform.fail_next(0, count=1, delay=3.0, platform="expedia")  # the first call hangs for 3 s
    triggered = trigger(sync_db, env["CELERY_BROKER_URL"], ids["connection_id"], "availability")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and logs_for(sync_db, triggered.task_ids)[0]["status"] != "running":
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert logs_for(sync_db, triggered.task_ids)[0]["status"] == "running"
    second = start_worker(env["CELERY_BROKER_URL"], "heir@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=2, extra_env=env)
    try:
        [log] = wait_final(sync_db, triggered.task_ids, timeout=30)
    finally:
        stop_worker(second)
    assert log["status"] == "success", log


def test_two_workers_on_one_queue_process_each_task_once(redis_server, sync_db, fake_platform):
    fake_platform.reset()
    env = sync_worker_env(redis_server, 5, sync_db, fake_platform.url)
    workers = [start_worker(env["CELERY_BROKER_URL"], f"twin{i}@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=2, extra_env=env) for i in (1, 2)]
    try:
        connections = [seed_connection(sync_db, platform="google", rates_days=1) for _ in range(12)]
        task_ids = []
        for ids in connections:
            task_ids += trigger(sync_db, env["CELERY_BROKER_URL"], ids["connection_id"], "availability").task_ids
        rows = wait_final(sync_db, task_ids, timeout=60)
    finally:
        for proc in workers:
            stop_worker(proc)
    assert all(r["status"] == "success" for r in rows)
    listings = [c["listing"] for c in fake_platform.received("availability")]
    assert sorted(listings) == sorted(ids["listing"] for ids in connections)


def test_reap_marks_stale_running_logs_failed(cli, sync_db):
    ids = seed_connection(sync_db)
    run(sync_db, lambda c: c.execute("INSERT INTO channel_sync_logs (connection_id, operation_type, status, task_id, updated_at) VALUES ($1::uuid, 'pricing_update', 'running', 'stale-task', now() - interval '90 minutes')", ids["connection_id"]))
    result = cli("sync", "reap", "--older-than", "60m", "--database-url", sync_db, "--connection", ids["connection_id"], "--yes")
    assert result.exit_code == 0, result.output
    assert "marked 1 stale log(s) failed" in result.stdout
    [log] = logs_for(sync_db, ["stale-task"])
    assert log["status"] == "failed" and log["error"] == "Marked stale (no update for 60 minutes)"


def test_worker_reuses_its_database_connections(sync_db, sync_worker, postgres):
    ids = seed_connection(sync_db, platform="google", rates_days=1)
    task_ids = []
    for _ in range(10):
        task_ids += trigger(sync_db, sync_worker["CELERY_BROKER_URL"], ids["connection_id"], "availability").task_ids
    wait_final(sync_db, task_ids)
    count = run(postgres.superuser_url, lambda c: c.fetchval("SELECT count(*) FROM pg_stat_activity WHERE usename = 'pms user' AND backend_type = 'client backend'"))
    assert count <= 4 + 1 + 1  # the worker's pool (concurrency + 1) and this query's connection


def test_the_worker_sweeps_stale_logs_by_itself(redis_server, sync_db, fake_platform):
    env = sync_worker_env(redis_server, 9, sync_db, fake_platform.url, SYNC_REAP_INTERVAL="0.5", SYNC_LOG_STALE_MINUTES="1")
    ids = seed_connection(sync_db)
    run(sync_db, lambda c: c.execute("INSERT INTO channel_sync_logs (connection_id, operation_type, status, task_id, updated_at) VALUES ($1::uuid, 'bookings_sync', 'triggered', 'orphan-task', now() - interval '5 minutes')", ids["connection_id"]))
    worker = start_worker(env["CELERY_BROKER_URL"], "sweeper@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=1, extra_env=env)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and logs_for(sync_db, ["orphan-task"])[0]["status"] != "failed":
            time.sleep(0.2)
    finally:
        stop_worker(worker)
    [log] = logs_for(sync_db, ["orphan-task"])
    assert log["status"] == "failed" and log["error"].startswith("Marked stale")
