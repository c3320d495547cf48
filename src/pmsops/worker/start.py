"""``worker-start``: the runbook's ``start_worker.sh`` as a command.

Builds ``celery -A <app> worker`` from CELERY_POOL (threads), CELERY_CONCURRENCY
(4), CELERY_LOGLEVEL (INFO), CELERY_MAX_TASKS_PER_CHILD, CELERY_TIME_LIMIT; the
app defaults to this package's sync library (``--app`` / CELERY_APP override).
It refuses to run as root: Celery prints a SecurityWarning for a reason (a
compromised task runs with root's rights), and the runbook runs the worker as a
non-root user.

Python runs with ``-P``: ``python -m celery`` would otherwise import a ``celery.py``
from the working directory before Celery itself. Celery still imports the app from
the working directory (that is how ``-A app.worker`` finds the runbook's /app), so
worker-start refuses a working directory that other users can write to.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import Mapping

from pmsops.errors import UsageError

DEFAULT_APP = "pmsops.sync.worker:celery_app"
POOLS = ("threads", "prefork", "gevent", "eventlet", "solo")

ROOT_REFUSAL = (
    "refusing to start the worker as root (effective UID 0): Celery warns (SecurityWarning) that a worker running as root "
    "lets any task run with root's rights. This check only verifies that the effective UID is not 0: any non-root user "
    "passes (the runbook's image uses appuser, UID 10001, but neither that name nor that UID is required)"
)
ROOT_HINT = "set USER in the Dockerfile (USER appuser, or docker run --user UID), or pass --allow-root if you really must"

TZDATA_HINT = "pip install tzdata (a pmsops dependency; reinstall it into the image), or add the OS package (apt-get install tzdata / apk add tzdata)"


def timezone_problem() -> str | None:
    """Why Celery would die at start for lack of time-zone data, or None.

    Celery/kombu load ``ZoneInfo("UTC")`` at start; in an image without
    /usr/share/zoneinfo and without the ``tzdata`` package that is a traceback ending
    in ``No module named 'tzdata'``, after the dependency wait. Checked up front.
    """
    import zoneinfo

    try:
        zoneinfo.ZoneInfo("UTC")
    except zoneinfo.ZoneInfoNotFoundError:
        where = ", ".join(zoneinfo.TZPATH) or "TZPATH (empty)"
        return (
            "no time-zone data: 'UTC' is not in "
            + where
            + " and the tzdata package is not installed; Celery would exit at start with \"No module named 'tzdata'\""
        )
    return None


def worker_command(env: Mapping[str, str], app: str | None = None, hostname: str | None = None) -> list[str]:
    """The exact argv worker-start executes."""
    pool = env.get("CELERY_POOL") or "threads"
    if pool not in POOLS:
        raise UsageError(f"CELERY_POOL={pool!r} is not a Celery pool (use one of {', '.join(POOLS)})")
    concurrency = env.get("CELERY_CONCURRENCY") or "4"
    if not concurrency.isdigit() or int(concurrency) < 1:
        raise UsageError(f"CELERY_CONCURRENCY must be a positive number, got {concurrency!r}")
    argv = [
        sys.executable,
        "-P",
        "-m",
        "celery",
        "-A",
        app or env.get("CELERY_APP") or DEFAULT_APP,
        "worker",
        "--pool",
        pool,
        "--concurrency",
        concurrency,
        "--loglevel",
        env.get("CELERY_LOGLEVEL") or "INFO",
    ]
    # CELERY_TIME_LIMIT is not passed as --time-limit: the app sets Celery's hard limit to the
    # limit plus its one grace (pmsops.sync.config.TIME_LIMIT_GRACE); a flag would override that grace
    for var, flag in (("CELERY_MAX_TASKS_PER_CHILD", "--max-tasks-per-child"),):
        value = env.get(var)
        if value:
            if not value.replace(".", "", 1).isdigit():
                raise UsageError(f"{var} must be a number, got {value!r}")
            argv += [flag, value]
    if hostname:
        argv += ["--hostname", hostname]
    return argv


def configuration_lines(argv: list[str]) -> list[str]:
    """The runbook's start-up block (Pool, Concurrency, …)."""

    def value(flag: str) -> str:
        return argv[argv.index(flag) + 1] if flag in argv else "-"

    return [
        "====== Celery Worker Starting ======",
        "Configuration:",
        f"  App: {argv[argv.index('-A') + 1]}",
        f"  Pool: {value('--pool')}",
        f"  Concurrency: {value('--concurrency')}",
        f"  Log level: {value('--loglevel')}",
        f"  Max tasks per child: {value('--max-tasks-per-child')}",
        f"  Time limit: {value('--time-limit')}",
    ]


def running_as_root() -> bool:
    return os.geteuid() == 0


def check_working_directory(path: str | None = None) -> None:
    """Refuse to start Celery from a directory another user can write to (it imports the app from there).

    Fine: owned by root or us, not writable by others; group write only for root's
    group or our own (OpenShift runs with gid 0 and a group-writable /app).
    Refused: world-writable (sticky or not: anyone can add ``app.py`` to ``/tmp``),
    writable by another group, or owned by another user.
    """
    directory = path or os.getcwd()
    info = os.stat(directory)
    foreign_group_write = info.st_mode & 0o020 and info.st_gid not in (0, os.getegid())
    if info.st_mode & 0o002 or foreign_group_write or info.st_uid not in (0, os.geteuid()):
        raise UsageError(
            f"refusing to start the worker from {directory}: other users can write to it (mode {stat.S_IMODE(info.st_mode):o}, uid {info.st_uid}, gid"
            f" {info.st_gid}) and Celery imports the app from the working directory; cd to the app's directory first"
        )
