"""Errors of the reference backend: one mapping from exceptions to status codes, one boundary around the routes."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pmsops.sandbox.api.deps import DB_RETRIES, DatabaseDown

logger = logging.getLogger("pmsops.sandbox.api")


def _constraint_column(exc: Any) -> str | None:
    """``channel_connections_status_check`` → ``status`` (PostgreSQL's default constraint names)."""
    column = getattr(exc, "column_name", None)
    if column:
        return column
    name, table = getattr(exc, "constraint_name", None) or "", getattr(exc, "table_name", None) or ""
    for suffix in ("_check", "_fkey", "_key"):
        if table and name.startswith(table + "_") and name.endswith(suffix):
            return name[len(table) + 1 : -len(suffix)] or None
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


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    status, body = error_response(exc)  # type: ignore[misc] - always mapped
    return JSONResponse(status_code=status, content=body)


class ErrorBoundary:
    """ASGI middleware around the routes: mapped errors get their status; anything else a
    generic 500 and ONE log line (method, route template, exception type, SQLSTATE, an
    error id also returned to the caller) — no traceback, no values, no secrets. (Bodies over
    ``MAX_BODY_BYTES`` are FastAPI's ``max_body_size``: 413, chunked ones too.)"""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        outer: BaseException | None = None

        async def received():
            nonlocal outer
            try:
                return await receive()
            except BaseException as exc:
                outer = exc
                raise

        async def tracked(message) -> None:
            nonlocal started, outer
            started = started or message["type"] == "http.response.start"
            try:
                await send(message)
            except BaseException as exc:
                outer = exc
                raise

        try:
            await self.app(scope, received, tracked)
        except Exception as exc:  # noqa: BLE001 - the boundary: nothing escapes with a traceback
            if outer is not None:
                raise  # it began in the layers around us (the server, FastAPI's body cap after its 413): theirs to handle
            mapped = error_response(exc)
            if mapped is None:
                error_id = uuid.uuid4().hex[:12]
                route = getattr(scope.get("route"), "path", None) or "(unrouted)"
                logger.error(
                    "%s %s failed: %s%s (error id %s)",
                    scope.get("method", "?"),
                    route,
                    type(exc).__name__,
                    f" sqlstate {exc.sqlstate}" if getattr(exc, "sqlstate", None) else "",
                    error_id,
                )
                mapped = 500, {"detail": "Internal server error", "error_id": error_id}
            if not started:
                await JSONResponse(status_code=mapped[0], content=mapped[1])(scope, receive, send)
