"""One bounded snapshot of the sync system, for ``pmsops top`` and ``pmsops report``.

A refresh must never load the system it watches, so its cost is fixed:

- Redis: two pipelined round trips — (1) ``TIME``, the pidbox and queue bindings,
  ``unacked`` size and oldest entry, the circuit-breaker hashes; (2) every queue's
  length and oldest message (``LLEN``/``LINDEX -1`` for each priority list) and
  the rate-limit buckets of every account;
- PostgreSQL: one statement (newest logs, per-minute outcome counts, open logs,
  accounts), on a connection kept open between refreshes;
- Celery: two remote-control broadcasts (``stats`` and ``active``) sent at the
  same time with a short timeout; each returns as soon as every bound worker answered
  (:func:`pmsops.checks.celery.broadcast`).

The three run concurrently; each panel records its own error ("database
unreachable (…)") and the others still fill in. Key names follow
:mod:`pmsops.sync.limits` (``pmsops:circuit:<platform>``,
``pmsops:ratelimit:<platform>:<account>``) and kombu's Redis transport.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pmsops.redaction import redact

SCHEMA = "pmsops.top/v1"
PIDBOX_BINDINGS = "_kombu.binding.celery.pidbox"
QUEUE_BINDINGS = "_kombu.binding.celery"
KOMBU_SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
"""kombu's Redis transport keeps one list per priority step: ``queue``, ``queue\\x06\\x163`` …"""
WINDOWS_MIN = (5, 15, 60)
SPARK_BINS = 12
"""Sparklines: twelve 5-minute bins over the last hour."""

SYNC_QUERY = """
SELECT json_build_object(
  'now', extract(epoch FROM now())::float8,
  'recent', (SELECT coalesce(json_agg(r ORDER BY r.created_at DESC), '[]'::json) FROM (
      SELECT l.id::text AS id, l.connection_id::text AS connection_id, l.operation_type, l.status, left(l.error, 300) AS error,
             l.task_id, COALESCE(l.details->>'platform', c.platform_type) AS platform,
             extract(epoch FROM l.created_at)::float8 AS created_at, extract(epoch FROM l.updated_at)::float8 AS updated_at,
             l.details->>'retry_count' AS retry_count, l.details->>'max_retries' AS max_retries, l.details->>'error_type' AS error_type,
             l.details->>'next_retry_seconds' AS next_retry_seconds
      FROM channel_sync_logs l LEFT JOIN channel_connections c ON c.id = l.connection_id
      WHERE l.status = ANY(ARRAY['triggered', 'queued', 'running', 'success', 'failed', 'cancelled'])
        AND l.created_at > now() - make_interval(secs => $2::float8)
      ORDER BY l.created_at DESC LIMIT $1) r),
  'buckets', (SELECT coalesce(json_agg(b), '[]'::json) FROM (
      SELECT COALESCE(l.details->>'platform', c.platform_type) AS platform,
             floor(extract(epoch FROM now() - l.created_at)::float8 / $3::float8)::int AS bucket, l.status, count(*) AS n
      FROM channel_sync_logs l LEFT JOIN channel_connections c ON c.id = l.connection_id
      WHERE l.status = ANY(ARRAY['success', 'failed']) AND l.created_at > now() - make_interval(secs => $2::float8)
      GROUP BY 1, 2, 3) b),
  'open', (SELECT coalesce(json_agg(o), '[]'::json) FROM (
      SELECT task_id, extract(epoch FROM created_at)::float8 AS created_at FROM channel_sync_logs
      WHERE status = ANY(ARRAY['triggered', 'queued', 'running']) AND task_id IS NOT NULL
      ORDER BY created_at LIMIT 2000) o),
  'accounts', (SELECT coalesce(json_agg(a), '[]'::json) FROM (
      SELECT id::text AS id, platform_type AS platform, status FROM channel_connections
      WHERE deleted_at IS NULL ORDER BY platform_type, id LIMIT 500) a),
  'ended', CASE WHEN $4::float8 IS NOT NULL THEN (SELECT coalesce(json_agg(e ORDER BY e.at), '[]'::json) FROM (
      SELECT l.id::text AS id, l.connection_id::text AS connection_id, COALESCE(l.details->>'platform', c.platform_type) AS platform,
             l.operation_type AS type, l.status, extract(epoch FROM l.updated_at)::float8 AS at, l.details->>'error_type' AS error_type,
             l.errors AS retries, l.resends, COALESCE((l.details->>'duplicate_deliveries')::int, 0) AS duplicate_deliveries,
             COALESCE((l.details->>'duplicate_pushes')::int, 0) AS duplicate_pushes
      FROM channel_sync_logs l LEFT JOIN channel_connections c ON c.id = l.connection_id
      WHERE l.status = ANY(ARRAY['success', 'failed', 'cancelled']) AND l.updated_at > to_timestamp($4::float8)
      ORDER BY l.updated_at LIMIT 20000) e) END,
  'open_states', CASE WHEN $4::float8 IS NOT NULL THEN (SELECT coalesce(json_agg(o), '[]'::json) FROM (
      SELECT CASE WHEN status = 'running' AND lease_owner IS NOT NULL THEN 'claimed'
                  WHEN due_at > now() AND (errors > 0 OR waits > 0) THEN 'waiting' ELSE 'queued' END AS state,
             width_bucket(extract(epoch FROM now() - created_at)::float8, ARRAY[60, 300, 900, 3600]::float8[]) AS age,
             count(*) AS n, count(*) FILTER (WHERE due_at < now() - make_interval(secs => $5::float8)) AS overdue
      FROM channel_sync_logs WHERE status = ANY(ARRAY['triggered', 'queued', 'running']) GROUP BY 1, 2) o) END,
  'last_success', CASE WHEN $6::bool THEN (SELECT coalesce(json_agg(s), '[]'::json) FROM (
      SELECT COALESCE(l.details->>'platform', c.platform_type) AS platform, l.connection_id::text AS connection_id,
             extract(epoch FROM max(l.updated_at))::float8 AS at
      FROM channel_sync_logs l LEFT JOIN channel_connections c ON c.id = l.connection_id
      WHERE l.status = 'success' AND l.created_at > now() - interval '7 days' GROUP BY 1, 2) s) END
)::text
"""
"""The one statement per refresh. Every scan is bounded by an index and a LIMIT: (status, created_at) for top's
parts; for the exporter's (``$4`` set), the finished-logs index from the last read on, the open logs' due index,
and, once at its start (``$6``), the last week's successes."""


@dataclass
class Options:
    """What to watch and how long each part may take."""

    broker_url: str | None = None
    database_url: str | None = None
    expect_workers: int | None = None
    broadcast_timeout: float = 1.0
    redis_timeout: float = 1.0
    db_timeout: float = 2.0
    stuck_after: float = 300.0
    recent: int = 15
    window_seconds: float = 3600.0
    bucket_seconds: float = 60.0
    queues: list[str] = field(default_factory=list)
    ended_since: float | None = None
    """The exporter's: also read the logs that ended after this epoch, the open ones by state and age, and (with
    ``seed_last_success``) each platform's last success of the past week. None (top, report): not read."""
    overdue_after: float = 60.0
    seed_last_success: bool = False
    unusable: dict[str, str] = field(default_factory=dict)
    """"broker"/"db" → why its URL variable cannot be used (a raw '#' in the password): that part of the screen says
    so, the rest is still watched (the multi-check policy of #24 item 2)."""
    context: str | None = None
    """The active context's name (--context, context use, PMSOPS_CONTEXT): the screen and the JSON say what they watch."""


@dataclass
class _Box:
    """What a part running in its own thread brought back, and how long it took."""

    value: Any = None
    error: BaseException | None = None
    ms: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)


def _spawn(fn: Callable[[], Any], name: str) -> tuple[_Box, threading.Thread]:
    box = _Box()

    def run() -> None:
        started = time.perf_counter()
        try:
            box.value = fn()
        except BaseException as exc:  # noqa: BLE001 - a part fails alone; its panel shows why
            box.error = exc
        finally:
            box.ms = (time.perf_counter() - started) * 1000
            box.done.set()

    thread = threading.Thread(target=run, name=f"snapshot-{name}", daemon=True)
    thread.start()
    return box, thread


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class Collector:
    """Collects snapshots; keeps its Redis client and database connection between refreshes."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self._redis = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn = None
        self._db_busy = threading.Lock()
        self._first_seen: dict[str, float] = {}
        self._last_seen: dict[str, float] = {}

    # --- lifecycle -----------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connections (best effort: one of them may be what is down)."""
        if self._redis is not None:
            try:
                self._redis.close()
            except Exception:  # noqa: BLE001
                pass
            self._redis = None
        # A query still waiting on a black-holed database must not hold up quitting: its daemon
        # thread and socket end with the process.
        if self._loop is not None and self._db_busy.acquire(timeout=0.2):
            try:
                if self._conn is not None:
                    try:
                        self._loop.run_until_complete(asyncio.wait_for(self._conn.close(), self.options.db_timeout))
                    except BaseException:  # noqa: BLE001
                        self._conn.terminate()
                    self._conn = None
                self._loop.close()
                self._loop = None
            finally:
                self._db_busy.release()

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- the parts -----------------------------------------------------------------------------------
    def _client(self):
        if self._redis is None:
            from pmsops.checks.redis import client_for

            self._redis = client_for(self.options.broker_url, self.options.redis_timeout)
        return self._redis

    def _broker_round_one(self) -> dict[str, Any]:
        from pmsops.sync import PLATFORMS
        from pmsops.sync.broker import UNACKED_INDEX_KEY, UNACKED_KEY

        pipe = self._client().pipeline(transaction=False)
        pipe.time()
        pipe.smembers(PIDBOX_BINDINGS)
        pipe.smembers(QUEUE_BINDINGS)
        pipe.hlen(UNACKED_KEY)  # kombu's key names, named in its one home (pmsops.sync.broker): a count for the screen,
        pipe.zrange(UNACKED_INDEX_KEY, 0, 0, withscores=True)  # never a decision (who holds what is the sync log's to say)
        for platform in PLATFORMS:
            pipe.hgetall(f"pmsops:circuit:{platform}")
        raw = pipe.execute()
        seconds, micros = raw[0]
        bound = sorted({_text(m).split(KOMBU_SEP)[-1][: -len(".celery.pidbox")] for m in raw[1] if _text(m).endswith(".celery.pidbox")})
        queues = {_text(m).split(KOMBU_SEP)[-1] for m in raw[2]} | {"celery"} | set(self.options.queues)
        oldest_unacked = float(raw[4][0][1]) if raw[4] else None
        circuits = {p: {_text(k): _text(v) for k, v in h.items()} for p, h in zip(PLATFORMS, raw[5:])}
        return {
            "now": seconds + micros / 1e6,
            "bound": bound,
            "queues": sorted(queues),
            "unacked": raw[3],
            "oldest_unacked": oldest_unacked,
            "circuits": circuits,
        }

    def _broker_round_two(self, queues: list[str], accounts: list[dict[str, Any]]) -> dict[str, Any]:
        pipe = self._client().pipeline(transaction=False)
        for queue in queues:
            for step in PRIORITY_STEPS:
                key = queue if step == 0 else f"{queue}{KOMBU_SEP}{step}"
                pipe.llen(key)
                pipe.lindex(key, -1)
        for account in accounts:
            pipe.hmget(f"pmsops:ratelimit:{account['platform']}:{account['id']}", "tokens", "stamp")
        raw = pipe.execute()
        depths: dict[str, dict[str, Any]] = {}
        per_queue = 2 * len(PRIORITY_STEPS)
        for index, queue in enumerate(queues):
            chunk = raw[index * per_queue : (index + 1) * per_queue]
            ready = sum(int(n) for n in chunk[0::2])
            heads = [h for h in chunk[1::2] if h is not None]
            depths[queue] = {"ready": ready, "oldest_task_id": _task_id(heads[-1]) if heads else None}
        buckets = raw[len(queues) * per_queue :]
        return {"queues": depths, "buckets": [(a, b) for a, b in zip(accounts, buckets)]}

    def _database(self) -> dict[str, Any]:
        """The one statement, on a connection kept on this collector's own event loop."""
        if not self._db_busy.acquire(blocking=False):
            raise TimeoutError("the previous refresh's query is still running (slow database)")
        try:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(self._query())
        finally:
            self._db_busy.release()

    async def _query(self) -> dict[str, Any]:
        from pmsops.checks.db import connect

        timeout = self.options.db_timeout
        connected = 0
        if self._conn is None or self._conn.is_closed():
            self._conn = await connect(self.options.database_url, timeout)
            connected = 1
        try:
            text = await asyncio.wait_for(
                self._conn.fetchval(
                    SYNC_QUERY,
                    self.options.recent,
                    float(self.options.window_seconds),
                    float(self.options.bucket_seconds),
                    self.options.ended_since,
                    float(self.options.overdue_after),
                    self.options.seed_last_success,
                    timeout=timeout,
                ),
                timeout + 0.5,
            )
        except BaseException:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.terminate()
            raise
        data = json.loads(text)
        data["connects"] = connected
        return data

    def _broadcast(self, command: str):
        from pmsops.checks.celery import broadcast

        return broadcast(self.options.broker_url, command, self.options.broadcast_timeout, expect=self.options.expect_workers)

    # --- one snapshot ----------------------------------------------------------------------------------
    def collect(self) -> dict[str, Any]:
        """One snapshot; never raises for a dependency that is down."""
        opts = self.options
        started = time.perf_counter()
        taken_at = time.time()
        if opts.broker_url:
            _import_clients()  # once, here: two threads importing celery at once can see it half-initialised
        db_box = db_thread = None
        if opts.database_url:
            db_box, db_thread = _spawn(self._database, "db")
        broker_box = stats_box = active_box = None
        if opts.broker_url:
            stats_box, _ = _spawn(lambda: self._broadcast("stats"), "stats")
            active_box, _ = _spawn(lambda: self._broadcast("active"), "active")
            broker_box, _ = _spawn(lambda: self._broker(db_box), "broker")
        deadline = time.monotonic() + max(opts.db_timeout + 1.0, opts.broadcast_timeout * 2 + 1.0, opts.redis_timeout * 2 + opts.db_timeout + 1.0)
        for box in (db_box, broker_box, stats_box, active_box):
            if box is not None:
                box.done.wait(max(0.0, deadline - time.monotonic()))
        snapshot = {
            "schema": SCHEMA,
            **({"context_name": opts.context} if opts.context else {}),  # as every report: present when a context is in use
            **({"unusable": dict(opts.unusable)} if opts.unusable else {}),
            "taken_at": taken_at,
            "workers": self._workers(broker_box, stats_box, active_box, taken_at),
            "queues": self._queues(broker_box, db_box, taken_at),
            "active": self._active(active_box, taken_at),
            "syncs": self._syncs(db_box),
            "platforms": self._platforms(broker_box, db_box),
        }
        if opts.ended_since is not None:
            snapshot["ledger"] = self._ledger(db_box)
        snapshot["cost"] = _cost(started, db_box, broker_box, stats_box, active_box)
        return snapshot

    def _ledger(self, box: _Box | None) -> dict[str, Any]:
        """The exporter's part of the statement: what ended since its last read, open operations by state and age."""
        error = self._db_error(box)
        if error:
            return {"ended": [], "open_states": [], "last_success": None, "error": error}
        data = box.value
        return {
            "ended": data.get("ended") or [],
            "open_states": data.get("open_states") or [],
            "last_success": data.get("last_success"),
            "error": None,
        }

    def _broker(self, db_box: _Box | None) -> dict[str, Any]:
        first = self._broker_round_one()
        accounts: list[dict[str, Any]] = []
        if db_box is not None:
            db_box.done.wait(self.options.db_timeout + 1.0)
            if db_box.done.is_set() and db_box.error is None:
                accounts = db_box.value.get("accounts") or []
        second = self._broker_round_two(first["queues"], accounts)
        return {**first, **second, "round_trips": 2, "accounts_known": db_box is not None and db_box.done.is_set() and db_box.error is None}

    # --- panels ----------------------------------------------------------------------------------------
    def _broker_error(self, box: _Box | None) -> str | None:
        if not self.options.broker_url:
            return self.options.unusable.get("broker") or "no broker configured (set CELERY_BROKER_URL or REDIS_URL)"
        if box is None or not box.done.is_set():
            return f"broker unreachable (no answer within {self.options.redis_timeout:g} s)"
        if box.error is not None:
            return "broker unreachable (" + _broker_words(self.options.broker_url, box.error, self.options.redis_timeout) + ")"
        return None

    def _db_error(self, box: _Box | None) -> str | None:
        if not self.options.database_url:
            return self.options.unusable.get("db") or "no database configured (set DATABASE_URL)"
        if box is None or not box.done.is_set():
            return f"database unreachable (no answer within {self.options.db_timeout:g} s)"
        if box.error is not None:
            return _db_words(self.options.database_url, box.error, self.options.db_timeout)
        return None

    def _workers(self, broker: _Box | None, stats: _Box | None, active: _Box | None, now: float) -> dict[str, Any]:
        expected = self.options.expect_workers
        panel: dict[str, Any] = {"expected": expected, "answered": 0, "missing": expected or 0, "items": [], "silent": [], "error": None}
        error = self._broker_error(broker) if broker is None or broker.error is not None or not broker.done.is_set() else None
        if error is None and (stats is None or not stats.done.is_set() or stats.error is not None):
            error = (
                "broadcast failed ("
                + (
                    _broker_words(self.options.broker_url, stats.error, self.options.broadcast_timeout)
                    if stats is not None and stats.error
                    else "no answer"
                )
                + ")"
            )
        if error:
            panel["error"] = error
            return panel
        replies = stats.value.replies
        running: dict[str, int] = {}
        if active is not None and active.done.is_set() and active.error is None:
            running = {w: len(t or []) for w, t in active.value.replies.items()}
        for worker, info in sorted(replies.items()):
            self._last_seen[worker] = now
            pool = info.get("pool") or {}
            panel["items"].append(
                {
                    "name": worker,
                    "pool": _pool_name(pool.get("implementation")),
                    "concurrency": pool.get("max-concurrency"),
                    "active": running.get(worker),
                    "processed": sum((info.get("total") or {}).values()),
                    "pid": info.get("pid"),
                    "uptime_s": info.get("uptime"),
                    "last_seen": now,
                }
            )
        panel["answered"] = len(replies)
        panel["missing"] = max(0, (expected or 0) - len(replies))
        panel["bound"] = broker.value["bound"] if broker is not None and broker.value else stats.value.bound_workers
        panel["silent"] = [{"name": w, "last_seen": self._last_seen.get(w)} for w in sorted(set(panel["bound"]) - set(replies))]
        panel["broadcast_ms"] = round(stats.value.waited_ms, 1)
        return panel

    def _queues(self, broker: _Box | None, db: _Box | None, now: float) -> dict[str, Any]:
        error = self._broker_error(broker)
        if error:
            return {"items": [], "unacked": None, "oldest_unacked_age_s": None, "error": error}
        data = broker.value
        created = {}
        if db is not None and db.done.is_set() and db.error is None:
            created = {o["task_id"]: o["created_at"] for o in db.value.get("open") or []}
        items = []
        for name, info in sorted(data["queues"].items()):
            task_id = info["oldest_task_id"]
            age = None
            if task_id and task_id in created:
                age = max(0.0, data["now"] - created[task_id])
            elif task_id:
                first = self._first_seen.setdefault(task_id, now)
                age = now - first if now > first else None
            items.append(
                {"name": name, "ready": info["ready"], "oldest_task_id": task_id, "oldest_age_s": round(age, 1) if age is not None else None}
            )
        oldest = data["oldest_unacked"]
        return {"items": items, "unacked": data["unacked"], "oldest_unacked_age_s": round(data["now"] - oldest, 1) if oldest else None, "error": None}

    def _active(self, box: _Box | None, now: float) -> dict[str, Any]:
        stuck_after = self.options.stuck_after
        if not self.options.broker_url:
            error = self.options.unusable.get("broker") or "no broker configured (set CELERY_BROKER_URL or REDIS_URL)"
            return {"items": [], "stuck_after_s": stuck_after, "error": error}
        if box is None or not box.done.is_set() or box.error is not None:
            words = (
                _broker_words(self.options.broker_url, box.error, self.options.broadcast_timeout) if box is not None and box.error else "no answer"
            )
            return {"items": [], "stuck_after_s": stuck_after, "error": f"broadcast failed ({words})"}
        items = []
        for worker, tasks in sorted(box.value.replies.items()):
            for task in tasks or []:
                started = task.get("time_start")
                age = now - started if started else None
                items.append(
                    {
                        "worker": worker,
                        "id": task.get("id"),
                        "name": task.get("name"),
                        "age_s": round(age, 1) if age is not None else None,
                        "stuck": bool(age is not None and age > stuck_after),
                    }
                )
        items.sort(key=lambda t: -(t["age_s"] or 0))
        return {"items": items, "stuck_after_s": stuck_after, "error": None}

    def _syncs(self, box: _Box | None) -> dict[str, Any]:
        from pmsops.sync import PLATFORMS
        from pmsops.synclogs import MAX_RETRIES

        error = self._db_error(box)
        if error:
            return {"recent": [], "per_platform": {}, "error": error}
        data = box.value
        now = data["now"]
        recent = []
        for row in data.get("recent") or []:
            retry = int(row["retry_count"]) if (row.get("retry_count") or "").isdigit() else 0
            next_in = None
            if row["status"] in ("running", "triggered", "queued") and row.get("next_retry_seconds"):  # a wait behind a breaker spends no retry
                try:
                    next_in = max(0.0, row["updated_at"] + float(row["next_retry_seconds"]) - now)
                except ValueError:
                    next_in = None
            recent.append(
                {
                    "operation": row["operation_type"],
                    "connection_id": row["connection_id"],
                    "platform": row.get("platform"),
                    "status": row["status"],
                    "retry": retry,
                    "max_retries": int(row["max_retries"]) if (row.get("max_retries") or "").isdigit() else MAX_RETRIES,  # as the worker wrote it
                    "error_type": row.get("error_type"),
                    "next_retry_in_s": round(next_in, 1) if next_in is not None else None,
                    "error": redact(row.get("error") or "") or None,
                    "task_id": row.get("task_id"),
                    "age_s": round(now - row["created_at"], 1),
                }
            )
        return {"recent": recent, "per_platform": _per_platform(data.get("buckets") or [], PLATFORMS, self.options.bucket_seconds), "error": None}

    def _platforms(self, broker: _Box | None, db: _Box | None) -> dict[str, Any]:
        from pmsops.sync import PLATFORMS
        from pmsops.sync.limits import LIMITS

        error = self._broker_error(broker)
        if error:
            return {"items": [], "error": error, "rate_limit_error": None}
        data = broker.value
        now = data["now"]
        rate_error = (
            None if data["accounts_known"] else (self._db_error(db) or "accounts unknown") + ": rate-limit accounts come from channel_connections"
        )
        items = []
        for platform in PLATFORMS:
            limits = LIMITS[platform]
            buckets = []
            for account, (tokens, stamp) in data["buckets"]:
                if account["platform"] != platform:
                    continue
                left: float | None = float(limits.burst)
                if tokens is not None and stamp is not None:
                    tokens_n, stamp_n = _number(tokens), _number(stamp)  # broker data: a forged or corrupt field is unreadable, not a crash
                    left = (
                        None
                        if tokens_n is None or stamp_n is None
                        else min(float(limits.burst), tokens_n + max(0.0, now - stamp_n) * limits.rate_per_second)
                    )
                buckets.append(
                    {
                        "account": account["id"],
                        "connection_status": account.get("status"),
                        "tokens": round(left, 1) if left is not None else None,
                        "burst": limits.burst,
                    }
                )
            items.append(
                {
                    "platform": platform,
                    "breaker": breaker_state(data["circuits"].get(platform) or {}, limits.open_seconds, now),
                    "rate_limits": buckets,
                }
            )
        return {"items": items, "error": None, "rate_limit_error": rate_error}


def _import_clients() -> None:
    import celery  # noqa: F401
    import celery.app.control  # noqa: F401
    import redis  # noqa: F401

    import pmsops.checks.celery  # noqa: F401


def _number(value: Any) -> float | None:
    """A finite number from broker data, or None (text, inf, nan, bytes that are not a number)."""
    import math

    try:
        number = float(value.decode() if isinstance(value, bytes) else value)
    except (TypeError, ValueError, UnicodeDecodeError):
        return None
    return number if math.isfinite(number) else None


def breaker_state(circuit: dict[str, str], open_seconds: float, now: float) -> dict[str, Any]:
    """closed / open (half-open in N s) / half_open, as :data:`pmsops.sync.limits._ADMIT` decides it. A field the
    script never writes (a forged or corrupt hash) makes the state ``unreadable``, never a failed refresh."""
    state = circuit.get("state") or "closed"
    failures = _number(circuit.get("failures") or 0)
    if state not in ("closed", "open", "half_open") or failures is None:
        return {"state": "unreadable", "failures": None, "half_open_in_s": None, "opened_at": None}
    out: dict[str, Any] = {"state": state, "failures": int(failures), "half_open_in_s": None, "opened_at": None}
    if state == "open":
        opened = _number(circuit.get("opened_at") or 0)
        if opened is None:
            return {"state": "unreadable", "failures": int(failures), "half_open_in_s": None, "opened_at": None}
        out["opened_at"] = opened
        remaining = opened + open_seconds - now
        if remaining > 0:
            out["half_open_in_s"] = round(remaining, 1)
        else:
            out["state"] = "half_open"  # the next admitted call turns it half-open
            out["half_open_in_s"] = 0.0
    elif state == "half_open":
        successes = _number(circuit.get("successes") or 0)
        out["successes"] = int(successes) if successes is not None else None
    return out


def _per_platform(buckets: list[dict[str, Any]], platforms: tuple[str, ...], bucket_seconds: float) -> dict[str, Any]:
    """Counts over 5/15/60 minutes and 5-minute sparkline bins, per platform."""
    out: dict[str, Any] = {}
    bin_width = max(1, int(round(300 / bucket_seconds)))
    for platform in platforms:
        mine = [b for b in buckets if b.get("platform") == platform]
        entry: dict[str, Any] = {}
        for minutes in WINDOWS_MIN:
            limit = minutes * 60 / bucket_seconds
            entry[f"{minutes}m"] = {s: sum(b["n"] for b in mine if b["status"] == s and b["bucket"] < limit) for s in ("success", "failed")}
        for status in ("success", "failed"):
            bins = [0] * SPARK_BINS
            for b in mine:
                if b["status"] == status and 0 <= b["bucket"] // bin_width < SPARK_BINS:
                    bins[SPARK_BINS - 1 - b["bucket"] // bin_width] += b["n"]
            entry[f"spark_{status}"] = bins
        out[platform] = entry
    return out


def _pool_name(implementation: Any) -> str:
    """'celery.concurrency.thread:TaskPool' → 'thread' (what -P/--pool was given)."""
    if not implementation:
        return "?"
    return str(implementation).split(":")[0].rsplit(".", 1)[-1]


def _task_id(head: Any) -> str | None:
    try:
        message = json.loads(head)
        return (message.get("headers") or {}).get("id") or (message.get("properties") or {}).get("correlation_id")
    except (ValueError, AttributeError, TypeError):
        return None


def _broker_words(url: str | None, exc: BaseException | None, timeout: float) -> str:
    if exc is None or url is None:
        return "no answer"
    from pmsops.checks.celery import _broker_failure

    summary = _broker_failure("broker", url, exc, timeout).summary
    prefix = "broker "
    words = summary.split(": ", 1)[1] if summary.startswith(prefix) and ": " in summary else summary
    return redact(words)


def _db_words(url: str, exc: BaseException, timeout: float) -> str:
    """'database unreachable (…)' for connection failures, 'database query failed (…)' for the rest."""
    from pmsops.database import describe_failure
    from pmsops.urls import host_of

    try:
        import asyncpg

        if isinstance(exc, asyncpg.PostgresError) and not isinstance(
            exc,
            (
                asyncpg.InvalidPasswordError,
                asyncpg.InvalidAuthorizationSpecificationError,
                asyncpg.InvalidCatalogNameError,
                asyncpg.CannotConnectNowError,
            ),
        ):
            return redact(f"database query failed ({type(exc).__name__}: {exc})")
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        pass
    host, port = host_of(url)
    _, summary, _ = describe_failure(exc, host, port or 5432, timeout)
    return redact(f"database unreachable ({summary})")


def _cost(started: float, db: _Box | None, broker: _Box | None, stats: _Box | None, active: _Box | None) -> dict[str, Any]:
    """Wall time and round trips of this refresh (what ``top`` costs the system it watches)."""

    def ms(box: _Box | None) -> float | None:
        return round(box.ms, 1) if box is not None and box.done.is_set() else None

    connects = db.value.get("connects", 0) if db is not None and db.done.is_set() and db.value else 0
    return {
        "wall_ms": round((time.perf_counter() - started) * 1000, 1),
        "redis_ms": ms(broker),
        "db_ms": ms(db),
        "broadcast_stats_ms": ms(stats),
        "broadcast_active_ms": ms(active),
        "round_trips": {
            "redis_pipelines": 2 if broker is not None else 0,
            "db_queries": 1 if db is not None else 0,
            "db_connects": connects,
            "broadcasts": int(stats is not None) + int(active is not None),
        },
    }


def options_from_settings(settings, **overrides: Any) -> Options:
    """Options from the environment (CELERY_BROKER_URL/REDIS_URL, DATABASE_URL) plus flags."""
    opts = Options(broker_url=settings.get("CELERY_BROKER_URL"), database_url=settings.get("DATABASE_URL"))
    for key, value in overrides.items():
        if value is not None:
            setattr(opts, key, value)
    return opts


def collect_once(options: Options) -> dict[str, Any]:
    """One snapshot with fresh connections (``top --once``, ``report``)."""
    with Collector(options) as collector:
        return collector.collect()
