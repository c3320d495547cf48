"""The runbook's HTTP status reference, shared by ``explain`` and every API command."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatusInfo:
    code: int
    meaning: str
    causes: str
    fix: str


STATUS_TABLE: dict[int, StatusInfo] = {
    200: StatusInfo(200, "Success", "-", "Expected for GET/POST/PATCH; a sync trigger answers 200 with task ids"),
    201: StatusInfo(201, "Created", "-", "Expected for POST (create)"),
    307: StatusInfo(
        307,
        "Temporary Redirect",
        "Missing trailing slash (e.g. /api/v1/channel-connections)",
        "Add '/' or follow redirects (curl -L); scripts that don't follow get an empty body and a JSONDecodeError",
    ),
    400: StatusInfo(400, "Bad Request", "Invalid value, e.g. an unknown sync_type", "Use one of full, availability, pricing, bookings"),
    401: StatusInfo(
        401,
        "Unauthorized",
        "Missing or invalid token: 'Token has expired', or 'Invalid authentication token' when the backend's SUPABASE_JWT_SECRET/JWT_SECRET differs"
        " from GoTrue's",
        "Re-fetch the JWT (pmsops token); if it persists, compare the JWT secrets of backend and Supabase (pmsops token --verify); check"
        " CHANNEL_MANAGER_ENABLED=true",
    ),
    403: StatusInfo(
        403,
        "Forbidden",
        "Insufficient permissions: user role or tenant (agency) membership",
        "Check the user's role and agency membership (x-agency-id header)",
    ),
    404: StatusInfo(
        404,
        "Not Found",
        "Wrong URL, or a resource that does not exist or belongs to another agency",
        "Verify the endpoint and the resource id (pmsops connections list)",
    ),
    405: StatusInfo(405, "Method Not Allowed", "Wrong HTTP method", "Check OpenAPI: /sync and /test need POST; no trailing slash after /{id}/sync"),
    422: StatusInfo(
        422, "Validation Error", "Invalid request body or path", 'The connection id must be a UUID; the sync body needs {"sync_type": "full"}'
    ),
    429: StatusInfo(429, "Too Many Requests", "Rate limit reached", "Wait for the Retry-After seconds, then retry"),
    500: StatusInfo(500, "Internal Server Error", "Backend exception", "Check the backend logs (docker logs pms-backend --since 10m)"),
    502: StatusInfo(502, "Bad Gateway", "Proxy cannot reach the backend container", "Check the backend container is up and on the proxy's network"),
    503: StatusInfo(
        503,
        "Service Unavailable",
        "Database or Redis down, or the schema is out of date (missing table, a CHECK constraint rejecting an operation type)",
        "Check /health/ready (pmsops check health) and the schema (pmsops db check)",
    ),
    504: StatusInfo(504, "Gateway Timeout", "Backend too slow or hanging", "Check /health/ready and the backend logs"),
}


def lookup(code: int) -> StatusInfo | None:
    return STATUS_TABLE.get(code)


def hint_for(code: int) -> str:
    """A one-line hint for an HTTP status, for any command that got it."""
    info = lookup(code)
    if info is None:
        family = {2: "success", 3: "redirect", 4: "client error", 5: "server error"}.get(code // 100, "unexpected status")
        return f"HTTP {code} ({family}); see pmsops explain for the statuses the runbook knows"
    return f"{info.meaning}: {info.causes}. {info.fix}"


TOPICS: dict[str, dict[str, str]] = {
    "coolify-url": {
        "title": "COOLIFY_URL Null Issue",
        "section": "Coolify / Nixpacks Quirks › COOLIFY_URL Null Issue",
        "symptom": 'the Coolify/Nixpacks build of the worker fails with "COOLIFY_URL is null" (or similar) before any pmsops or Celery code runs',
        "cause": "the build reads COOLIFY_URL and it is unset or empty in the service's build-time environment; the worker itself does not use it",
        "fix": (
            "add COOLIFY_URL=https://coolify.example.com (any non-empty value works for the worker) to the service's Environment Variables, "
            "ticked for build AND runtime, then redeploy; check with: pmsops host env-diff pms-backend pms-worker-v2"
        ),
    },
    "start-command": {
        "title": "Start Command Quoting Issues",
        "section": "Coolify / Nixpacks Quirks › Start Command Quoting Issues",
        "symptom": 'the Nixpacks build breaks, or the worker starts with a literal "$CELERY_BROKER_URL" as its broker',
        "cause": "Nixpacks may take quotes around $VARIABLES in the Coolify Start Command literally during the build",
        "fix": (
            "keep the Start Command simple (bash /app/scripts/ops/start_worker.sh, or celery -A … worker -l INFO) and put CELERY_BROKER_URL and "
            "CELERY_RESULT_BACKEND in the environment; check with: pmsops host worker-cmd"
        ),
    },
}
"""Runbook quirks that have no status code: ``pmsops explain coolify-url``."""


def explain_results(codes: list[int], topics: list[str]):
    """The reference as results (``explain --json`` in the one report schema): unknown codes fail."""
    from pmsops import results

    found = []
    for code in codes:
        info = lookup(code)
        if info is None:
            found.append(results.fail(str(code), "not in the runbook's table"))
        else:
            found.append(results.ok(str(code), info.meaning, hint=info.fix, notes=[f"causes: {info.causes}", f"fix: {info.fix}"], details=vars(info)))
    for topic in topics:
        entry = TOPICS[topic]
        found.append(
            results.ok(
                topic, entry["title"], hint=entry["fix"], notes=[f"symptom: {entry['symptom']}", f"cause: {entry['cause']}"], details=dict(entry)
            )
        )
    return found


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds (delta-seconds or an HTTP date, RFC 9110); ``None`` when absent or unreadable.
    One reading for the API client and the platform adapters."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from datetime import datetime
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
            return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())
        except (TypeError, ValueError):
            return None
    import math

    return max(0.0, seconds) if math.isfinite(seconds) else None
