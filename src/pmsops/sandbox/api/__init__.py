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

from pmsops.sandbox.api import auth, connections, docs, health, sync
from pmsops.sandbox.api.deps import MAX_BODY_BYTES, lifespan
from pmsops.sandbox.api.errors import ErrorBoundary, error_response, validation_error

__all__ = ["app", "create_app", "error_response", "ErrorBoundary"]


def create_app() -> FastAPI:
    """The app: routers in the contract's order, the validation handler and the error boundary around everything."""
    # FastAPI's own body cap counts what arrives, so a chunked body (no Content-Length) is refused too (413)
    # no open /docs, /redoc, /openapi.json (and no Swagger UI from a CDN): .docs serves them behind the token
    app = FastAPI(title="pmsops sandbox backend", lifespan=lifespan, max_body_size=MAX_BODY_BYTES, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(ErrorBoundary)
    app.add_middleware(AmbiguousLength)
    for router in (health.router, auth.router, connections.router, sync.router, docs.router):
        app.include_router(router)
    return app


class AmbiguousLength:
    """A request with both Content-Length and Transfer-Encoding (a request-smuggling shape) is answered 400 and its
    connection closed, as RFC 9112 section 6.3 says; it was served on a kept-alive connection."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            names = {name.lower() for name, _ in scope["headers"]}
            if b"content-length" in names and b"transfer-encoding" in names:
                body = b'{"detail":"Content-Length and Transfer-Encoding together: refused (RFC 9112 6.3)"}'
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
                await send({"type": "http.response.start", "status": 400, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


app = create_app()
