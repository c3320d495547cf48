"""What every router of the reference backend shares: configuration, the pool, retries, paging limits."""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Query, Request

DB_RETRIES = 3
MAX_OFFSET = 2**31 - 1
"""Offsets beyond this are bad input (422), not a database error."""
MAX_BODY_BYTES = 1024 * 1024
SHORT_TEXT = 255
"""Listing ids, filters, e-mail addresses: longer values are bad input (422)."""
OFFSET = Query(0, ge=0, le=MAX_OFFSET)
LIMIT = Query(50, ge=1, le=100)


class DatabaseDown(Exception):
    """The database stayed away through every retry (the contract's 503)."""


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set for the sandbox API")
    return value


@asynccontextmanager
async def lifespan(app: FastAPI):
    from pmsops.database import create_pool
    from pmsops.settings import register_environment_secrets

    from pmsops.sync.config import load
    from pmsops.sync.worker import producer_app, sender

    register_environment_secrets(os.environ)
    app.state.send = sender(producer_app(load()))  # the composition root: one producer for every trigger
    app.state.pool = await create_pool(env("DATABASE_URL"), max_size=10, timeout=3, command_timeout=10)
    yield
    await app.state.pool.close()


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
