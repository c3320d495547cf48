"""``check health``: read ``/health/ready`` in both shapes the backend has served.

Current: ``{"status": "up"|"down", "components": {"db": {"status"}, "redis": {…},
"celery": {"status", "details": {"workers": […]}}}, "checked_at"}``; a disabled
component has ``details.skipped: true``. Legacy: ``{"status": "ready"|"degraded",
"checks": {"database": "up", …}, "celery_workers": […]}``. Redirects are not
followed silently (a proxy answering 30x is itself a finding); HTML and empty
bodies get a clear message instead of a JSON error.
"""

from __future__ import annotations

from typing import Any

from pmsops import results
from pmsops.failures import classify
from pmsops.results import Result, Stopwatch
from pmsops.runner import ready_read_timeout
from pmsops.urls import host_of

UP = {"up", "ok", "ready", "healthy", "pass", "true"}
NOT_READY = {"down", "unhealthy", "error", "fail", "not_ready"}
"""The backend answers 503 and one of these when the database (mandatory) is down.
Another component down leaves it "ready" (200) but degraded: still a failure for us
(README "Exit codes": a component the syncs need is down now), e.g. celery down means
no sync will run. A warning is only what works now but needs attention."""

COMPONENT_HINTS = {
    "db": "check DATABASE_URL in the backend and that Supabase's database runs (pmsops check db); the backend must be on the Supabase network",
    "redis": "check the Redis URL encoding (pmsops redis-url check) and that coolify-redis runs (docker ps | grep redis)",
    "celery": "check the worker runs (docker ps | grep worker) and its logs (pmsops host logs pms-worker-v2)",
}
_ALIASES = {"database": "db", "postgres": "db", "postgresql": "db", "broker": "redis", "workers": "celery", "worker": "celery"}


def ready_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/health/ready") else base + "/health/ready"


def parse_components(body: dict[str, Any]) -> tuple[str, dict[str, dict[str, Any]], list[str]]:
    """Overall status, components (name → {status, skipped, error}) and workers, from either shape."""
    overall = str(body.get("status", "?"))
    components: dict[str, dict[str, Any]] = {}
    workers: list[str] = []
    if isinstance(body.get("components"), dict):
        for name, comp in body["components"].items():
            comp = comp if isinstance(comp, dict) else {"status": comp}
            detail = comp.get("details") if isinstance(comp.get("details"), dict) else {}
            components[_ALIASES.get(name, name)] = {
                "status": str(comp.get("status", "?")),
                # disabled: {"details": {"skipped": true}}, or the component's own status "skipped" / "disabled"
                "skipped": bool(detail.get("skipped")) or str(comp.get("status", "")).lower() in ("skipped", "disabled"),
                "error": comp.get("error") or detail.get("error"),
            }
            if isinstance(detail.get("workers"), list):
                workers += [str(w) for w in detail["workers"]]
    elif isinstance(body.get("checks"), dict):
        for name, status in body["checks"].items():
            value = status.get("status") if isinstance(status, dict) else status
            components[_ALIASES.get(name, name)] = {
                "status": str(value),
                "skipped": str(value).lower() == "skipped",
                "error": status.get("error") if isinstance(status, dict) else None,
            }
        workers = [str(w) for w in body.get("celery_workers") or []]
    return overall, components, workers


def check_health(base_url: str, timeout: float = 3.0, name: str = "health", read_timeout: float | None = None) -> Result:
    """GET ``/health/ready`` and report each component, the workers and the HTTP status.

    ``timeout`` bounds the connection; the answer may take :func:`pmsops.runner.ready_read_timeout` (the endpoint
    waits on its own checks), unless the caller has a tighter deadline of its own (``read_timeout``, the exporter)."""
    import httpx

    url = ready_url(base_url)
    watch = Stopwatch()
    read = read_timeout if read_timeout is not None else ready_read_timeout(timeout)
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout, read=read), follow_redirects=False) as client:
            response = client.get(url, headers={"Accept": "application/json"})
    except httpx.ReadTimeout:
        return results.fail(
            name,
            f"{url}: connected, but no answer within {read:g} s",
            hint="the backend accepted the connection and is stuck in its own readiness checks: a Celery inspect that waits "
            "because no worker answers, or a database or Redis that does not answer (pmsops celery ping; pmsops check db; pmsops check redis)",
            details={"url": url, "error": "read-timeout"},
        )
    except httpx.HTTPError as exc:
        host, port = host_of(url)
        failure = classify(exc, host, port, timeout, "the API")
        return results.fail(name, f"{url}: {failure.summary}", hint=failure.hint, details={"url": url, "error": failure.kind})
    details: dict[str, Any] = {"url": url, "http_status": response.status_code}
    if response.is_redirect:
        location = response.headers.get("location", "?")
        return results.fail(
            name,
            f"{url}: HTTP {response.status_code} redirect to {location}",
            details=details,
            hint="point PMS_API_URL at the final address (https:// and the right host); a proxy redirect here means the URL is not the API's",
        )
    content_type = response.headers.get("content-type", "")
    text = response.text
    if not text.strip():
        return results.fail(
            name, f"{url}: HTTP {response.status_code} with an empty body", details=details, hint="not the channel-manager API, or a proxy error page"
        )
    try:
        body = response.json()
    except ValueError:
        looks_html = "html" in content_type or text.lstrip().lower().startswith(("<!doctype", "<html"))
        kind = "an HTML page" if looks_html else f"a non-JSON body ({content_type or 'no content type'})"
        return results.fail(
            name,
            f"{url}: HTTP {response.status_code} returned {kind}",
            details=details,
            hint="the URL reaches a proxy or another app (Traefik 404/502 page, login page): check PMS_API_URL and the backend container",
        )
    if not isinstance(body, dict):
        return results.fail(name, f"{url}: HTTP {response.status_code} returned JSON that is not an object", details=details)
    return _verdict(name, url, response.status_code, body, details, watch)


def _verdict(name: str, url: str, code: int, body: dict[str, Any], details: dict[str, Any], watch: Stopwatch) -> Result:
    overall, components, workers = parse_components(body)
    details.update(
        {
            "status": overall,
            "components": components,
            "workers": workers,
            "shape": "components" if "components" in body else "checks" if "checks" in body else "unknown",
        }
    )
    notes, down = [], []
    for comp_name, comp in components.items():
        status = comp["status"]
        if comp["skipped"]:
            notes.append(f"{comp_name}: skipped (check disabled)")
            continue
        notes.append(f"{comp_name}: {status}" + (f" ({comp['error']})" if comp.get("error") else ""))
        if status.lower() not in UP:
            down.append(comp_name)
    if workers:
        notes.append(f"workers: {', '.join(workers)}")
    summary = f"HTTP {code}, status {overall}"
    hint = "; ".join(f"{c}: {COMPONENT_HINTS.get(c, 'see the component error')}" for c in down) or "the backend reports not ready: see the components"
    if code >= 400 or overall.lower() in NOT_READY:
        return results.fail(
            name, summary + (f", down: {', '.join(down)}" if down else ""), hint=hint, notes=notes, details=details, duration_ms=watch.ms
        )
    if down:
        # Ready for the backend (the database is up) but degraded: syncs need every component.
        return results.fail(name, summary + f", degraded: {', '.join(down)} down", hint=hint, notes=notes, details=details, duration_ms=watch.ms)
    if overall.lower() not in UP:
        return results.warn(
            name, summary + (f", degraded: {', '.join(down)} down" if down else ""), hint=hint, notes=notes, details=details, duration_ms=watch.ms
        )
    if not components:
        return results.warn(
            name,
            summary + ", but no components reported",
            notes=notes,
            details=details,
            duration_ms=watch.ms,
            hint="an old backend or another app: expected 'components' or 'checks'",
        )
    return results.ok(name, summary + f", {len(components)} components up", notes=notes, details=details, duration_ms=watch.ms)
