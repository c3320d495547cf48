"""The leases one worker process holds, kept alive on its event loop.

An attempt holds its operation from its claim (:func:`pmsops.sync.logs.claim`) until it writes a result.
The claim's lease lasts ``SYNC_LEASE_SECONDS``; this process renews all of its leases in one statement
every third of that (a failed renewal is tried again a second later), so a busy or slow attempt keeps its
operation while a dead, frozen or cut-off one loses it within a lease, and the sweeper sends the operation
again. Before each platform call an attempt makes sure it still holds its lease: from memory when it was
confirmed less than a third of a lease ago, else by extending it in the log (a worker that was frozen past
its lease finds its operation taken, and stops before pushing twice). Entries are per (log, attempt): a
later attempt of the same operation in this process is a different lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from pmsops.sync import logs
from pmsops.sync.errors import NotClaimed
from pmsops.sync.logs import Claim

log = logging.getLogger("pmsops.sync.leases")

Key = tuple[uuid.UUID, int]


class Leases:
    """(log id, attempt) → when this process last confirmed the lease (monotonic), for the attempts running here."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.held: dict[Key, float] = {}
        self.lost: set[Key] = set()
        self._renewer: asyncio.Task | None = None

    @property
    def seconds(self) -> float:
        return self.runtime.config.lease_seconds

    def hold(self, claim: Claim) -> None:
        """Called on the loop right after a claim: renew it with the others from now on."""
        key = (claim.log_id, claim.attempt)
        self.held[key] = time.monotonic()
        self.lost.discard(key)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever(), name="pmsops-lease-renewer")

    def release(self, claim: Claim | None) -> None:
        if claim is not None:
            key = (claim.log_id, claim.attempt)
            self.held.pop(key, None)
            self.lost.discard(key)

    async def check(self, claim: Claim, conn) -> None:
        """Raise :class:`NotClaimed` unless this attempt still holds its operation, with a full lease ahead of the
        call (``conn``: the attempt's own connection)."""
        key = (claim.log_id, claim.attempt)
        if key in self.lost:
            raise NotClaimed("this attempt's lease ran out and the sweeper took the operation: not calling the platform")
        confirmed = self.held.get(key)
        if confirmed is not None and time.monotonic() - confirmed < self.seconds / 3:
            return  # confirmed (claimed or renewed) within a renewal interval: at least two thirds of a lease ahead
        checked = time.monotonic()
        if not await logs.extend_lease(conn, claim.log_id, claim.attempt, self.seconds):
            self.lost.add(key)
            raise NotClaimed("this attempt's lease ran out and the operation was taken: not calling the platform")
        if key in self.held:
            self.held[key] = checked

    async def _renew_forever(self) -> None:
        interval = self.seconds / 3
        while True:
            await asyncio.sleep(interval)
            while self.held and not await self._renew_once():
                await asyncio.sleep(min(1.0, interval))  # the database blinked: try again soon, not a whole interval later

    async def _renew_once(self) -> bool:
        snapshot = list(self.held)
        started = time.monotonic()
        config = self.runtime.config
        try:
            pool = await self.runtime.pool()
            async with pool.acquire(timeout=config.preflight_timeout) as conn:
                kept = await logs.renew(conn, snapshot, self.seconds)
        except Exception as exc:  # noqa: BLE001 - the database may be away: the leases run out, the sweeper takes them
            from pmsops.redaction import redact

            log.warning("Could not renew %d sync lease(s): %s", len(snapshot), redact(str(exc) or type(exc).__name__))
            return False
        for key in snapshot:
            if key not in self.held:
                continue
            if key in kept:
                self.held[key] = started
            else:
                self.lost.add(key)
        return True
