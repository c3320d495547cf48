"""Operator maintenance of the sync database, as library functions returning Results:
``db migrate``, ``db check``, ``sync reap``, ``sync run`` (direct enqueue, no HTTP)."""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable

from pmsops import results
from pmsops.errors import UsageError
from pmsops.results import Result, Stopwatch

DB_TIMEOUT = 10.0


def parse_duration(text: str) -> float:
    """'90s', '10m', '1h', '2d' or plain seconds → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not match:
        raise UsageError(f"not a duration: {text!r} (use e.g. 90s, 60m, 2h)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    if value <= 0:
        raise UsageError(f"duration must be positive, got {text!r} (0 would mark every open log failed)")
    return value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def with_connection(database_url: str, fn: Callable[[Any], Awaitable[Any]], timeout: float = DB_TIMEOUT) -> Any:
    """Open one connection (bounded by ``timeout``), run ``fn(conn)``, close it (see :func:`pmsops.database.run_sync`)."""
    from pmsops.database import run_sync

    return run_sync(database_url, fn, timeout)


def migrate_database(database_url: str) -> list[Result]:
    from pmsops.sync.migrate import migrate

    watch = Stopwatch()
    report = with_connection(database_url, migrate, timeout=60)
    summary = f"applied {', '.join(report.applied)}" if report.applied else "schema up to date"
    notes = [f"already applied: {', '.join(report.already)}"] if report.already else []
    return [results.ok("migrate", summary, notes=notes, details={"applied": report.applied, "already": report.already}, duration_ms=watch.ms)]


def check_database_schema(database_url: str) -> list[Result]:
    from pmsops.sync.schema import check_schema

    return with_connection(database_url, check_schema)


def reap_logs(database_url: str, older_than: float, connection_id: str | None = None, dry_run: bool = False) -> list[Result]:
    """Mark open logs idle for ``older_than`` failed, except those the log itself says are live: held by an attempt's
    lease, or waiting for a retry or a first delivery that is not due yet (``due_at``). ``dry_run`` runs the very
    same UPDATE in a transaction that is rolled back."""
    from pmsops.sync.logs import reap

    async def mark(conn) -> list:
        return await reap(conn, older_than, connection_id)

    async def preview(conn) -> list:
        transaction = conn.transaction()
        await transaction.start()
        try:
            return await mark(conn)
        finally:
            await transaction.rollback()

    async def live(conn) -> int:
        return await conn.fetchval(
            "SELECT count(*) FROM channel_sync_logs WHERE status = ANY($1::text[]) AND due_at > now()"
            + (" AND connection_id = $2::uuid" if connection_id else ""),
            ["triggered", "queued", "running"],
            *([connection_id] if connection_id else []),
        )

    reaped = with_connection(database_url, preview if dry_run else mark)
    holding = with_connection(database_url, live)
    arrow = "would be marked failed" if dry_run else "→ failed"
    notes = [f"{r['id']} {r['operation_type']} (task {r['task_id']}) {arrow}" for r in reaped]
    verb = "would mark" if dry_run else "marked"
    summary = f"{verb} {len(reaped)} stale log(s) failed" if reaped else f"no open log without an update for {older_than / 60:g} minutes"
    if holding:
        notes.append(f"{holding} operation(s) held by a worker or not yet due (the log's due time): left open")
    return [results.ok("reap", summary, notes=notes, details={"reaped": [str(r["id"]) for r in reaped], "live": holding})]


def run_sync(
    database_url: str,
    connection_id: str,
    sync_type: str,
    wait: bool = False,
    timeout: float = 60.0,
    poll: float = 0.5,
    progress: Callable[[list[dict]], None] | None = None,
    sync_settings=None,
) -> list[Result]:
    """Trigger through Celery directly (no HTTP), optionally follow the logs to a final status. ``sync_settings``: the
    caller's (the CLI builds them from the environment and the env file); default: the process's."""
    from pmsops.sync.config import load
    from pmsops.sync.errors import SyncError
    from pmsops.sync.trigger import trigger_sync, validate_sync_type
    from pmsops.sync.worker import producer_app, sender

    try:
        validate_sync_type(sync_type)
        send = sender(producer_app(sync_settings or load()))
        triggered = with_connection(database_url, lambda conn: trigger_sync(conn, connection_id, sync_type, send=send))
    except SyncError as exc:
        raise UsageError(str(exc)) from None
    notes = [f"task {t}" for t in triggered.task_ids] + ([f"batch {triggered.batch_id}"] if triggered.batch_id else [])
    out = [
        results.ok(
            "trigger",
            f"{sync_type} sync triggered: {len(triggered.task_ids)} task(s)",
            notes=notes,
            details={"task_ids": triggered.task_ids, "batch_id": triggered.batch_id, "log_ids": triggered.log_ids},
        )
    ]
    if wait:
        out.append(follow_logs(database_url, triggered.task_ids, timeout, poll, progress, [str(i) for i in triggered.log_ids or []]))
    return out


def follow_logs(
    database_url: str,
    task_ids: list[str],
    timeout: float,
    poll: float = 0.5,
    progress: Callable[[list[dict]], None] | None = None,
    log_ids: list[str] | None = None,
) -> Result:
    """Poll the logs of ``task_ids`` in the database until all are final or ``timeout`` passes.

    The same poller and verdict as the API's (:mod:`pmsops.synclogs`): only the fetch differs.
    """
    from pmsops.synclogs import final_verdict, wait_until_final
    from pmsops.sync.logs import get_by_task

    watch = Stopwatch()

    async def fetch(conn) -> list:
        return [await get_by_task(conn, t) for t in task_ids]

    def rows() -> list[dict]:
        found = with_connection(database_url, fetch)
        return [{k: _plain(v) for k, v in dict(r).items()} for r in found if r]

    logs, finished = wait_until_final(rows, task_ids, log_ids or [], timeout, poll, progress)
    result = final_verdict("sync", logs, finished, timeout)
    result.duration_ms = watch.ms
    return result


def _plain(value: Any) -> Any:
    """JSON-able: UUIDs and timestamps as strings (ISO), details as a dict."""
    import datetime
    import json
    import uuid

    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith("{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
