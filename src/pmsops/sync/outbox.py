"""The sync log as an outbox: every open operation either has a live broker message or is re-sent.

A log is *live* when its task id is in a queue list of the broker, or in the broker's
``unacked`` hash *and* held by a live worker. Workers write a heartbeat every sweep
(``pmsops:sync:worker:<hostname>``, TTL ``SYNC_WORKER_HEARTBEAT_TTL``) and, with it, the
task ids they hold (``pmsops:sync:held:<hostname>``: reserved, waiting for a countdown or
running, from Celery's ``worker.state.requests``). An attempt in flight is held by the worker
its log names; any other unacked message (reserved, or a retry's countdown message, fetched by
whichever worker came first) by a worker that lists it (a list outlives its heartbeat by a
heartbeat). Once every live worker has listed what it holds a sweep interval after the message
was fetched (kombu's ``unacked_index`` says when) and no list names it, its holder is dead.

One worker at a time (a Redis lock) sweeps every ``SYNC_REAP_INTERVAL`` seconds:

====================================================  ======================================
open log, idle ≥ ``SYNC_RESEND_AFTER``                 action
====================================================  ======================================
task id in a queue, or unacked by a live worker        none (queued / running / waiting)
``running`` on a worker whose heartbeat expired        re-send (a killed worker: ≤ 2 min)
unacked, named by no list, though every live worker   re-send (reserved or waiting for its countdown
listed what it holds a sweep after it was fetched      in a worker that died)
a retry still waiting ``SYNC_RESEND_AFTER`` after      re-send (the same, while not every worker
its countdown ended                                    has listed what it holds)
no message anywhere (Redis lost it, or the final       re-send, same task id
log write failed while the database was away)
re-sent ``SYNC_MAX_RESENDS`` times, idle ≥ stale       ``failed`` ("Marked stale …: lost")
====================================================  ======================================

Until every live worker has listed what it holds (a worker started without this, or a message
fetched since), the older rule applies: the worker the log names must be alive, and a retry still
waiting ``SYNC_RESEND_AFTER`` after its countdown ended is not live (a live holder would have started it).

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
HELD_KEY = "pmsops:sync:held:{}"
"""Per worker incarnation, written with its heartbeat: ``{"at": time, "ids": [task ids it holds]}``."""
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"
"""kombu's Redis ack emulation: delivery tag → message, and delivery tag → when it was fetched."""
SWEEP_LOCK = "pmsops:sync:sweep-lock"
QUEUE_SCAN_LIMIT = 100_000

log = logging.getLogger("pmsops.sync.sweeper")


@dataclass
class BrokerView:
    """What the broker holds right now: queued task ids, unacked task ids (and when each was fetched),
    live workers, and what each live worker said it holds."""

    queued: set[str] = field(default_factory=set)
    unacked: set[str] = field(default_factory=set)
    workers: set[str] = field(default_factory=set)
    delivered: dict[str, float] = field(default_factory=dict)
    held: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)

    def merged(self, other: "BrokerView") -> "BrokerView":
        """Both readings at once (a message moving from its queue to the unacked hash is in neither for an instant)."""
        held = dict(self.held)
        for worker, (at, ids) in other.held.items():
            if worker not in held or held[worker][0] < at:
                held[worker] = (at, ids)
        delivered = dict(self.delivered)
        for task_id, at in other.delivered.items():
            delivered[task_id] = max(at, delivered.get(task_id, at))
        return BrokerView(self.queued | other.queued, self.unacked | other.unacked, self.workers | other.workers, delivered, held)

    def listed(self, task_id: str, live_only: bool = False) -> bool:
        """A worker said it holds this task (reserved, waiting for its countdown, or running): a live one, or
        (unless ``live_only``) one whose heartbeat lapsed less than a heartbeat ago (reconnecting, or frozen)."""
        return any(task_id in ids for worker, (_, ids) in self.held.items() if not live_only or worker in self.workers)

    def covered(self, task_id: str, margin: float) -> bool:
        """Every live worker said what it holds ``margin`` seconds after this task's message was fetched, or
        later: one that no list names is held by a worker that died (or was acked since)."""
        fetched = self.delivered.get(task_id)
        if fetched is None or not self.workers:
            return False
        return all(worker in self.held and self.held[worker][0] > fetched + margin for worker in self.workers)

    def holds(self, row: dict[str, Any], resend_after: float, margin: float = 0.0) -> bool:
        """Is this open log's operation live in the broker (see the module docstring)? ``margin``: a sweep
        interval, so that a message counts as unlisted only after two lists that could have named it."""
        task_id = row.get("task_id")
        if not task_id:
            return False
        if task_id in self.queued:
            return True
        if task_id not in self.unacked:
            return False
        details = row.get("details") or {}
        worker = details.get("worker")
        if details.get("in_flight") and worker:
            # an attempt runs on that worker: live while it is (its heartbeat), or while a live worker holds a re-sent copy
            return worker in self.workers or self.listed(task_id, live_only=True)
        if self.listed(task_id):
            return True
        # not running: reserved, or waiting for its countdown, in whichever worker fetched it
        if self.covered(task_id, margin):
            return False
        if all(w in self.held for w in self.workers):
            return True  # every live worker lists what it holds: not yet covered, the next sweeps decide
        return not overdue_retry(row, resend_after) and (not worker or worker in self.workers)  # some live worker lists nothing


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
    """The task id of a queued or unacked message, or None for anything else: broker data is outside data, and one
    corrupt or forged entry must not stop every sweep (nor ``sync reap``)."""
    try:
        message = json.loads(raw)
        if isinstance(message, list) and message:  # unacked entries are [message, exchange, routing_key]
            message = message[0]
        if isinstance(message, str):
            message = json.loads(message)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(message, dict):
        return None
    for part, key in (("headers", "id"), ("properties", "correlation_id")):
        section = message.get(part)
        value = section.get(key) if isinstance(section, dict) else None
        if isinstance(value, str) and value:
            return value
    return None


def broker_view(client, queues: Iterable[str] = ("celery",)) -> BrokerView:
    """Read the queue lists, the unacked hash (with kombu's fetch times), the heartbeat keys and the
    workers' held lists (synchronous redis client)."""
    view = BrokerView()
    for queue in queues:
        for key in client.scan_iter(match=f"{queue}*", count=1000):
            name = key.decode() if isinstance(key, bytes) else key
            if name != queue and not name.startswith(f"{queue}\x06\x16"):  # kombu's priority lists
                continue
            if client.type(key) in (b"list", "list"):
                view.queued.update(filter(None, (_task_id(m) for m in client.lrange(key, 0, QUEUE_SCAN_LIMIT))))
    messages = client.hgetall(UNACKED)  # before the fetch times: a message fetched in between has no time yet
    fetched_at = {_text(tag): score for tag, score in client.zrange(UNACKED_INDEX, 0, -1, withscores=True)}
    now = time.time()
    for tag, message in messages.items():
        task_id = _task_id(message)
        if task_id:
            view.unacked.add(task_id)
            at = fetched_at.get(_text(tag), now)  # no time: fetched just now
            view.delivered[task_id] = max(at, view.delivered.get(task_id, at))
    for key in client.scan_iter(match=HEARTBEAT_KEY.format("*"), count=1000):
        view.workers.add(_text(key)[len(HEARTBEAT_KEY.format("")) :])
    keys = list(client.scan_iter(match=HELD_KEY.format("*"), count=1000))
    for key, raw in zip(keys, client.mget(keys) if keys else []):  # one round trip for every worker's list
        try:
            listed = json.loads(raw) if raw else None
            view.held[_text(key)[len(HELD_KEY.format("")) :]] = (float(listed["at"]), frozenset(map(str, listed["ids"])))
        except (TypeError, ValueError, KeyError):
            continue  # expired meanwhile, or unreadable: that worker counts as not having said what it holds
    return view


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def worker_identity(hostname: str, app) -> str:
    """``name@host#incarnation``: what a running log records and what the heartbeat proves alive
    (a worker restarted under the same name is another incarnation: its predecessor's work is re-sent)."""
    return f"{hostname}#{getattr(app, 'sync_incarnation', '')}"


def heartbeat(client, hostname: str, ttl: float, held: Iterable[str] = (), as_of: float | None = None) -> None:
    """This worker is alive, and these are the task ids it held ``as_of`` then (reserved, waiting for a
    countdown, running)."""
    now = time.time()
    listed = json.dumps({"at": now if as_of is None else as_of, "ids": sorted(held)})
    pipe = client.pipeline(transaction=False)
    pipe.set(HELD_KEY.format(hostname), listed, px=int(ttl * HELD_GRACE * 1000))
    pipe.set(HEARTBEAT_KEY.format(hostname), str(now), px=int(ttl * 1000))
    pipe.execute()


HELD_GRACE = 2.0
"""A held list outlives its heartbeat by this factor: what a worker whose heartbeat just lapsed (reconnecting to
the broker, frozen) said it holds stays live a heartbeat longer, so a short outage does not re-send its messages."""

HELD_MARGIN = 5.0
"""Seconds a held list is back-dated: kombu records a message as fetched a moment before Celery registers
its request, so only what was fetched this long before the list was read is sure to be in it."""


def held_task_ids() -> tuple[float, list[str]]:
    """(as of when, the task ids this worker process holds), from Celery's own bookkeeping
    (``celery.worker.state.requests``: reserved, scheduled for an ETA/countdown, active). Read in the
    consumer's process, where the requests live."""
    from celery.worker import state

    as_of = time.time() - HELD_MARGIN
    return as_of, list(state.requests.copy())  # dict.copy is one step under the GIL: the consumer thread mutates it


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
    margin = settings.sweep_interval
    if refresh is not None and any(not view.holds(r, settings.resend_after, margin) for r in rows):
        view = view.merged(await asyncio.to_thread(refresh))
    for row in rows:
        details = row.get("details") or {}
        worker = details.get("worker")
        if view.holds(row, settings.resend_after, margin):
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
