"""Trigger a sync: create the ``triggered`` logs, then enqueue the tasks.

The order matters: the logs exist before any worker can pick a task up, so a
fast worker never finds no row (the log is the outbox: a ``triggered`` log whose
message is lost is sent again by the sweeper once it is due). If enqueueing fails (broker
down), the logs are marked ``failed`` at once: the caller gets an error and
nothing stays ``triggered``. A trigger does not reap: only the sweeper, which sees
the broker, may declare an open operation lost.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from pmsops.sync import SYNC_TYPES, logs, operations_for
from pmsops.sync.errors import NotFound, ValidationFailed

Sender = Callable[[str, str, str], None]


@dataclass
class Triggered:
    connection_id: str
    sync_type: str
    task_ids: list[str] = field(default_factory=list)
    log_ids: list[str] = field(default_factory=list)
    batch_id: str | None = None

    def to_response(self) -> dict[str, Any]:
        """The contract's 200 body."""
        return {
            "status": "triggered",
            "message": f"{self.sync_type} sync triggered",
            "connection_id": self.connection_id,
            "sync_type": self.sync_type,
            "task_ids": self.task_ids,
            "batch_id": self.batch_id,
            "created_log_ids": self.log_ids,
        }


def validate_sync_type(sync_type: str) -> None:
    if sync_type not in SYNC_TYPES:
        raise ValidationFailed(f"Invalid sync_type. Must be one of: {list(SYNC_TYPES)}")


async def trigger_sync(
    conn,
    connection_id: str,
    sync_type: str,
    *,
    agency_id=None,
    manual: bool = True,
    send: Sender,
    window_days: int | None = None,
    resend_after: float | None = None,
) -> Triggered:
    """Create one ``triggered`` log per operation (one batch for full), then enqueue. ``resend_after``: seconds after
    which the sweeper sends an operation nothing claimed again (``SYNC_RESEND_AFTER``; the workers' setting)."""
    from pmsops.sync.config import load

    validate_sync_type(sync_type)
    settings = load()
    row = await _connection(conn, connection_id, agency_id)
    ops = operations_for(sync_type)
    result = Triggered(str(row["id"]), sync_type, batch_id=str(uuid.uuid4()) if len(ops) > 1 else None)
    details = _details(row, sync_type, manual, window_days or settings.window_days)
    planned = []
    async with conn.transaction():
        for op in ops:
            task_id = str(uuid.uuid4())
            log = await logs.create_log(
                conn,
                connection_id=row["id"],
                operation_type=op.operation_type,
                direction=op.direction,
                task_id=task_id,
                batch_id=result.batch_id,
                details=details,
                tenant_id=row["agency_id"],
                due_in=settings.resend_after if resend_after is None else resend_after,
            )
            planned.append((op, task_id))
            result.task_ids.append(task_id)
            result.log_ids.append(str(log["id"]))
    await _enqueue(conn, send, str(row["id"]), planned)
    return result


def connection_uuid(connection_id: Any) -> uuid.UUID:
    """A connection id as a UUID; anything else is :class:`ValidationFailed` (the one check every caller uses)."""
    from pmsops.ids import parse_uuid

    parsed = parse_uuid(connection_id)
    if parsed is None:
        raise ValidationFailed(f"connection id {connection_id!r} is not a UUID")
    return parsed


async def _connection(conn, connection_id: Any, agency_id: Any):
    """The connection's row (of ``agency_id`` only, when given); :class:`NotFound` otherwise."""
    query = "SELECT id, agency_id, property_id, platform_type FROM channel_connections WHERE id = $1 AND deleted_at IS NULL"
    args: list[Any] = [connection_uuid(connection_id)]
    if agency_id:
        query += " AND agency_id = $2"
        args.append(uuid.UUID(str(agency_id)))
    row = await conn.fetchrow(query, *args)
    if row is None:
        raise NotFound("Connection not found")
    return row


def _details(row, sync_type: str, manual: bool, window_days: int) -> dict[str, Any]:
    """What every log of the trigger records: the platform, the property and the window of nights to push."""
    today = datetime.now(timezone.utc).date()
    return {
        "platform": row["platform_type"],
        "property_id": str(row["property_id"]) if row["property_id"] else None,
        "manual_trigger": manual,
        "sync_type": sync_type,
        "start_date": today.isoformat(),
        "end_date": (today + timedelta(days=window_days)).isoformat(),
    }


async def _enqueue(conn, send: Sender, connection_id: str, planned: list) -> None:
    """Send each operation's message; when the broker refuses one, settle that log and the rest as failed, then say so."""
    for index, (op, task_id) in enumerate(planned):
        try:
            await asyncio.to_thread(send, op.task, connection_id, task_id)
        except Exception as exc:  # noqa: BLE001 - the broker is down: settle the logs, then report
            from pmsops.errors import DependencyError
            from pmsops.redaction import redact

            for _, pending in planned[index:]:
                await logs.mark_failed(conn, pending, f"Could not enqueue the task: {redact(str(exc))}", {"error_type": "broker_unavailable"})
            raise DependencyError(
                f"could not enqueue {op.task}: {redact(str(exc))}", hint="the Celery broker is unreachable: pmsops check redis; pmsops celery ping"
            ) from exc
