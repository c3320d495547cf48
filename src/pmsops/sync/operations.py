"""What each sync operation reads, sends and writes: the domain half of a task.

``run_operation`` is the whole body of a task: database pre-flight (``SELECT 1``,
5 s) → log ``running`` → load the connection (a missing one is ``not_found`` before
any log row is written; one whose property belongs to another agency is
``tenant_mismatch``) → ask the platform through its
adapter (behind the shared circuit breaker and rate limiter) → store what came
back → log ``success``. Errors are :mod:`pmsops.sync.errors`; the task decides
whether they retry.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

from pmsops.sync import limits as platform_limits
from pmsops.sync.adapters import AvailabilityRange, ExternalBooking, NightlyPrice, adapter_for
from pmsops.sync.config import platform_url
from pmsops.sync.errors import DatabaseUnavailable, NotFound, PlatformTimeout, PlatformUnavailable, SyncError, TenantMismatch, ValidationFailed
from pmsops.sync import logs

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError, TimeoutError, ConnectionError)


def _db_connection_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return _CONNECTION_ERRORS + (
        asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.TooManyConnectionsError,
        asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError,
    )


def _connection_id(connection_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(connection_id))
    except ValueError:
        raise ValidationFailed(f"connection id {connection_id!r} is not a UUID") from None


def check_connection(row: dict[str, Any] | None, connection_id: str) -> dict[str, Any]:
    """A connection the task may sync, or the permanent error that says why not.

    ``row`` carries ``property_agency_id`` (see :func:`logs.start_running`): a connection
    whose agency is not its property's agency is refused before any platform call, since
    syncing it would import bookings into, and push prices of, another tenant's property.
    A row without that key is refused too (fail closed)."""
    if row is None:
        raise _not_found(connection_id)
    if row["property_id"] is None:
        raise ValidationFailed(f"channel connection {connection_id} has no property to sync")
    if row.get("property_agency_id") != row["agency_id"]:
        raise TenantMismatch(f"channel connection {connection_id} belongs to another agency than its property {row['property_id']}: "
                             "refusing to sync (no platform call was made)")
    if row["status"] not in ("active", "error"):
        raise ValidationFailed(f"channel connection {connection_id} is {row['status']}: only active connections sync")
    return row


def _not_found(connection_id: str) -> NotFound:
    return NotFound(f"channel connection {connection_id} not found (deleted?)")


def _platform_token(row: dict[str, Any], key: str | None) -> str | None:
    if not row.get("access_token_encrypted"):
        return None
    if not key:
        raise ValidationFailed("ENCRYPTION_KEY is not set in the worker: platform tokens cannot be decrypted")
    return _decrypt_cached(row["access_token_encrypted"], key)


@functools.lru_cache(maxsize=1024)
def _decrypt_cached(ciphertext: str, key: str) -> str:
    """Fernet verification and decryption cost more than the rest of a task's CPU; a
    connection's token changes rarely, and a changed token is a new ciphertext."""
    from pmsops.sync.crypto import decrypt

    return decrypt(ciphertext, key)


def _window(days: int) -> tuple[date, date]:
    start = datetime.now(timezone.utc).date()
    return start, start + timedelta(days=days)


async def availability_ranges(conn, property_id, start: date, end: date) -> list[AvailabilityRange]:
    """Collapse nights into ranges: booked (confirmed) nights are unavailable."""
    booked_rows = await conn.fetch(
        """SELECT check_in, check_out FROM bookings WHERE property_id = $1 AND status = 'confirmed'
           AND stay && daterange($2, $3, '[)')""",
        property_id, start, end,
    )
    stays = {r["night"]: (r["min_stay"], r["max_stay"]) for r in await conn.fetch(
        "SELECT night, min_stay, max_stay FROM nightly_rates WHERE property_id = $1 AND night >= $2 AND night < $3", property_id, start, end)}
    booked: set[date] = set()
    for row in booked_rows:
        night = max(row["check_in"], start)
        while night < min(row["check_out"], end):
            booked.add(night)
            night += timedelta(days=1)
    ranges: list[AvailabilityRange] = []
    night = start
    while night < end:
        key = (night not in booked, *stays.get(night, (None, None)))
        first = night
        while night < end and (night not in booked, *stays.get(night, (None, None))) == key:
            night += timedelta(days=1)
        ranges.append(AvailabilityRange(first, night, key[0], key[1], key[2]))
    return ranges


async def nightly_prices(conn, property_id, start: date, end: date) -> list[NightlyPrice]:
    rows = await conn.fetch(
        "SELECT night, price, currency FROM nightly_rates WHERE property_id = $1 AND night >= $2 AND night < $3 ORDER BY night",
        property_id, start, end,
    )
    return [NightlyPrice(r["night"], str(r["price"]), r["currency"].strip()) for r in rows]


async def import_bookings(conn, property_id, platform: str, bookings: list[ExternalBooking]) -> dict[str, Any]:
    """Upsert by (platform, external id); an overlap with a confirmed booking is stored as a conflict."""
    import asyncpg

    created = updated = unchanged = 0
    conflicts: list[dict[str, Any]] = []
    for booking in bookings:
        status = booking.status if booking.status in ("confirmed", "tentative", "cancelled") else "confirmed"
        args = (property_id, platform, booking.external_id, booking.guest_name, booking.check_in, booking.check_out)
        try:
            async with conn.transaction():
                row = await conn.fetchrow(
                    """INSERT INTO bookings (property_id, platform, external_id, guest_name, check_in, check_out, status)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)
                       ON CONFLICT (platform, external_id) DO UPDATE SET guest_name = EXCLUDED.guest_name,
                           check_in = EXCLUDED.check_in, check_out = EXCLUDED.check_out, status = EXCLUDED.status, updated_at = now()
                       WHERE (bookings.guest_name, bookings.check_in, bookings.check_out, bookings.status)
                             IS DISTINCT FROM (EXCLUDED.guest_name, EXCLUDED.check_in, EXCLUDED.check_out, EXCLUDED.status)
                       RETURNING (xmax = 0) AS inserted""",
                    *args, status,
                )
        except asyncpg.ExclusionViolationError:
            conflicts.append(await _store_conflict(conn, booking, property_id, platform))
            continue
        if row is None:
            unchanged += 1
        elif row["inserted"]:
            created += 1
        else:
            updated += 1
    return {"received": len(bookings), "created": created, "updated": updated, "unchanged": unchanged, "conflicts": conflicts}


async def _store_conflict(conn, booking: ExternalBooking, property_id, platform: str) -> dict[str, Any]:
    """Keep the overlapping booking (status 'conflict') and say which confirmed booking it hits."""
    await conn.execute(
        """INSERT INTO bookings (property_id, platform, external_id, guest_name, check_in, check_out, status)
           VALUES ($1, $2, $3, $4, $5, $6, 'conflict')
           ON CONFLICT (platform, external_id) DO UPDATE SET check_in = EXCLUDED.check_in, check_out = EXCLUDED.check_out,
               status = 'conflict', updated_at = now()""",
        property_id, platform, booking.external_id, booking.guest_name, booking.check_in, booking.check_out,
    )
    existing = await conn.fetchrow(
        """SELECT id, platform, external_id FROM bookings WHERE property_id = $1 AND status = 'confirmed'
           AND stay && daterange($2, $3, '[)') LIMIT 1""",
        property_id, booking.check_in, booking.check_out,
    )
    return {
        "external_id": booking.external_id, "check_in": booking.check_in.isoformat(), "check_out": booking.check_out.isoformat(),
        "overlaps_booking_id": str(existing["id"]) if existing else None,
        "overlaps": f"{existing['platform'] or 'direct'}:{existing['external_id']}" if existing and existing["external_id"] else None,
    }


CURSOR_OVERLAP = timedelta(minutes=10)
"""Fetch a little before the last fetch began: imports are idempotent, clocks drift."""


def bookings_cursor(row: dict[str, Any]) -> datetime | None:
    """Where the next bookings pull starts: set only by bookings pulls, at fetch start.

    Not ``last_sync_at``: a pricing push finishing after a pull would move that
    forward, and the next pull would skip the bookings made in between."""
    meta = row.get("platform_metadata") or {}
    if isinstance(meta, str):
        import json

        meta = json.loads(meta)
    value = meta.get("bookings_cursor") if isinstance(meta, dict) else None
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


async def save_bookings_cursor(conn, connection_id, when: datetime) -> None:
    await conn.execute(
        "UPDATE channel_connections SET platform_metadata = platform_metadata || jsonb_build_object('bookings_cursor', $2::text) WHERE id = $1",
        connection_id, when.isoformat(),
    )


async def _call_platform(runtime, platform: str, account: str, call):
    """One adapter call behind the circuit breaker and the rate limiter."""
    redis = await runtime.redis() if runtime.config.rate_limits_enabled else None
    admitted = await _best_effort(platform_limits.admit(redis, platform, account)) if redis is not None else None
    try:
        result = await call()
    except (PlatformUnavailable, PlatformTimeout):
        if redis is not None:
            await _best_effort(platform_limits.record(redis, platform, success=False))
        raise
    if admitted is not None and admitted.needs_success_record:
        await _best_effort(platform_limits.record(redis, platform, success=True))
    return result


async def _best_effort(step):
    """Limits and breakers are protection, not the job: with Redis away, sync without them
    (a push that succeeded must not be logged as failed because its bookkeeping failed)."""
    import logging

    import redis.exceptions

    try:
        return await step
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        logging.getLogger("pmsops.sync").warning("Rate limit/circuit state unavailable (%s): continuing without it", type(exc).__name__)
        return None


async def run_operation(runtime, operation: str, connection_id: str, task_id: str, retries: int, redelivered: bool = False) -> dict[str, Any]:
    """The body of a sync task; returns the details stored with ``success``."""
    config = runtime.config
    started = time.perf_counter()
    cid = _connection_id(connection_id)
    pool = await runtime.pool()
    try:
        async with pool.acquire(timeout=config.preflight_timeout) as conn:
            await conn.fetchval("SELECT 1", timeout=config.preflight_timeout)  # the pre-flight, on the connection we then use
            running: dict[str, Any] = {"retry_count": retries}
            if redelivered:
                running["redelivered"] = True
            row, found = await logs.start_running(conn, task_id, cid, running)
            if row is None:
                # Before any adoption: a log row must reference an existing connection (foreign
                # key), so an unknown one ends here as not_found, with no row written or left open.
                raise _not_found(connection_id)
            if not found and await logs.get_by_task(conn, task_id) is None:
                await _adopt_orphan_task(conn, operation, row, task_id, retries)
            row = check_connection(row, connection_id)
            platform = row["platform_type"]
            adapter = adapter_for(platform, platform_url(platform), _platform_token(row, config.encryption_key), await runtime.http(), config.platform_timeout)
            details = await _perform(runtime, conn, operation, row, adapter, str(row["id"]))
            details.update({"retry_count": retries, "platform": platform, "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
            await logs.finish_success(conn, task_id, cid, details)
            return details
    except SyncError:
        raise
    except _db_connection_errors() as exc:
        # After a database restart every pooled connection is dead: drop them all, or the
        # next retries would each draw another dead one and fail without trying the server.
        await pool.expire_connections()
        raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}".strip()) from None


async def _adopt_orphan_task(conn, operation: str, connection: dict[str, Any], task_id: str, retries: int) -> None:
    """A task enqueued without a trigger (e.g. by hand) for an existing connection still gets
    its log row, so that a later refusal (paused, tenant mismatch) is logged like any other."""
    from pmsops.sync import OPERATIONS

    op = OPERATIONS[operation]
    await logs.create_log(conn, connection_id=connection["id"], operation_type=op.operation_type, direction=op.direction,
                          status="running", task_id=task_id, tenant_id=connection["agency_id"],
                          details={"retry_count": retries, "manual_trigger": False, "platform": connection["platform_type"],
                                   "property_id": str(connection["property_id"]) if connection["property_id"] else None})


async def _perform(runtime, conn, operation: str, row: dict[str, Any], adapter, account: str) -> dict[str, Any]:
    start, end = _window(runtime.config.window_days)
    listing, platform = row["platform_listing_id"], row["platform_type"]
    if operation == "availability":
        ranges = await availability_ranges(conn, row["property_id"], start, end)
        await _call_platform(runtime, platform, account, lambda: adapter.push_availability(listing, ranges))
        return {"start_date": start.isoformat(), "end_date": end.isoformat(), "ranges": len(ranges),
                "unavailable_nights": sum((r.end - r.start).days for r in ranges if not r.available)}
    if operation == "pricing":
        prices = await nightly_prices(conn, row["property_id"], start, end)
        await _call_platform(runtime, platform, account, lambda: adapter.push_prices(listing, prices))
        return {"start_date": start.isoformat(), "end_date": end.isoformat(), "nights": len(prices)}
    if operation == "bookings":
        since = bookings_cursor(row) or datetime.now(timezone.utc) - timedelta(days=30)
        fetch_started = datetime.now(timezone.utc)
        bookings = await _call_platform(runtime, platform, account, lambda: adapter.fetch_bookings(listing, since))
        result = await import_bookings(conn, row["property_id"], platform, bookings)
        await save_bookings_cursor(conn, row["id"], fetch_started - CURSOR_OVERLAP)
        result["since"] = since.isoformat()
        return result
    raise ValidationFailed(f"unknown operation {operation!r}")
