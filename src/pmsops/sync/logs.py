"""The sync-log store: one row per operation, found by ``task_id``.

Lifecycle ``triggered`` (API) → ``running`` (worker) → ``success`` | ``failed``;
``details`` is merged, never replaced, so retry details accumulate next to the
trigger's. Every function takes an asyncpg connection or pool.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pmsops.sync import OPEN_STATUSES

_COLUMNS = "id, tenant_id, connection_id, operation_type, direction, status, details, error, task_id, batch_id, created_at, updated_at"


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
) -> dict[str, Any]:
    record = await db.fetchrow(
        f"""INSERT INTO channel_sync_logs (tenant_id, connection_id, operation_type, direction, status, details, task_id, batch_id)
            VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8) RETURNING {_COLUMNS}""",
        tenant_id,
        uuid.UUID(str(connection_id)),
        operation_type,
        direction,
        status,
        json.dumps(details or {}),
        task_id,
        uuid.UUID(str(batch_id)) if batch_id else None,
    )
    return _row(record)


async def get_by_task(db, task_id: str) -> dict[str, Any] | None:
    return _row(await db.fetchrow(f"SELECT {_COLUMNS} FROM channel_sync_logs WHERE task_id = $1 ORDER BY created_at DESC LIMIT 1", task_id))


async def mark_running(db, task_id: str, details: dict[str, Any]) -> dict[str, Any] | None:
    """``running`` with merged details (retry notices); a final ``success``/``cancelled`` is never
    reopened, nor a log whose stored ``retry_count`` is newer, nor a failure by a late notice."""
    return _row(
        await db.fetchrow(
            f"""UPDATE channel_sync_logs SET status = 'running', error = NULL,
                   details = details || $2::text::jsonb || '{{"in_flight": false}}'::jsonb, updated_at = now()
            WHERE task_id = $1 AND status <> ALL($3::text[])
              -- a late retry notice never reopens a log that moved on (a newer attempt, or a final failure)
              AND (COALESCE((details->>'retry_count')::int, 0) < COALESCE(($2::text::jsonb->>'retry_count')::int, 1000000)
                   OR (status <> 'failed'
                        AND COALESCE((details->>'retry_count')::int, 0) = COALESCE(($2::text::jsonb->>'retry_count')::int, 1000000)))
            RETURNING {_COLUMNS}""",
            task_id,
            json.dumps(details),
            ["success", "cancelled"],
        )
    )


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


async def start_running(
    db, task_id: str, connection_id, details: dict[str, Any], timeout: float | None = None, preload: str = "", preload_args: tuple = ()
) -> tuple[dict[str, Any] | None, bool]:
    """One round trip for a task's start: mark its log ``running`` (with the connection's
    platform and property) and load the connection, with its property's agency as
    ``property_agency_id`` (the tenant check). Returns (connection or None, log found).
    The log is marked ``in_flight`` until the attempt ends (success, failure or retry notice).

    ``preload`` is a subquery over ``c`` (the connection; its parameters from ``$4`` on,
    ``preload_args``) whose columns the operation needs next (see :data:`pmsops.sync.store.PRELOADS`):
    read in this same statement, and only when the connection's agency is its property's agency,
    so another tenant's rows are never read. Its columns come back in the connection dict."""
    extra = f" LEFT JOIN LATERAL ({preload}) AS pre ON c.property_agency_id = c.agency_id" if preload else ""
    row = await db.fetchrow(
        f"""WITH c AS (SELECT {", ".join("cc." + f for f in CONNECTION_FIELDS)}, p.agency_id AS property_agency_id
                       FROM channel_connections cc LEFT JOIN properties p ON p.id = cc.property_id
                       WHERE cc.id = $2 AND cc.deleted_at IS NULL),
                 l AS (UPDATE channel_sync_logs SET status = 'running', error = NULL, updated_at = now(),
                           details = details || $3::text::jsonb
                                || COALESCE((SELECT jsonb_build_object('platform', platform_type, 'property_id', property_id) FROM c), '{{}}'::jsonb)
                               -- an attempt that starts while another is marked in flight: that one died or still runs
                               -- (a redelivery); either may have reached the platform, so it is counted, not hidden
                               || jsonb_build_object('in_flight', true, 'interrupted', COALESCE((details->>'interrupted')::int, 0)
                                                     + CASE WHEN details->>'in_flight' = 'true' THEN 1 ELSE 0 END)
                       WHERE task_id = $1 AND status <> ALL(ARRAY['success', 'cancelled']) RETURNING id)
            SELECT (SELECT count(*) FROM l) AS logs_marked, {"pre.*, " if preload else ""}c.* FROM (SELECT 1) AS one LEFT JOIN c ON true{extra}""",
        task_id,
        uuid.UUID(str(connection_id)),
        json.dumps(details),
        *preload_args,
        timeout=timeout,
    )
    if row["id"] is None:
        return None, row["logs_marked"] > 0
    connection = dict(row)
    del connection["logs_marked"]
    return connection, row["logs_marked"] > 0


async def finish_success(db, task_id: str, connection_id, details: dict[str, Any]) -> None:
    """One round trip for a task's end: log ``success`` and the connection's ``last_sync_at``."""
    await db.execute(
        """WITH s AS (UPDATE channel_sync_logs SET status = 'success', error = NULL,
                          details = details || $2::text::jsonb || '{"in_flight": false}'::jsonb, updated_at = now()
                      WHERE task_id = $1 RETURNING 1)
           UPDATE channel_connections SET last_sync_at = now(), updated_at = now() WHERE id = $3""",
        task_id,
        json.dumps(details),
        uuid.UUID(str(connection_id)),
    )


async def mark_failed(db, task_id: str, error: str, details: dict[str, Any]) -> dict[str, Any] | None:
    """``failed`` with the error text; a log that already succeeded stays successful."""
    return _row(
        await db.fetchrow(
            f"""UPDATE channel_sync_logs SET status = 'failed', error = $2,
                   details = details || $3::text::jsonb || '{{"in_flight": false}}'::jsonb, updated_at = now()
            WHERE task_id = $1 AND status <> 'success' RETURNING {_COLUMNS}""",
            task_id,
            error,
            json.dumps(details),
        )
    )


async def record_duplicate_delivery(db, task_id: str) -> None:
    """A message of an operation whose log is already final arrived again (at-least-once): count it."""
    await db.execute(
        """UPDATE channel_sync_logs SET details = details || jsonb_build_object('duplicate_deliveries',
               COALESCE((details->>'duplicate_deliveries')::int, 0) + 1) WHERE task_id = $1""",
        task_id,
    )


async def open_logs(db, idle_seconds: float, limit: int = 1000) -> list[dict[str, Any]]:
    """Open logs with no update for ``idle_seconds``, oldest first (what the sweeper examines)."""
    rows = await db.fetch(
        f"""SELECT {_COLUMNS}, extract(epoch FROM now() - updated_at)::float8 AS idle_seconds FROM channel_sync_logs
            WHERE status = ANY($1::text[]) AND updated_at < now() - make_interval(secs => $2) ORDER BY updated_at LIMIT $3""",
        list(OPEN_STATUSES),
        idle_seconds,
        limit,
    )
    return [_row(r) for r in rows]


async def note_resent(db, log_id, resent: int) -> bool:
    """Record a re-send (and restart the idle clock); False when the log left the open states meanwhile."""
    done = await db.fetchval(
        """UPDATE channel_sync_logs SET details = details || jsonb_build_object('resent', $2::int), updated_at = now()
           WHERE id = $1 AND status = ANY($3::text[]) RETURNING 1""",
        log_id,
        resent,
        list(OPEN_STATUSES),
    )
    return done is not None


async def reap(
    db, older_than_seconds: float, connection_id=None, exclude_task_ids: list[str] | None = None, reason: str | None = None
) -> list[dict[str, Any]]:
    """Mark open logs with no update for that long as failed ("Marked stale …"), except the
    ``exclude_task_ids`` (operations the broker still holds: queued, running or waiting to retry)."""
    minutes = older_than_seconds / 60
    text = f"Marked stale (no update for {minutes:g} minutes)" if minutes >= 1 else f"Marked stale (no update for {older_than_seconds:g} seconds)"
    if reason:
        text = f"{text}: {reason}"
    query = f"""UPDATE channel_sync_logs SET status = 'failed', error = $2,
                    details = details || jsonb_build_object('error_type', 'stale', 'reaped', true), updated_at = now()
                WHERE status = ANY($3::text[]) AND updated_at < now() - make_interval(secs => $1)
                  AND (task_id IS NULL OR NOT task_id = ANY($4::text[]))
                {"AND connection_id = $5" if connection_id else ""} RETURNING {_COLUMNS}"""
    args = [older_than_seconds, text, list(OPEN_STATUSES), list(exclude_task_ids or [])]
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
