"""The leases one worker process holds, kept alive on its event loop.

An attempt holds its operation from its claim (:func:`pmsops.sync.logs.claim`) until it writes a result.
The claim's lease lasts ``SYNC_LEASE_SECONDS``; this process renews all of its leases in one statement
every third of that, so a busy or slow attempt keeps its operation while a dead, frozen or cut-off one
loses it within a lease, and the sweeper sends the operation again. Before each platform call an attempt
checks that it still holds its lease: from memory when the last renewal is recent, from the log otherwise
(a worker that was frozen past its lease finds its operation taken, and stops before pushing twice).
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


class Leases:
    """(log id → [attempt, when last confirmed]) for the attempts running in this process."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.held: dict[uuid.UUID, list] = {}
        self.lost: set[uuid.UUID] = set()
        self._renewer: asyncio.Task | None = None

    @property
    def seconds(self) -> float:
        return self.runtime.config.lease_seconds

    def hold(self, claim: Claim) -> None:
        """Called on the loop right after a claim: renew it with the others from now on."""
        self.held[claim.log_id] = [claim.attempt, time.monotonic()]
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever(), name="pmsops-lease-renewer")

    def release(self, claim: Claim | None) -> None:
        if claim is not None:
            self.held.pop(claim.log_id, None)
            self.lost.discard(claim.log_id)

    async def check(self, claim: Claim, conn) -> None:
        """Raise :class:`NotClaimed` unless this attempt still holds its operation (``conn``: the attempt's own connection)."""
        if claim.log_id in self.lost:
            raise NotClaimed("this attempt's lease ran out and the sweeper took the operation: not calling the platform")
        entry = self.held.get(claim.log_id)
        if entry is not None and time.monotonic() - entry[1] < self.seconds / 2:
            return  # confirmed less than half a lease ago: the lease cannot have run out
        checked = time.monotonic()
        if not await logs.lease_held(conn, claim.log_id, claim.attempt):
            self.lost.add(claim.log_id)
            raise NotClaimed("this attempt's lease ran out and the operation was taken: not calling the platform")
        if entry is not None:
            entry[1] = checked

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            if self.held:
                await self._renew_once()

    async def _renew_once(self) -> None:
        snapshot = [(log_id, entry[0]) for log_id, entry in self.held.items()]
        started = time.monotonic()
        config = self.runtime.config
        try:
            pool = await self.runtime.pool()
            async with pool.acquire(timeout=config.preflight_timeout) as conn:
                kept = await logs.renew(conn, snapshot, self.seconds)
        except Exception as exc:  # noqa: BLE001 - the database may be away: the leases run out, the sweeper takes them
            from pmsops.redaction import redact

            log.warning("Could not renew %d sync lease(s): %s", len(snapshot), redact(str(exc) or type(exc).__name__))
            return
        for log_id, attempt in snapshot:
            entry = self.held.get(log_id)
            if entry is None or entry[0] != attempt:
                continue
            if log_id in kept:
                entry[1] = started
            else:
                self.lost.add(log_id)
