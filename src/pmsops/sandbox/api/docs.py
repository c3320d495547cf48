"""The API's own description, behind authentication and without a CDN (#23 item 8).

FastAPI's defaults serve ``/docs``, ``/redoc`` and ``/openapi.json`` to anyone, and ``/docs`` loads Swagger UI's
JavaScript from a CDN into the operator's browser. Here ``/openapi.json`` and ``/docs`` need the same bearer token as
the API (a 401 otherwise); ``/docs`` is a page rendered on the server from the OpenAPI document (paths, methods,
summaries), escaped, with a Content-Security-Policy that loads nothing; ``/redoc`` does not exist.
"""

from __future__ import annotations

import html
import uuid

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse

from pmsops.sandbox.api.auth import current_agency

router = APIRouter(include_in_schema=False)
CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


@router.get("/openapi.json")
async def openapi(request: Request, agency: uuid.UUID = Depends(current_agency)) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def docs(request: Request, agency: uuid.UUID = Depends(current_agency)) -> HTMLResponse:
    spec = request.app.openapi()
    rows = "".join(
        f"<tr><td>{html.escape(method.upper())}</td><td><code>{html.escape(path)}</code></td>"
        f"<td>{html.escape(str(op.get('summary') or ''))}</td></tr>"
        for path, item in sorted(spec.get("paths", {}).items())
        for method, op in item.items()
        if isinstance(op, dict)
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(spec['info']['title'])}</title></head>"
        f"<body><h1>{html.escape(spec['info']['title'])}</h1><table>{rows}</table>"
        "<p>The full description: GET /openapi.json with the same bearer token.</p></body></html>"
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"})
