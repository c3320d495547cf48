"""The worker's liveness beacon: a small file the running worker keeps fresh.

Why: a Docker ``HEALTHCHECK`` runs every few seconds for the life of the container.
The full ``worker-check`` imports celery, kombu and redis-py and pings the worker
through the broker (~0.5 s of CPU per run); ``celery inspect ping`` costs the same.
Instead, the worker itself (a consumer bootstep, :mod:`pmsops.sync.worker`) rewrites
this file every ``WORKER_BEACON_INTERVAL`` seconds from its own event loop, and
``worker-check --liveness`` only reads it: no broker round trip and no import of
Celery, kombu or redis-py (the cost is starting Python plus the CLI).

What a fresh beacon proves: the worker process (its pid is in the file and still
exists) has its consumer started (connected to the broker, consuming) and its event
loop turns. The consumer stops the beacon while it reconnects and removes it at
shutdown, so a lost broker or a stopped worker turns stale within the maximum age
(default 3 × interval). The full check (credentials, ping, registered tasks) stays
``worker-check`` without ``--liveness``, for ``docker exec``.

The file is written through :mod:`pmsops.safefile` (temp file + rename, mode 0600,
never through a link) and read only when it is a regular file owned by the reader's
own uid (the HEALTHCHECK runs as the container's user).
"""

from __future__ import annotations

from typing import Mapping

import json
import os
import stat
import time
from dataclasses import dataclass

DEFAULT_INTERVAL = 10.0
MAX_BYTES = 4096


def default_node() -> str:
    """Celery's default node name, ``celery@<hostname>``: the worker's unless it was started with ``--hostname``."""
    import socket

    return f"celery@{socket.gethostname()}"


def beacon_path(env: Mapping[str, str], node: str | None = None) -> str:
    """WORKER_BEACON_FILE, else ``/tmp/pmsops-worker-<uid>-<node>.beacon``: one per user and worker node, so a second
    worker on the host (the sandbox's, another deployment's) never keeps a dead one's liveness green."""
    import re

    if env.get("WORKER_BEACON_FILE"):
        return env["WORKER_BEACON_FILE"]
    name = re.sub(r"[^A-Za-z0-9@._-]", "_", node or default_node())[:120]
    return f"/tmp/pmsops-worker-{os.getuid()}-{name}.beacon"


def beacon_interval(env: Mapping[str, str]) -> float:
    """WORKER_BEACON_INTERVAL seconds (default 10; 0 turns the beacon off); nonsense falls back to the default."""
    try:
        value = float(env.get("WORKER_BEACON_INTERVAL") or DEFAULT_INTERVAL)
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value >= 0 and value == value and value != float("inf") else DEFAULT_INTERVAL


def write_beacon(path: str, node: str, interval: float) -> None:
    """Record that this worker is alive now (called from the worker's event loop)."""
    from pmsops.safefile import write_text

    write_text(path, json.dumps({"node": node, "pid": os.getpid(), "time": time.time(), "interval": interval}), "beacon")


def remove_beacon(path: str) -> None:
    """At shutdown: a stopped worker must not look alive."""
    try:
        os.unlink(path)
    except OSError:
        pass


@dataclass(frozen=True)
class Liveness:
    alive: bool
    summary: str
    hint: str | None = None
    age: float | None = None


def read_liveness(path: str, max_age: float, now: float | None = None) -> Liveness:
    """Is the beacon at ``path`` fresh (younger than ``max_age`` seconds) and its process still there?"""
    hint = "the worker is not running, not consuming (broker lost?) or its event loop is stuck: docker logs, then pmsops worker-check"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        return Liveness(False, f"no beacon at {path}: the worker has not started consuming (or has stopped)", hint)
    except OSError as exc:
        return Liveness(False, f"cannot read beacon {path}: {exc.strerror}", "WORKER_BEACON_FILE must be a regular file the worker's user owns")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return Liveness(
                False,
                f"beacon {path} is not a regular file of uid {os.geteuid()} that only it can write: not trusted",
                "remove it; the worker writes its own",
            )
        data = os.read(fd, MAX_BYTES)
    finally:
        os.close(fd)
    try:
        beacon = json.loads(data)
        beat, pid, node = float(beacon["time"]), int(beacon["pid"]), str(beacon["node"])
    except (ValueError, KeyError, TypeError):
        return Liveness(False, f"beacon {path} is not a pmsops beacon", "remove it; the worker writes its own")
    age = (time.time() if now is None else now) - beat
    if not os.path.exists(f"/proc/{pid}") and os.path.isdir("/proc/self"):
        return Liveness(False, f"{node}: process {pid} that wrote the beacon is gone ({age:.0f} s ago)", hint, age)
    if age > max_age:
        return Liveness(False, f"{node}: last beat {age:.1f} s ago (more than {max_age:g} s)", hint, age)
    if age < -5:
        return Liveness(False, f"{node}: beacon time is {-age:.0f} s in the future (clock jump?)", hint, age)
    return Liveness(True, f"{node}: alive, last beat {max(age, 0):.1f} s ago (pid {pid})", None, age)
