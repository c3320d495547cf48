"""The sync tasks and their one retry loop.

Every attempt runs the operation under one deadline (``CELERY_TIME_LIMIT``; Celery's
hard limit is that plus :data:`~pmsops.sync.config.TIME_LIMIT_GRACE`). A failed
attempt retries through ``self.retry(countdown=…)``, the countdown coming from one
pure function (:func:`pmsops.sync.config.backoff`: 1 s, 2 s, 4 s by default):

- an *error* (platform 5xx, timeout) spends one of ``SYNC_MAX_RETRIES`` retries;
- a *wait* (an open circuit, our rate limiter, a platform 429, the database away)
  spends none: the task waits ``max(Retry-After, backoff)`` and tries again, for at
  most ``SYNC_WAIT_MAX`` seconds in all. A rate-limit wait is the bucket's reservation:
  exactly until this operation's token comes, not a doubling backoff. Nothing can be
  logged without the database, so a 30-s PostgreSQL outage is waited out, not turned
  into a failure.

The retry budget (errors, waits, since when) lives in the log (:func:`pmsops.sync.logs.note_retry`),
so an operation sent again by the sweeper continues the same budget. Each message carries the
attempt number it may claim (``attempt``): a retry's message claims the next attempt, a delivery
of an old message claims nothing. When even the log write fails (database away), the operation's
``due_at`` passes and the sweeper sends it again (the log is the outbox).
"""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from celery import Task, signals
from celery.utils.log import get_task_logger

from pmsops.sync import logs
from pmsops.sync.errors import CircuitOpen, DatabaseUnavailable, NotClaimed, RateLimited, SyncError, TimeLimitExceeded

logger = get_task_logger(__name__)

WAITS = (CircuitOpen, RateLimited, DatabaseUnavailable)
"""Transient errors that do not spend a retry: the platform or the database asked us to wait."""


def _error_text(exc: BaseException) -> str:
    from pmsops.redaction import redact

    return redact(str(exc) or type(exc).__name__)


NOT_WRITTEN = object()
"""What :func:`write_log` returns when the database could not be reached."""


def write_log(fn, *args: Any) -> Any:
    """Best-effort log write from the worker (the database may be the thing that is down): ``fn``'s result, or
    :data:`NOT_WRITTEN`."""
    from pmsops.sync.runtime import get_runtime

    runtime = get_runtime()

    async def write() -> Any:
        pool = await runtime.pool()
        async with pool.acquire(timeout=runtime.config.preflight_timeout) as conn:
            return await fn(conn, *args)

    try:
        return runtime.run(write(), timeout=runtime.config.preflight_timeout + 5)
    except Exception as exc:  # noqa: BLE001 - the log's due time brings the operation back
        logger.warning("Could not update sync log for task %s: %s (the sweeper will re-send it)", args[0] if args else "?", _error_text(exc))
        return NOT_WRITTEN


class SyncTask(Task):
    """Base of every sync task: the retry loop and the failure log."""

    abstract = True
    max_retries = None  # the loop below counts error retries itself (waits are not retries)
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
    operation = ""

    @classmethod
    def on_bound(cls, app) -> None:
        """Celery's ``Task.from_config`` hook: the time limit comes from the app's settings."""
        settings = getattr(app, "sync_settings", None)
        if settings is not None:
            cls.time_limit = settings.hard_time_limit

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        if isinstance(exc, NotClaimed):
            return  # this delivery held nothing: the log belongs to another attempt
        retries = int(getattr(exc, "error_retries", (kwargs or {}).get("_errors", 0)))
        label = getattr(exc, "label", "Sync failed")
        if getattr(exc, "transient", False):
            error = f"{label} after {retries} retries: {_error_text(exc)}"
        else:
            error = f"{label}: {_error_text(exc)}" if isinstance(exc, SyncError) else f"{type(exc).__name__}: {_error_text(exc)}"
        error_type = getattr(exc, "error_type", "internal_error")
        # the error type is in the worker's line too: a task with no log row (unknown connection) is seen only here
        logger.error("Sync task %s failed (%s): %s", task_id, error_type, error)
        details = {"retry_count": retries, "error_type": error_type}
        if (kwargs or {}).get("_pushed") or getattr(exc, "pushed", False):
            details["platform_reached"] = True
        write_log(logs.mark_failed, task_id, error, details, getattr(exc, "attempt", None))


def retry_countdown(settings, exc: SyncError, count: int) -> float:
    """The one countdown rule: a rate-limit wait is the bucket's reservation (``Retry-After`` exactly: the
    token is this operation's then); anything else ``max(Retry-After, backoff(count))``; never above the cap
    (``count`` is the number of earlier errors, or of earlier waits for a wait)."""
    if isinstance(exc, RateLimited) and exc.retry_after:
        return min(exc.retry_after, settings.max_countdown)
    wanted = settings.backoff(count, random.random())
    if exc.retry_after:
        wanted = max(wanted, exc.retry_after)
    return min(wanted, settings.max_countdown)


async def _within(seconds: float, coro):
    """``coro`` under a deadline, in the calling task (``asyncio.wait_for`` would start one more task per sync)."""
    async with asyncio.timeout(seconds):
        return await coro


def execute(task: SyncTask, connection_id: str, state: dict[str, Any]) -> dict[str, Any] | None:
    """Run one operation attempt within the deadline; schedule the next attempt on a transient error."""
    from pmsops.sync.operations import Attempt, run_operation
    from pmsops.sync.runtime import get_runtime

    runtime = get_runtime()
    settings = runtime.config
    attempt = Attempt(
        task_id=task.request.id,
        expected=int(state.get("attempt", 0)),
        worker=worker_identity(task.request.hostname or "", task.app),
        redelivered=bool((task.request.delivery_info or {}).get("redelivered")),
        pushed_before=bool(state.get("_pushed")),
        token_reserved=bool(state.get("_reserved")),
    )
    try:
        return runtime.run(
            _within(settings.time_limit, run_operation(runtime, task.operation, connection_id, attempt)), timeout=settings.time_limit + 5
        )
    except NotClaimed as exc:
        logger.info("Sync task %s: %s", task.request.id, exc)
        return None
    except (asyncio.TimeoutError, FutureTimeout):
        error = TimeLimitExceeded(f"the sync did not finish within CELERY_TIME_LIMIT={settings.time_limit:g} s")
        _tag(error, attempt)
        raise error from None
    except SyncError as exc:
        _tag(exc, attempt)
        if not exc.transient:
            raise
        _retry(task, connection_id, state, attempt, exc)
    except Exception as exc:
        _tag(exc, attempt)  # any failure's log write names its attempt (a late one never fails another attempt's operation)
        raise


def _tag(exc: BaseException, attempt) -> None:
    """What on_failure needs of the attempt: which one it was (its final write is conditioned on it), whether it
    pushed, and the error retries its log had spent."""
    try:
        exc.attempt = attempt.claim.attempt if attempt.claim is not None else None
        exc.pushed = attempt.pushed or attempt.pushed_before
        if attempt.claim is not None and not hasattr(exc, "error_retries"):
            exc.error_retries = attempt.claim.errors
    except AttributeError:  # an exception type without a __dict__: written without an attempt, so only while no lease is live
        pass


def _retry(task: SyncTask, connection_id: str, state: dict[str, Any], attempt, exc: SyncError) -> None:
    """The retry budget from the log (from the message when the attempt could not claim: the database is away),
    the notice in the log, then the next message; raises the retry, or the error once the budget is spent."""
    from pmsops.sync.runtime import get_runtime

    settings = get_runtime().config
    claim = attempt.claim
    if claim is not None:
        errors, waits, since = claim.errors, claim.waits, claim.wait_since
    else:
        errors, waits, since = int(state.get("_errors", 0)), int(state.get("_waits", 0)), state.get("_since")
    waiting = isinstance(exc, WAITS)
    if waiting:
        waits += 1
        since = since or time.time()
    else:
        errors += 1
    if (not waiting and errors > settings.max_retries) or (waiting and time.time() - since > settings.wait_max):
        exc.error_retries = errors - (0 if waiting else 1)
        raise exc
    countdown = retry_countdown(settings, exc, (errors if not waiting else waits) - 1)
    kind = "wait" if waiting else "retry"
    logger.warning(
        "Retrying task %s after error (%s, countdown=%gs, retry=%d/%d): %s",
        task.request.id,
        kind,
        countdown,
        errors,
        settings.max_retries,
        _error_text(exc),
    )
    notice = {
        "retry_count": errors,
        "max_retries": settings.max_retries,  # what "retry n/N" shows: the worker's SYNC_MAX_RETRIES, read, not assumed
        "error_type": exc.error_type,
        "next_retry_seconds": round(countdown, 3),
        "last_error": _error_text(exc),
    }
    if waiting:
        notice["waited_seconds"] = round(time.time() - since, 1)
    if attempt.pushed:
        notice["platform_reached"] = True
    next_state: dict[str, Any] = {"_errors": errors, "_waits": waits, "_since": since, "attempt": attempt.expected}
    if claim is not None:
        due_in = countdown + settings.resend_after
        written = write_log(logs.note_retry, claim.log_id, claim.attempt, notice, errors, waits, since, due_in)
        if written is False:
            return  # a later attempt claimed the operation meanwhile: it is not ours to retry
        if written is NOT_WRITTEN:  # the database is away: the lease stays until it runs out, and only then can the retry claim
            countdown = max(countdown, settings.lease_seconds)
        next_state["attempt"] = claim.attempt
    if attempt.pushed or attempt.pushed_before:
        next_state["_pushed"] = True
    if getattr(exc, "reserved", False):
        next_state["_reserved"] = True  # the countdown ends when this operation's token is due: it is not asked for again
    raise task.retry(args=[connection_id], kwargs=next_state, exc=exc, countdown=countdown)


def worker_identity(hostname: str, app) -> str:
    """``name@host#incarnation``: the lease owner a running log records (a worker restarted under the same name
    is another incarnation)."""
    return f"{hostname}#{getattr(app, 'sync_incarnation', '')}"


def register(app) -> dict[str, Task]:
    """The four sync tasks on ``app`` (names stable: what ``celery registered`` shows)."""
    from pmsops.sync import AVAILABILITY_TASK, BOOKINGS_TASK, FULL_SYNC_TASK, PRICING_TASK

    def operation_task(name: str, operation: str, doc: str):
        def run(self: SyncTask, connection_id: str, **state: Any) -> None:
            # The outcome is the sync log's (results are ignored): returning the details dict only made
            # Celery saferepr it for its INFO line on every task, ~a tenth of a millisecond each.
            execute(self, connection_id, state)

        run.__doc__ = doc
        run.__name__ = name.rsplit(".", 1)[-1]
        return app.task(base=SyncTask, bind=True, name=name, operation=operation, shared=False)(run)

    tasks = {
        "availability": operation_task(AVAILABILITY_TASK, "availability", "Push the property's availability (booked nights closed) to the platform."),
        "pricing": operation_task(PRICING_TASK, "pricing", "Push nightly prices to the platform."),
        "bookings": operation_task(BOOKINGS_TASK, "bookings", "Import the platform's reservations; overlaps are stored as conflicts."),
    }

    @app.task(bind=True, name=FULL_SYNC_TASK, ignore_result=True, acks_late=True, shared=False)
    def full_sync(self, connection_id: str, **_: Any) -> dict[str, Any]:
        """Trigger the three operations under one batch id (for schedules; the API triggers directly)."""
        from pmsops.sync.runtime import get_runtime
        from pmsops.sync.trigger import trigger_sync

        runtime = get_runtime()
        send = lambda name, cid, task_id: app.send_task(name, args=[cid], task_id=task_id)  # noqa: E731

        async def go():
            pool = await runtime.pool()
            async with pool.acquire(timeout=runtime.config.preflight_timeout) as conn:
                return await trigger_sync(conn, connection_id, "full", manual=False, send=send)

        triggered = runtime.run(go(), timeout=60)
        return {"task_ids": triggered.task_ids, "batch_id": triggered.batch_id}

    tasks["full"] = full_sync
    return tasks


@signals.task_revoked.connect
def _revoked(request=None, terminated=None, signum=None, expired=None, **_: Any) -> None:
    """A revoked or terminated sync task must not leave its log open."""
    if request is None or not str(getattr(request, "name", "") or "").startswith("pmsops.sync."):
        return
    reason = "terminated" if terminated else "expired" if expired else "revoked"
    write_log(logs.mark_failed, request.id, f"Task {reason} before it finished", {"error_type": reason})
