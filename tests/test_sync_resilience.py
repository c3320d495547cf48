"""What must never happen: a log left 'running', a task run twice, a crash that loses a sync."""

from __future__ import annotations

import json
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
    assert log["details"]["retry_count"] == 0  # waiting for the database does not spend a retry meant for errors
    assert log["details"]["manual_trigger"] is False


def test_database_down_longer_than_the_wait_budget_is_re_sent_from_the_log_not_left_open(redis_server, sync_db, postgres, fake_platform, monkeypatch):
    from pmsops.sync import config
    from pmsops.sync.trigger import trigger_sync
    from sync_helpers import WorkerOutput, sender_for

    monkeypatch.setenv("SYNC_RESEND_AFTER", "1")  # the trigger's side: its logs are due 1 s after they are created
    config.reset()
    monkeypatch.setattr(config, "_loaded", None)

    # the task gives up waiting after 1 s; its failure cannot be written (the database is down), so the
    # log stays open without a message: the sweeper (every 0.5 s, after 1 s idle) re-sends it from the log
    env = sync_worker_env(redis_server, 13, sync_db, fake_platform.url, SYNC_WAIT_MAX="1", SYNC_REAP_INTERVAL="0.5", SYNC_RESEND_AFTER="1")
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
            assert "failed (database_unavailable): Database unavailable after 0 retries" in line, line
            postgres.restart_server()
            database_up = True
            [log] = wait_final(sync_db, [task_id], timeout=30)
        finally:
            stop_worker(worker)
    finally:
        if not database_up:
            postgres.restart_server()
    assert (log["status"], log["details"]["resent"]) == ("success", 1), log


@pytest.fixture
def crash_worker_env(redis_server, sync_db, fake_platform):
    # default visibility timeout (900 s): the heir's sweeper takes the dead worker's operation once its lease ran out
    return sync_worker_env(redis_server, 4, sync_db, fake_platform.url, SYNC_LEASE_SECONDS="2", SYNC_REAP_INTERVAL="0.5")


def test_worker_killed_mid_task_is_re_sent_long_before_the_visibility_timeout(crash_worker_env, sync_db, fake_platform):
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
    killed_at = time.monotonic()
    assert logs_for(sync_db, triggered.task_ids)[0]["status"] == "running"
    second = start_worker(env["CELERY_BROKER_URL"], "heir@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=2, extra_env=env)
    try:
        [log] = wait_final(sync_db, triggered.task_ids, timeout=30)
    finally:
        stop_worker(second)
    assert (log["status"], log["details"]["resent"], log["details"]["worker"].split("#")[0]) == ("success", 1, "heir@pmsops-test"), log
    assert log["details"]["interrupted"] == 1  # the killed attempt may have reached the platform: counted, not hidden
    assert time.monotonic() - killed_at < 30


HELD_BY_THE_KILLED_WORKER = {
    # a retry waiting for its countdown: attempt 1 ran on another worker; the countdown message is the killed one's
    "retry-of-an-earlier-attempt": ("running", 1, {"worker": "alive@pmsops-test#previous", "in_flight": False, "retry_count": 1}),
    # never started: fetched (with a countdown) by the killed worker
    "never-started": ("triggered", 0, {}),
}


@pytest.mark.parametrize("case", sorted(HELD_BY_THE_KILLED_WORKER))
def test_a_message_held_by_a_killed_worker_is_sent_again_once_the_log_says_it_is_due(case, redis_server, sync_db, fake_platform):
    """Whoever holds a message, the log says when its operation is due: a countdown message held by a worker that
    died is sent again by the sweeper after due_at (+ SYNC_RESEND_AFTER), not after the 900-s visibility timeout."""
    import json

    from sync_helpers import wait_scheduled

    import redis

    fake_platform.reset()
    broker = redis_server.url_for_db(4)  # this module's crash broker (crash_worker_env's): emptied before and after
    redis.Redis.from_url(broker).flushdb()
    ids = seed_connection(sync_db)
    task_id = f"held-{case}"
    status, attempt, details = HELD_BY_THE_KILLED_WORKER[case]
    run(
        sync_db,
        lambda c: c.execute(
            "INSERT INTO channel_sync_logs (connection_id, operation_type, status, task_id, details, attempt, due_at)"
            " VALUES ($1::uuid, 'pricing_update', $2, $3, $4::text::jsonb, $5, now() + interval '2 seconds')",
            ids["connection_id"],
            status,
            task_id,
            json.dumps(details),
            attempt,
        ),
    )
    holder_env = sync_worker_env(redis_server, 4, sync_db, fake_platform.url, SYNC_REAP_INTERVAL="0")
    holder = start_worker(broker, "holder@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=2, extra_env=holder_env)
    from celery import Celery

    Celery("test-sender", broker=broker, set_as_current=False).send_task(
        "pmsops.sync.pricing_push", args=[ids["connection_id"]], kwargs={"attempt": attempt}, task_id=task_id, countdown=300
    )
    wait_scheduled(broker, task_id)
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    heir_env = sync_worker_env(redis_server, 4, sync_db, fake_platform.url, SYNC_REAP_INTERVAL="0.5", SYNC_RESEND_AFTER="1")
    heir = start_worker(broker, "heir2@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=2, extra_env=heir_env)
    try:
        [log] = wait_final(sync_db, [task_id], timeout=30)  # not the 900-s visibility timeout
    finally:
        stop_worker(heir)
        redis.Redis.from_url(broker).flushdb()  # the killed worker's countdown message, unacked
    assert (log["status"], log["details"].get("resent"), log["details"].get("worker", "").split("#")[0]) == ("success", 1, "heir2@pmsops-test"), log


def test_two_workers_on_one_queue_process_each_task_once(redis_server, sync_db, fake_platform):
    fake_platform.reset()
    env = sync_worker_env(redis_server, 5, sync_db, fake_platform.url)
    workers = [
        start_worker(env["CELERY_BROKER_URL"], f"twin{i}@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=2, extra_env=env)
        for i in (1, 2)
    ]
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
    run(
        sync_db,
        lambda c: c.execute(
            "INSERT INTO channel_sync_logs (connection_id, operation_type, status, task_id, updated_at, due_at) VALUES ($1::uuid,"
            " 'pricing_update', 'running', 'stale-task', now() - interval '90 minutes', now() - interval '89 minutes')",
            ids["connection_id"],
        ),
    )
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
    count = run(
        postgres.superuser_url,
        lambda c: c.fetchval("SELECT count(*) FROM pg_stat_activity WHERE usename = 'pms user' AND backend_type = 'client backend'"),
    )
    assert count <= 4 + 2 + 1  # the worker's pool (concurrency + 2: the lease renewer and the sweeper) and this query's connection


def test_a_triggered_log_whose_message_was_lost_is_re_sent_and_completes(redis_server, sync_db, fake_platform):
    env = sync_worker_env(redis_server, 9, sync_db, fake_platform.url, SYNC_REAP_INTERVAL="0.5", SYNC_RESEND_AFTER="1")
    ids = seed_connection(sync_db)
    # a trigger whose broker message is gone (a Redis that lost its data): the log is the outbox
    run(
        sync_db,
        lambda c: c.execute(
            "INSERT INTO channel_sync_logs (connection_id, operation_type, status, task_id, updated_at, due_at) VALUES ($1::uuid,"
            " 'bookings_sync', 'triggered', 'orphan-task', now() - interval '5 minutes', now() - interval '4 minutes')",
            ids["connection_id"],
        ),
    )
    worker = start_worker(env["CELERY_BROKER_URL"], "sweeper@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=1, extra_env=env)
    try:
        [log] = wait_final(sync_db, ["orphan-task"], timeout=20)
    finally:
        stop_worker(worker)
    assert (log["status"], log["details"]["resent"]) == ("success", 1), log


def test_the_sweeper_fails_only_what_it_cannot_send_again_and_never_an_operation_not_yet_due(redis_server, sync_db, fake_platform):
    from sync_helpers import sender_for, wait_until

    env = sync_worker_env(
        redis_server, 10, sync_db, fake_platform.url, SYNC_REAP_INTERVAL="0.3", SYNC_RESEND_AFTER="0.5", SYNC_LOG_STALE_MINUTES=str(2 / 60)
    )
    ids = seed_connection(sync_db)
    insert = (
        "INSERT INTO channel_sync_logs (connection_id, operation_type, status, task_id, created_at, updated_at, due_at)"
        " VALUES ($1::uuid, $2, $3, $4, now() - interval '5 minutes', now() - interval '5 minutes', now() + make_interval(secs => $5))"
    )
    # a legacy operation no task can run (nothing to send again), overdue; and one waiting in the worker for its
    # countdown, due (the log says) 25 s from now
    run(sync_db, lambda c: c.execute(insert, ids["connection_id"], "bookings_import", "running", "legacy-task", -60.0))
    run(sync_db, lambda c: c.execute(insert, ids["connection_id"], "pricing_update", "triggered", "waiting-task", 25.0))
    sender_for(env["CELERY_BROKER_URL"], countdown=20)("pmsops.sync.pricing_push", ids["connection_id"], "waiting-task")
    worker = start_worker(env["CELERY_BROKER_URL"], "reaper@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=1, extra_env=env)
    try:
        [legacy] = wait_final(sync_db, ["legacy-task"], timeout=20)
        [waiting] = logs_for(sync_db, ["waiting-task"])  # the sweep that failed the legacy log examined this one too
    finally:
        stop_worker(worker)
    assert (legacy["status"], legacy["details"]["error_type"]) == ("failed", "stale"), legacy
    assert legacy["error"].startswith("Marked stale"), legacy
    assert (waiting["status"], waiting["details"].get("resent")) == ("triggered", None), waiting


def test_sync_reap_fails_only_the_open_logs_whose_due_time_passed(cli, sync_db):
    """The log says what is live (a lease held, a retry or a first delivery not yet due): sync reap needs no broker."""
    ids = seed_connection(sync_db)
    queued, lost = str(uuid.uuid4()), str(uuid.uuid4())
    insert = (
        "INSERT INTO channel_sync_logs (connection_id, operation_type, status, task_id, updated_at, due_at) VALUES ($1::uuid, 'availability_update',"
        " 'triggered', $2, now() - interval '1 minute', now() + make_interval(secs => $3))"
    )
    run(sync_db, lambda c: c.execute(insert, ids["connection_id"], queued, 60.0))
    run(sync_db, lambda c: c.execute(insert, ids["connection_id"], lost, -1.0))

    result = cli("sync", "reap", "--older-than", "5s", "--database-url", sync_db, "--connection", ids["connection_id"], "--yes")

    assert result.exit_code == 0, result.output
    assert "marked 1 stale log(s) failed" in result.stdout
    statuses = {r["task_id"]: r["status"] for r in logs_for(sync_db, [queued, lost])}
    assert statuses == {queued: "triggered", lost: "failed"}


def test_a_worker_frozen_past_its_lease_during_a_push_loses_the_operation_and_its_late_result_is_counted(redis_server, sync_db, fake_platform):
    """SIGSTOP while the platform call is in flight, longer than the lease: another worker takes the operation and
    finishes it; the frozen one, resumed, writes nothing but the duplicate push it made (what a freeze can cost)."""
    from sync_helpers import wait_until

    fake_platform.reset()
    env = sync_worker_env(redis_server, 8, sync_db, fake_platform.url, SYNC_LEASE_SECONDS="2", SYNC_REAP_INTERVAL="0.5", SYNC_RESEND_AFTER="1")
    ids = seed_connection(sync_db, platform="google")
    frozen = start_worker(env["CELERY_BROKER_URL"], "frozen@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=1, extra_env=env)
    heir = None
    try:
        fake_platform.fail_next(0, count=1, delay=6.0, platform="google")  # the first push is answered 6 s late
        triggered = trigger(sync_db, env["CELERY_BROKER_URL"], ids["connection_id"], "availability")
        pushes = lambda: [c for c in fake_platform.received("availability") if c["listing"] == ids["listing"]]  # noqa: E731
        wait_until(lambda: len(pushes()) == 1, 20, "the first push never reached the platform")
        os.killpg(frozen.pid, signal.SIGSTOP)
        heir = start_worker(env["CELERY_BROKER_URL"], "heir3@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=1, extra_env=env)
        [finished] = wait_final(sync_db, triggered.task_ids, timeout=30)
        os.killpg(frozen.pid, signal.SIGCONT)
        [counted] = wait_until(
            lambda: [r for r in logs_for(sync_db, triggered.task_ids) if r["details"].get("duplicate_pushes")], 30, "the late push was not counted"
        )
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
        stop_worker(frozen)
        if heir is not None:
            stop_worker(heir)
    assert (finished["status"], finished["details"]["worker"].split("#")[0], finished["details"]["interrupted"]) == (
        "success",
        "heir3@pmsops-test",
        1,
    )
    assert (counted["status"], counted["details"]["duplicate_pushes"], len(pushes())) == ("success", 1, 2)


def test_retry_n_of_n_shows_the_workers_own_sync_max_retries_not_three(redis_server, sync_db, fake_platform):
    """#28: "retry n/3" was shown whatever SYNC_MAX_RETRIES said. The worker records its limit in the log; readers show it."""
    from pmsops.synclogs import describe_log

    fake_platform.reset()
    env = sync_worker_env(redis_server, 9, sync_db, fake_platform.url, SYNC_MAX_RETRIES="5")
    ids = seed_connection(sync_db, platform="expedia")
    worker = start_worker(env["CELERY_BROKER_URL"], "retries5@pmsops-test", app="pmsops.sync.worker:celery_app", concurrency=1, extra_env=env)
    try:
        fake_platform.fail_next(503, count=1, platform="expedia")
        triggered = trigger(sync_db, env["CELERY_BROKER_URL"], ids["connection_id"], "availability")
        [done] = wait_final(sync_db, triggered.task_ids, timeout=30)
    finally:
        stop_worker(worker)
    assert (done["status"], done["details"]["max_retries"], describe_log(done)) == (
        "success",
        5,
        "availability_update: success, retry 1/5, platform_error",
    )
