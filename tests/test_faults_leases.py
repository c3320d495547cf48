"""#27: the faults the lease design answers, at the fault suite's volume with two workers (threads and prefork): a worker
frozen past its leases, a Retry-After longer than a lease, a message that kills every process running it, corrupt
broker data. A module of its own so pytest-xdist runs it beside tests/test_faults_sync.py (each has its own Redis)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from fault_scenarios import SECRETS, _children, _running, assert_figures, busy_threads_worker, fault_redis, stack  # noqa: F401 - the scenarios' fixtures
from sync_helpers import (
    FAULT_SYNCS,
    logs_for,
    pid_of_peer,
    restart_redis,
    settle_budget,
    trigger,
    trigger_full_syncs,
    wait_settled,
    wait_until,
)


def _settled_holdings(database_url: str, task_ids: list[str]) -> list[str]:
    """What the frozen worker holds, once two reads agree (a write it sent just before the freeze has landed)."""
    seen: list[list[str]] = []

    def agreed() -> tuple[list[str]] | None:  # a tuple: an empty holding is an answer too
        seen.append(sorted(r["task_id"] for r in _running(database_url, task_ids, "threads")))
        return (seen[-1],) if len(seen) > 1 and seen[-1] == seen[-2] else None

    [held] = wait_until(agreed, 30, "the frozen worker's holdings never settled", interval=0.3)
    return held


@pytest.mark.slow
@pytest.mark.latest
def test_a_worker_frozen_90_seconds_then_thawed_loses_nothing_and_its_late_pushes_are_counted(stack):
    """SIGSTOP for 90 s (a VM pause, a stuck NFS read): the frozen worker's leases lapse, the other worker's sweep
    sends its operations again; thawed, the frozen worker writes nothing over them (its attempts were superseded)."""
    frozen_for = float(os.environ.get("PMSOPS_FAULT_FREEZE", "90"))
    s, task_ids, name = busy_threads_worker(stack, 9)
    os.killpg(s.workers[name].pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        held = _settled_holdings(s.database_url, task_ids)
        time.sleep(max(0.0, frozen_for - (time.monotonic() - stopped_at)))  # the fault itself: the worker is frozen this long
    finally:
        os.killpg(s.workers[name].pid, signal.SIGCONT)
    s.proxy.delay = 0.0
    wait_settled(s.database_url, task_ids, settle_budget(s, FAULT_SYNCS))
    assert s.workers[name].poll() is None, "the thawed worker exited"
    found = assert_figures(s, task_ids)
    taken_over = [r for r in logs_for(s.database_url, held) if r["details"].get("interrupted")]
    print(f"frozen worker held {len(held)}; taken over {len(taken_over)}; duplicate pushes (counted) {sum(found.duplicates.values())}")
    assert held and len(taken_over) == len(held)


@pytest.mark.slow
@pytest.mark.latest
def test_429_with_retry_after_90_seconds_every_operation_waits_it_out_and_pushes_once(stack):
    """Every call answered 429 Retry-After: 90 for 10 s: each operation that saw it waits the 90 s the platform
    asked for (held by its worker, due in its log), is not re-sent meanwhile, spends no retry and pushes once."""
    retry_after = float(os.environ.get("PMSOPS_FAULT_RETRY_AFTER", "90"))
    s = stack(10)
    s.start_both()
    s.proxy.fail(429, retry_after=retry_after)
    task_ids = trigger_full_syncs(s.database_url, s.broker, s.connections, FAULT_SYNCS, resend_after=s.resend_after)
    wait_until(lambda: sum(1 for c in s.proxy.calls if c["status"] == 429) >= 20, 30, "no call was answered 429")
    time.sleep(10 if FAULT_SYNCS > 30 else 2)  # the fault continued: every call answered 429 this long
    s.proxy.heal()
    wait_settled(s.database_url, task_ids, settle_budget(s, FAULT_SYNCS) + retry_after)
    found = assert_figures(s, task_ids)
    assert found.duplicates == {}
    told_at: dict[str, float] = {}
    early = []
    for call in sorted(s.proxy.calls, key=lambda c: c["at"]):
        operation = (call["key"] or "").split(":", 1)[0]
        if call["status"] == 429:
            told_at.setdefault(operation, call["at"])
        elif operation in told_at and call["at"] < told_at[operation] + retry_after - 1:
            early.append(operation)
    rows = logs_for(s.database_url, task_ids)
    print(f"{len(told_at)} operations told to wait {retry_after:g} s; came back early: {len(early)}")
    assert (early, max(r["details"]["retry_count"] for r in rows)) == ([], 0)


@pytest.mark.slow
@pytest.mark.latest
def test_a_poison_message_that_kills_every_worker_running_it_ends_failed_and_the_rest_complete(stack):
    """One operation kills the process that runs it, every time (as a segfaulting parser would): each death ends
    an attempt (a prefork pool child is replaced; a threads worker is restarted, as a restart policy would), the
    sweeper sends it again until its re-sends are spent, then it ends ``failed`` naming why — and the others finish."""
    s = stack(11, SYNC_LEASE_SECONDS="10", SYNC_REAP_INTERVAL="5")  # lapses seen in ~15 s instead of ~60 s: same path
    poison = s.connections[0]
    s.proxy.delay = 0.2
    kills: list[int] = []

    def kill_the_caller(record, port):
        if poison["listing"] not in record["path"]:
            return False
        pid = pid_of_peer(port, s.proxy.server.server_address[1])
        if pid is not None:
            kills.append(pid)
            os.kill(pid, signal.SIGKILL)
        return True

    s.start_both()
    stop = s.supervise()
    try:
        innocent = [c for c in s.connections if c is not poison]
        task_ids = trigger_full_syncs(s.database_url, s.broker, innocent, FAULT_SYNCS, resend_after=s.resend_after)
        s.proxy.on_call = kill_the_caller
        [poisoned] = trigger(s.database_url, s.broker, poison["connection_id"], "availability").task_ids
        wait_settled(s.database_url, task_ids + [poisoned], settle_budget(s, FAULT_SYNCS))
    finally:
        stop()
    found = assert_figures(s, task_ids)
    [row] = logs_for(s.database_url, [poisoned])
    print(f"poison killed {len(kills)} process(es); {s.restarts} worker restart(s); {found.summary()}")
    # SYNC_MAX_RESENDS (default 3) lost attempts, then failed: three deaths, not one per redelivery
    assert (row["status"], row["details"].get("error_type"), len(kills)) == ("failed", "lost", 3)
    assert "Lost: 3 attempts ended without a result" in row["error"]


@pytest.mark.slow
@pytest.mark.latest
def test_a_corrupt_entry_in_the_brokers_unacked_hash_stops_no_worker_no_sweep_and_no_reap(stack, fault_redis, cli):
    """Broker data is outside data: an entry in kombu's unacked hash that is not a message (seen after a partial
    restore) must not stop a worker starting, the sweeper re-sending, or ``sync reap --dry-run``."""
    import redis

    from pmsops.sync.broker import UNACKED_INDEX_KEY, UNACKED_KEY

    s = stack(12, SYNC_RESEND_AFTER="10", SYNC_REAP_INTERVAL="5")
    client = redis.Redis.from_url(s.broker)
    client.hset(UNACKED_KEY, "corrupt-tag", '[{"headers":[1]},"","celery"]')
    client.zadd(UNACKED_INDEX_KEY, {"corrupt-tag": time.time() - 7200})
    client.close()
    s.start_both()
    task_ids = trigger_full_syncs(s.database_url, s.broker, s.connections, FAULT_SYNCS, resend_after=s.resend_after)
    restart_redis(fault_redis, down_seconds=1.0, keep_data=False)  # what is then in flight is lost: only the sweep can save it
    client = redis.Redis.from_url(s.broker)
    client.hset(UNACKED_KEY, "corrupt-tag", '[{"headers":[1]},"","celery"]')
    client.zadd(UNACKED_INDEX_KEY, {"corrupt-tag": time.time() - 7200})
    client.close()
    wait_settled(s.database_url, task_ids, settle_budget(s, FAULT_SYNCS))
    for name, proc in s.workers.items():
        assert proc.poll() is None, f"{name} exited"
    assert_figures(s, task_ids)
    env = {"CELERY_BROKER_URL": s.broker, "DATABASE_URL": s.database_url}
    reaped = cli("sync", "reap", "--dry-run", env=env)
    assert (reaped.exit_code, "Traceback" in reaped.output) == (0, False), reaped.output
