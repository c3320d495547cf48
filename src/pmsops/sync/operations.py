"""How a sync operation runs: the orchestration half of a task (the SQL is :mod:`pmsops.sync.store`).

``run_operation`` is the whole body of one attempt: claim the operation in its log (the database
pre-flight: the first statement, with the pre-flight's 5-s timeout; see :func:`pmsops.sync.logs.claim`)
and load the connection (a missing one is ``not_found`` before any log row is written; one whose
property belongs to another agency is ``tenant_mismatch``) → the operation's handler from
:data:`HANDLERS` asks the platform through its adapter (behind the shared circuit breaker and rate
limiter, and only while this attempt still holds its lease) and stores what came back → log
``success``, conditioned on the attempt.

At-least-once delivery, at-most-one attempt: a delivery that claims nothing (the log is final,
another attempt holds it, or the message was for an earlier attempt) does nothing but count itself
in the log's ``duplicate_deliveries``. An attempt after one that reached the platform but could not
record it is marked ``duplicate_push``. Errors are :mod:`pmsops.sync.errors`; the task decides
whether they retry.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from pmsops.sync import limits as platform_limits
from pmsops.sync import logs, store
from pmsops.sync.logs import Claim
from pmsops.sync.adapters import adapter_for
from pmsops.sync.errors import (
    DatabaseUnavailable,
    NotClaimed,
    NotFound,
    PlatformTimeout,
    PlatformUnavailable,
    SyncError,
    TenantMismatch,
    ValidationFailed,
)


@dataclass
class Attempt:
    """One attempt of one operation: what its message says, then what its claim took."""

    task_id: str
    expected: int = 0  # the attempt number the message may claim from (the log's ``attempt`` when it was sent)
    worker: str = ""
    redelivered: bool = False
    pushed_before: bool = False
    pushed: bool = False  # set once the platform accepted this attempt's call
    token_reserved: bool = False  # the rate limiter reserved this operation's token for now (the retry's countdown)
    claim: Claim | None = None  # set by run_operation once the log is claimed
    conn: Any = None  # the attempt's database connection (its lease is checked on it)


def _connection_id(connection_id: str) -> uuid.UUID:
    from pmsops.sync.trigger import connection_uuid

    return connection_uuid(connection_id)


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
        raise TenantMismatch(
            f"channel connection {connection_id} belongs to another agency than its property {row['property_id']}: "
            "refusing to sync (no platform call was made)"
        )
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


async def _call_platform(runtime, platform: str, account: str, call, attempt: Attempt | None = None):
    """One adapter call behind the circuit breaker and the rate limiter, while this attempt holds its lease."""
    if attempt is not None and attempt.claim is not None:
        await runtime.leases.check(attempt.claim, attempt.conn)
    redis = await runtime.redis() if runtime.config.rate_limits_enabled else None
    reserved = attempt is not None and attempt.token_reserved
    config = runtime.config
    admit = (
        platform_limits.admit(redis, platform, account, config.platform_timeout + 5, reserved=reserved, horizon=config.max_countdown)
        if redis is not None
        else None
    )
    admitted = await _best_effort(admit) if admit is not None else None
    try:
        result = await call()
    except (PlatformUnavailable, PlatformTimeout):
        if redis is not None:
            await _best_effort(platform_limits.record(redis, platform, success=False))
        raise
    except BaseException:
        if admitted is not None and admitted.probe:
            await _best_effort(platform_limits.release_probe(redis, platform))
        raise
    if attempt is not None:
        attempt.pushed = True
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


async def run_operation(runtime, operation: str, connection_id: str, attempt: Attempt) -> dict[str, Any]:
    """One attempt of a sync task; returns the details stored with ``success``."""
    from pmsops.database import classify

    config = runtime.config
    started = time.perf_counter()
    cid = _connection_id(connection_id)
    pool = None
    try:
        pool = await runtime.pool()
        async with pool.acquire(timeout=config.preflight_timeout) as conn:
            attempt.conn = conn
            row = await _claim(runtime, conn, operation, cid, connection_id, attempt)
            try:
                return await _attempt(runtime, conn, operation, cid, connection_id, row, attempt, started)
            finally:
                runtime.leases.release(attempt.claim)
    except SyncError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified by the one mapping; anything else propagates
        failure = classify(exc)
        if failure is None:
            raise
        if pool is not None:
            # After a database restart every pooled connection is dead: drop them all, or the
            # next retries would each draw another dead one and fail without trying the server.
            await pool.expire_connections()
        raise DatabaseUnavailable(f"{failure.kind}: {type(exc).__name__}: {exc}".strip()) from None


async def _claim(runtime, conn, operation: str, cid, connection_id: str, attempt: Attempt) -> dict[str, Any]:
    """Claim the operation (the pre-flight: this first statement, under the pre-flight's timeout, fails as
    database_unavailable when the database does not answer) and hold its lease; the connection's row."""
    config = runtime.config
    running: dict[str, Any] = {}
    if attempt.redelivered:
        running["redelivered"] = True
    window = store.window(config.window_days)
    preload = store.PRELOADS.get(operation, "")
    row, claimed = await logs.claim(
        conn,
        attempt.task_id,
        cid,
        attempt.expected,
        attempt.worker,
        config.lease_seconds,
        running,
        timeout=config.preflight_timeout,
        preload=preload,
        preload_args=window if preload else (),
    )
    if row is None:
        # Before any adoption: a log row must reference an existing connection (foreign key), so an unknown
        # one ends here as not_found (a claimed log is then failed by the task), with no row written or left open.
        attempt.claim = claimed
        raise _not_found(connection_id)
    if claimed is None:
        log = await logs.get_by_task(conn, attempt.task_id)
        if log is not None:  # final, held by another attempt, or this message was for an earlier attempt
            await logs.record_duplicate_delivery(conn, attempt.task_id)
            raise NotClaimed(f"the operation is {log['status']}: this delivery claimed nothing")
        claimed = await _adopt_orphan_task(runtime, conn, operation, row, attempt)
    attempt.claim = claimed
    attempt.pushed_before = attempt.pushed_before or claimed.pushed_before
    runtime.leases.hold(claimed)
    row["window"] = window
    return row


async def _attempt(runtime, conn, operation: str, cid, connection_id: str, row: dict[str, Any], attempt: Attempt, started: float) -> dict[str, Any]:
    """The claimed attempt: the handler's platform call and its data, then ``success`` if this attempt still holds the operation."""
    config = runtime.config
    row = check_connection(row, connection_id)
    platform = row["platform_type"]
    adapter = adapter_for(
        platform,
        config.platform_url(platform),
        _platform_token(row, config.encryption_key),
        await runtime.http(),
        config.platform_timeout,
        idempotency_key=attempt.task_id,
    )
    handler = HANDLERS.get(operation)
    if handler is None:
        raise ValidationFailed(f"unknown operation {operation!r}")
    details = await handler(runtime, conn, row, adapter, attempt)
    assert attempt.claim is not None
    details.update({"retry_count": attempt.claim.errors, "platform": platform, "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
    if attempt.pushed_before:
        details["duplicate_push"] = True  # an earlier attempt reached the platform but could not record it
    if not await logs.finish_success(conn, attempt.claim.log_id, attempt.claim.attempt, cid, details):
        if attempt.pushed:  # a later attempt claimed the operation while this one pushed: both may have reached the platform
            await logs.record_duplicate_delivery(conn, attempt.task_id, "duplicate_pushes")
        raise NotClaimed("a later attempt claimed the operation: this attempt's result is not written")
    return details


async def _adopt_orphan_task(runtime, conn, operation: str, connection: dict[str, Any], attempt: Attempt) -> Claim:
    """A task enqueued without a trigger (e.g. by hand) for an existing connection still gets
    its log row, claimed by this attempt, so that a later refusal (paused, tenant mismatch) is logged like any other."""
    from pmsops.sync import OPERATIONS

    op = OPERATIONS[operation]
    log = await logs.create_log(
        conn,
        connection_id=connection["id"],
        operation_type=op.operation_type,
        direction=op.direction,
        status="triggered",
        task_id=attempt.task_id,
        tenant_id=connection["agency_id"],
        details={
            "manual_trigger": False,
            "platform": connection["platform_type"],
            "property_id": str(connection["property_id"]) if connection["property_id"] else None,
        },
    )
    _, claimed = await logs.claim(conn, attempt.task_id, connection["id"], 0, attempt.worker, runtime.config.lease_seconds, {})
    if claimed is None:
        raise NotClaimed(f"log {log['id']} was claimed by another delivery of the same task")
    return claimed


async def _availability(runtime, conn, row: dict[str, Any], adapter, attempt: Attempt) -> dict[str, Any]:
    start, end = row.get("window") or store.window(runtime.config.window_days)
    if "pre_booked_in" in row:  # read with the log's start (store.PRELOADS)
        ranges = store.preloaded_ranges(row, start, end)
    else:
        ranges = await store.availability_ranges(conn, row["property_id"], start, end)
    push = lambda: adapter.push_availability(row["platform_listing_id"], ranges)  # noqa: E731
    await _call_platform(runtime, row["platform_type"], str(row["id"]), push, attempt)
    return {
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "ranges": len(ranges),
        "unavailable_nights": sum((r.end - r.start).days for r in ranges if not r.available),
    }


async def _pricing(runtime, conn, row: dict[str, Any], adapter, attempt: Attempt) -> dict[str, Any]:
    start, end = row.get("window") or store.window(runtime.config.window_days)
    if "pre_prices" in row:  # read with the log's start (store.PRELOADS)
        prices = store.preloaded_prices(row)
    else:
        prices = await store.nightly_prices(conn, row["property_id"], start, end)
    await _call_platform(runtime, row["platform_type"], str(row["id"]), lambda: adapter.push_prices(row["platform_listing_id"], prices), attempt)
    return {"start_date": start.isoformat(), "end_date": end.isoformat(), "nights": len(prices)}


async def _bookings(runtime, conn, row: dict[str, Any], adapter, attempt: Attempt) -> dict[str, Any]:
    since = store.bookings_cursor(row) or datetime.now(timezone.utc) - timedelta(days=30)
    fetch_started = datetime.now(timezone.utc)
    bookings = await _call_platform(runtime, row["platform_type"], str(row["id"]), lambda: adapter.fetch_bookings(row["platform_listing_id"], since))
    result = await store.import_bookings(conn, row["property_id"], row["platform_type"], bookings)
    await store.save_bookings_cursor(conn, row["id"], fetch_started - store.CURSOR_OVERLAP)
    result["since"] = since.isoformat()
    return result


Handler = Callable[..., Awaitable[dict[str, Any]]]
HANDLERS: dict[str, Handler] = {"availability": _availability, "pricing": _pricing, "bookings": _bookings}
"""Operation name (:data:`pmsops.sync.OPERATIONS`) → what it does; pulls are idempotent, so only pushes mark ``pushed``."""
