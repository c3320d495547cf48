"""The reference backend: a faithful slice of the channel manager's API (FastAPI), one router per area.

Serves ``/health``, ``/health/ready`` (:mod:`.health`, built on :mod:`pmsops.checks`,
current ``components`` shape), a Supabase-compatible ``/auth/v1/token`` (:mod:`.auth`),
and the channel-connection endpoints of the contract with its status codes and bodies
(:mod:`.connections`; the list answers 307 without its trailing slash; a connection of
another agency is a 404) and their sync endpoints (:mod:`.sync`: a trigger writes the
``triggered`` logs and enqueues the :mod:`pmsops.sync` tasks; logs; batches).
Configuration comes from the sandbox env file. Run: ``uvicorn pmsops.sandbox.api:app``, or ``python -m pmsops.sandbox.api --fd N``
on a listening socket the sandbox bound (:mod:`.__main__`).

Tenancy: every id a request names (path, body or query) is looked up within the
caller's agency; another agency's connection or property is a 404, as one that
does not exist. Errors: :func:`.errors.error_response` is the one mapping from exceptions
to status codes (database constraint and data errors are 4xx); anything it does not
know is a generic 500 and one log line without values (:class:`.errors.ErrorBoundary`).
Database access and shared parameters: :mod:`.deps`.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from pmsops.sandbox.api import auth, connections, health, sync
from pmsops.sandbox.api.deps import MAX_BODY_BYTES, lifespan
from pmsops.sandbox.api.errors import ErrorBoundary, error_response, validation_error

__all__ = ["app", "create_app", "error_response", "ErrorBoundary"]


def create_app() -> FastAPI:
    """The app: routers in the contract's order, the validation handler and the error boundary around everything."""
    # FastAPI's own body cap counts what arrives, so a chunked body (no Content-Length) is refused too (413)
    app = FastAPI(title="pmsops sandbox backend", lifespan=lifespan, max_body_size=MAX_BODY_BYTES)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(ErrorBoundary)
    for router in (health.router, auth.router, connections.router, sync.router):
        app.include_router(router)
    return app


app = create_app()
