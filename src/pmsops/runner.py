"""Run checks with a hard deadline, alone or concurrently.

Every check has its own connect/read timeouts; this is the second fence for what
those cannot cover (a resolver that hangs in ``getaddrinfo``, a library that
retries). Checks run in *daemon* threads: a hung one is reported as failed at its
deadline and abandoned, and cannot keep the process alive at exit.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

from pmsops import results
from pmsops.results import Collector, Result, run_check

GRACE_SECONDS = 0.5
"""How long past its own timeout a check may take before we stop waiting."""

ROUND_TRIPS = {
    "redis": 8,  # connect, AUTH, HELLO/PING, INFO, SET, GET, DEL, PUBLISH (ACL probes included)
    "db": 12,  # two connects (the pooler probe), version, SELECT 1, search_path, schemas, port, pooler statements
    "health": 2,  # connect, GET /health/ready
    "celery": 2,  # the broadcast, the replies
}
"""The timeouts, defined once: ``--timeout`` bounds each network call (connect or read); a check's deadline is
that times the sequential calls it makes (this table). A slow but healthy dependency is then slow, not black-holed;
a black-holed one still fails at the first call's own timeout."""


READY_ANSWER_SECONDS = 10.0
"""How long ``GET /health/ready`` may take to answer once connected (at least ``--timeout``): the endpoint does real
work per request (database, Redis, a Celery inspect with its own ~3 s timeout), so while the worker is down it
answers in seconds. Reading it with a 3-s timeout called a backend that was about to say "celery down" black-holed."""


def ready_read_timeout(timeout: float) -> float:
    return max(timeout, READY_ANSWER_SECONDS)


def check_deadline(check: str, timeout: float) -> float:
    """The fence around one check whose every network call may take ``timeout`` (the readiness answer its own time)."""
    if check == "health":
        return timeout + ready_read_timeout(timeout)
    return timeout * ROUND_TRIPS.get(check, 1)


@dataclass
class Job:
    name: str
    fn: Callable[[], Result | list[Result]]
    timeout: float


def _abandoned(job: Job) -> list[Result]:
    return [
        results.fail(
            job.name,
            f"no answer within {job.timeout:g} s (check abandoned)",
            hint="the dependency is black-holed or DNS hangs: check the network path and firewall",
            duration_ms=job.timeout * 1000,
        )
    ]


def _start(job: Job, done: "queue.Queue[tuple[Job, list[Result]]]") -> threading.Thread:
    thread = threading.Thread(target=lambda: done.put((job, run_check(job.name, job.fn))), name=f"check-{job.name}", daemon=True)
    thread.start()
    return thread


def run_bounded(job: Job) -> list[Result]:
    """Run one check; never takes longer than its timeout plus a short grace."""
    return run_concurrently([job])[0]


def run_concurrently(jobs: list[Job], collector: Collector | None = None) -> list[list[Result]]:
    """Run all jobs at once; results come back in the order of ``jobs``.

    With a ``collector``, each job's results are handed to ``collector.finish`` the
    moment the job ends (or is abandoned at its deadline), so they can be shown
    while slower jobs still run. Waiting happens in the calling thread, so Ctrl-C
    interrupts it at once; the abandoned daemon threads die with the process.
    """
    done: queue.Queue[tuple[Job, list[Result]]] = queue.Queue()
    started = time.monotonic()
    found: dict[int, list[Result]] = {}
    for job in jobs:
        if collector is not None:
            collector.start(job.name)
        _start(job, done)
    while len(found) < len(jobs):
        open_jobs = [(i, job) for i, job in enumerate(jobs) if i not in found]
        deadline = min(started + job.timeout + GRACE_SECONDS for _, job in open_jobs)
        try:
            job, produced = done.get(timeout=max(0.0, deadline - time.monotonic()))
            index = next(i for i, j in open_jobs if j is job)
        except queue.Empty:
            index, job = next((i, j) for i, j in open_jobs if started + j.timeout + GRACE_SECONDS <= deadline)
            produced = _abandoned(job)
        except StopIteration:  # a job finished after it was abandoned: its late answer is dropped
            continue
        found[index] = produced
        if collector is not None:
            collector.finish(job.name, produced)
    return [found[i] for i in range(len(jobs))]
