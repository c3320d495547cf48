"""``/health`` and ``/health/ready``: the backend's readiness in the current ``components`` shape, from :mod:`pmsops.checks`."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pmsops.sandbox.api.deps import env

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.api_route("/health/ready", methods=["GET", "HEAD"])
async def ready() -> JSONResponse:
    from pmsops.checks import celery as celery_check
    from pmsops.checks.db import check_db
    from pmsops.checks.redis import check_redis

    broker = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")
    db, redis_result, celery_result = await asyncio.gather(
        asyncio.to_thread(check_db, env("DATABASE_URL"), 2.0, "db", dict(os.environ)),
        asyncio.to_thread(check_redis, env("REDIS_URL"), 2.0),
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
