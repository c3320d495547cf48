"""Claims and leases: the sync log decides who works on an operation (#27), against the real PostgreSQL.

Given a log, when deliveries, attempts and the sweeper race over it, then exactly one attempt holds it,
only that attempt's writes land, and final states stay final."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from sync_helpers import run, seed_connection

from pmsops.sync import logs


def _insert(sync_db: str, status: str = "triggered", attempt: int = 0, due: str = "now() + interval '60 seconds'", lease_owner=None) -> str:
    ids = seed_connection(sync_db)
    task_id = f"claim-{uuid.uuid4()}"
    run(
        sync_db,
        lambda c: c.execute(
            "INSERT INTO channel_sync_logs (connection_id, operation_type, status, task_id, attempt, lease_owner, due_at)"
            f" VALUES ($1::uuid, 'pricing_update', $2, $3, $4, $5, {due})",
            ids["connection_id"],
            status,
            task_id,
            attempt,
            lease_owner,
        ),
    )
    return task_id, ids["connection_id"]


def _claim(conn, task_id: str, connection_id: str, expected: int, owner: str = "w1#a"):
    return logs.claim(conn, task_id, connection_id, expected, owner, 30.0, {})


def test_two_deliveries_of_one_message_racing_claim_the_operation_once(sync_db):
    task_id, cid = _insert(sync_db)

    async def race():
        first, second = await asyncpg.connect(sync_db), await asyncpg.connect(sync_db)
        try:
            return await asyncio.gather(_claim(first, task_id, cid, 0, "w1#a"), _claim(second, task_id, cid, 0, "w2#b"))
        finally:
            await first.close()
            await second.close()

    outcomes = asyncio.run(race())

    claims = [claim for _, claim in outcomes if claim is not None]
    assert [claim.attempt for claim in claims] == [1]


def test_a_message_for_an_earlier_attempt_claims_nothing(sync_db):
    task_id, cid = _insert(sync_db, status="running", attempt=2)

    _, claim = run(sync_db, lambda c: _claim(c, task_id, cid, 1))

    assert claim is None


@pytest.mark.parametrize("final", ["success", "failed", "cancelled"])
def test_a_final_log_is_never_claimed_again(sync_db, final):
    task_id, cid = _insert(sync_db, status=final, attempt=1)

    _, claim = run(sync_db, lambda c: _claim(c, task_id, cid, 1))

    assert claim is None
    assert run(sync_db, lambda c: logs.get_by_task(c, task_id))["status"] == final


def test_a_held_lease_is_not_claimed_but_one_that_ran_out_is(sync_db):
    held, cid = _insert(sync_db, status="running", attempt=1, lease_owner="w1#a", due="now() + interval '30 seconds'")
    lapsed, cid2 = _insert(sync_db, status="running", attempt=1, lease_owner="w1#a", due="now() - interval '1 second'")

    _, on_held = run(sync_db, lambda c: _claim(c, held, cid, 1, "w2#b"))
    _, on_lapsed = run(sync_db, lambda c: _claim(c, lapsed, cid2, 1, "w2#b"))

    assert (on_held, on_lapsed.attempt) == (None, 2)
    assert run(sync_db, lambda c: logs.get_by_task(c, lapsed))["details"]["interrupted"] == 1


def test_writes_of_a_superseded_attempt_change_nothing(sync_db):
    task_id, cid = _insert(sync_db)
    _, first = run(sync_db, lambda c: _claim(c, task_id, cid, 0, "w1#a"))
    run(sync_db, lambda c: c.execute("UPDATE channel_sync_logs SET due_at = now() - interval '1 second' WHERE task_id = $1", task_id))
    _, second = run(sync_db, lambda c: _claim(c, task_id, cid, 1, "w2#b"))

    retried = run(sync_db, lambda c: logs.note_retry(c, first.log_id, first.attempt, {"retry_count": 1}, 1, 0, None, 5.0))
    succeeded = run(sync_db, lambda c: logs.finish_success(c, first.log_id, first.attempt, cid, {"by": "first"}))
    failed = run(sync_db, lambda c: logs.mark_failed(c, task_id, "late", {}, first.attempt))

    assert (retried, succeeded, failed) == (False, False, None)
    assert run(sync_db, lambda c: logs.finish_success(c, second.log_id, second.attempt, cid, {"by": "second"})) is True
    log = run(sync_db, lambda c: logs.get_by_task(c, task_id))
    assert (log["status"], log["details"]["by"]) == ("success", "second")


def test_the_sweeper_takes_a_lapsed_lease_once_and_fails_an_operation_that_keeps_losing_its_worker(sync_db):
    lapsed, _ = _insert(sync_db, status="running", attempt=1, lease_owner="w1#a", due="now() - interval '1 second'")
    poison, _ = _insert(sync_db, status="running", attempt=4, lease_owner="w1#a", due="now() - interval '1 second'")
    run(sync_db, lambda c: c.execute("UPDATE channel_sync_logs SET lost_attempts = 3 WHERE task_id = $1", poison))

    async def two_sweeps():
        first, second = await asyncpg.connect(sync_db), await asyncpg.connect(sync_db)
        try:
            return await asyncio.gather(logs.take_due(first, 60.0, 3, 3600.0), logs.take_due(second, 60.0, 3, 3600.0))
        finally:
            await first.close()
            await second.close()

    taken = [due for sweep in asyncio.run(two_sweeps()) for due in sweep if due.task_id in (lapsed, poison)]

    assert sorted((due.task_id == poison, due.status, due.attempt) for due in taken) == [(False, "running", 1), (True, "failed", 4)]
    failed = run(sync_db, lambda c: logs.get_by_task(c, poison))
    assert failed["error"].startswith("Lost: 4 attempts ended without a result") and failed["details"]["error_type"] == "lost"
