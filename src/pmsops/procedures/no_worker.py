"""Whether anyone will ever run a triggered sync: the early verdict ``smoke`` and ``sync trigger --wait`` share.

Logs that stay ``triggered`` mean the task sits on the broker. Waiting out ``--wait`` (60 s, 600 s) to then say
"not final" tells the operator nothing they could not see at once: after :data:`UNTOUCHED_SECONDS` the probe asks
the broker once whether any worker answers a ping, and a silence ends the wait with the worker named.
"""

from __future__ import annotations

from typing import Any

from pmsops import results
from pmsops.results import Result, Status

UNTOUCHED_SECONDS = 8.0
"""Logs still 'triggered' after this long: ask the broker whether any worker listens (a verdict in seconds, not after --wait)."""
NO_WORKER_HINT = "start pms-worker (docker ps | grep worker; pmsops host logs pms-worker-v2) and check it uses this broker (pmsops celery ping)"


class NoWorkerProbe:
    """``give_up`` for :func:`pmsops.synclogs.wait_until_final`: true once the broker says no worker listens."""

    def __init__(self, broker_url: str | None, timeout: float) -> None:
        self.broker_url, self.timeout = broker_url, timeout
        self.pinged = False
        self.no_worker = False

    def __call__(self, found: list[dict[str, Any]], waited: float) -> bool:
        if waited < UNTOUCHED_SECONDS or self.pinged or not self.broker_url or any(m.get("status") not in ("triggered", "queued") for m in found):
            return False
        from pmsops.checks.celery import ping

        self.pinged = True
        answer = ping(self.broker_url, min(3.0, self.timeout))
        self.no_worker = answer.status is Status.FAIL and not answer.details.get("workers")
        return self.no_worker

    def verdict(self, name: str, found: list[dict[str, Any]]) -> Result | None:
        """The failed result when the probe found no worker; ``None`` otherwise."""
        if not self.no_worker:
            return None
        from pmsops.synclogs import describe_log

        return results.fail(
            name,
            f"no worker: the logs stayed 'triggered' for {UNTOUCHED_SECONDS:g} s and no worker answers a ping on the broker",
            notes=[describe_log(m) for m in found],
            hint=NO_WORKER_HINT,
            details={"logs": [{k: m.get(k) for k in ("id", "task_id", "operation_type", "status")} for m in found]},
        )
