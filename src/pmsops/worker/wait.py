"""``wait-for-deps``: wait until the database and Redis are ready, or give up.

Prints the runbook's lines (``====== Wait-for-Deps Preflight Check ======``,
``Waiting for Database (host:port)...``, ``✓ Database is ready``, ``✓ All
dependencies ready``) with timestamps; measures time on a monotonic clock; sleeps
``interval`` ± 10 % between attempts so a fleet does not retry in lock-step.
Exit codes: 0 ready, 124 timeout (naming the dependency and its last error),
1 permanent error (a wrong password will not fix itself), 128 + signal number
when stopped (143 for ``docker stop``'s SIGTERM, 130 for Ctrl-C).

As a container's PID 1 the process gets no default action for SIGTERM (the
kernel drops default-action signals sent to PID 1), so ``docker stop`` would wait
its whole grace period and then SIGKILL (exit 137) with no line saying why. While
waiting, SIGTERM and SIGINT are therefore handled: one line, exit 128 + signal at
once. The previous handlers are restored when the wait ends, and ``exec`` resets
caught signals anyway, so Celery started afterwards keeps its own handling.
"""

from __future__ import annotations

import contextlib
import random
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterator, Mapping

from pmsops import exitcodes
from pmsops.errors import UsageError
from pmsops.worker.deps import Dependency, probe


@dataclass(frozen=True)
class WaitSettings:
    enabled: bool
    timeout: float
    interval: float
    dependencies: tuple[Dependency, ...]


def _address(url: str | None, variable: str, kind: str) -> tuple[str | None, int | None]:
    """Host and port the client really uses (asyncpg for the database, redis-py for Redis).

    Read by the client's own parser (:func:`pmsops.urlread.read_url`): a URL it would
    misread is bad input (exit 2) before anything is probed.
    """
    if not url:
        return None, None
    from pmsops.urlread import read_url

    address = read_url(url, "asyncpg" if kind == "postgres" else "redis-py", variable).address
    if address.socket:
        raise UsageError(
            f"{variable} names a Unix socket ({address.socket}): wait-for-deps probes TCP; set"
            f" {'WORKER_WAIT_DB' if kind == 'postgres' else 'WORKER_WAIT_REDIS'}_HOST and _PORT"
        )
    return address.host, address.port


def dependencies_from(env: Mapping[str, str]) -> tuple[Dependency, ...]:
    """WORKER_WAIT_*_HOST/PORT when set, else host and port of DATABASE_URL and REDIS_URL."""
    deps = []
    for name, kind, prefix, url_var, default_port in (
        ("Database", "postgres", "WORKER_WAIT_DB", "DATABASE_URL", 5432),
        ("Redis", "redis", "WORKER_WAIT_REDIS", "REDIS_URL", 6379),
    ):
        url = env.get(url_var) or (env.get("CELERY_BROKER_URL") if kind == "redis" else None)
        url_host, url_port = _address(url, url_var if env.get(url_var) else "CELERY_BROKER_URL", kind)
        host = env.get(f"{prefix}_HOST") or url_host
        if not host:
            continue
        port_text = env.get(f"{prefix}_PORT")
        if port_text and not port_text.isdigit():
            raise UsageError(f"{prefix}_PORT must be a port number, got {port_text!r}")
        port = int(port_text) if port_text else (url_port or default_port)
        probe_url = url if url and url_host == host else None
        deps.append(Dependency(name, kind, host, port, probe_url))
    return tuple(deps)


def settings_from(env: Mapping[str, str], timeout: float | None = None, interval: float | None = None) -> WaitSettings:
    from pmsops.settings import parse_bool, parse_float

    enabled = parse_bool(env, "WORKER_WAIT_FOR_DEPS", True)  # true/false/yes/no/on/off/1/0; anything else is exit 2
    return WaitSettings(
        enabled=enabled,
        timeout=timeout if timeout is not None else parse_float(env, "WORKER_WAIT_TIMEOUT", 60.0),
        interval=interval if interval is not None else parse_float(env, "WORKER_WAIT_INTERVAL", 2.0),
        dependencies=dependencies_from(env),
    )


def stamp(line: str) -> str:
    return f"[{datetime.now():%Y-%m-%d %H:%M:%S}] {line}"


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):
    """A stop signal arrived while waiting."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """Turn SIGTERM/SIGINT into :class:`Stopped` for the duration (main thread only; elsewhere a no-op)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def wait_for_dependencies(settings: WaitSettings, emit: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> int:
    """Wait for each dependency in turn; return 0, 124, 1, or 128 + signal when stopped."""
    current = {"dep": None}
    try:
        with stoppable():
            return _wait(settings, emit, clock, current)
    except Stopped as stop:
        name = signal.Signals(stop.signum).name
        what = f"waiting for {current['dep'].name} ({current['dep'].where})" if current["dep"] else "before waiting"
        emit(stamp(f"✗ Stopped by {name} {what}: exiting {stop.exit_code} without starting the worker"))
        return stop.exit_code


def _wait(settings: WaitSettings, emit: Callable[[str], None], clock: Callable[[], float], current: dict) -> int:
    emit(stamp("====== Wait-for-Deps Preflight Check ======"))
    if not settings.enabled:
        emit(stamp("WORKER_WAIT_FOR_DEPS=false: skipping the dependency wait"))
        return exitcodes.OK
    if not settings.dependencies:
        raise UsageError("nothing to wait for: set DATABASE_URL and REDIS_URL (or WORKER_WAIT_DB_HOST / WORKER_WAIT_REDIS_HOST)")
    started = clock()
    for dep in settings.dependencies:
        current["dep"] = dep
        emit(stamp(f"Waiting for {dep.name} ({dep.where})..."))
        while True:
            remaining = settings.timeout - (clock() - started)
            result = probe(dep, timeout=max(0.2, min(2.0, remaining)))
            elapsed = clock() - started
            if result.ready:
                emit(stamp(f"  ✓ {dep.name} is ready ({dep.where})"))
                break
            if result.permanent:
                emit(stamp(f"  ✗ {dep.name} ({dep.where}): {result.message}"))
                emit(stamp("✗ Permanent error: not retrying (fix the configuration, then restart)"))
                return exitcodes.FAILED
            if elapsed >= settings.timeout:
                emit(stamp(f"  ✗ {dep.name} not ready after {elapsed:.1f} s ({dep.where}): last error at {result.stage}: {result.message}"))
                emit(stamp(f"✗ Timeout after {settings.timeout:g} s waiting for {dep.name}: exiting so the container restarts"))
                return exitcodes.TIMEOUT
            emit(stamp(f"    … {dep.name} not ready ({result.stage}: {result.message}); {elapsed:.1f} s elapsed"))
            time.sleep(max(0.0, min(settings.interval * random.uniform(0.9, 1.1), settings.timeout - (clock() - started))))
    emit(stamp(f"✓ All dependencies ready ({clock() - started:.1f} s)"))
    return exitcodes.OK
