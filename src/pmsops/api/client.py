"""A small httpx client for the channel-manager API: a timeout on every call, the slashed paths FastAPI serves,
redirects judged before they are followed, 429s waited out within the command's budget.

Redirects: a hop to the same origin (or an upgrade of ``http://`` to ``https://`` on the same host, with the
method kept) is followed; a hop that downgrades ``https://`` to ``http://`` (FastAPI's trailing-slash redirect
behind a TLS proxy uvicorn does not trust), that leaves for another origin, or that turns a POST into a GET
(301/302/303) is the finding itself, named with its cause: following it would drop the token (401) or answer
405. Rate limits: a 429 whose ``Retry-After`` fits in what is left of the budget is waited out and asked again;
a longer one ends the call with the seconds named (:class:`RateLimited`), so a caller keeps what it learned.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pmsops.api.errors import ApiError, RateLimited, api_error
from pmsops.http_status import retry_after_seconds
from pmsops.failures import classify
from pmsops.urls import host_of

API_PREFIX = "/api/v1"
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
MAX_RATE_LIMIT_WAITS = 5
"""429s waited out per call at most, whatever the budget: a server that keeps answering 429 is the finding."""


@dataclass
class Response:
    status: int
    body: Any
    redirected_from: str | None = None
    upgraded_to_https: bool = False
    """PMS_API_URL says http:// and the API redirected to https:// on the same host (followed; worth fixing)."""

    def redirect_note(self) -> str | None:
        """What an operator should know about a redirect that was followed (``None`` when there was none)."""
        if self.upgraded_to_https:
            return "PMS_API_URL says http:// and the API redirected to https://: set PMS_API_URL to https:// (the first hop sent the token in clear)"
        return f"(followed a redirect from {self.redirected_from})" if self.redirected_from else None


def decode_body(text: str) -> Any:
    """JSON when it is JSON; None for an empty body; the text otherwise."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or ""), parts.port or default


def redirect_refusal(method: str, source: str, target: str, status: int) -> tuple[str, str] | None:
    """(what, hint) when a redirect must not be followed; ``None`` when it may be."""
    (scheme, host, port), (to_scheme, to_host, _to_port) = _origin(source), _origin(target)
    if scheme == "https" and to_scheme == "http":
        return (
            f"HTTP {status} redirect to {target}: https:// downgraded to http:// (following it would drop the token: HTTP 401)",
            "a TLS-terminating proxy sits in front of uvicorn, which does not trust its X-Forwarded-Proto, so FastAPI builds "
            "its redirects with http://: start the backend with uvicorn --proxy-headers --forwarded-allow-ips=<the proxy's address>",
        )
    if method not in ("GET", "HEAD") and status in (301, 302, 303):
        fix = f"set PMS_API_URL to {to_scheme}://{urlsplit(target).netloc}" if (to_scheme, to_host) != (scheme, host) else "fix the path"
        return (
            f"HTTP {status} redirect to {target}: a client repeats a {method} there as a GET, which the API refuses (HTTP 405)",
            f"{fix}: the proxy redirects the address PMS_API_URL names"
            + (" (http:// to https://)" if (scheme, to_scheme) == ("http", "https") else ""),
        )
    upgrade = (scheme, to_scheme) == ("http", "https") and host == to_host
    if (to_scheme, to_host, _to_port) != (scheme, host, port) and not upgrade:
        return (
            f"HTTP {status} redirect to another origin ({to_scheme}://{urlsplit(target).netloc}): the token is not sent there",
            f"if that is the API, set PMS_API_URL to {to_scheme}://{urlsplit(target).netloc}",
        )
    return None


class ApiClient:
    def __init__(
        self, base_url: str, token: str | None = None, timeout: float = 10.0, agency_id: str | None = None, budget: float | None = None
    ) -> None:
        """``budget``: how long this client may wait out rate limits in all (a command's --wait; default its timeout)."""
        import httpx

        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if agency_id:
            headers["x-agency-id"] = agency_id
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout), follow_redirects=False)
        self.timeout = timeout
        self.budget = timeout if budget is None else budget
        self._deadline = time.monotonic() + self.budget

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, url: str, kwargs: dict[str, Any]):
        import httpx

        try:
            return self._http.request(method, url, **kwargs)
        except httpx.ReadTimeout:
            raise ApiError(
                f"{method} {url}: connected, but no answer within {self.timeout:g} s",
                hint="the API accepted the connection and did not answer: the backend is overloaded or stuck on one of its "
                "dependencies (pmsops check health; pmsops doctor)",
            ) from None
        except httpx.HTTPError as exc:
            host, port = host_of(url)
            failure = classify(exc, host, port, self.timeout, "the API")
            raise ApiError(f"{method} {url}: {failure.summary}", hint=failure.hint) from None

    def _rate_limit_wait(self, method: str, url: str, response, waits: int) -> None:
        """Wait out a 429 when its Retry-After fits in the budget; else end the call naming the seconds."""
        seconds = retry_after_seconds(response.headers.get("retry-after"))
        left = self._deadline - time.monotonic()
        if seconds is None or seconds > left or waits >= MAX_RATE_LIMIT_WAITS:
            raise RateLimited(method, url, seconds, max(0.0, left), decode_body(response.text))
        time.sleep(seconds)

    def request(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Response:
        url = first = self.base_url + path
        upgraded, waits, hops = False, 0, 0
        while True:
            response = self._send(method, url, kwargs)
            location = response.headers.get("location")
            if response.status_code in REDIRECTS and location:
                target = str(response.url.join(location))
                refusal = redirect_refusal(method, str(response.url), target, response.status_code)
                hops += 1
                if refusal is None and hops > MAX_REDIRECTS:
                    refusal = (f"more than {MAX_REDIRECTS} redirects (last to {target})", "a redirect loop between proxy and API: check PMS_API_URL")
                if refusal is not None:
                    raise ApiError(f"{method} {first}: {refusal[0]}", response.status_code, None, hint=refusal[1])
                upgraded = upgraded or (urlsplit(url).scheme, urlsplit(target).scheme) == ("http", "https")
                url = target
                kwargs.pop("params", None)  # the Location carries the query
                continue
            if response.status_code == 429:
                self._rate_limit_wait(method, first, response, waits)
                waits += 1
                continue
            break
        body = decode_body(response.text)
        if response.status_code not in expect:
            raise api_error(method, first, response.status_code, body)
        if isinstance(body, str):
            raise ApiError(
                f"{method} {first}: HTTP {response.status_code} but the body is not JSON ({body.strip()[:80]!r})",
                response.status_code,
                body,
                hint="an HTML page or proxy error instead of the API: check PMS_API_URL",
            )
        return Response(response.status_code, body, first if url != first else None, upgraded)

    # endpoints -------------------------------------------------------------------------------------
    def health_ready(self) -> Response:
        return self.request("GET", "/health/ready", expect=(200, 503))

    def list_connections(self, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], Response]:
        """The slashed path the API serves (the runbook's fix): the unslashed one answers 307, which behind a TLS proxy
        uvicorn does not trust points at http:// and loses the token."""
        response = self.request("GET", f"{API_PREFIX}/channel-connections/", params={"limit": limit, "offset": offset})
        body = response.body
        items = body.get("items", []) if isinstance(body, dict) else body if isinstance(body, list) else None
        if items is None:
            raise ApiError(
                "channel-connections: expected a list or {items: [...]}, got an empty body"
                if body is None
                else "channel-connections: unexpected body shape",
                response.status,
                body,
                hint="an empty body after a redirect: scripts must follow 307 (curl -L)",
            )
        return items, response

    def get_connection(self, connection_id: str) -> dict[str, Any]:
        return self.request("GET", f"{API_PREFIX}/channel-connections/{connection_id}").body

    def trigger_sync(self, connection_id: str, sync_type: str) -> dict[str, Any]:
        return self.request("POST", f"{API_PREFIX}/channel-connections/{connection_id}/sync", json={"sync_type": sync_type}).body

    def sync_logs(self, connection_id: str, limit: int = 20, offset: int = 0, **filters: Any) -> dict[str, Any]:
        """A page of logs. A 404 that does not say the connection is missing is the runbook's "no sync logs exist for
        this connection; the sync may not have completed yet": an empty page, not a wrong URL."""
        params = {"limit": limit, "offset": offset, **{k: v for k, v in filters.items() if v}}
        try:
            body = self.request("GET", f"{API_PREFIX}/channel-connections/{connection_id}/sync-logs", params=params).body
        except ApiError as exc:
            if exc.status == 404 and not _names_a_missing_connection(exc.body):
                return {"logs": [], "not_found_as_empty": True}
            raise
        if body is None:
            raise ApiError("sync-logs: empty body", hint="an empty body after a redirect: follow 307 redirects")
        return normalise_logs_page(body)


def _names_a_missing_connection(body: Any) -> bool:
    """The contract's 404 for an unknown connection: ``{"detail": "Connection not found"}`` (or a structured detail)."""
    from pmsops.api.errors import detail_text

    text = detail_text(body).lower()
    return "connection" in text and "not found" in text


def normalise_details(details: Any) -> dict[str, Any]:
    """``details`` is an object, or (some versions) a list of JSON strings: merge them."""
    if isinstance(details, dict):
        return details
    merged: dict[str, Any] = {}
    if isinstance(details, list):
        for item in details:
            if isinstance(item, str):
                try:
                    item = json.loads(item)
                except ValueError:
                    continue
            if isinstance(item, dict):
                merged.update(item)
    elif isinstance(details, str):
        try:
            loaded = json.loads(details)
            return loaded if isinstance(loaded, dict) else {}
        except ValueError:
            return {}
    return merged


def normalise_logs_page(body: Any) -> dict[str, Any]:
    logs = body.get("logs", body.get("items", [])) if isinstance(body, dict) else body if isinstance(body, list) else []
    for log in logs:
        log["details"] = normalise_details(log.get("details"))
    return {"logs": logs, **({k: v for k, v in body.items() if k not in ("logs", "items")} if isinstance(body, dict) else {})}
