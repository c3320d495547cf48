"""HTTP failures of the backend API, each with the runbook's hint for its status."""

from __future__ import annotations

from typing import Any

from pmsops.errors import DependencyError
from pmsops.http_status import hint_for


def _detail_text(body: Any) -> str:
    if isinstance(body, dict):
        detail = body.get("detail", body.get("message", body.get("error")))
        if isinstance(detail, list):  # FastAPI validation errors
            return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail if isinstance(d, dict))
        if isinstance(detail, dict):
            return " ".join(str(detail.get(k)) for k in ("error", "message", "hint") if detail.get(k))
        if detail is not None:
            return str(detail)
    return str(body)[:200] if body else ""


class ApiError(DependencyError):
    """The API answered with an error status (or not at all)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or (hint_for(status) if status else None))
        self.status = status
        self.body = body


def api_error(method: str, url: str, status: int, body: Any) -> ApiError:
    detail = _detail_text(body)
    hint = hint_for(status)
    if status == 401 and isinstance(detail, str):
        if "expired" in detail.lower():
            hint = "the token has expired: fetch a new one (pmsops token) — tokens live about an hour"
        elif "invalid" in detail.lower():
            hint = (
                "the backend cannot verify the token: its SUPABASE_JWT_SECRET/JWT_SECRET differs from the one that signed it (pmsops token --verify)"
            )
    return ApiError(f"{method} {url}: HTTP {status}" + (f" {detail}" if detail else ""), status, body, hint)
