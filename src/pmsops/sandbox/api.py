"""The reference backend: a faithful slice of the channel manager's API (FastAPI).

Serves ``/health``, ``/health/ready`` (built on :mod:`pmsops.checks`, current
``components`` shape), a Supabase-compatible ``/auth/v1/token``, and the
channel-connection endpoints of the contract with its status codes and bodies:
the list answers 307 without its trailing slash; a connection of another
agency is a 404; a sync trigger writes the ``triggered`` logs and enqueues the
:mod:`pmsops.sync` tasks. Configuration comes from the sandbox env file.
Run: ``uvicorn pmsops.sandbox.api:app``.

Tenancy: every id a request names (path, body or query) is looked up within the
caller's agency; another agency's connection or property is a 404, as one that
does not exist. Errors: :func:`error_response` is the one mapping from exceptions
to status codes (database constraint and data errors are 4xx); anything it does not
know is a generic 500 and one log line without values (:class:`ErrorBoundary`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, Literal, Optional

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pmsops.sandbox.auth import AuthFailure, check_password, issue_token, verify_token
from pmsops.sync import PLATFORMS, SYNC_TYPES

CONNECTION_COLUMNS = "id, agency_id, property_id, platform_type, platform_listing_id, status, platform_metadata, last_sync_at, created_at, updated_at"
DB_RETRIES = 3
ConnectionStatus = Literal["active", "inactive", "paused", "disabled", "error"]
MAX_OFFSET = 2**31 - 1
"""Offsets beyond this are bad input (422), not a database error."""
MAX_BODY_BYTES = 1024 * 1024
SHORT_TEXT = 255
"""Listing ids, filters, e-mail addresses: longer values are bad input (422)."""
logger = logging.getLogger("pmsops.sandbox.api")


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set for the sandbox API")
    return value


@asynccontextmanager
async def lifespan(app: FastAPI):
    from pmsops.database import create_pool
    from pmsops.settings import register_environment_secrets

    register_environment_secrets(os.environ)
    app.state.pool = await create_pool(_env("DATABASE_URL"), max_size=10, timeout=3, command_timeout=10)
    yield
    await app.state.pool.close()


app = FastAPI(title="pmsops sandbox backend", lifespan=lifespan)


# --- errors: one mapping, one boundary ----------------------------------------------------------------

class DatabaseDown(Exception):
    pass


def _constraint_column(exc: Any) -> str | None:
    """``channel_connections_status_check`` → ``status`` (PostgreSQL's default constraint names)."""
    column = getattr(exc, "column_name", None)
    if column:
        return column
    name, table = getattr(exc, "constraint_name", None) or "", getattr(exc, "table_name", None) or ""
    for suffix in ("_check", "_fkey", "_key"):
        if table and name.startswith(table + "_") and name.endswith(suffix):
            return name[len(table) + 1: -len(suffix)] or None
    return None


def _invalid(kind: str, message: str, column: str | None = None) -> tuple[int, dict[str, Any]]:
    """A 422 in FastAPI's ``detail[]`` shape (the contract's body for bad input), without the value."""
    return 422, {"detail": [{"loc": ["body", column] if column else ["request"], "msg": message, "type": kind}]}


def error_response(exc: BaseException) -> tuple[int, dict[str, Any]] | None:
    """The status and body for an exception, or None when it is unexpected (a bug: 500).

    Database errors caused by the request's values are the caller's fault, so they are
    4xx: a CHECK or NOT NULL violation, a reference to a missing record, a value out of
    range, a NUL byte or a character the database cannot store (SQLSTATE class 22) are
    422, as is text that cannot be encoded at all (a lone UTF-16 surrogate from a JSON
    ``\\ud800`` escape fails in the driver, the password hash or the cipher); a duplicate
    is 409; a missing table or column is the contract's 503 (schema out of date); a
    database that stays away is the contract's 503. No body quotes a value.
    """
    import asyncpg

    if isinstance(exc, DatabaseDown):
        return 503, {"error": "service_unavailable", "message": "Database is temporarily unavailable.", "retry_count": DB_RETRIES}
    if isinstance(exc, RequestValidationError):
        return 422, {"detail": [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]}
    if isinstance(exc, UnicodeError):
        return _invalid("invalid_text", "text contains characters that cannot be encoded (a lone surrogate)")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return _invalid("foreign_key_violation", "refers to a record that does not exist", _constraint_column(exc))
    if isinstance(exc, (asyncpg.CheckViolationError, asyncpg.NotNullViolationError)):
        return _invalid("check_violation", "value is not allowed", _constraint_column(exc))
    if isinstance(exc, (asyncpg.UniqueViolationError, asyncpg.ExclusionViolationError)):
        return 409, {"detail": "Conflicts with an existing record"}
    if isinstance(exc, (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)):
        return _invalid("invalid_text", "text contains a NUL byte or a character the database cannot store")
    if isinstance(exc, asyncpg.DataError):  # SQLSTATE class 22, and asyncpg's own "value out of int64 range"
        return _invalid("invalid_value", "value out of range or malformed")
    if isinstance(exc, (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError)):
        return 503, {"error": "schema_out_of_date", "message": "Database schema is out of date: run the migrations."}
    return None


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    status, body = error_response(exc)  # type: ignore[misc] - always mapped
    return JSONResponse(status_code=status, content=body)


class ErrorBoundary:
    """ASGI middleware around the routes: mapped errors get their status; anything else a
    generic 500 and ONE log line (method, route template, exception type, SQLSTATE, an
    error id also returned to the caller) — no traceback, no values, no secrets. Also
    refuses bodies over ``MAX_BODY_BYTES`` (413) before they are read."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            await JSONResponse(status_code=413, content={"detail": f"Request body too large (limit {MAX_BODY_BYTES} bytes)"})(scope, receive, send)
            return
        started = False

        async def tracked(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - the boundary: nothing escapes with a traceback
            mapped = error_response(exc)
            if mapped is None:
                error_id = uuid.uuid4().hex[:12]
                route = getattr(scope.get("route"), "path", None) or "(unrouted)"
                logger.error("%s %s failed: %s%s (error id %s)", scope.get("method", "?"), route, type(exc).__name__,
                             f" sqlstate {exc.sqlstate}" if getattr(exc, "sqlstate", None) else "", error_id)
                mapped = 500, {"detail": "Internal server error", "error_id": error_id}
            if not started:
                await JSONResponse(status_code=mapped[0], content=mapped[1])(scope, receive, send)


app.add_middleware(ErrorBoundary)


async def with_db(request: Request, fn):
    """Run ``fn(conn)`` with the API layer's retries (0.1, 0.2, 0.4 s); 503 when the database stays down."""
    from pmsops.database import connection_errors

    transient = connection_errors()
    for attempt in range(DB_RETRIES + 1):
        try:
            async with request.app.state.pool.acquire(timeout=3) as conn:
                return await fn(conn)
        except transient:
            if attempt == DB_RETRIES:
                raise DatabaseDown() from None
            await asyncio.sleep(0.1 * 2**attempt)


# --- health -------------------------------------------------------------------------------------------

@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.api_route("/health/ready", methods=["GET", "HEAD"])
async def ready() -> JSONResponse:
    from pmsops.checks import celery as celery_check
    from pmsops.checks.db import check_db
    from pmsops.checks.redis import check_redis

    broker = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")
    db, redis_result, celery_result = await asyncio.gather(
        asyncio.to_thread(check_db, _env("DATABASE_URL"), 2.0),
        asyncio.to_thread(check_redis, _env("REDIS_URL"), 2.0),
        asyncio.to_thread(celery_check.ping, broker, 2.0),
    )

    def component(result, **details: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"status": "up" if result.status in ("ok", "warn") else "down", "details": details}
        if entry["status"] == "down":
            entry["error"] = result.summary
        return entry

    body = {
        "status": "up" if db.status in ("ok", "warn") else "down",
        "components": {
            "db": component(db, latency_ms=db.details.get("latency_ms")),
            "redis": component(redis_result, latency_ms=redis_result.details.get("latency_ms")),
            "celery": component(celery_result, workers=celery_result.details.get("workers", [])),
        },
        "checked_at": datetime.now(timezone.utc).isoformat(),
    }
    return JSONResponse(status_code=200 if body["status"] == "up" else 503, content=body)


# --- auth ---------------------------------------------------------------------------------------------

class PasswordGrant(BaseModel):
    email: str = Field(max_length=SHORT_TEXT)
    password: str = Field(max_length=1024)


@app.post("/auth/v1/token")
async def password_grant(request: Request, grant: PasswordGrant, grant_type: str = Query(..., max_length=SHORT_TEXT),
                         apikey: Optional[str] = Header(None)) -> JSONResponse:
    if not apikey or not hmac.compare_digest(apikey.encode(), _env("ANON_KEY").encode()):  # constant time
        return JSONResponse(status_code=401, content={"message": "Invalid API key"})
    if grant_type != "password":
        return JSONResponse(status_code=400, content={"error": "unsupported_grant_type", "error_description": "only grant_type=password"})
    row = await with_db(request, lambda c: c.fetchrow("SELECT id, email, password_hash FROM sandbox_users WHERE email = $1", grant.email))
    if row is None or not check_password(grant.password, row["password_hash"]):
        return JSONResponse(status_code=400, content={"error": "invalid_grant", "error_description": "Invalid login credentials"})
    token = issue_token(_env("SUPABASE_JWT_SECRET"), str(row["id"]), row["email"])
    return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": 3600, "refresh_token": uuid.uuid4().hex,
                         "user": {"id": str(row["id"]), "email": row["email"], "aud": "authenticated", "role": "authenticated"}})


async def current_agency(request: Request, authorization: Optional[str] = Header(None), x_agency_id: Optional[str] = Header(None)) -> uuid.UUID:
    """Bearer JWT → user → agency (x-agency-id with membership, agency_id claim, or the single membership)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "Not authenticated")
    try:
        claims = verify_token(authorization.split(" ", 1)[1].strip(), _env("SUPABASE_JWT_SECRET"), os.environ.get("JWT_AUDIENCE") or "authenticated")
    except AuthFailure as exc:
        raise HTTPException(401, str(exc)) from None
    try:
        user_id = uuid.UUID(str(claims.get("sub")))
    except ValueError:
        raise HTTPException(401, "Invalid authentication token") from None
    memberships = await with_db(request, lambda c: c.fetch("SELECT agency_id FROM agency_members WHERE user_id = $1", user_id))
    agencies = [r["agency_id"] for r in memberships]
    wanted = x_agency_id or claims.get("agency_id")
    if wanted:
        try:
            agency = uuid.UUID(str(wanted))
        except ValueError:
            raise HTTPException(403, "Not a member of this agency") from None
        if agency not in agencies:
            raise HTTPException(403, "Not a member of this agency")
        return agency
    if len(agencies) == 1:
        return agencies[0]
    raise HTTPException(403, "Choose an agency with the x-agency-id header" if agencies else "User has no agency membership")


# --- channel connections ------------------------------------------------------------------------------

def _connection_json(row) -> dict[str, Any]:
    data = dict(row)
    for key in ("id", "agency_id", "property_id"):
        data[key] = str(data[key]) if data[key] else None
    for key in ("last_sync_at", "created_at", "updated_at"):
        data[key] = data[key].isoformat() if data[key] else None
    return data


async def _connection_or_404(request: Request, conn, connection_id: uuid.UUID, agency: uuid.UUID):
    row = await conn.fetchrow(f"SELECT {CONNECTION_COLUMNS} FROM channel_connections WHERE id = $1 AND agency_id = $2 AND deleted_at IS NULL", connection_id, agency)
    if row is None:
        raise HTTPException(404, "Connection not found")
    return row


async def _own_property_or_404(conn, property_id: uuid.UUID | None, agency: uuid.UUID) -> None:
    """A property a request names must be the caller's agency's: another agency's is a 404, as a missing one
    (else agency A could create a connection that imports bookings into, and pushes prices of, B's property)."""
    if property_id is not None and await conn.fetchval("SELECT 1 FROM properties WHERE id = $1 AND agency_id = $2", property_id, agency) is None:
        raise HTTPException(404, "Property not found")


OFFSET = Query(0, ge=0, le=MAX_OFFSET)
LIMIT = Query(50, ge=1, le=100)


@app.get("/api/v1/channel-connections/")
async def list_connections(request: Request, agency: uuid.UUID = Depends(current_agency), limit: int = LIMIT,
                           offset: int = OFFSET) -> list[dict[str, Any]]:
    rows = await with_db(request, lambda c: c.fetch(
        f"SELECT {CONNECTION_COLUMNS} FROM channel_connections WHERE agency_id = $1 AND deleted_at IS NULL ORDER BY created_at, id LIMIT $2 OFFSET $3", agency, limit, offset))
    return [_connection_json(r) for r in rows]


class ConnectionCreate(BaseModel):
    platform_type: str = Field(max_length=SHORT_TEXT)
    platform_listing_id: str = Field(max_length=SHORT_TEXT)
    property_id: Optional[uuid.UUID] = None
    status: ConnectionStatus = "active"
    platform_metadata: dict[str, Any] = {}
    access_token: Optional[str] = Field(None, max_length=8192)


@app.post("/api/v1/channel-connections/", status_code=201)
async def create_connection(request: Request, body: ConnectionCreate, agency: uuid.UUID = Depends(current_agency)) -> dict[str, Any]:
    from pmsops.sync.crypto import encrypt

    if body.platform_type not in PLATFORMS:
        raise HTTPException(400, f"Invalid platform_type. Must be one of: {list(PLATFORMS)}")
    token = encrypt(body.access_token, _env("ENCRYPTION_KEY")) if body.access_token else None

    async def create(conn):
        await _own_property_or_404(conn, body.property_id, agency)
        return await conn.fetchrow(
            f"""INSERT INTO channel_connections
                    (agency_id, property_id, platform_type, platform_listing_id, status, platform_metadata, access_token_encrypted)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {CONNECTION_COLUMNS}""",
            agency, body.property_id, body.platform_type, body.platform_listing_id, body.status, body.platform_metadata, token)

    return _connection_json(await with_db(request, create))


@app.get("/api/v1/channel-connections/{connection_id}")
async def get_connection(request: Request, connection_id: uuid.UUID, agency: uuid.UUID = Depends(current_agency)) -> dict[str, Any]:
    return _connection_json(await with_db(request, lambda c: _connection_or_404(request, c, connection_id, agency)))


class ConnectionUpdate(BaseModel):
    status: Optional[ConnectionStatus] = None
    platform_listing_id: Optional[str] = Field(None, max_length=SHORT_TEXT)
    platform_metadata: Optional[dict[str, Any]] = None
    property_id: Optional[uuid.UUID] = None


@app.put("/api/v1/channel-connections/{connection_id}")
async def update_connection(request: Request, connection_id: uuid.UUID, body: ConnectionUpdate, agency: uuid.UUID = Depends(current_agency)) -> dict[str, Any]:
    async def update(conn):
        await _connection_or_404(request, conn, connection_id, agency)
        await _own_property_or_404(conn, body.property_id, agency)
        return await conn.fetchrow(
            f"""UPDATE channel_connections SET status = COALESCE($3, status), platform_listing_id = COALESCE($4, platform_listing_id),
                platform_metadata = COALESCE($5, platform_metadata), property_id = COALESCE($6, property_id), updated_at = now()
                WHERE id = $1 AND agency_id = $2 RETURNING {CONNECTION_COLUMNS}""",
            connection_id, agency, body.status, body.platform_listing_id, body.platform_metadata, body.property_id)

    return _connection_json(await with_db(request, update))


@app.delete("/api/v1/channel-connections/{connection_id}")
async def delete_connection(request: Request, connection_id: uuid.UUID, agency: uuid.UUID = Depends(current_agency)) -> dict[str, Any]:
    async def delete(conn):
        await _connection_or_404(request, conn, connection_id, agency)
        await conn.execute("UPDATE channel_connections SET deleted_at = now(), updated_at = now() WHERE id = $1 AND agency_id = $2",
                           connection_id, agency)

    await with_db(request, delete)
    return {"id": str(connection_id), "deleted": True}


@app.post("/api/v1/channel-connections/{connection_id}/test")
async def test_connection(request: Request, connection_id: uuid.UUID, agency: uuid.UUID = Depends(current_agency)) -> dict[str, Any]:
    row = await with_db(request, lambda c: _connection_or_404(request, c, connection_id, agency))
    from pmsops.sync.config import platform_url

    url = platform_url(row["platform_type"])
    healthy = bool(url) and row["status"] == "active"
    return {"connection_id": str(connection_id), "platform_type": row["platform_type"], "healthy": healthy,
            "message": "Connection healthy" if healthy else f"Connection is {row['status']}" if url else "No platform URL configured",
            "details": {"status": row["status"], "listing": row["platform_listing_id"]}}


class SyncRequest(BaseModel):
    sync_type: str = Field(max_length=SHORT_TEXT)


@app.post("/api/v1/channel-connections/{connection_id}/sync")
async def trigger(request: Request, connection_id: uuid.UUID, body: SyncRequest, agency: uuid.UUID = Depends(current_agency)) -> dict[str, Any]:
    from pmsops.errors import DependencyError
    from pmsops.sync.errors import NotFound
    from pmsops.sync.trigger import trigger_sync

    if body.sync_type not in SYNC_TYPES:
        raise HTTPException(400, f"Invalid sync_type. Must be one of: {list(SYNC_TYPES)}")
    try:
        triggered = await with_db(request, lambda c: trigger_sync(c, str(connection_id), body.sync_type, agency_id=agency))
    except NotFound:
        raise HTTPException(404, "Connection not found") from None
    except DependencyError as exc:
        raise HTTPException(503, {"error": "broker_unavailable", "message": exc.message, "error_code": "BROKER_DOWN", "hint": exc.hint}) from None
    return triggered.to_response()


@app.get("/api/v1/channel-connections/{connection_id}/sync-logs")
async def sync_logs(request: Request, connection_id: uuid.UUID, agency: uuid.UUID = Depends(current_agency), limit: int = LIMIT, offset: int = OFFSET,
                    status: Optional[str] = Query(None, max_length=SHORT_TEXT), operation_type: Optional[str] = Query(None, max_length=SHORT_TEXT),
                    task_id: Optional[str] = Query(None, max_length=SHORT_TEXT), batch_id: Optional[uuid.UUID] = None,
                    direction: Optional[str] = Query(None, max_length=SHORT_TEXT)) -> dict[str, Any]:
    from pmsops.sync.logs import list_logs

    async def fetch(conn):
        await _connection_or_404(request, conn, connection_id, agency)
        return await list_logs(conn, connection_id, limit, offset, status=status, operation_type=operation_type, task_id=task_id, batch_id=batch_id, direction=direction)

    logs = await with_db(request, fetch)
    return {"connection_id": str(connection_id), "logs": [_log_json(l) for l in logs], "limit": limit, "offset": offset}


def _log_json(log: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v) for k, v in log.items()}


def batch_status(statuses: list[str]) -> str:
    """The contract's rule: failed if any failed; running if any open and none failed; success if all succeeded."""
    if any(s == "failed" for s in statuses):
        return "failed"
    if any(s in ("triggered", "queued", "running") for s in statuses):
        return "running"
    if statuses and all(s == "success" for s in statuses):
        return "success"
    return "unknown"


@app.get("/api/v1/channel-connections/{connection_id}/sync-batches")
async def sync_batches(request: Request, connection_id: uuid.UUID, agency: uuid.UUID = Depends(current_agency), limit: int = LIMIT,
                       offset: int = OFFSET, status: str = Query("any", max_length=SHORT_TEXT)) -> dict[str, Any]:
    if status not in ("any", "running", "failed", "success"):
        raise HTTPException(400, "Invalid status. Must be one of: ['any', 'running', 'failed', 'success']")

    async def fetch(conn):
        await _connection_or_404(request, conn, connection_id, agency)
        return await conn.fetch(
            """SELECT batch_id, array_agg(status ORDER BY operation_type) AS statuses, array_agg(operation_type ORDER BY operation_type) AS ops,
                      min(created_at) AS created_at, max(updated_at) AS updated_at
               FROM channel_sync_logs WHERE connection_id = $1 AND batch_id IS NOT NULL GROUP BY batch_id ORDER BY min(created_at) DESC""",
            connection_id)

    rows = await with_db(request, fetch)
    items = [{"batch_id": str(r["batch_id"]), "status": batch_status(list(r["statuses"])), "operations": dict(zip(r["ops"], r["statuses"])),
              "created_at": r["created_at"].isoformat(), "updated_at": r["updated_at"].isoformat()} for r in rows]
    if status != "any":
        items = [i for i in items if i["status"] == status]
    return {"items": items[offset: offset + limit], "limit": limit, "offset": offset}
