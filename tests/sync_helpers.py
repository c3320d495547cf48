"""Seed data and helpers for the sync-library tests (real PostgreSQL, real Celery)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from conftest import ENCRYPTION_KEY


def run(database_url: str, fn):
    from pmsops.sync.maintenance import with_connection

    return with_connection(database_url, fn)


def seed_connection(
    database_url: str,
    platform: str = "airbnb",
    token: str | None = "platform-token-123",
    status: str = "active",
    bookings: list[tuple[int, int]] | None = None,
    rates_days: int = 10,
) -> dict[str, Any]:
    """An agency, a property with rates and bookings, and one channel connection; returns the ids."""
    from pmsops.sync.crypto import encrypt

    agency, prop, conn_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    listing = f"L-{conn_id.hex[:8]}"
    today = date.today()

    async def go(conn):
        await conn.execute("INSERT INTO agencies (id, name) VALUES ($1, 'Test agency')", agency)
        await conn.execute("INSERT INTO properties (id, agency_id, name) VALUES ($1, $2, 'Seaside flat')", prop, agency)
        for offset in range(rates_days):
            await conn.execute(
                "INSERT INTO nightly_rates (property_id, night, price, min_stay) VALUES ($1, $2, $3, 2)",
                prop,
                today + timedelta(days=offset),
                100 + offset,
            )
        for start, nights in bookings or []:
            await conn.execute(
                "INSERT INTO bookings (property_id, platform, external_id, check_in, check_out) VALUES ($1, 'direct', $2, $3, $4)",
                prop,
                f"D-{uuid.uuid4().hex[:6]}",
                today + timedelta(days=start),
                today + timedelta(days=start + nights),
            )
        await conn.execute(
            """INSERT INTO channel_connections (id, agency_id, property_id, platform_type, platform_listing_id, status, access_token_encrypted)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            conn_id,
            agency,
            prop,
            platform,
            listing,
            status,
            encrypt(token, ENCRYPTION_KEY) if token else None,
        )

    run(database_url, go)
    return {"agency_id": str(agency), "property_id": str(prop), "connection_id": str(conn_id), "listing": listing, "platform": platform}


def sender_for(broker_url: str, countdown: float | None = None):
    from celery import Celery

    app = Celery("test-sender", broker=broker_url, set_as_current=False)
    return lambda name, connection_id, task_id: app.send_task(name, args=[connection_id], task_id=task_id, countdown=countdown)


def wait_until(condition, timeout: float, what: str, interval: float = 0.1):
    """Poll ``condition()`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


def trigger(database_url: str, broker_url: str, connection_id: str, sync_type: str = "availability"):
    from pmsops.sync.trigger import trigger_sync

    return run(database_url, lambda conn: trigger_sync(conn, connection_id, sync_type, send=sender_for(broker_url)))


def logs_for(database_url: str, task_ids: list[str]) -> list[dict[str, Any]]:
    from pmsops.sync.logs import get_by_task

    async def fetch(conn):
        return [await get_by_task(conn, t) for t in task_ids]

    return run(database_url, fetch)


def wait_final(database_url: str, task_ids: list[str], timeout: float = 30.0) -> list[dict[str, Any]]:
    from pmsops.errors import DependencyError

    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = logs_for(database_url, task_ids)
        except DependencyError:  # a database just restarted answers "starting up" for a moment
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        if all(r and r["status"] in ("success", "failed", "cancelled") for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


class WorkerOutput:
    """A real worker's stderr, read line by line in a thread, so a test waits for the line an
    operator would see (e.g. a task that has no log row to show its failure in)."""

    def __init__(self, proc) -> None:
        import threading

        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"worker never logged {text!r} within {timeout:g} s; last lines: {self.lines[-10:]}")


def wait_scheduled(broker_url: str, task_id: str, timeout: float = 20.0) -> None:
    """Wait until a worker holds ``task_id`` as a scheduled retry (it has failed at least once)."""
    from celery import Celery

    app = Celery("test-inspect", broker=broker_url, set_as_current=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scheduled = app.control.inspect(timeout=0.5).scheduled() or {}
        if any(entry.get("request", {}).get("id") == task_id for entries in scheduled.values() for entry in entries):
            return
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} was never scheduled for a retry within {timeout:g} s")


def seed_cross_tenant_connection(database_url: str, platform: str = "airbnb") -> dict[str, Any]:
    """A connection of a fresh agency A pointing at the property of another agency B (what the
    API allowed before tenant checks): the sync library must refuse it."""
    ids = seed_connection(database_url, platform=platform)
    intruder = uuid.uuid4()

    async def go(conn):
        await conn.execute("INSERT INTO agencies (id, name) VALUES ($1, 'Intruder agency')", intruder)
        await conn.execute("UPDATE channel_connections SET agency_id = $1 WHERE id = $2::uuid", intruder, ids["connection_id"])

    run(database_url, go)
    return {**ids, "intruder_agency_id": str(intruder)}


# --- fault injection: a counting proxy in front of the platform, a restartable Redis, two workers ------------------


class CountingProxy:
    """A real HTTP proxy on loopback in front of the fake platform: counts what reaches the platform
    per operation (the task id that starts its ``Idempotency-Key``) and answers faults by itself when told to."""

    def __init__(self, upstream_url: str) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        proxy = self
        self.lock = threading.Lock()
        self.fault: tuple[int, float | None] | None = None
        self.delay = 0.0  # seconds each forwarded call takes longer: keeps operations in flight
        self.on_call: Any = None  # called with (record, client port) before a call is forwarded; True = drop the call
        self.calls: list[dict[str, Any]] = []
        upstream = urlsplit(upstream_url)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                import http.client

                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                key = self.headers.get("idempotency-key")
                with proxy.lock:
                    fault = proxy.fault
                record = {
                    "key": key,
                    "method": self.command,
                    "path": self.path,
                    "at": time.time(),
                    "account": self.path.split("/")[-2] if self.path.count("/") > 2 else None,
                }
                hook = proxy.on_call
                if hook is not None and hook(record, self.client_address[1]):
                    record.update(status=0, forwarded=False)  # the caller was made to die before its call went on
                    with proxy.lock:
                        proxy.calls.append(record)
                    return
                if fault is not None:
                    status, retry_after = fault
                    payload, headers = b'{"error":"injected"}', {"content-type": "application/json"}
                    if retry_after is not None:
                        headers["retry-after"] = str(retry_after)
                    record.update(status=status, forwarded=False)
                else:
                    if proxy.delay:
                        time.sleep(proxy.delay)
                    conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=10)
                    try:
                        conn.request(
                            self.command, self.path, body=body or None, headers={k: v for k, v in self.headers.items() if k.lower() != "host"}
                        )
                        response = conn.getresponse()
                        payload, status = response.read(), response.status
                        headers = {k: v for k, v in response.getheaders() if k.lower() in ("content-type", "retry-after")}
                    finally:
                        conn.close()
                    record.update(status=status, forwarded=True)
                with proxy.lock:
                    proxy.calls.append(record)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = _answer

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:  # a killed worker hangs up mid-answer: expected here
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(self, status: int, retry_after: float | None = None) -> None:
        with self.lock:
            self.fault = (status, retry_after)

    def heal(self) -> None:
        with self.lock:
            self.fault = None

    def pushes(self) -> dict[str, int]:
        """Operation → pushes the platform accepted (PUT answered 200 by the platform itself); the Idempotency-Key
        is ``<task id>:<digest of the request>``."""
        counts: dict[str, int] = {}
        with self.lock:
            for call in self.calls:
                if call["forwarded"] and call["method"] == "PUT" and call["status"] == 200 and call["key"]:
                    operation = call["key"].split(":", 1)[0]
                    counts[operation] = counts.get(operation, 0) + 1
        return counts

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def pid_of_peer(port: int, server_port: int) -> int | None:
    """The process holding the loopback TCP connection from ``port`` to ``server_port`` (from /proc: no fake)."""
    import os

    inode = None
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            local, remote = fields[1].split(":"), fields[2].split(":")
            if int(local[1], 16) == port and int(remote[1], 16) == server_port:
                inode = fields[9]
                break
    if inode is None:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
        except OSError:
            continue
    return None


def settle_budget(stack: "FaultStack", syncs: int, after_fault: float = 120.0) -> float:
    """Seconds to wait for every operation to end once the fault is over: two minutes, plus what the accounts'
    rate limits need to drain the backlog (each connection is its own account; three calls per full sync)."""
    from pmsops.sync.limits import limits_for

    per_account = max(1, -(-syncs // max(1, len(stack.connections))))
    drain = max(max(0.0, (3 * per_account - limits_for(c["platform"]).burst) / limits_for(c["platform"]).rate_per_second) for c in stack.connections)
    print(f"settle window: {after_fault:g} s after the fault + {drain:.1f} s the rate limits need to drain the backlog")
    return after_fault + drain


def restart_redis(server, down_seconds: float = 2.0, keep_data: bool = True) -> None:
    """Stop a RedisServer (SIGTERM: an AOF is flushed), wait, start it again on the same port.
    ``keep_data=False`` deletes its append-only files first: a Redis that lost its data."""
    import shutil
    import subprocess

    from pmsops.sandbox.servers import _start_redis, _wait_port

    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
    if not keep_data:
        shutil.rmtree(server.workdir / "appendonlydir", ignore_errors=True)
        for name in ("dump.rdb", "appendonly.aof"):
            (server.workdir / name).unlink(missing_ok=True)
    time.sleep(down_seconds)  # the fault itself: the broker is away this long
    server.proc = _start_redis(server.workdir / "redis.conf", server.workdir)
    _wait_port(server.port, 10, server.proc, "redis-server", server.workdir / "redis.log")


FAULT_SYNCS = int(__import__("os").environ.get("PMSOPS_FAULT_SYNCS", "150"))
"""Full syncs per fault scenario: 150 (issue #12's 450 operations) by default; PMSOPS_FAULT_SYNCS=30 for a quicker local run."""
SETTLE_SECONDS = 150.0
OPEN = ("triggered", "queued", "running")


@dataclass
class Figures:
    """What #12 asks of every fault: from the database and the platform-side counts."""

    operations: int
    statuses: dict[str, int]
    lost: list[str]
    open: list[str]
    duplicates: dict[str, int]
    unrecorded_duplicates: list[str]
    untrue: list[str]
    leaked: list[str]

    def summary(self) -> dict[str, Any]:
        return {
            "operations": self.operations,
            "statuses": self.statuses,
            "lost": len(self.lost),
            "open": len(self.open),
            "duplicates": sum(self.duplicates.values()),
            "unrecorded_duplicates": len(self.unrecorded_duplicates),
            "untrue": len(self.untrue),
            "leaked": len(self.leaked),
        }


def _recorded(details: dict[str, Any]) -> bool:
    return bool(
        details.get("interrupted")
        or details.get("duplicate_push")
        or details.get("duplicate_pushes")
        or details.get("duplicate_deliveries")
        or details.get("redelivered")
    )


def figures(database_url: str, task_ids: list[str], proxy: CountingProxy, secrets: tuple[str, ...] = ()) -> Figures:
    import json

    rows = logs_for(database_url, task_ids)
    pushes = proxy.pushes()
    statuses: dict[str, int] = {}
    lost, still_open, untrue, leaked, unrecorded = [], [], [], [], []
    duplicates = {t: n - 1 for t, n in pushes.items() if t in task_ids and n > 1}
    for task_id, row in zip(task_ids, rows):
        if row is None or row["details"].get("reaped"):
            lost.append(task_id)
            continue
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        details = row["details"]
        if row["status"] in OPEN:
            still_open.append(task_id)
        outbound = row["direction"] == "outbound"
        if row["status"] == "failed" and pushes.get(task_id):
            untrue.append(f"{task_id}: failed, but the platform accepted its push")
        if row["status"] == "success" and outbound and not details.get("skipped") and not pushes.get(task_id):
            untrue.append(f"{task_id}: success, but no push reached the platform")
        if row["status"] == "failed" and not row["error"]:
            untrue.append(f"{task_id}: failed without saying why")
        if task_id in duplicates and not _recorded(details):
            unrecorded.append(task_id)
        text = json.dumps(details, default=str) + (row["error"] or "")
        if any(secret and secret in text for secret in secrets):
            leaked.append(task_id)
    return Figures(len(task_ids), statuses, lost, still_open, duplicates, unrecorded, untrue, leaked)


def wait_settled(database_url: str, task_ids: list[str], timeout: float = SETTLE_SECONDS) -> float:
    """Seconds until no log of ``task_ids`` is open (raises after ``timeout``)."""
    started = time.monotonic()

    async def still_open(conn):
        return await conn.fetchval(
            "SELECT count(*) FROM channel_sync_logs WHERE task_id = ANY($1::text[]) AND status = ANY($2::text[])", task_ids, list(OPEN)
        )

    def settled() -> bool:
        from pmsops.errors import DependencyError

        try:
            return run(database_url, still_open) == 0
        except DependencyError:  # the database is still starting up after the fault
            return False

    try:
        wait_until(settled, timeout, f"operations still open after {timeout:g} s", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {_open_summary(database_url, task_ids)}") from None
    return time.monotonic() - started


def _open_summary(database_url: str, task_ids: list[str], shown: int = 5) -> str:
    """What a failed wait leaves to read: the open logs by status, and the first few in full."""

    async def open_logs(conn):
        return await conn.fetch(
            "SELECT task_id, operation_type, status, details, round(extract(epoch FROM now() - updated_at)) AS idle_s"
            " FROM channel_sync_logs WHERE task_id = ANY($1::text[]) AND status = ANY($2::text[]) ORDER BY updated_at",
            task_ids,
            list(OPEN),
        )

    try:
        rows = run(database_url, open_logs)
    except Exception as exc:  # noqa: BLE001 - the summary is a diagnosis, never the failure itself
        return f"(open logs unreadable: {type(exc).__name__})"
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
    keys = ("worker", "retry_count", "resent", "interrupted", "in_flight", "redelivered", "next_retry_seconds", "error_type")
    first = []
    for r in rows[:shown]:
        details = {k: (r["details"] or {}).get(k) for k in keys if k in (r["details"] or {})}
        first.append(f"{r['task_id'][:8]} {r['operation_type']} {r['status']} idle {r['idle_s']} s {details}")
    return f"open: {by_status}; oldest: {first}"


def trigger_full_syncs(
    database_url: str, broker_url: str, connections: list[dict[str, Any]], count: int, per_second: float = 15.0, resend_after: float | None = None
) -> list[str]:
    """``count`` full syncs round-robin over ``connections`` at ``per_second`` triggers; returns all task ids.
    ``resend_after``: the workers' SYNC_RESEND_AFTER (a trigger and its workers share the setting)."""
    from pmsops.sync.trigger import trigger_sync

    send = sender_for(broker_url)
    task_ids: list[str] = []

    async def many(conn):
        started = time.monotonic()
        for n in range(count):
            ids = connections[n % len(connections)]
            triggered = await trigger_sync(conn, ids["connection_id"], "full", send=send, resend_after=resend_after)
            task_ids.extend(triggered.task_ids)
            pause = started + (n + 1) / per_second - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)

    run(database_url, many)
    return task_ids


@dataclass
class FaultStack:
    """Two real sync workers (threads ×4 and prefork ×2) on a restartable Redis, the platform behind a
    counting proxy, and connections to sync: the setting of every #12 scenario."""

    @property
    def resend_after(self) -> float:
        """The workers' SYNC_RESEND_AFTER, which the triggers use too."""
        return float(self.env.get("SYNC_RESEND_AFTER") or 60.0)

    redis: Any
    db: int
    database_url: str
    proxy: CountingProxy
    env: dict[str, str]
    connections: list[dict[str, Any]] = field(default_factory=list)
    workers: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    specs: dict[str, tuple[str, int]] = field(default_factory=dict)
    restarts: int = 0

    @property
    def broker(self) -> str:
        return self.env["CELERY_BROKER_URL"]

    def start(self, name: str, pool: str, concurrency: int, **extra: str):
        from conftest import start_worker

        self.specs[name] = (pool, concurrency)
        self.workers[name] = start_worker(
            self.broker, name, app="pmsops.sync.worker:celery_app", concurrency=concurrency, extra_env={**self.env, **extra}, pool=pool
        )
        self.output[name] = WorkerOutput(self.workers[name])  # drained: a full stderr pipe would stall the worker
        return self.workers[name]

    def start_both(self) -> None:
        self.start(f"threads{self.db}@faults", "threads", 4)
        self.start(f"prefork{self.db}@faults", "prefork", 2)

    def supervise(self):
        """Restart any worker that dies, under its own name, as a container's restart policy would; returns the
        stop function. The restarted worker is a new incarnation: its predecessor's leases lapse."""
        import threading

        stopping = threading.Event()

        def loop() -> None:
            while not stopping.wait(0.2):
                for name, proc in list(self.workers.items()):
                    if proc.poll() is not None and not stopping.is_set():
                        pool, concurrency = self.specs[name]
                        self.start(name, pool, concurrency)
                        self.restarts += 1

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()

        def stop() -> None:
            stopping.set()
            thread.join(60)

        return stop

    def stop_all(self) -> None:
        from conftest import stop_worker

        for proc in self.workers.values():
            stop_worker(proc)
        self.workers.clear()


def make_fault_stack(
    redis,
    db: int,
    database_url: str,
    platform_url: str,
    connections: int = 10,
    platforms: tuple[str, ...] = ("google", "expedia", "airbnb", "fewo_direkt"),
    **extra: str,
) -> FaultStack:
    """Product defaults, except that the sweep runs on every worker as it would in production."""
    from conftest import sync_worker_env

    proxy = CountingProxy(platform_url)
    env = sync_worker_env(redis, db, database_url, proxy.url)
    env.pop("SYNC_RETRY_BASE")  # product defaults: 1 s, 2 s, 4 s
    env.pop("SYNC_REAP_INTERVAL")  # product default: every 15 s
    env.update(extra)
    stack = FaultStack(redis, db, database_url, proxy, env)
    stack.connections = [seed_connection(database_url, platform=platforms[n % len(platforms)], rates_days=3) for n in range(connections)]
    return stack
