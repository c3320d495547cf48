"""The sync tasks, with Celery's own retry machinery.

``autoretry_for=(TransientSyncError,)``, ``retry_backoff=1`` and ``max_retries=3``
give delays of 1 s, 2 s, 4 s (``SYNC_RETRY_BASE``, ``SYNC_MAX_RETRIES``; jitter off
unless ``SYNC_RETRY_JITTER=true``). A 429 or an open circuit retries through
``Task.retry`` with ``countdown = max(Retry-After, backoff)``. The base class
writes the log on every outcome: ``on_retry`` records ``running`` with
``retry_count``, ``error_type`` and ``next_retry_seconds``; ``on_failure`` records
``failed`` ("… after 3 retries: <last error>"). Worker signals and the reaper
catch what no handler sees (a killed worker, a revoked task).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from celery import Task, signals
from celery.utils.log import get_task_logger

from pmsops.sync import AVAILABILITY_TASK, BOOKINGS_TASK, FULL_SYNC_TASK, PRICING_TASK, logs
from pmsops.sync.config import MAX_RETRIES, RETRY_BACKOFF_MAX, RETRY_BASE_SECONDS, RETRY_JITTER
from pmsops.sync.errors import CircuitOpen, RateLimited, SyncError, TimeLimitExceeded, TransientSyncError
from pmsops.sync.worker import TIME_LIMIT, celery_app

logger = get_task_logger(__name__)


def backoff(retries: int) -> float:
    """The delay before retry number ``retries + 1``: base × 2^retries (1, 2, 4 s)."""
    return min(RETRY_BASE_SECONDS * (2**retries), RETRY_BACKOFF_MAX)


def _error_text(exc: BaseException) -> str:
    from pmsops.redaction import redact

    return redact(str(exc) or type(exc).__name__)


def _write(fn, *args: Any) -> None:
    """Best-effort log write from a handler: the database may be the thing that is down."""
    from pmsops.sync.runtime import get_runtime

    runtime = get_runtime()

    async def write() -> None:
        pool = await runtime.pool()
        async with pool.acquire(timeout=runtime.config.preflight_timeout) as conn:
            await fn(conn, *args)

    try:
        runtime.run(write(), timeout=runtime.config.preflight_timeout + 5)
    except Exception as exc:  # noqa: BLE001 - the reaper will settle this log later
        logger.warning("Could not update sync log for task %s: %s (the reaper will mark it)", args[0] if args else "?", _error_text(exc))


class SyncTask(Task):
    """Base of every sync task: retry policy and log bookkeeping."""

    abstract = True
    autoretry_for = (TransientSyncError,)
    retry_backoff = max(1, int(RETRY_BASE_SECONDS))
    retry_backoff_max = int(RETRY_BACKOFF_MAX)
    retry_jitter = RETRY_JITTER
    max_retries = MAX_RETRIES
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
    operation = ""

    def on_retry(self, exc, task_id, args, kwargs, einfo) -> None:
        raised = getattr(einfo, "exception", None)
        reason = getattr(raised, "exc", raised)  # billiard wraps the Retry in ExceptionWithTraceback
        when = getattr(reason, "when", None)
        countdown = float(when) if isinstance(when, (int, float)) else backoff(self.request.retries)
        retry_count = self.request.retries + 1
        error_type = getattr(exc, "error_type", type(exc).__name__)
        logger.warning("Retrying task %s after error (countdown=%gs, retry=%d/%d): %s", task_id, countdown, retry_count, self.max_retries, _error_text(exc))
        _write(logs.mark_running, task_id, {"retry_count": retry_count, "error_type": error_type, "next_retry_seconds": countdown, "last_error": _error_text(exc)})

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        retries = self.request.retries
        label = getattr(exc, "label", "Sync failed")
        if getattr(exc, "transient", False) and retries >= self.max_retries:
            error = f"{label} after {retries} retries: {_error_text(exc)}"
        else:
            error = f"{label}: {_error_text(exc)}" if isinstance(exc, SyncError) else f"{type(exc).__name__}: {_error_text(exc)}"
        error_type = getattr(exc, "error_type", "internal_error")
        # the error type is in the worker's line too: a task with no log row (unknown connection) is seen only here
        logger.error("Sync task %s failed (%s): %s", task_id, error_type, error)
        _write(logs.mark_failed, task_id, error, {"retry_count": retries, "error_type": error_type})


def execute(task: SyncTask, connection_id: str) -> dict[str, Any]:
    """Run one operation on the process runtime within the time limit."""
    from pmsops.sync.operations import run_operation
    from pmsops.sync.runtime import get_runtime

    runtime = get_runtime()
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    limit = runtime.config.time_limit or TIME_LIMIT
    try:
        return runtime.run(asyncio.wait_for(run_operation(runtime, task.operation, connection_id, task.request.id, task.request.retries, redelivered), limit), timeout=limit + 5)
    except (RateLimited, CircuitOpen) as exc:
        if exc.retry_after:
            # capped: a countdown beyond the broker's visibility timeout would run the task twice
            raise task.retry(exc=exc, countdown=min(max(exc.retry_after, backoff(task.request.retries)), RETRY_BACKOFF_MAX))
        raise
    except (asyncio.TimeoutError, FutureTimeout):
        raise TimeLimitExceeded(f"the sync did not finish within CELERY_TIME_LIMIT={limit:g} s") from None


@celery_app.task(base=SyncTask, bind=True, name=AVAILABILITY_TASK, operation="availability")
def availability_push(self: SyncTask, connection_id: str, **_: Any) -> dict[str, Any]:
    """Push the property's availability (booked nights closed) to the platform."""
    return execute(self, connection_id)


@celery_app.task(base=SyncTask, bind=True, name=PRICING_TASK, operation="pricing")
def pricing_push(self: SyncTask, connection_id: str, **_: Any) -> dict[str, Any]:
    """Push nightly prices to the platform."""
    return execute(self, connection_id)


@celery_app.task(base=SyncTask, bind=True, name=BOOKINGS_TASK, operation="bookings")
def bookings_pull(self: SyncTask, connection_id: str, **_: Any) -> dict[str, Any]:
    """Import the platform's reservations; overlaps are stored as conflicts."""
    return execute(self, connection_id)


@celery_app.task(bind=True, name=FULL_SYNC_TASK, ignore_result=True, acks_late=True)
def full_sync(self, connection_id: str, **_: Any) -> dict[str, Any]:
    """Trigger the three operations under one batch id (for schedules; the API triggers directly)."""
    from pmsops.sync.runtime import get_runtime
    from pmsops.sync.trigger import trigger_sync

    runtime = get_runtime()

    async def go():
        pool = await runtime.pool()
        async with pool.acquire(timeout=runtime.config.preflight_timeout) as conn:
            return await trigger_sync(conn, connection_id, "full", manual=False)

    triggered = runtime.run(go(), timeout=60)
    return {"task_ids": triggered.task_ids, "batch_id": triggered.batch_id}


@signals.task_revoked.connect
def _revoked(request=None, terminated=None, signum=None, expired=None, **_: Any) -> None:
    """A revoked or terminated sync task must not leave its log open."""
    if request is None or not str(getattr(request, "name", "") or "").startswith("pmsops.sync."):
        return
    reason = "terminated" if terminated else "expired" if expired else "revoked"
    _write(logs.mark_failed, request.id, f"Task {reason} before it finished", {"error_type": reason})
