"""The reference API as an attacker meets it (#23 item 8): its own description behind the token and with nothing
loaded from elsewhere, readiness work bounded per period, and a request-smuggling shape refused with its connection
closed. Against the real uvicorn of the test sandbox."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest


@pytest.fixture
def api(sandbox):
    env = sandbox.env()
    return env["PMS_API_URL"], int(env["PMS_API_URL"].rsplit(":", 1)[1]), env


def _token(env: dict[str, str]) -> str:
    from pmsops.api.token import obtain
    from pmsops.settings import Settings

    return obtain(Settings(env), 10).token


@pytest.mark.parametrize("path", ["/docs", "/openapi.json"])
def test_the_api_description_is_not_served_without_the_token(api, path):
    base, _, _ = api
    assert httpx.get(base + path, timeout=10).status_code == 401


def test_redoc_is_not_served_at_all(api):
    base, _, env = api
    assert httpx.get(base + "/redoc", headers={"Authorization": f"Bearer {_token(env)}"}, timeout=10).status_code == 404


def test_docs_with_the_token_is_one_page_that_loads_nothing_from_elsewhere(api):
    base, _, env = api
    headers = {"Authorization": f"Bearer {_token(env)}"}
    page = httpx.get(base + "/docs", headers=headers, timeout=10)
    spec = httpx.get(base + "/openapi.json", headers=headers, timeout=10).json()
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert "<script" not in page.text and "cdn" not in page.text.lower()
    assert "/api/v1/channel-connections/{connection_id}/sync" in page.text and "/health/ready" in spec["paths"]


def _raw(port: int, request: bytes) -> tuple[bytes, bool]:
    """Send ``request``; (what came back, whether the server closed the connection after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
            return data, True
        except TimeoutError:  # still open 10 s after its answer: kept alive
            return data, False


def test_a_request_with_content_length_and_transfer_encoding_is_refused_and_its_connection_closed(api):
    _, port, _ = api
    smuggle = (
        b"POST /auth/v1/token?grant_type=password HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    data, closed = _raw(port, smuggle)
    assert data.startswith(b"HTTP/1.1 400 ") and closed, data[:200]


def test_readiness_is_computed_once_per_cache_period(sandbox, monkeypatch):
    """Unauthenticated readiness did a database connect, a Redis check and a broadcast per request; now one answer
    serves every request of its period (READY_CACHE_SECONDS, 2 s by default; 0 turns it off)."""
    from pmsops.sandbox.api import health

    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)

    async def twice() -> list[str]:
        health._ANSWER.update(at=None, response=None)
        answers = [await health.ready(), await health.ready()]
        return [json.loads(a.body)["checked_at"] for a in answers]

    monkeypatch.setenv("READY_CACHE_SECONDS", "300")
    cached = asyncio.run(twice())
    monkeypatch.setenv("READY_CACHE_SECONDS", "0")
    fresh = asyncio.run(twice())
    assert (cached[0] == cached[1], fresh[0] == fresh[1]) == (True, False)
