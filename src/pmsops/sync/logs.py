"""The sync-log store: one row per operation, found by ``task_id``, and the one home of its state.

Lifecycle ``triggered`` (API) → ``running`` (worker) → ``success`` | ``failed``;
``details`` is merged, never replaced, so retry details accumulate next to the
trigger's. Every function takes an asyncpg connection or pool.

Who may work on an operation is decided here, atomically, never inferred from the broker:

- :func:`claim` moves an open log to ``running`` with attempt *n + 1* and a lease, only when its
  ``attempt`` is the *n* the message carries and no lease is held: any other delivery (a redelivery,
  a re-send racing the original) claims nothing and is acked as a duplicate.
- :func:`renew` extends the leases a process holds; every later write (:func:`note_retry`,
  :func:`finish_success`, :func:`mark_failed`) names the attempt and changes nothing once a later
  attempt claimed the operation. Final states stay final.
- :func:`take_due` is the sweeper's one statement: open logs whose ``due_at`` passed (a lease ran
  out, a retry is overdue, a trigger never started), ``FOR UPDATE SKIP LOCKED`` so any number of
  workers may run it; each comes back to be sent again, or ``failed`` when it cannot succeed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from pmsops.sync import OPEN_STATUSES

_COLUMNS = "id, tenant_id, connection_id, operation_type, direction, status, details, error, task_id, batch_id, created_at, updated_at"
"""The contract's columns (what the API returns); the state columns (attempt, lease, due time, budget) stay internal."""
_OPEN = "ARRAY['triggered', 'queued', 'running']"


def _row(record) -> dict[str, Any] | None:
    if record is None:
        return None
    row = dict(record)
    if isinstance(row.get("details"), str):
        row["details"] = json.loads(row["details"])
    return row


async def create_log(
    db,
    *,
    connection_id,
    operation_type: str,
    direction: str,
    status: str = "triggered",
    task_id: str | None = None,
    batch_id=None,
    details: dict | None = None,
    tenant_id=None,
    due_in: float = 60.0,
) -> dict[str, Any]:
    """A new log; ``due_in``: seconds until the sweeper sends it again if no attempt has claimed it."""
    record = await db.fetchrow(
        f"""INSERT INTO channel_sync_logs (tenant_id, connection_id, operation_type, direction, status, details, task_id, batch_id, due_at)
            VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, now() + make_interval(secs => $9)) RETURNING {_COLUMNS}""",
        tenant_id,
        uuid.UUID(str(connection_id)),
        operation_type,
        direction,
        status,
        json.dumps(details or {}),
        task_id,
        uuid.UUID(str(batch_id)) if batch_id else None,
        float(due_in),
    )
    return _row(record)


async def get_by_task(db, task_id: str) -> dict[str, Any] | None:
    return _row(await db.fetchrow(f"SELECT {_COLUMNS} FROM channel_sync_logs WHERE task_id = $1 ORDER BY created_at DESC LIMIT 1", task_id))


CONNECTION_FIELDS = (
    "id",
    "agency_id",
    "property_id",
    "platform_type",
    "platform_listing_id",
    "status",
    "platform_metadata",
    "access_token_encrypted",
    "last_sync_at",
)


@dataclass
class Claim:
    """What :func:`claim` took: the log, the attempt it now runs, and the retry budget spent so far."""

    log_id: uuid.UUID
    attempt: int
    errors: int
    waits: int
    wait_since: float | None
    resends: int
    lost_attempts: int
    pushed_before: bool


def _claim_statement(preload: str) -> str:
    """The claim's one statement: the connection (``c``), the conditional claim of the log (``l``), and the
    operation's preload (see :func:`claim`)."""
    extra = f" LEFT JOIN LATERAL ({preload}) AS pre ON c.property_agency_id = c.agency_id" if preload else ""
    return f"""WITH c AS (SELECT {", ".join("cc." + f for f in CONNECTION_FIELDS)}, p.agency_id AS property_agency_id
                       FROM channel_connections cc LEFT JOIN properties p ON p.id = cc.property_id
                       WHERE cc.id = $2 AND cc.deleted_at IS NULL),
                 l AS (UPDATE channel_sync_logs SET status = 'running', error = NULL, updated_at = now(),
                           attempt = attempt + 1, lease_owner = $5, due_at = now() + make_interval(secs => $6),
                           details = details || $3::text::jsonb
                                || COALESCE((SELECT jsonb_build_object('platform', platform_type, 'property_id', property_id) FROM c), '{{}}'::jsonb)
                                || jsonb_build_object('in_flight', true, 'worker', $5::text, 'retry_count', errors, 'attempt', attempt + 1,
                                                      -- an attempt whose lease ran out may have reached the platform: counted, not hidden
                                                      'interrupted', COALESCE((details->>'interrupted')::int, 0) + (lease_owner IS NOT NULL)::int)
                       -- the attempt this message may claim, not held (or its lease ran out: that attempt is over)
                       WHERE task_id = $1 AND status = ANY({_OPEN}) AND attempt = $4 AND (lease_owner IS NULL OR due_at < now())
                       RETURNING id, attempt, errors, waits, extract(epoch FROM wait_since)::float8 AS wait_since, resends, lost_attempts,
                                 COALESCE(details->>'platform_reached', 'false') = 'true' AS pushed_before)
            SELECT l.id AS log_id, l.attempt AS log_attempt, l.errors AS log_errors, l.waits AS log_waits, l.wait_since AS log_wait_since,
                   l.resends AS log_resends, l.lost_attempts AS log_lost_attempts, l.pushed_before AS log_pushed_before,
                   {"pre.*, " if preload else ""}c.*
            FROM (SELECT 1) AS one LEFT JOIN l ON true LEFT JOIN c ON true{extra}"""


async def claim(
    db,
    task_id: str,
    connection_id,
    expected: int,
    owner: str,
    lease: float,
    details: dict[str, Any],
    timeout: float | None = None,
    preload: str = "",
    preload_args: tuple = (),
) -> tuple[dict[str, Any] | None, Claim | None]:
    """One round trip for a task's start: claim the operation and load the connection.

    The log moves to ``running`` with attempt ``expected + 1``, a lease of ``lease`` seconds held by
    ``owner`` (``due_at``), the connection's platform and property in its details, only if it is open,
    its attempt is ``expected`` and no lease is held. The connection comes back with its property's
    agency as ``property_agency_id`` (the tenant check). Returns (connection or None, the claim or
    None when nothing was claimed: a duplicate delivery, or no log).

    ``preload`` is a subquery over ``c`` (the connection; its parameters from ``$7`` on,
    ``preload_args``) whose columns the operation needs next (see :data:`pmsops.sync.store.PRELOADS`):
    read in this same statement, and only when the connection's agency is its property's agency,
    so another tenant's rows are never read. Its columns come back in the connection dict."""
    row = await db.fetchrow(
        _claim_statement(preload),
        task_id,
        uuid.UUID(str(connection_id)),
        json.dumps(details),
        int(expected),
        owner,
        float(lease),
        *preload_args,
        timeout=timeout,
    )
    claimed = None
    if row["log_id"] is not None:
        claimed = Claim(
            row["log_id"],
            row["log_attempt"],
            row["log_errors"],
            row["log_waits"],
            row["log_wait_since"],
            row["log_resends"],
            row["log_lost_attempts"],
            row["log_pushed_before"],
        )
    if row["id"] is None:
        return None, claimed
    connection = {k: v for k, v in dict(row).items() if not k.startswith("log_")}
    return connection, claimed


async def renew(db, held: list[tuple[uuid.UUID, int]], lease: float) -> set[tuple[uuid.UUID, int]]:
    """Extend the leases of these (log id, attempt) pairs; returns the pairs still held (the others were
    taken by the sweeper after their lease ran out, claimed by a later attempt, or finished)."""
    if not held:
        return set()
    rows = await db.fetch(
        """UPDATE channel_sync_logs l SET due_at = now() + make_interval(secs => $3)
           FROM unnest($1::uuid[], $2::int[]) AS h(id, attempt)
           WHERE l.id = h.id AND l.attempt = h.attempt AND l.lease_owner IS NOT NULL AND l.status = 'running'
           RETURNING l.id, l.attempt""",
        [log_id for log_id, _ in held],
        [attempt for _, attempt in held],
        float(lease),
    )
    return {(r["id"], r["attempt"]) for r in rows}


async def note_retry(db, log_id, attempt: int, details: dict[str, Any], errors: int, waits: int, wait_since: float | None, due_in: float) -> bool:
    """The attempt ended in a transient error: release the lease and record the retry budget and when the next attempt is due
    (``due_in``: the countdown plus a grace). False when a later attempt claimed the operation meanwhile (send nothing)."""
    done = await db.fetchval(
        f"""UPDATE channel_sync_logs SET lease_owner = NULL, errors = $4, waits = $5, wait_since = to_timestamp($6),
               due_at = now() + make_interval(secs => $7), updated_at = now(),
               details = details || $3::text::jsonb || '{{"in_flight": false}}'::jsonb
           WHERE id = $1 AND attempt = $2 AND status = ANY({_OPEN}) RETURNING 1""",
        log_id,
        attempt,
        json.dumps(details),
        errors,
        waits,
        wait_since,
        float(due_in),
    )
    return done is not None


async def finish_success(db, log_id, attempt: int, connection_id, details: dict[str, Any]) -> bool:
    """One round trip for a task's end: log ``success`` and the connection's ``last_sync_at``, only for the attempt that
    holds the operation (a later claim wins; a final state is never rewritten). False when nothing was written."""
    done = await db.fetchval(
        f"""WITH s AS (UPDATE channel_sync_logs SET status = 'success', error = NULL, lease_owner = NULL,
                          details = details || $3::text::jsonb || '{{"in_flight": false}}'::jsonb, updated_at = now()
                      WHERE id = $1 AND attempt = $2 AND status = ANY({_OPEN}) RETURNING 1),
                 c AS (UPDATE channel_connections SET last_sync_at = now(), updated_at = now() WHERE id = $4 AND EXISTS (SELECT 1 FROM s))
            SELECT count(*) FROM s""",
        log_id,
        attempt,
        json.dumps(details),
        uuid.UUID(str(connection_id)),
    )
    return bool(done)


async def extend_lease(db, log_id, attempt: int, lease: float) -> bool:
    """Extend this attempt's lease by a full ``lease`` if it still holds it (checked before a platform call when the
    last renewal is not recent); False when the lease ran out or a later attempt claimed the operation."""
    held = await db.fetchval(
        """UPDATE channel_sync_logs SET due_at = now() + make_interval(secs => $3)
           WHERE id = $1 AND attempt = $2 AND lease_owner IS NOT NULL AND status = 'running' AND due_at > now() RETURNING 1""",
        log_id,
        attempt,
        float(lease),
    )
    return held is not None


async def mark_failed(db, task_id: str, error: str, details: dict[str, Any], attempt: int | None = None) -> dict[str, Any] | None:
    """``failed`` with the error text, only from an open state (final states stay final) and, given ``attempt``, only
    while that attempt is the latest; without it, only while no attempt holds a live lease."""
    return _row(
        await db.fetchrow(
            f"""UPDATE channel_sync_logs SET status = 'failed', error = $2, lease_owner = NULL,
                   details = details || $3::text::jsonb || '{{"in_flight": false}}'::jsonb, updated_at = now()
            -- given an attempt, only while it is the latest; without one (a delivery that never claimed), only while no
            -- attempt holds a live lease
            WHERE task_id = $1 AND status = ANY({_OPEN})
              AND (attempt = $4 OR ($4::int IS NULL AND (lease_owner IS NULL OR due_at < now()))) RETURNING {_COLUMNS}""",
            task_id,
            error,
            json.dumps(details),
            attempt,
        )
    )


async def record_duplicate_delivery(db, task_id: str, field: str = "duplicate_deliveries") -> None:
    """A delivery that claimed nothing (the operation is final, or another attempt holds or took it): count it.
    ``field``: ``duplicate_pushes`` for an attempt that reached the platform after a later attempt claimed the operation."""
    await db.execute(
        """UPDATE channel_sync_logs SET details = details || jsonb_build_object($2::text,
               COALESCE((details->>$2::text)::int, 0) + 1) WHERE task_id = $1""",
        task_id,
        field,
    )


@dataclass
class Due:
    """An operation the sweeper took: to send again (with the attempt its message may claim), or failed."""

    log_id: uuid.UUID
    task_id: str | None
    connection_id: uuid.UUID
    operation_type: str
    attempt: int
    status: str
    resends: int


async def take_due(db, resend_after: float, max_lost: int, stale_seconds: float, limit: int = 500) -> list[Due]:
    """The sweeper's one statement: every open log whose ``due_at`` passed, locked with ``SKIP LOCKED`` (sweeps on
    several workers never take the same log), read by the deadline index. A log whose lease ran out counts a lost
    attempt (its worker died, froze or lost the database: it may have reached the platform). It is ``failed`` once
    ``max_lost`` attempts were lost (a message that kills its worker) or it has been open ``stale_seconds``; otherwise
    it is due again after ``resend_after`` × 2^resends (a long queue is not flooded with copies) and comes back to be sent."""
    rows = await db.fetch(
        f"""WITH due AS (SELECT id FROM channel_sync_logs WHERE status = ANY({_OPEN}) AND due_at < now()
                         ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED),
                 t AS (SELECT l.id, l.lost_attempts + (l.lease_owner IS NOT NULL)::int AS lost,
                              l.lost_attempts + (l.lease_owner IS NOT NULL)::int >= $2 AS poison,
                              l.created_at < now() - make_interval(secs => $3) AS stale
                       FROM channel_sync_logs l JOIN due ON due.id = l.id)
            UPDATE channel_sync_logs l SET
                   lost_attempts = t.lost, resends = l.resends + (NOT (t.poison OR t.stale))::int, lease_owner = NULL, updated_at = now(),
                   due_at = now() + make_interval(secs => $1 * power(2, least(l.resends, 6))),
                   status = CASE WHEN t.poison OR t.stale THEN 'failed' ELSE l.status END,
                   error = CASE WHEN t.poison THEN format('Lost: %s attempts ended without a result (their worker died, froze or lost '
                                                          'the database); not sent again', t.lost)
                                WHEN t.stale THEN format('Marked stale (open for %s minutes): lost, sent again %s times without a result',
                                                         round(extract(epoch FROM now() - l.created_at) / 60), l.resends)
                                ELSE l.error END,
                   details = l.details || jsonb_build_object(
                                 'in_flight', false,
                                 'interrupted', COALESCE((l.details->>'interrupted')::int, 0) + (l.lease_owner IS NOT NULL)::int,
                                                             'resent', l.resends + (NOT (t.poison OR t.stale))::int)
                             || CASE WHEN t.poison THEN '{{"error_type": "lost"}}'::jsonb
                                     WHEN t.stale THEN '{{"error_type": "stale", "reaped": true}}'::jsonb ELSE '{{}}'::jsonb END
            FROM t WHERE l.id = t.id
            RETURNING l.id, l.task_id, l.connection_id, l.operation_type, l.attempt, l.status, l.resends""",
        float(resend_after),
        int(max_lost),
        float(stale_seconds),
        int(limit),
    )
    return [Due(r["id"], r["task_id"], r["connection_id"], r["operation_type"], r["attempt"], r["status"], r["resends"]) for r in rows]


async def reap(db, older_than_seconds: float, connection_id=None, reason: str | None = None) -> list[dict[str, Any]]:
    """Mark open logs with no update for that long as failed ("Marked stale …"), except those an attempt holds (a live
    lease) or that wait for a retry that is not due yet: the log says so (``due_at`` in the future)."""
    minutes = older_than_seconds / 60
    text = f"Marked stale (no update for {minutes:g} minutes)" if minutes >= 1 else f"Marked stale (no update for {older_than_seconds:g} seconds)"
    if reason:
        text = f"{text}: {reason}"
    query = f"""UPDATE channel_sync_logs SET status = 'failed', error = $2, lease_owner = NULL,
                    details = details || jsonb_build_object('error_type', 'stale', 'reaped', true), updated_at = now()
                WHERE status = ANY($3::text[]) AND updated_at < now() - make_interval(secs => $1) AND due_at <= now()
                {"AND connection_id = $4" if connection_id else ""} RETURNING {_COLUMNS}"""
    args = [older_than_seconds, text, list(OPEN_STATUSES)]
    if connection_id:
        args.append(uuid.UUID(str(connection_id)))
    return [_row(r) for r in await db.fetch(query, *args)]


async def list_logs(db, connection_id, limit: int = 50, offset: int = 0, **filters: Any) -> list[dict[str, Any]]:
    """Newest first, with the contract's filters (status, operation_type, task_id, batch_id, direction)."""
    clauses, args = ["connection_id = $1"], [uuid.UUID(str(connection_id))]
    for column in ("status", "operation_type", "task_id", "batch_id", "direction"):
        value = filters.get(column)
        if value:
            args.append(uuid.UUID(str(value)) if column == "batch_id" else value)
            clauses.append(f"{column} = ${len(args)}")
    args += [limit, offset]
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM channel_sync_logs WHERE {' AND '.join(clauses)} ORDER BY created_at DESC, id LIMIT ${len(args) - 1} OFFSET"
        f" ${len(args)}",
        *args,
    )
    return [_row(r) for r in rows]
