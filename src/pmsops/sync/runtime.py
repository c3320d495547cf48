"""One event loop, one asyncpg pool, one HTTP client and one Redis client per worker process.

The runbook's worker opens a new PostgreSQL connection for every log update (~113
writes/s here); a pool reused across tasks does ~4× better. Celery's threads pool
runs tasks in several threads, and asyncpg connections belong to one event loop,
so each process owns one loop in a daemon thread; every task thread submits its
coroutines there. The runtime is created lazily *after* fork (prefork children
get their own; a pid check catches anything inherited) and closed at shutdown.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Awaitable, TypeVar

from pmsops.sync.config import SyncConfig
from pmsops.sync.errors import DatabaseUnavailable

T = TypeVar("T")


async def _init_connection(conn) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


class Runtime:
    """Per-process shared clients, all bound to one event loop running in a daemon thread."""

    def __init__(self, config: SyncConfig | None = None) -> None:
        self.config = config or SyncConfig()
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="pmsops-sync-loop", daemon=True)
        self._thread.start()
        self._pool = None
        self._http = None
        self._redis = None
        self._pool_lock: asyncio.Lock | None = None

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run ``coro`` on the process loop from any thread and wait for it."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise

    async def pool(self):
        """The process's asyncpg pool, created on first use (after fork)."""
        if self._pool is None:
            import asyncpg

            from pmsops.checks.db import normalise_dsn

            if self._pool_lock is None:
                self._pool_lock = asyncio.Lock()
            async with self._pool_lock:
                if self._pool is None:
                    if not self.config.database_url:
                        raise DatabaseUnavailable("DATABASE_URL is not set in the worker's environment")
                    dsn, _ = normalise_dsn(self.config.database_url)
                    self._pool = await asyncpg.create_pool(
                        dsn, min_size=0, max_size=self.config.pool_max_size, init=_init_connection,
                        statement_cache_size=self.config.statement_cache_size, timeout=self.config.preflight_timeout,
                        command_timeout=max(self.config.preflight_timeout, 30.0), max_inactive_connection_lifetime=300,
                    )
        return self._pool

    async def http(self):
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.config.platform_timeout), limits=httpx.Limits(max_connections=50, max_keepalive_connections=20))
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

    def close(self) -> None:
        if self.pid != os.getpid() or not self.loop.is_running():
            return
        try:
            self.run(self._aclose(), timeout=15)
        except Exception:  # noqa: BLE001
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


_runtime: Runtime | None = None
_lock = threading.Lock()


def get_runtime() -> Runtime:
    """This process's runtime; a child process never uses its parent's."""
    global _runtime
    with _lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = Runtime()
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
