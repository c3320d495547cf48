"""The sweeper: every open operation either progresses or is sent again, from its log alone.

Each worker runs :func:`sweep_once` every ``SYNC_REAP_INTERVAL`` seconds (the :class:`~pmsops.sync.worker.Sweeper`
bootstep). It is one statement (:func:`pmsops.sync.logs.take_due`) over the logs whose ``due_at`` passed:

=================================================  ==============================================
open log whose ``due_at`` passed                   action
=================================================  ==============================================
``running`` with a lease that ran out              sent again (the worker died, froze or lost the
(no renewal for ``SYNC_LEASE_SECONDS``)            database; a lost attempt is counted)
a retry whose countdown ended ``SYNC_RESEND_AFTER`` sent again (its message was lost, or its
ago, not claimed since                             holder died)
``triggered`` ``SYNC_RESEND_AFTER`` after it was   sent again (its message was lost; a copy that
created or last sent, not claimed                  is still queued claims nothing)
``SYNC_MAX_RESENDS`` lost attempts, or open for    ``failed``, saying why (a message that kills its
the stale window                                   worker is not sent forever)
=================================================  ==============================================

A message sent again carries the attempt it may claim, so whichever delivery comes first runs and any
other claims nothing (:func:`pmsops.sync.logs.claim`). ``SKIP LOCKED`` lets any number of workers sweep
at once; a log taken is due again only after ``SYNC_RESEND_AFTER`` × 2^resends. Nothing here reads the
broker: who holds an operation is the log's to say.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from pmsops.sync import logs

log = logging.getLogger("pmsops.sync.sweeper")

Send = Callable[[str, str, str, int], None]
"""``send(task name, connection id, task id, attempt)``: enqueue the operation's message (synchronous)."""


@dataclass
class SweepReport:
    resent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unsent: list[str] = field(default_factory=list)


def task_for(operation_type: str) -> str | None:
    from pmsops.sync import OPERATIONS

    for op in OPERATIONS.values():
        if op.operation_type == operation_type:
            return op.task
    return None


def sweep_once(runtime, send: Send) -> SweepReport:
    """Take the due operations (on the runtime's loop), then send their messages from the calling thread
    (a broker call never blocks the loop every task's database I/O runs on)."""
    settings = runtime.config

    async def take() -> list[logs.Due]:
        pool = await runtime.pool()
        async with pool.acquire(timeout=settings.preflight_timeout) as conn:
            return await logs.take_due(conn, settings.resend_after, settings.max_resends, settings.stale_seconds)

    report = SweepReport()
    broker_down = False
    for due in runtime.run(take(), timeout=settings.preflight_timeout + 30):
        name = due.task_id or str(due.log_id)
        if due.status == "failed":
            report.failed.append(name)
            continue
        task = task_for(due.operation_type)
        if task is None or due.task_id is None or broker_down:
            report.unsent.append(name)  # due again later (nothing can run it: failed at the stale window); or the broker is away
            continue
        try:
            send(task, str(due.connection_id), due.task_id, due.attempt)
            report.resent.append(name)
        except Exception as exc:  # noqa: BLE001 - the broker is away: the rest are due again after SYNC_RESEND_AFTER
            from pmsops.redaction import redact

            log.warning("Could not send sync operation %s again: %s", name, redact(str(exc) or type(exc).__name__))
            report.unsent.append(name)
            broker_down = True
    return report
