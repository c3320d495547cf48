"""One event loop, one asyncpg pool, one HTTP client and one Redis client per worker process.

The runbook's worker opens a new PostgreSQL connection for every log update (~113
writes/s here); a pool reused across tasks does ~4× better. Celery's threads pool
runs tasks in several threads, and asyncpg connections belong to one event loop,
so each process owns one loop in a thread (as dramatiq's ``EventLoopThread``);
every task thread submits its coroutines there. The runtime is created lazily
*after* fork with the settings it is given (prefork children get their own; a pid
check catches anything inherited). Closing it closes the clients, cancels what is
still running on the loop, waits for those coroutines to finish, and closes the loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Awaitable, TypeVar

from pmsops.sync.config import SyncSettings
from pmsops.sync.errors import DatabaseUnavailable

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed (asyncpg's authors' libuv loop: the loop's own work per
    socket event is a fraction of asyncio's), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _cancel(box: list) -> None:
    """On the loop, after the caller of :meth:`Runtime.run` timed out: cancel its task (``start``
    was scheduled first, so it exists; cancelled before its first step, its body never runs)."""
    if box and isinstance(box[0], asyncio.Task):
        box[0].cancel()


class Runtime:
    """Per-process shared clients, all bound to one event loop running in a daemon thread."""

    def __init__(self, settings: SyncSettings) -> None:
        self.config = settings
        self.pid = os.getpid()
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="pmsops-sync-loop", daemon=True)
        self._thread.start()
        self._pool = None
        self._http = None
        self._redis = None
        self._pool_lock: asyncio.Lock | None = None
        from pmsops.sync.leases import Leases

        self.leases = Leases(self)

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``coro`` on the process loop from any thread and wait for it (``timeout`` is the
        caller's grace on top of the coroutine's own deadline).

        One hop each way and nothing more: the loop is woken once to start a task, and the
        caller sleeps on a bare lock that the task's done callback releases (what
        ``run_coroutine_threadsafe`` does with a concurrent Future, its condition variable and
        two chained callbacks). On the caller's timeout the task is cancelled on the loop."""
        done = threading.Lock()
        done.acquire()
        box: list = []  # the task, once started; or the exception that kept it from starting

        def start() -> None:
            try:
                task = self.loop.create_task(coro)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box.append(exc)
                done.release()
                return
            box.append(task)
            task.add_done_callback(lambda _: done.release())

        self.loop.call_soon_threadsafe(start)
        if not done.acquire(timeout=-1 if timeout is None else timeout):
            self.loop.call_soon_threadsafe(_cancel, box)
            raise FutureTimeout()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0].result()

    async def pool(self):
        """The process's asyncpg pool, created on first use (after fork)."""
        if self._pool is None:
            from pmsops.database import create_pool

            if self._pool_lock is None:
                self._pool_lock = asyncio.Lock()
            async with self._pool_lock:
                if self._pool is None:
                    if not self.config.database_url:
                        raise DatabaseUnavailable("DATABASE_URL is not set in the worker's environment")
                    # the sync code sets no session state: no reset round trip on every release
                    self._pool = await create_pool(
                        self.config.database_url,
                        self.config.pool_max_size,
                        self.config.preflight_timeout,
                        max(self.config.preflight_timeout, 30.0),
                        self.config.statement_cache_size,
                        reset_session=False,
                    )
        return self._pool

    async def http(self):
        """The platform calls' client: one keep-alive client per process, every phase bounded by PLATFORM_TIMEOUT.

        httpcore (httpx's transport) on asyncio sockets, see :mod:`pmsops.sync.http`: TLS, proxies and
        HTTP/1.1 stay a well-kept library's job, without the layers the worker's profile showed as its cost.
        """
        if self._http is None:
            from pmsops.sync.http import PlatformHttpClient

            self._http = PlatformHttpClient(self.config.platform_timeout, max_connections=50, max_keepalive_connections=20)
        return self._http

    async def redis(self):
        if self._redis is None:
            import redis.asyncio as aioredis

            if not self.config.redis_url:
                return None
            self._redis = aioredis.Redis.from_url(self.config.redis_url, socket_timeout=5, socket_connect_timeout=5)
        return self._redis

    async def _aclose(self) -> None:
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 10)
            except Exception:  # noqa: BLE001 - shutting down: terminate what will not close
                self._pool.terminate()
        if self._http is not None:
            await self._http.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    async def _cancel_pending(self) -> None:
        """Cancel every other coroutine on the loop and wait for them to unwind."""
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    def close(self) -> None:
        """Close the clients, cancel and await what still runs, stop and close the loop."""
        if self.pid != os.getpid() or self.loop.is_closed():
            return
        if self.loop.is_running():
            for step in (self._aclose, self._cancel_pending):
                try:
                    self.run(step(), timeout=15)
                except Exception:  # noqa: BLE001 - best effort at shutdown
                    pass
            try:
                self.run(self.loop.shutdown_asyncgens(), timeout=5)
            except Exception:  # noqa: BLE001
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


_runtime: Runtime | None = None
_settings: SyncSettings | None = None
_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A child forked while another thread held the lock (or ran the loop) starts clean."""
    global _runtime, _lock
    _lock = threading.Lock()
    _runtime = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def configure(settings: SyncSettings) -> None:
    """The settings the next runtime of this process is built with (the app factory calls this)."""
    global _settings
    with _lock:
        _settings = settings


def get_runtime() -> Runtime:
    """This process's runtime; a child process never uses its parent's."""
    global _runtime
    with _lock:
        if _runtime is None or _runtime.pid != os.getpid():
            from pmsops.sync.config import load

            _runtime = Runtime(_settings or load())
        return _runtime


def reset_runtime() -> None:
    """After fork: forget the parent's runtime (its loop thread does not exist here)."""
    global _runtime
    with _lock:
        _runtime = None


def close_runtime() -> None:
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.close()
