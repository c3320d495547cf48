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


READY_CACHE_SECONDS = 2.0
"""How long one readiness answer is reused (READY_CACHE_SECONDS; 0: none). Unauthenticated, each request ran a database
connect, a Redis check and a Celery broadcast: anyone could make the backend do that work in a loop (#23 item 8)."""
_ANSWER: dict[str, Any] = {"at": None, "response": None}
_LOCKS: dict[int, asyncio.Lock] = {}


@router.api_route("/health/ready", methods=["GET", "HEAD"])
async def ready() -> JSONResponse:
    """One computation per cache period however many callers; READY_DELAY_SECONDS rehearses a slow readiness (a
    backend whose Celery inspect waits), the variant of #25 item 3."""
    import time

    ttl = float(os.environ.get("READY_CACHE_SECONDS") or READY_CACHE_SECONDS)
    lock = _LOCKS.setdefault(id(asyncio.get_running_loop()), asyncio.Lock())
    async with lock:
        at = _ANSWER["at"]
        if at is not None and time.monotonic() - at < ttl:
            return _ANSWER["response"]
        delay = float(os.environ.get("READY_DELAY_SECONDS") or 0)
        if delay > 0:
            await asyncio.sleep(delay)  # the slow-readiness variant: switchable, off by default
        response = await _compute_readiness()
        _ANSWER.update(at=time.monotonic(), response=response)
        return response


async def _compute_readiness() -> JSONResponse:
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
