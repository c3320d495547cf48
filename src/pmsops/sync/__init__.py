"""The sync library: what the channel manager's worker executes.

Celery tasks push availability and prices to platforms and pull bookings from
them, through one adapter interface, with one retry loop (errors back off 1 s,
2 s, 4 s; waits for an open breaker, a 429 or the database spend no retry), a
sync-log row per operation in PostgreSQL that is the one home of its state (claims,
leases, the retry budget, the due time: an operation nothing moved by its due time
is sent again), Redis-backed rate limits and circuit breakers shared by all
workers, and a sweeper so that no log stays open.

Modules: ``config`` (settings, backoff, invariants) · ``worker`` (app factory,
sweeper bootstep) · ``tasks`` (the retry loop) · ``operations`` (one attempt,
the table of handlers) · ``store`` (their SQL) · ``logs`` (the sync-log store) ·
``leases`` (renewal) · ``sweeper`` (re-send, fail) · ``trigger`` · ``limits`` · ``broker``
(kombu's Redis transport, reconnect fixed) · ``runtime`` (per-process loop and
clients) · ``maintenance`` (operator commands) · ``adapters``.

Task names (stable; what ``celery registered`` shows)::

    pmsops.sync.availability_push   availability_update  outbound
    pmsops.sync.pricing_push        pricing_update       outbound
    pmsops.sync.bookings_pull       bookings_sync        inbound
    pmsops.sync.full_sync           the three above under one batch_id

The Celery app is ``pmsops.sync.worker:celery_app``.
"""

from __future__ import annotations

AVAILABILITY_TASK = "pmsops.sync.availability_push"
PRICING_TASK = "pmsops.sync.pricing_push"
BOOKINGS_TASK = "pmsops.sync.bookings_pull"
FULL_SYNC_TASK = "pmsops.sync.full_sync"
TASK_NAMES = (AVAILABILITY_TASK, PRICING_TASK, BOOKINGS_TASK, FULL_SYNC_TASK)

SYNC_TYPES = ("full", "availability", "pricing", "bookings")
PLATFORMS = ("airbnb", "booking_com", "expedia", "fewo_direkt", "google")
from pmsops.synclogs import FINAL_STATUSES, OPEN_STATUSES  # noqa: E402,F401 - the contract's statuses, one home


class Operation:
    """One sync operation: its log's operation type and direction, and its task."""

    def __init__(self, operation_type: str, direction: str, task: str) -> None:
        self.operation_type, self.direction, self.task = operation_type, direction, task


OPERATIONS = {
    "availability": Operation("availability_update", "outbound", AVAILABILITY_TASK),
    "pricing": Operation("pricing_update", "outbound", PRICING_TASK),
    "bookings": Operation("bookings_sync", "inbound", BOOKINGS_TASK),
}


def operations_for(sync_type: str) -> list[Operation]:
    """The operations one trigger creates: full is all three, under one batch."""
    if sync_type == "full":
        return list(OPERATIONS.values())
    return [OPERATIONS[sync_type]]
