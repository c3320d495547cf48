"""Probe a dependency in stages: DNS → TCP → protocol with credentials.

The stage that fails says what to fix: DNS means the container is not on the
dependency's network (or Docker DNS is still settling after a deploy), TCP means
it is not listening yet, protocol means it answers but rejects us. A rejected
password is *permanent*: waiting will not fix it, so the wait stops at once.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from pmsops.runner import Job, run_bounded


@dataclass(frozen=True)
class Dependency:
    name: str  # "Database" | "Redis"
    kind: str  # "postgres" | "redis"
    host: str
    port: int
    url: str | None = None  # for the protocol stage; None: DNS + TCP only

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Probe:
    ready: bool
    stage: str  # dns | tcp | protocol | ready
    message: str
    permanent: bool = False
    refused: bool = False  # tcp: the host answered with a reset (nothing listens), not silence (a network the worker is not on)


def _resolve(host: str, port: int, timeout: float) -> None:
    """getaddrinfo has no timeout of its own: bound it with a daemon thread."""
    from pmsops import results

    outcome = run_bounded(Job("dns", lambda: results.ok("dns", str(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4])), timeout))[0]
    if outcome.status != "ok":
        raise socket.gaierror(outcome.summary)


def _protocol(dep: Dependency, timeout: float) -> Probe:
    if dep.kind == "redis":
        import redis

        from pmsops.redisclient import AUTH_HINT, auth_failure, client_for

        client = client_for(dep.url, timeout)
        try:
            client.ping()
        except (redis.AuthenticationError, redis.ResponseError, redis.ConnectionError) as exc:
            words = auth_failure(exc)
            if words:
                return Probe(False, "protocol", f"Redis rejected the credentials: {words} ({AUTH_HINT})", permanent=True)
            return Probe(False, "protocol", f"Redis not ready: {exc}")
        except (redis.TimeoutError, OSError) as exc:
            return Probe(False, "protocol", f"Redis not answering: {type(exc).__name__}")
        finally:
            client.close()
        return Probe(True, "ready", "AUTH + PING ok")
    return _postgres_protocol(dep, timeout)


def _postgres_protocol(dep: Dependency, timeout: float) -> Probe:
    import asyncpg

    from pmsops.database import classify, connect

    async def select_one() -> None:
        conn = await connect(dep.url, timeout)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close(timeout=timeout)

    try:
        asyncio.run(select_one())
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        named = classify(exc)  # the one mapping of driver errors (pmsops.database)
        kind = named.kind if named is not None else None
        if kind == "auth":
            return Probe(False, "protocol", f"PostgreSQL rejected the credentials: {exc}", permanent=True)
        if kind == "no-database":
            return Probe(False, "protocol", f"database does not exist: {exc}", permanent=True)
        if kind in ("starting", "too-many"):
            return Probe(False, "protocol", f"PostgreSQL not accepting connections yet: {exc}")
        return Probe(False, "protocol", f"PostgreSQL not ready: {type(exc).__name__}: {exc}")
    return Probe(True, "ready", "SELECT 1 ok")


def probe(dep: Dependency, timeout: float = 2.0) -> Probe:
    """One attempt at every stage, each bounded by ``timeout``."""
    try:
        _resolve(dep.host, dep.port, timeout)
    except (socket.gaierror, UnicodeError) as exc:
        return Probe(False, "dns", f"cannot resolve {dep.host} ({exc}): not on its Docker network yet?")
    try:
        with socket.create_connection((dep.host, dep.port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else "timed out" if isinstance(exc, TimeoutError) else str(exc)
        return Probe(False, "tcp", f"TCP {dep.where}: {reason}", refused=isinstance(exc, ConnectionRefusedError))
    if dep.url is None:
        return Probe(True, "ready", "DNS + TCP ok (no URL: credentials not checked)")
    return _protocol(dep, timeout)
