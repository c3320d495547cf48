"""Seed data and helpers for the sync-library tests (real PostgreSQL, real Celery)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import date, timedelta
from typing import Any

from conftest import ENCRYPTION_KEY


def run(database_url: str, fn):
    from pmsops.sync.maintenance import with_connection

    return with_connection(database_url, fn)


def seed_connection(database_url: str, platform: str = "airbnb", token: str | None = "platform-token-123", status: str = "active",
                    bookings: list[tuple[int, int]] | None = None, rates_days: int = 10) -> dict[str, Any]:
    """An agency, a property with rates and bookings, and one channel connection; returns the ids."""
    from pmsops.sync.crypto import encrypt

    agency, prop, conn_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    listing = f"L-{conn_id.hex[:8]}"
    today = date.today()

    async def go(conn):
        await conn.execute("INSERT INTO agencies (id, name) VALUES ($1, 'Test agency')", agency)
        await conn.execute("INSERT INTO properties (id, agency_id, name) VALUES ($1, $2, 'Seaside flat')", prop, agency)
        for offset in range(rates_days):
            await conn.execute("INSERT INTO nightly_rates (property_id, night, price, min_stay) VALUES ($1, $2, $3, 2)", prop, today + timedelta(days=offset), 100 + offset)
        for start, nights in bookings or []:
            await conn.execute("INSERT INTO bookings (property_id, platform, external_id, check_in, check_out) VALUES ($1, 'direct', $2, $3, $4)",
                               prop, f"D-{uuid.uuid4().hex[:6]}", today + timedelta(days=start), today + timedelta(days=start + nights))
        await conn.execute(
            """INSERT INTO channel_connections (id, agency_id, property_id, platform_type, platform_listing_id, status, access_token_encrypted)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            conn_id, agency, prop, platform, listing, status, encrypt(token, ENCRYPTION_KEY) if token else None,
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
    deadline = time.monotonic() + timeout
    while True:
        rows = logs_for(database_url, task_ids)
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
