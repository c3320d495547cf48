"""``/api/v1/channel-connections/{id}/sync``, ``…/sync-logs`` and ``…/sync-batches``: trigger a sync and read its logs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from pmsops.sandbox.api.auth import current_agency
from pmsops.sandbox.api.connections import connection_or_404
from pmsops.sandbox.api.deps import LIMIT, OFFSET, SHORT_TEXT, with_db
from pmsops.sync import SYNC_TYPES

router = APIRouter()


class SyncRequest(BaseModel):
    sync_type: str = Field(max_length=SHORT_TEXT)


@router.post("/api/v1/channel-connections/{connection_id}/sync")
async def trigger(request: Request, connection_id: uuid.UUID, body: SyncRequest, agency: uuid.UUID = Depends(current_agency)) -> dict[str, Any]:
    from pmsops.errors import DependencyError
    from pmsops.sync.errors import NotFound
    from pmsops.sync.trigger import trigger_sync

    if body.sync_type not in SYNC_TYPES:
        raise HTTPException(400, f"Invalid sync_type. Must be one of: {list(SYNC_TYPES)}")
    try:
        send = request.app.state.send
        triggered = await with_db(request, lambda c: trigger_sync(c, str(connection_id), body.sync_type, agency_id=agency, send=send))
    except NotFound:
        raise HTTPException(404, "Connection not found") from None
    except DependencyError as exc:
        raise HTTPException(503, {"error": "broker_unavailable", "message": exc.message, "error_code": "BROKER_DOWN", "hint": exc.hint}) from None
    return triggered.to_response()


@router.get("/api/v1/channel-connections/{connection_id}/sync-logs")
async def sync_logs(
    request: Request,
    connection_id: uuid.UUID,
    agency: uuid.UUID = Depends(current_agency),
    limit: int = LIMIT,
    offset: int = OFFSET,
    status: Optional[str] = Query(None, max_length=SHORT_TEXT),
    operation_type: Optional[str] = Query(None, max_length=SHORT_TEXT),
    task_id: Optional[str] = Query(None, max_length=SHORT_TEXT),
    batch_id: Optional[uuid.UUID] = None,
    direction: Optional[str] = Query(None, max_length=SHORT_TEXT),
) -> dict[str, Any]:
    from pmsops.sync.logs import list_logs

    async def fetch(conn):
        await connection_or_404(request, conn, connection_id, agency)
        return await list_logs(
            conn, connection_id, limit, offset, status=status, operation_type=operation_type, task_id=task_id, batch_id=batch_id, direction=direction
        )

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


@router.get("/api/v1/channel-connections/{connection_id}/sync-batches")
async def sync_batches(
    request: Request,
    connection_id: uuid.UUID,
    agency: uuid.UUID = Depends(current_agency),
    limit: int = LIMIT,
    offset: int = OFFSET,
    status: str = Query("any", max_length=SHORT_TEXT),
) -> dict[str, Any]:
    if status not in ("any", "running", "failed", "success"):
        raise HTTPException(400, "Invalid status. Must be one of: ['any', 'running', 'failed', 'success']")

    async def fetch(conn):
        await connection_or_404(request, conn, connection_id, agency)
        return await conn.fetch(
            """SELECT batch_id, array_agg(status ORDER BY operation_type) AS statuses, array_agg(operation_type ORDER BY operation_type) AS ops,
                      min(created_at) AS created_at, max(updated_at) AS updated_at
               FROM channel_sync_logs WHERE connection_id = $1 AND batch_id IS NOT NULL GROUP BY batch_id ORDER BY min(created_at) DESC""",
            connection_id,
        )

    rows = await with_db(request, fetch)
    items = [
        {
            "batch_id": str(r["batch_id"]),
            "status": batch_status(list(r["statuses"])),
            "operations": dict(zip(r["ops"], r["statuses"])),
            "created_at": r["created_at"].isoformat(),
            "updated_at": r["updated_at"].isoformat(),
        }
        for r in rows
    ]
    if status != "any":
        items = [i for i in items if i["status"] == status]
    return {"items": items[offset : offset + limit], "limit": limit, "offset": offset}
