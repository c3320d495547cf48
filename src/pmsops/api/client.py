"""A small httpx client for the channel-manager API: timeouts on every call,
307 trailing-slash redirects followed, bodies that are not JSON named as such."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pmsops.api.errors import ApiError, api_error
from pmsops.failures import classify
from pmsops.urls import host_of

API_PREFIX = "/api/v1"


@dataclass
class Response:
    status: int
    body: Any
    redirected_from: str | None = None


def decode_body(text: str) -> Any:
    """JSON when it is JSON; None for an empty body; the text otherwise."""
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class ApiClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 10.0, agency_id: str | None = None) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if agency_id:
            headers["x-agency-id"] = agency_id
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout), follow_redirects=True)
        self.timeout = timeout

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, expect: tuple[int, ...] = (200,), **kwargs: Any) -> Response:
        import httpx

        url = self.base_url + path
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            host, port = host_of(url)
            failure = classify(exc, host, port, self.timeout, "the API")
            raise ApiError(f"{method} {url}: {failure.summary}", hint=failure.hint) from None
        body = decode_body(response.text)
        redirected = str(response.history[0].request.url) if response.history else None
        if response.status_code not in expect:
            raise api_error(method, url, response.status_code, body)
        if isinstance(body, str):
            raise ApiError(
                f"{method} {url}: HTTP {response.status_code} but the body is not JSON ({body.strip()[:80]!r})",
                response.status_code,
                body,
                hint="an HTML page or proxy error instead of the API: check PMS_API_URL",
            )
        return Response(response.status_code, body, redirected)

    # endpoints -------------------------------------------------------------------------------------
    def health_ready(self) -> Response:
        return self.request("GET", "/health/ready", expect=(200, 503))

    def list_connections(self, limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], Response]:
        """Asks for the unslashed path on purpose: the 307 to the slashed one is followed."""
        response = self.request("GET", f"{API_PREFIX}/channel-connections", params={"limit": limit, "offset": offset})
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
