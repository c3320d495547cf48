"""HTTP failures of the backend API, each with the runbook's hint for its status."""

from __future__ import annotations

from typing import Any

from pmsops.errors import DependencyError, RateLimitExceeded
from pmsops.http_status import hint_for


def _page_summary(text: str) -> str:
    """A non-JSON body in one line: an HTML page by its title (never its markup), plain text collapsed and cut."""
    import html
    import re

    if re.search(r"<\s*(html|head|body|title|h1|center)\b", text, re.IGNORECASE):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL) or re.search(
            r"<h1[^>]*>(.*?)</h1>", text, re.IGNORECASE | re.DOTALL
        )
        name = " ".join(html.unescape(re.sub(r"<[^>]+>", "", title.group(1))).split())[:80] if title else ""
        return f"an HTML page ({name!r})" if name else "an HTML page"
    return " ".join(text.split())[:200]


def detail_text(body: Any) -> str:
    if isinstance(body, str):
        return _page_summary(body)
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
    detail = detail_text(body)
    hint = hint_for(status)
    if status == 401 and isinstance(detail, str):
        if "expired" in detail.lower():
            hint = "the token has expired: fetch a new one (pmsops token) — tokens live about an hour"
        elif "invalid" in detail.lower():
            hint = (
                "the backend cannot verify the token: its SUPABASE_JWT_SECRET/JWT_SECRET differs from the one that signed it (pmsops token --verify)"
            )
    if status in (502, 503, 504) and (body is None or isinstance(body, str)):
        # the backend answers errors in JSON ({"detail": …}); a page or plain text is the reverse proxy's own answer
        hint = (
            f"the reverse proxy answered HTTP {status} itself ({detail or 'an empty body'}), not the backend: it has no healthy backend "
            "container (down, unhealthy, or mid-deploy). Check the backend container is running and healthy and on the proxy's network "
            "(docker ps; pmsops host check)"
        )
    return ApiError(f"{method} {url}: HTTP {status}" + (f" {detail}" if detail else ""), status, body, hint)


class RateLimited(ApiError, RateLimitExceeded):
    """HTTP 429 whose Retry-After does not fit in what the command may still wait (or that has none)."""

    def __init__(self, method: str, url: str, retry_after: float | None, left: float, body: Any = None) -> None:
        if retry_after is None:
            what, hint = "HTTP 429 rate limited, with no Retry-After", "the API limits requests: wait a minute and run it again"
        else:
            what = f"HTTP 429 rate limited: Retry-After {retry_after:g} s, more than the {left:.0f} s this command may still wait"
            hint = f"the API limits requests: run it again in {retry_after:g} s, or give it more time (--wait, --timeout)"
        super().__init__(f"{method} {url}: {what}", 429, body, hint)
        self.retry_after = retry_after
