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
from pmsops.database import connect, normalise_dsn  # noqa: F401 - the one home of both; re-exported for the CLI
from pmsops.errors import UsageError
from pmsops.results import Result, Stopwatch
from pmsops.urlread import Reading, asyncpg_dsn, mask_url, read_url

LATENCY_WARN_MS = 500.0
"""The contract's alert threshold for the database."""

def read_database_url(url: str, name: str = "DATABASE_URL") -> Reading:
    """DATABASE_URL as asyncpg reads it: addresses (first host, socket, fallback), user, database."""
    return read_url(url, "asyncpg", name)


_HINTS = {
    "auth": "the user or password in DATABASE_URL is wrong (URL-encode special characters in the password) or pg_hba.conf rejects this host",
    "too-many": "the server's max_connections is exhausted: look for leaked connections (workers opening one per update), or use the pooler",
    "no-database": "check the database name at the end of DATABASE_URL",
    "timeout": "PostgreSQL is black-holed (wrong network, firewall) or overloaded",
}


def _classify_db_error(exc: BaseException, host, port, timeout: float) -> tuple[str, str, str]:
    """The failure named by :func:`pmsops.database.classify`, with the runbook's hint."""
    from pmsops.database import classify as classify_database

    named = classify_database(exc)
    if named is not None and named.kind in ("auth", "too-many", "no-database"):
        return named.kind, named.message, _HINTS[named.kind]
    if named is not None and named.kind == "timeout":
        return "timeout", f"no answer from {host}:{port} within {timeout:g} s", _HINTS["timeout"]
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
