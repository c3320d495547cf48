"""Issue #12: the sync engine under real faults — nothing lost, nothing left open, every final status true.

Each scenario: two real workers (threads ×4 and prefork ×2, product defaults) on a real redis-server with
``appendonly yes``, the real PostgreSQL, the fake platform behind a counting proxy (the platform-side counts
are per operation: every call carries the task id as ``Idempotency-Key``). ``FAULT_SYNCS`` full syncs
(3 operations each; 150 by default, the issue's 450 operations; ``PMSOPS_FAULT_SYNCS=30`` for a quicker local run)
at 15 triggers/s, the fault while they are in flight, then a settle window of at most 150 s. Every test
asserts the same figures from the database and the proxy: 0 lost, 0 open, 0 duplicates not recorded in
their log, 0 untrue final statuses, no secret in any log.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from fault_scenarios import SECRETS, _children, _running, assert_figures, busy_threads_worker, fault_redis, stack  # noqa: F401 - the scenarios' fixtures
from sync_helpers import (
    FAULT_SYNCS,
    logs_for,
    restart_redis,
    trigger_full_syncs,
    wait_settled,
    wait_until,
)


@pytest.mark.slow
def test_sigkill_of_a_prefork_pool_child_loses_and_duplicates_nothing_unrecorded(stack):
    s = stack(1)
    s.start_both()
    s.proxy.delay = 0.3
    task_ids = trigger_full_syncs(s.database_url, s.broker, s.connections, FAULT_SYNCS, resend_after=s.resend_after)
    prefork = s.workers[f"prefork{s.db}@faults"]
    wait_until(lambda: _running(s.database_url, task_ids, "prefork"), 30, "no operation running on the prefork worker")
    children = _children(prefork.pid)
    assert children, "the prefork worker has no pool child"
    os.kill(children[0], signal.SIGKILL)
    s.proxy.delay = 0.0
    wait_settled(s.database_url, task_ids)
    assert prefork.poll() is None  # the worker replaced its child and kept consuming
    assert_figures(s, task_ids)


@pytest.mark.slow
@pytest.mark.latest
def test_sigkill_of_a_worker_then_restart_runs_its_operations_again_within_two_minutes(stack):
    s, task_ids, name = busy_threads_worker(stack, 2)
    os.killpg(s.workers[name].pid, signal.SIGKILL)
    s.workers[name].wait()
    killed_at = time.monotonic()
    orphaned = [r["task_id"] for r in _running(s.database_url, task_ids, "threads")]  # what the dead worker held, as the log says
    assert orphaned, "the killed worker held no operation"
    s.proxy.delay = 0.0
    s.start(name, "threads", 4)  # the same name again: a new incarnation, its predecessor's work is re-sent
    wait_until(
        lambda: all(r["status"] == "success" for r in logs_for(s.database_url, orphaned)),
        120,
        "the killed worker's operations did not run again within 2 minutes (default settings)",
        interval=0.5,
    )
    recovered = time.monotonic() - killed_at
    print(f"killed worker's {len(orphaned)} operation(s) final {recovered:.1f} s after the SIGKILL")
    wait_settled(s.database_url, task_ids)
    found = assert_figures(s, task_ids)
    assert all(r["details"].get("resent") or r["details"].get("interrupted") for r in logs_for(s.database_url, orphaned))
    assert found.statuses == {"success": len(task_ids)}


def test_sigterm_warm_shutdown_finishes_or_hands_back_every_operation(stack):
    s, task_ids, name = busy_threads_worker(stack, 3)
    proc = s.workers.pop(name)
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    assert proc.returncode == 0  # a warm shutdown, not a crash
    s.proxy.delay = 0.0
    wait_settled(s.database_url, task_ids)
    assert_figures(s, task_ids)


@pytest.mark.slow
@pytest.mark.latest
def test_postgresql_down_30_seconds_mid_run_every_operation_ends_true(stack, postgres):
    down = float(os.environ.get("PMSOPS_FAULT_DB_DOWN", "30"))
    s = stack(4)
    s.start_both()
    s.proxy.delay = 0.2
    task_ids = trigger_full_syncs(s.database_url, s.broker, s.connections, FAULT_SYNCS, resend_after=s.resend_after)
    wait_until(lambda: _running(s.database_url, task_ids), 30, "nothing running yet")
    postgres.stop_server()
    try:
        time.sleep(down)  # the fault itself: the database is away this long
    finally:
        postgres.restart_server()
    s.proxy.delay = 0.0
    wait_settled(s.database_url, task_ids)
    found = assert_figures(s, task_ids)
    for name, proc in s.workers.items():
        assert proc.poll() is None, f"{name} exited"
    assert found.statuses == {"success": len(task_ids)}


@pytest.mark.slow  # 32 s: make test keeps SIGTERM as its fault scenario; test-full (CI) runs the Redis ones
def test_redis_restart_mid_run_workers_stay_up_and_resume(stack, fault_redis):
    # a message the restart lost is sent again when its log is due: SYNC_RESEND_AFTER 10 s and a sweep every 5 s here
    # instead of 60 s and 15 s (the same code path; the SIGKILL scenario keeps every default)
    s = stack(5, SYNC_RESEND_AFTER="10", SYNC_REAP_INTERVAL="5")
    s.start_both()
    s.proxy.delay = 0.3
    s.proxy.fail(429, retry_after=5)  # every operation then waits 5 s for its retry: the workers hold those messages unacked
    task_ids = trigger_full_syncs(s.database_url, s.broker, s.connections, FAULT_SYNCS, resend_after=s.resend_after)
    wait_until(lambda: sum(1 for c in s.proxy.calls if c["status"] == 429) >= 10, 30, "no operation is waiting for its retry")
    restart_redis(fault_redis, down_seconds=2.0, keep_data=True)
    s.proxy.heal()
    s.proxy.delay = 0.0
    restarted = len(s.proxy.calls)
    wait_until(lambda: len(s.proxy.calls) > restarted + 10, 60, "no platform call after the Redis restart")
    for name, proc in s.workers.items():
        assert proc.poll() is None, f"{name} exited after the Redis restart (kombu's detached-transport crash)"
    wait_settled(s.database_url, task_ids)
    assert_figures(s, task_ids)


@pytest.mark.slow  # 28 s, as above
def test_redis_that_lost_its_data_operations_are_re_sent_from_the_log(stack, fault_redis):
    # the lost operations wait SYNC_RESEND_AFTER (a setting) before the sweep re-sends them: 10 s here instead of the default
    # 60 s, swept every 5 s instead of 15 s; the same code path, 84 s -> 30 s (the SIGKILL scenario keeps every default)
    s = stack(6, SYNC_RESEND_AFTER="10", SYNC_REAP_INTERVAL="5")
    s.start_both()
    s.proxy.delay = 0.3
    task_ids = trigger_full_syncs(s.database_url, s.broker, s.connections, FAULT_SYNCS, resend_after=s.resend_after)
    wait_until(lambda: _running(s.database_url, task_ids), 30, "nothing running yet")
    restart_redis(fault_redis, down_seconds=1.0, keep_data=False)
    s.proxy.delay = 0.0
    wait_settled(s.database_url, task_ids)
    for name, proc in s.workers.items():
        assert proc.poll() is None, f"{name} exited"
    found = assert_figures(s, task_ids)
    resent = [r for r in logs_for(s.database_url, task_ids) if r["details"].get("resent")]
    assert resent, "nothing was re-sent, although the broker lost its queue"
    print(f"re-sent from the log: {len(resent)} of {found.operations}")


@pytest.mark.slow
@pytest.mark.latest
def test_platform_5xx_then_429_then_healthy_every_sync_completes_and_waits_spend_no_retries(stack):
    s = stack(7)
    s.start_both()
    s.proxy.fail(503)
    task_ids = trigger_full_syncs(s.database_url, s.broker, s.connections, FAULT_SYNCS, resend_after=s.resend_after)
    wait_until(lambda: len(s.proxy.calls) >= 20, 30, "the platform saw no calls")
    outage, throttled = 10.0, 5.0  # the fault's phases: 5xx for 10 s, then 429 with Retry-After for 5 s
    time.sleep(outage)  # the fault itself: 5xx
    s.proxy.fail(429, retry_after=2)
    time.sleep(throttled)  # the fault continued: 429 with Retry-After
    s.proxy.heal()
    wait_settled(s.database_url, task_ids)
    found = assert_figures(s, task_ids)
    rows = logs_for(s.database_url, task_ids)
    assert max(r["details"]["retry_count"] for r in rows) <= 3
    assert found.statuses == {"success": len(task_ids)}


@pytest.mark.slow
def test_two_workers_hammering_one_account_stay_within_its_rate_limit(stack):
    from pmsops.sync.limits import limits_for

    s = stack(8, connections=1, platforms=("airbnb",))  # 10 calls/s, burst 15 per account
    s.start_both()
    [account] = s.connections
    task_ids = []
    for _ in range(max(FAULT_SYNCS, 20)):
        task_ids += trigger_full_syncs(s.database_url, s.broker, [account], 1, per_second=1000, resend_after=s.resend_after)
    wait_settled(s.database_url, task_ids)
    assert_figures(s, task_ids)
    limits = limits_for(account["platform"])
    times = sorted(c["at"] for c in s.proxy.calls if c["forwarded"])
    jitter = 0.2  # admission happens in Redis, arrival is measured here: allow this much skew between the two clocks
    worst = max(
        (j - i + 1) - (limits.burst + limits.rate_per_second * (times[j] - times[i] + jitter))
        for i in range(len(times))
        for j in range(i, len(times))
    )
    spread = times[-1] - times[0]
    print(f"{len(times)} calls on one account in {spread:.1f} s; worst excess over burst + rate × window: {worst:.2f}")
    assert worst <= 0
    assert spread >= (len(times) - limits.burst) / limits.rate_per_second - 1  # the limiter did have to hold calls back
