"""PostgreSQL access: the one home of connect, the pool, the codecs and the error mapping.

Everything that talks to the database (``check db``, ``wait-for-deps``, the sync
worker, the sandbox API, ``db migrate``/``sync reap``) connects through here, and
every driver error is named once by :func:`classify` (as httpx's ``map_exceptions``):

==================  =====================================================  ==========
kind                driver errors                                          permanent
==================  =====================================================  ==========
``auth``            InvalidPasswordError, InvalidAuthorizationSpecification  yes
``no-database``     InvalidCatalogNameError                                yes
``too-many``        TooManyConnectionsError                                no
``starting``        CannotConnectNowError (the server is starting up)      no
``unavailable``     OSError, timeouts, PostgresConnectionError,             no
                    InterfaceError, ConnectionDoesNotExistError
==================  =====================================================  ==========

Anything else (a constraint violation, a syntax error) is not a connection problem
and is left alone. Sync code from synchronous callers is bridged one way:
:func:`run_sync` (``asyncio.run`` in a fresh loop); long-lived processes use the
sync runtime's loop thread.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping, TypeVar

from pmsops.failures import classify as classify_network


T = TypeVar("T")


class DatabaseFailure(Exception):
    """A named connection-level failure (see the table above)."""

    def __init__(self, kind: str, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.kind, self.message, self.permanent = kind, message, permanent


def normalise_dsn(url: str, name: str = "DATABASE_URL") -> tuple[str, str | None]:
    """The DSN asyncpg gets and a note when we had to change the scheme; :class:`UsageError` when
    asyncpg would misread or reject the URL (read by asyncpg's own parser, see :mod:`pmsops.urlread`)."""
    from pmsops.urlread import asyncpg_dsn, read_url

    read_url(url, "asyncpg", name)
    return asyncpg_dsn(url)


async def init_connection(conn) -> None:
    """The codecs every connection gets: json/jsonb as Python objects."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(url: str, timeout: float, codecs: bool = False):
    """One connection that cannot wait longer than ``timeout`` (asyncpg's default is 60 s);
    ``statement_cache_size=0`` so it also works through a transaction pooler."""
    import asyncpg

    dsn, _ = normalise_dsn(url)
    conn = await asyncio.wait_for(asyncpg.connect(dsn, timeout=timeout, command_timeout=timeout, statement_cache_size=0), timeout + 0.5)
    if codecs:
        await init_connection(conn)
    return conn


STATEMENT_CACHE_DIRECT = 100
"""asyncpg's own statement cache: only when the operator says PostgreSQL is reached directly (DB_TRANSACTION_POOLER=false)."""


def statement_cache_setting(env: Mapping[str, str]) -> tuple[int, str]:
    """The asyncpg statement cache the sync workers use with this environment, and why: the workers' own rule
    (:class:`pmsops.sync.config.SyncSettings` reads the same two variables the same strict way)."""
    from pmsops.settings import parse_bool, parse_int

    pooler = parse_bool(env, "DB_TRANSACTION_POOLER", True)
    size = parse_int(env, "DB_STATEMENT_CACHE_SIZE", pooler_safe_statement_cache(pooler))
    if (env.get("DB_STATEMENT_CACHE_SIZE") or "").strip():
        return size, f"DB_STATEMENT_CACHE_SIZE={size}"
    return size, ("the default (no prepared statements)" if pooler else f"DB_TRANSACTION_POOLER={env.get('DB_TRANSACTION_POOLER', '').strip()}")


def pooler_safe_statement_cache(pooler: bool, configured: int | None = None) -> int:
    """The prepared-statement cache for pools: none unless the operator says no transaction pooler is in front.

    Behind a transaction pooler (Supabase's on 6543, PgBouncer ``pool_mode = transaction``) a statement asyncpg
    prepared on one server backend is executed on another: 'prepared statement "__asyncpg_stmt_…" does not exist'
    (issue #13: 7 of 8 full syncs failed). A client cannot see the pooler before that happens, so the default is
    the safe one. What it costs: asyncpg describes every query in a round trip of its own before it runs
    it, and PostgreSQL parses and plans it each time (see the README's Benchmarks). Keeping a description
    to skip that round trip was tried and dropped: a description kept across a migration or a changed
    ``search_path`` encodes and decodes values with types the server no longer has, silently for types
    of one binary size (``integer`` and ``real``). ``pooler`` is DB_TRANSACTION_POOLER (true when
    unset); ``configured`` (DB_STATEMENT_CACHE_SIZE) wins.
    """
    if configured is not None:
        return configured
    return 0 if pooler else STATEMENT_CACHE_DIRECT


async def _rollback_only(conn) -> None:
    """Release without asyncpg's session reset (see :func:`create_pool`); asyncpg itself still
    rolls back a transaction left open before this runs."""


async def create_pool(url: str, max_size: int, timeout: float, command_timeout: float, statement_cache_size: int = 0, reset_session: bool = True):
    """A lazily filled pool with the codecs; idle connections are closed after 5 minutes. No prepared-statement
    cache unless asked for (see :func:`pooler_safe_statement_cache`).

    ``reset_session=False`` skips the query asyncpg sends on every release (advisory
    unlock, ``CLOSE ALL``, ``UNLISTEN *``, ``RESET ALL``): one more round trip per use,
    the sync worker's fourth per sync. Only for code that sets no session state (no
    ``SET``, ``LISTEN``, cursors outside a transaction or session-level advisory locks);
    an open transaction is still rolled back."""
    import asyncpg

    dsn, _ = normalise_dsn(url)
    return await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=max_size,
        init=init_connection,
        statement_cache_size=statement_cache_size,
        timeout=timeout,
        command_timeout=command_timeout,
        max_inactive_connection_lifetime=300,
        reset=None if reset_session else _rollback_only,
    )


def connection_errors() -> tuple[type[BaseException], ...]:
    """Driver errors that mean "the database is not reachable right now" (transient)."""
    import asyncpg

    return (
        OSError,
        asyncio.TimeoutError,
        TimeoutError,
        ConnectionError,
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.TooManyConnectionsError,
        asyncpg.CannotConnectNowError,
        asyncpg.ConnectionDoesNotExistError,
    )


def classify(exc: BaseException) -> DatabaseFailure | None:
    """The named failure behind a driver error, or None when it is not a connection problem."""
    import asyncpg

    text = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, DatabaseFailure):
        return exc
    if isinstance(exc, (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)):
        return DatabaseFailure("auth", f"authentication failed: {exc}", permanent=True)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return DatabaseFailure("no-database", f"database does not exist: {exc}", permanent=True)
    if isinstance(exc, asyncpg.TooManyConnectionsError) or ("too many" in str(exc).lower() and "connection" in str(exc).lower()):
        return DatabaseFailure("too-many", f"too many connections: {exc}")
    if isinstance(exc, asyncpg.CannotConnectNowError):
        return DatabaseFailure("starting", f"not accepting connections yet: {exc}")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return DatabaseFailure("timeout", "no answer in time")
    if isinstance(exc, connection_errors()):
        return DatabaseFailure("unavailable", text)
    return None


@asynccontextmanager
async def map_errors() -> AsyncIterator[None]:
    """Re-raise connection-level driver errors as :class:`DatabaseFailure` (others pass through)."""
    try:
        yield
    except DatabaseFailure:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below, re-raised unchanged when not ours
        failure = classify(exc)
        if failure is None:
            raise
        raise failure from exc


def run_sync(url: str, fn: Callable[[Any], Awaitable[T]], timeout: float = 10.0) -> T:
    """Open one connection (codecs on), run ``fn(conn)``, close it: the bridge for synchronous callers.

    Connection-level failures surface as a :class:`~pmsops.errors.DependencyError` naming
    the masked URL; everything else propagates."""

    async def go() -> T:
        async with map_errors():
            conn = await connect(url, timeout, codecs=True)
        try:
            async with map_errors():
                return await fn(conn)
        finally:
            try:
                await conn.close(timeout=timeout)
            except Exception:  # noqa: BLE001 - the connection is already gone
                conn.terminate()

    try:
        return asyncio.run(go())
    except DatabaseFailure as exc:
        from pmsops.errors import DependencyError
        from pmsops.urlread import mask_url, read_url

        host, port = read_url(url, "asyncpg", "DATABASE_URL").address.endpoint
        _, summary, hint = describe_failure(exc.__cause__ or exc, host, port or 5432, timeout)
        raise DependencyError(f"{mask_url(url)}: {summary}", hint=hint) from exc


# --- a failure as the runbook names it -----------------------------------------------------------

HINTS = {
    "auth": "the user or password in DATABASE_URL is wrong (URL-encode special characters in the password) or pg_hba.conf rejects this host",
    "too-many": "the server's max_connections is exhausted: look for leaked connections (workers opening one per update), or use the pooler",
    "no-database": "check the database name at the end of DATABASE_URL",
    "timeout": "PostgreSQL is black-holed (wrong network, firewall) or overloaded",
}


def _ssl_failure(exc: BaseException) -> tuple[str, str, str] | None:
    """(kind, summary, hint) when the connection failed over SSL on one side only, or an untrusted certificate."""
    import ssl

    text = str(exc)
    lowered = text.lower()
    if "no pg_hba.conf entry" in lowered and "no encryption" in lowered:
        return (
            "ssl-required",
            f"the server accepts this user only over SSL (pg_hba.conf: hostssl) and the connection did not use SSL: {text.splitlines()[0]}",
            (
                "remove sslmode=disable (asyncpg's default, prefer, uses SSL when offered) or set sslmode=require; "
                "sslmode=verify-full&sslrootcert=/path/to/ca.pem also verifies the server"
            ),
        )
    if "no pg_hba.conf entry" in lowered and "ssl encryption" in lowered:
        return (
            "ssl-refused",
            f"the server accepts this user only without SSL (pg_hba.conf: hostnossl): {text.splitlines()[0]}",
            "use sslmode=disable or prefer, or change pg_hba.conf to host/hostssl",
        )
    if "rejected ssl upgrade" in lowered:
        return (
            "ssl-unavailable",
            "the server does not offer SSL (ssl = off), and the URL demands it (sslmode=require/verify-ca/verify-full)",
            (
                "turn SSL on at the server (ssl = on with a certificate), or use sslmode=prefer (SSL when offered) or sslmode=disable on a private"
                " network"
            ),
        )
    if isinstance(exc, ssl.SSLCertVerificationError) or "certificate verify failed" in lowered:
        why = (
            "the host name in the URL is not in the certificate"
            if "hostname" in lowered or "ip address mismatch" in lowered
            else "not signed by the root certificate given"
        )
        return (
            "ssl-untrusted",
            f"the server certificate was not accepted ({why})",
            (
                "sslrootcert must be the CA that signed the server certificate; with verify-full the URL's host must be one of the certificate's"
                " names (sslmode=verify-ca checks the CA only)"
            ),
        )
    return None


def describe_failure(exc: BaseException, host, port, timeout: float) -> tuple[str, str, str]:
    """The failure named by :func:`pmsops.database.classify`, with the runbook's hint; SSL and pg_hba.conf causes first
    (the driver reports both as an authorization error, which is not a wrong password)."""
    import asyncpg

    ssl_named = _ssl_failure(exc)
    if ssl_named:
        return ssl_named
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError) and "no pg_hba.conf entry" in str(exc).lower():
        return (
            "hba",
            f"rejected by pg_hba.conf: {exc}",
            "pg_hba.conf on the server has no line for this host, user and database (the password was not even asked for)",
        )
    named = classify(exc)
    if named is not None and named.kind in ("auth", "too-many", "no-database"):
        return named.kind, named.message, HINTS[named.kind]
    if named is not None and named.kind == "timeout":
        return "timeout", f"no answer from {host}:{port} within {timeout:g} s", HINTS["timeout"]
    failure = classify_network(exc, host, port, timeout, "PostgreSQL")
    hint = failure.hint
    if failure.kind == "dns":
        hint = (
            f"cannot resolve {host!r}: the worker/backend is not on the Supabase network (docker network connect <supabase-network> <container>;"
            " docker restart <container>)"
        )
    return failure.kind, failure.summary, hint
