"""``check db``: connect with asyncpg within a timeout, ``SELECT version()``, latency.

Accepts ``postgresql://``, ``postgres://`` and SQLAlchemy's ``postgresql+asyncpg://``
(normalised, with a note). Uses ``statement_cache_size=0`` so the check also works
through a transaction pooler (PgBouncer/Supavisor), where prepared statements break.

Production variants are named:

- a transaction pooler in front is *detected* (one server backend serves two client
  connections, or a connection's backend changes between statements) and the check
  says what the workers need (no prepared statements); a worker setting that turns
  them on (``DB_STATEMENT_CACHE_SIZE`` > 0, ``DB_TRANSACTION_POOLER=false``) fails;
- SSL: a ``hostssl``-only server met without SSL, a server without SSL met with
  ``sslmode=require``, an untrusted certificate: each named with the ``sslmode`` /
  ``sslrootcert`` fix (a verify mode without a root certificate is bad input, exit 2);
- a ``search_path`` naming a schema that does not exist.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Mapping

from pmsops import results
from pmsops.database import connect, describe_failure, normalise_dsn, statement_cache_setting  # noqa: F401 - the one home of each; re-exported for the CLI
from pmsops.errors import UsageError
from pmsops.results import Result, Stopwatch
from pmsops.urlread import Reading, asyncpg_dsn, mask_url, read_url

LATENCY_WARN_MS = 500.0
"""The contract's alert threshold for the database."""


def read_database_url(url: str, name: str = "DATABASE_URL") -> Reading:
    """DATABASE_URL as asyncpg reads it: addresses (first host, socket, fallback), user, database."""
    return read_url(url, "asyncpg", name)


# --- what is in front of the server, and how the session is set up -------------------------------------


@dataclass
class Session:
    """What one probe saw: version, latency, SSL, search_path, and evidence of a pooler."""

    version: str
    latency_ms: float
    ssl: str | None = None
    """The TLS version the client negotiated, None without SSL."""
    missing_schemas: list[str] = field(default_factory=list)
    search_path: str | None = None
    pooler: list[str] = field(default_factory=list)
    """Evidence that a transaction pooler multiplexes server backends (empty: none seen)."""
    forwarded: str | None = None
    """Set when PostgreSQL listens on another port than the URL names (a pooler or a port mapping)."""


async def _missing_schemas(conn) -> tuple[str, list[str]]:
    """The session's search_path and the schemas it names that do not exist ("$user" is optional by design)."""
    path = await conn.fetchval("SELECT current_setting('search_path')")
    names = [n.strip() for n in path.split(",") if n.strip()]
    wanted = [n[1:-1].replace('""', '"') if n.startswith('"') and n.endswith('"') else n.lower() for n in names]
    wanted = [n for n in wanted if n not in ("$user", "pg_temp")]
    if not wanted:
        return path, []
    present = {r[0] for r in await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])", wanted)}
    return path, [n for n in wanted if n not in present]


async def _pooler_evidence(first, url: str, timeout: float) -> list[str]:
    """Does a transaction pooler hand server backends from one client connection to another?

    ``first`` runs a statement (its backend is then idle in the pooler); a second
    connection opens a transaction, which holds a backend; ``first`` runs another
    statement. Directly on PostgreSQL a backend belongs to one connection for its
    life, so neither can happen; behind PgBouncer/Supavisor in transaction mode one
    does (PgBouncer reuses the backend it freed last).
    """
    evidence: list[str] = []
    pid_first = await first.fetchval("SELECT pg_backend_pid()")
    try:
        second = await connect(url, timeout)
    except Exception:  # noqa: BLE001 - no second connection (limits): no evidence either way
        return evidence
    pid_again: int | None = None
    try:
        async with second.transaction():
            pid_second = await second.fetchval("SELECT pg_backend_pid()")
            try:
                # a pooler with one server connection makes ``first`` wait for the one ``second`` holds
                pid_again = await asyncio.wait_for(first.fetchval("SELECT pg_backend_pid()"), min(1.0, timeout / 3))
            except asyncio.TimeoutError:
                evidence.append("this connection waited for a server backend while another client held one in a transaction")
                first.terminate()  # its query is still queued in the pooler: this connection is done
    finally:
        await second.close(timeout=timeout)
    if pid_second == pid_first:
        evidence.append("one server backend served two client connections")
    if pid_again is not None and pid_again != pid_first:
        evidence.append("this connection's server backend changed between two statements")
    return evidence


def _client_tls(conn) -> str | None:
    from pmsops.internals import asyncpg_tls_version

    return asyncpg_tls_version(conn)


async def _probe(url: str, timeout: float, port: int | None) -> Session:
    conn = await connect(url, timeout)
    try:
        version = await conn.fetchval("SELECT version()")
        started = time.perf_counter()
        await conn.fetchval("SELECT 1")
        session = Session(version, (time.perf_counter() - started) * 1000, ssl=_client_tls(conn))
        session.search_path, session.missing_schemas = await _missing_schemas(conn)
        server_port = await conn.fetchval("SELECT current_setting('port')::int")
        if port is not None and server_port != port:
            session.forwarded = f"PostgreSQL listens on port {server_port}, the URL names {port}"
        session.pooler = await _pooler_evidence(conn, url, timeout)
        return session
    finally:
        if not conn.is_closed():
            await conn.close(timeout=timeout)


POOLER_NEEDS = (
    "no prepared statements kept across transactions — asyncpg statement_cache_size=0 "
    "(pmsops's sync library: the default; do not set DB_STATEMENT_CACHE_SIZE, or set DB_TRANSACTION_POOLER=true); "
    "no session state either (SET, advisory locks, LISTEN, temporary tables)"
)


def check_db(url: str, timeout: float = 3.0, name: str = "db", env: Mapping[str, str] | None = None) -> Result:
    """Connect, ``SELECT version()``, time a ``SELECT 1`` round trip, read the session (SSL, search_path, pooler)."""
    reading = read_database_url(url)
    _, note = asyncpg_dsn(url)
    address = reading.address
    host, port = address.endpoint
    masked = f"{mask_url(url)} at {reading.where}"
    notes = [note] if note else []
    watch = Stopwatch()
    try:
        session = asyncio.run(_probe(url, timeout, port))
    except UsageError:
        raise
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a named result
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        kind, summary, hint = describe_failure(exc, host, port, timeout)
        return results.fail(
            name, f"{masked}: {summary}", hint=hint, notes=notes, details={"url": mask_url(url), "address": str(address), "error": kind}
        )
    return _verdict(name, url, reading, masked, session, notes, watch, env or {})


def _verdict(
    name: str, url: str, reading: Reading, masked: str, session: Session, notes: list[str], watch: Stopwatch, env: Mapping[str, str]
) -> Result:
    short = " ".join(session.version.split()[:2])
    sslmode = reading.options.get("sslmode")
    verified = sslmode in ("verify_full", "verify_ca")
    details = {
        "url": mask_url(url),
        "address": str(reading.address),
        "fallback": reading.fallback,
        "version": session.version,
        "latency_ms": round(session.latency_ms, 2),
        "ssl": session.ssl,
        "certificate_verified": bool(session.ssl) and verified,
        "search_path": session.search_path,
        "pooler": "transaction" if session.pooler else None,
        "pooler_evidence": session.pooler,
        "port_forwarded": session.forwarded,
    }
    summary = f"{masked}: {short}, SELECT 1 in {session.latency_ms:.1f} ms"
    summary += (
        f", SSL {session.ssl} ({'server certificate verified' if verified else 'server certificate not verified'})" if session.ssl else ", no SSL"
    )
    if session.forwarded and not session.pooler:
        notes.append(f"{session.forwarded}: something forwards the port (a session pooler, a proxy or a port mapping)")
    if session.missing_schemas:
        missing = ", ".join(session.missing_schemas)
        return results.fail(
            name,
            f"{masked}: search_path names schema(s) that do not exist: {missing}",
            notes=notes,
            details=details,
            hint=(
                "unqualified table names then fail with 'relation … does not exist': fix search_path (URL ?search_path=, options=-csearch_path=, "
                "or ALTER ROLE … SET search_path) or create the schema"
            ),
        )
    if session.pooler:
        cache, why = statement_cache_setting(env)
        notes.append("transaction pooler in front (" + "; ".join(session.pooler) + (f"; {session.forwarded}" if session.forwarded else "") + ")")
        notes.append("what the workers need: " + POOLER_NEEDS)
        if cache > 0:
            return results.fail(
                name,
                f"{masked}: a transaction pooler is in front, and the workers would cache prepared statements ({why})",
                notes=notes,
                details={**details, "worker_statement_cache_size": cache},
                hint=(
                    "syncs fail with 'prepared statement \"__asyncpg_stmt_…\" does not exist': unset DB_STATEMENT_CACHE_SIZE "
                    "(or set it to 0) and DB_TRANSACTION_POOLER=true"
                ),
            )
        summary += ", transaction pooler in front (workers: no prepared statements)"
        details["worker_statement_cache_size"] = cache
    if session.latency_ms > LATENCY_WARN_MS:
        return results.warn(
            name, summary + f" (over the {LATENCY_WARN_MS:.0f} ms alert threshold)", notes=notes, details=details, duration_ms=watch.ms
        )
    return results.ok(name, summary, notes=notes, details=details, duration_ms=watch.ms)
