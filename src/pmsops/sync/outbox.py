"""The sync log as an outbox: every open operation either has a live broker message or is re-sent.

A log is *live* when its task id is in a queue list of the broker, or in the broker's
``unacked`` hash (running, or waiting for a retry countdown) *and* the worker that
last ran it is alive (its heartbeat key exists). Workers write a heartbeat every
sweep (``pmsops:sync:worker:<hostname>``, TTL ``SYNC_WORKER_HEARTBEAT_TTL``).

One worker at a time (a Redis lock) sweeps every ``SYNC_REAP_INTERVAL`` seconds:

====================================================  ======================================
open log, idle ≥ ``SYNC_RESEND_AFTER``                 action
====================================================  ======================================
task id in a queue, or unacked by a live worker        none (queued / running / waiting)
``running`` on a worker whose heartbeat expired        re-send (a killed worker: ≤ 2 min)
a retry still waiting ``SYNC_RESEND_AFTER`` after      re-send (its countdown message was held
its countdown ended                                    by a worker that died before it was due)
no message anywhere (Redis lost it, or the final       re-send, same task id
log write failed while the database was away)
re-sent ``SYNC_MAX_RESENDS`` times, idle ≥ stale       ``failed`` ("Marked stale …: lost")
====================================================  ======================================

The log names the worker that ran the last attempt, not the one holding the message: a retry's
countdown message is fetched by whichever worker comes first and held (unacked) until due. So a
retry is live while its countdown runs (plus ``SYNC_RESEND_AFTER``): a live holder starts it when
due, and the start updates the log. One still waiting after that was held by a worker that died.

A re-send reuses the task id, so it is idempotent: a task whose log is already final
does nothing (and counts the extra delivery). The stale window follows from the
configuration (:attr:`~pmsops.sync.config.SyncSettings.stale_seconds`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

HEARTBEAT_KEY = "pmsops:sync:worker:{}"
SWEEP_LOCK = "pmsops:sync:sweep-lock"
QUEUE_SCAN_LIMIT = 100_000

log = logging.getLogger("pmsops.sync.sweeper")


@dataclass
class BrokerView:
    """What the broker holds right now: queued task ids, unacked task ids, live workers."""

    queued: set[str] = field(default_factory=set)
    unacked: set[str] = field(default_factory=set)
    workers: set[str] = field(default_factory=set)

    def is_live(self, task_id: str | None, worker: str | None) -> bool:
        if not task_id:
            return False
        if task_id in self.queued:
            return True
        return task_id in self.unacked and (not worker or worker in self.workers)

    def holds(self, row: dict[str, Any], resend_after: float) -> bool:
        """Is this open log's operation live in the broker (see the module docstring)?"""
        details = row.get("details") or {}
        if overdue_retry(row, resend_after):
            return row.get("task_id") in self.queued  # the held countdown message is a dead worker's
        return self.is_live(row.get("task_id"), details.get("worker"))


def overdue_retry(row: dict[str, Any], resend_after: float) -> bool:
    """A retry notice whose countdown ended ``resend_after`` ago and no attempt started since."""
    details = row.get("details") or {}
    countdown = details.get("next_retry_seconds")
    if row.get("status") != "running" or details.get("in_flight") is not False or countdown is None:
        return False
    try:
        return float(row.get("idle_seconds") or 0.0) >= float(countdown) + resend_after
    except (TypeError, ValueError):
        return False


def _task_id(raw: Any) -> str | None:
    try:
        message = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if isinstance(message, list) and message:  # unacked entries are [message, exchange, routing_key]
        message = message[0]
    if isinstance(message, str):
        try:
            message = json.loads(message)
        except ValueError:
            return None
    headers = message.get("headers") if isinstance(message, dict) else None
    return (headers or {}).get("id") or ((message.get("properties") or {}).get("correlation_id") if isinstance(message, dict) else None)


def broker_view(client, queues: Iterable[str] = ("celery",)) -> BrokerView:
    """Read the queue lists, the unacked hash and the heartbeat keys (synchronous redis client)."""
    view = BrokerView()
    for queue in queues:
        for key in client.scan_iter(match=f"{queue}*", count=1000):
            name = key.decode() if isinstance(key, bytes) else key
            if name != queue and not name.startswith(f"{queue}\x06\x16"):  # kombu's priority lists
                continue
            if client.type(key) in (b"list", "list"):
                view.queued.update(filter(None, (_task_id(m) for m in client.lrange(key, 0, QUEUE_SCAN_LIMIT))))
    view.unacked.update(filter(None, (_task_id(m) for m in client.hvals("unacked"))))
    for key in client.scan_iter(match=HEARTBEAT_KEY.format("*"), count=1000):
        name = key.decode() if isinstance(key, bytes) else key
        view.workers.add(name[len(HEARTBEAT_KEY.format("")) :])
    return view


def worker_identity(hostname: str, app) -> str:
    """``name@host#incarnation``: what a running log records and what the heartbeat proves alive
    (a worker restarted under the same name is another incarnation: its predecessor's work is re-sent)."""
    return f"{hostname}#{getattr(app, 'sync_incarnation', '')}"


def heartbeat(client, hostname: str, ttl: float) -> None:
    client.set(HEARTBEAT_KEY.format(hostname), str(time.time()), px=int(ttl * 1000))


def acquire_sweep(client, hostname: str, seconds: float) -> bool:
    """One sweeper at a time across all workers."""
    return bool(client.set(SWEEP_LOCK, hostname, nx=True, px=max(int(seconds * 1000), 500)))


@dataclass
class SweepReport:
    resent: list[str] = field(default_factory=list)
    reaped: list[str] = field(default_factory=list)
    live: int = 0


def task_for(operation_type: str) -> str | None:
    from pmsops.sync import OPERATIONS

    for op in OPERATIONS.values():
        if op.operation_type == operation_type:
            return op.task
    return None


async def sweep(
    conn, settings, view: BrokerView, send: Callable[[str, str, str, int], None], refresh: Callable[[], BrokerView] | None = None
) -> SweepReport:
    """Re-send open logs that have no live message; fail those re-sent too often (see the table above).

    ``refresh`` reads the broker again before anything is re-sent: a message moving from its
    queue to the unacked hash (kombu pops, then records) is in neither for an instant."""
    import asyncio

    from pmsops.sync import logs

    report = SweepReport()
    idle = min(settings.resend_after, settings.heartbeat_ttl)
    rows = await logs.open_logs(conn, idle)
    if refresh is not None and any(not view.holds(r, settings.resend_after) for r in rows):
        second = await asyncio.to_thread(refresh)
        view = BrokerView(view.queued | second.queued, view.unacked | second.unacked, view.workers | second.workers)
    for row in rows:
        details = row.get("details") or {}
        worker = details.get("worker")
        if view.holds(row, settings.resend_after):
            report.live += 1
            continue
        dead_worker = row["status"] == "running" and worker and worker not in view.workers
        if not dead_worker and row["idle_seconds"] < settings.resend_after:
            continue
        resent = int(details.get("resent") or 0)
        task = task_for(row["operation_type"])
        if task and row["task_id"] and resent < settings.max_resends:
            if await logs.note_resent(conn, row["id"], resent + 1):
                send(task, str(row["connection_id"]), row["task_id"], resent + 1)
                report.resent.append(row["task_id"])
            continue
        if row["idle_seconds"] >= settings.stale_seconds and await _reap_one(conn, row, resent):
            report.reaped.append(row["task_id"] or str(row["id"]))
    return report


async def _reap_one(conn, row: dict[str, Any], resent: int) -> bool:
    done = await conn.fetchval(
        """UPDATE channel_sync_logs SET status = 'failed', error = $2,
               details = details || jsonb_build_object('error_type', 'stale', 'reaped', true), updated_at = now()
           WHERE id = $1 AND status = ANY($3::text[]) RETURNING 1""",
        row["id"],
        f"Marked stale (no update for {row['idle_seconds'] / 60:.1f} minutes): lost, re-sent {resent} times without progress",
        ["triggered", "queued", "running"],
    )
    return done is not None
