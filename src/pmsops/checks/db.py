"""``check db``: connect with asyncpg within a timeout, ``SELECT version()``, latency.

Accepts ``postgresql://``, ``postgres://`` and SQLAlchemy's ``postgresql+asyncpg://``
(normalised, with a note). Uses ``statement_cache_size=0`` so the check also works
through a transaction pooler (PgBouncer/Supavisor), where prepared statements break.
"""

from __future__ import annotations

import asyncio
import time

from pmsops import results
from pmsops.checks.failures import classify
from pmsops.errors import UsageError
from pmsops.results import Result, Stopwatch
from pmsops.urlread import Reading, asyncpg_dsn, mask_url, read_url

LATENCY_WARN_MS = 500.0
"""The contract's alert threshold for the database."""

def normalise_dsn(url: str, name: str = "DATABASE_URL") -> tuple[str, str | None]:
    """The DSN asyncpg gets and a note when we had to change the scheme; :class:`UsageError` when
    asyncpg would misread or reject the URL (read by asyncpg's own parser, see :mod:`pmsops.urlread`)."""
    read_url(url, "asyncpg", name)
    return asyncpg_dsn(url)


def read_database_url(url: str, name: str = "DATABASE_URL") -> Reading:
    """DATABASE_URL as asyncpg reads it: addresses (first host, socket, fallback), user, database."""
    return read_url(url, "asyncpg", name)


async def connect(url: str, timeout: float):
    """An asyncpg connection that cannot wait longer than ``timeout`` (asyncpg's default is 60 s)."""
    import asyncpg

    dsn, _ = normalise_dsn(url)
    return await asyncio.wait_for(
        asyncpg.connect(dsn, timeout=timeout, command_timeout=timeout, statement_cache_size=0),
        timeout + 0.5,
    )


def _classify_db_error(exc: BaseException, host, port, timeout: float) -> tuple[str, str, str]:
    import asyncpg

    if isinstance(exc, (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
        return "auth", f"authentication failed: {exc}", "the user or password in DATABASE_URL is wrong (URL-encode special characters in the password) or pg_hba.conf rejects this host"
    if isinstance(exc, asyncpg.TooManyConnectionsError) or "too many" in str(exc).lower() and "connection" in str(exc).lower():
        return "too-many", f"too many connections: {exc}", "the server's max_connections is exhausted: look for leaked connections (workers opening one per update), or use the pooler"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "no-database", f"database does not exist: {exc}", "check the database name at the end of DATABASE_URL"
    if isinstance(exc, asyncio.TimeoutError) or isinstance(exc, TimeoutError):
        return "timeout", f"no answer from {host}:{port} within {timeout:g} s", "PostgreSQL is black-holed (wrong network, firewall) or overloaded"
    failure = classify(exc, host, port, timeout, "PostgreSQL")
    hint = failure.hint
    if failure.kind == "dns":
        hint = f"cannot resolve {host!r}: the worker/backend is not on the Supabase network (docker network connect <supabase-network> <container>; docker restart <container>)"
    return failure.kind, failure.summary, hint


def check_db(url: str, timeout: float = 3.0, name: str = "db") -> Result:
    """Connect, ``SELECT version()``, time a ``SELECT 1`` round trip."""
    reading = read_database_url(url)
    _, note = asyncpg_dsn(url)
    address = reading.address
    host, port = address.endpoint
    masked = f"{mask_url(url)} at {reading.where}"
    notes = [note] if note else []
    watch = Stopwatch()

    async def probe() -> tuple[str, float]:
        conn = await connect(url, timeout)
        try:
            version = await conn.fetchval("SELECT version()")
            started = time.perf_counter()
            await conn.fetchval("SELECT 1")
            return version, (time.perf_counter() - started) * 1000
        finally:
            await conn.close(timeout=timeout)

    try:
        version, latency = asyncio.run(probe())
    except UsageError:
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a named result
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        kind, summary, hint = _classify_db_error(exc, host, port, timeout)
        return results.fail(name, f"{masked}: {summary}", hint=hint, notes=notes, details={"url": mask_url(url), "address": str(address), "error": kind})
    short = " ".join(version.split()[:2])
    details = {"url": mask_url(url), "address": str(address), "fallback": reading.fallback, "version": version, "latency_ms": round(latency, 2)}
    summary = f"{masked}: {short}, SELECT 1 in {latency:.1f} ms"
    if latency > LATENCY_WARN_MS:
        return results.warn(name, summary + f" (over the {LATENCY_WARN_MS:.0f} ms alert threshold)", notes=notes, details=details, duration_ms=watch.ms)
    return results.ok(name, summary, notes=notes, details=details, duration_ms=watch.ms)
