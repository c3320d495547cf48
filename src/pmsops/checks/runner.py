"""Run checks with a hard deadline, alone or concurrently.

Every check has its own connect/read timeouts; this is the second fence for what
those cannot cover (a resolver that hangs in ``getaddrinfo``, a library that
retries). Checks run in *daemon* threads: a hung one is reported as failed at its
deadline and abandoned, and cannot keep the process alive at exit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from pmsops import results
from pmsops.results import Result, run_check

GRACE_SECONDS = 0.5
"""How long past its own timeout a check may take before we stop waiting."""


@dataclass
class Job:
    name: str
    fn: Callable[[], Result | list[Result]]
    timeout: float


def _start(job: Job) -> tuple[threading.Thread, list[list[Result]]]:
    box: list[list[Result]] = []
    thread = threading.Thread(target=lambda: box.append(run_check(job.name, job.fn)), name=f"check-{job.name}", daemon=True)
    thread.start()
    return thread, box


def _collect(job: Job, thread: threading.Thread, box: list[list[Result]], deadline: float) -> list[Result]:
    thread.join(max(0.0, deadline - time.monotonic()))
    if box:
        return box[0]
    return [results.fail(job.name, f"no answer within {job.timeout:g} s (check abandoned)", hint="the dependency is black-holed or DNS hangs: check the network path and firewall", duration_ms=job.timeout * 1000)]


def run_bounded(job: Job) -> list[Result]:
    """Run one check; never takes longer than its timeout plus a short grace."""
    thread, box = _start(job)
    return _collect(job, thread, box, time.monotonic() + job.timeout + GRACE_SECONDS)


def run_concurrently(jobs: list[Job]) -> list[list[Result]]:
    """Run all jobs at once; results come back in the order of ``jobs``."""
    started = time.monotonic()
    running = [(job, *_start(job)) for job in jobs]
    return [_collect(job, thread, box, started + job.timeout + GRACE_SECONDS) for job, thread, box in running]
