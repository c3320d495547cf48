"""``/api/v1/channel-connections/…``: list, create, read, update, delete and test a connection, within the caller's agency."""

from __future__ import annotations

import uuid
from typing import Any, Literal, Optional

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from pmsops.sandbox.api.auth import current_agency
from pmsops.sandbox.api.deps import LIMIT, OFFSET, SHORT_TEXT, env, with_db
from pmsops.sync import PLATFORMS

CONNECTION_COLUMNS = "id, agency_id, property_id, platform_type, platform_listing_id, status, platform_metadata, last_sync_at, created_at, updated_at"
ConnectionStatus = Literal["active", "inactive", "paused", "disabled", "error"]

router = APIRouter()


def _connection_json(row) -> dict[str, Any]:
    data = dict(row)
    for key in ("id", "agency_id", "property_id"):
        data[key] = str(data[key]) if data[key] else None
    for key in ("last_sync_at", "created_at", "updated_at"):
        data[key] = data[key].isoformat() if data[key] else None
    return data


async def connection_or_404(request: Request, conn, connection_id: uuid.UUID, agency: uuid.UUID):
    row = await conn.fetchrow(
        f"SELECT {CONNECTION_COLUMNS} FROM channel_connections WHERE id = $1 AND agency_id = $2 AND deleted_at IS NULL", connection_id, agency
    )
    if row is None:
        raise HTTPException(404, "Connection not found")
    return row


async def _own_property_or_404(conn, property_id: uuid.UUID | None, agency: uuid.UUID) -> None:
    """A property a request names must be the caller's agency's: another agency's is a 404, as a missing one
    (else agency A could create a connection that imports bookings into, and pushes prices of, B's property)."""
    if property_id is not None and await conn.fetchval("SELECT 1 FROM properties WHERE id = $1 AND agency_id = $2", property_id, agency) is None:
        raise HTTPException(404, "Property not found")


@router.get("/api/v1/channel-connections/")
async def list_connections(
    request: Request, agency: uuid.UUID = Depends(current_agency), limit: int = LIMIT, offset: int = OFFSET
) -> list[dict[str, Any]]:
    rows = await with_db(
        request,
        lambda c: c.fetch(
            f"SELECT {CONNECTION_COLUMNS} FROM channel_connections WHERE agency_id = $1 AND deleted_at IS NULL"
            " ORDER BY created_at, id LIMIT $2 OFFSET $3",
            agency,
            limit,
            offset,
        ),
    )
    return [_connection_json(r) for r in rows]


class ConnectionCreate(BaseModel):
    platform_type: str = Field(max_length=SHORT_TEXT)
    platform_listing_id: str = Field(max_length=SHORT_TEXT)
    property_id: Optional[uuid.UUID] = None
    status: ConnectionStatus = "active"
    platform_metadata: dict[str, Any] = {}
    access_token: Optional[str] = Field(None, max_length=8192)


@router.post("/api/v1/channel-connections/", status_code=201)
async def create_connection(request: Request, body: ConnectionCreate, agency: uuid.UUID = Depends(current_agency)) -> dict[str, Any]:
    from pmsops.sync.crypto import encrypt

    if body.platform_type not in PLATFORMS:
        raise HTTPException(400, f"Invalid platform_type. Must be one of: {list(PLATFORMS)}")
    token = encrypt(body.access_token, env("ENCRYPTION_KEY")) if body.access_token else None

    async def create(conn):
        await _own_property_or_404(conn, body.property_id, agency)
        return await conn.fetchrow(
            f"""INSERT INTO channel_connections
                    (agency_id, property_id, platform_type, platform_listing_id, status, platform_metadata, access_token_encrypted)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {CONNECTION_COLUMNS}""",
            agency,
            body.property_id,
            body.platform_type,
            body.platform_listing_id,
            body.status,
            body.platform_metadata,
            token,
        )

    return _connection_json(await with_db(request, create))


@router.get("/api/v1/channel-connections/{connection_id}")
async def get_connection(request: Request, connection_id: uuid.UUID, agency: uuid.UUID = Depends(current_agency)) -> dict[str, Any]:
    return _connection_json(await with_db(request, lambda c: connection_or_404(request, c, connection_id, agency)))


class ConnectionUpdate(BaseModel):
    status: Optional[ConnectionStatus] = None
    platform_listing_id: Optional[str] = Field(None, max_length=SHORT_TEXT)
    platform_metadata: Optional[dict[str, Any]] = None
    property_id: Optional[uuid.UUID] = None


@router.put("/api/v1/channel-connections/{connection_id}")
async def update_connection(
    request: Request, connection_id: uuid.UUID, body: ConnectionUpdate, agency: uuid.UUID = Depends(current_agency)
) -> dict[str, Any]:
    async def update(conn):
        await connection_or_404(request, conn, connection_id, agency)
        await _own_property_or_404(conn, body.property_id, agency)
        return await conn.fetchrow(
            f"""UPDATE channel_connections SET status = COALESCE($3, status), platform_listing_id = COALESCE($4, platform_listing_id),
                platform_metadata = COALESCE($5, platform_metadata), property_id = COALESCE($6, property_id), updated_at = now()
                WHERE id = $1 AND agency_id = $2 RETURNING {CONNECTION_COLUMNS}""",
            connection_id,
            agency,
            body.status,
            body.platform_listing_id,
            body.platform_metadata,
            body.property_id,
        )

    return _connection_json(await with_db(request, update))


@router.delete("/api/v1/channel-connections/{connection_id}")
async def delete_connection(request: Request, connection_id: uuid.UUID, agency: uuid.UUID = Depends(current_agency)) -> dict[str, Any]:
    async def delete(conn):
        await connection_or_404(request, conn, connection_id, agency)
        await conn.execute(
            "UPDATE channel_connections SET deleted_at = now(), updated_at = now() WHERE id = $1 AND agency_id = $2", connection_id, agency
        )

    await with_db(request, delete)
    return {"id": str(connection_id), "deleted": True}


@router.post("/api/v1/channel-connections/{connection_id}/test")
async def test_connection(request: Request, connection_id: uuid.UUID, agency: uuid.UUID = Depends(current_agency)) -> dict[str, Any]:
    row = await with_db(request, lambda c: connection_or_404(request, c, connection_id, agency))
    from pmsops.sync.config import platform_url

    url = platform_url(row["platform_type"])
    healthy = bool(url) and row["status"] == "active"
    return {
        "connection_id": str(connection_id),
        "platform_type": row["platform_type"],
        "healthy": healthy,
        "message": "Connection healthy" if healthy else f"Connection is {row['status']}" if url else "No platform URL configured",
        "details": {"status": row["status"], "listing": row["platform_listing_id"]},
    }
