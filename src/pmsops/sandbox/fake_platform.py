"""A fake OTA partner API on loopback: records what it receives, serves reservations,
and fails on request, for tests, benchmarks and the reference stack.

Every platform adapter's paths are served under ``/<platform>/…``; the method
and the last path segment decide what happens (``PUT …/calendar`` is an
availability push whatever the platform calls it). Control endpoints:

- ``POST /_control/fail`` ``{"status": 503, "count": 3, "retry_after": 2, "delay": 0, "platform": null}``:
  the next ``count`` calls (of that platform, or any) answer ``status`` (``delay`` seconds late;
  ``status: 0`` with a delay only slows them down);
- ``POST /_control/reservations`` ``{"listing": "L1", "reservations": [{id, check_in, check_out, status}]}``;
- ``GET /_control/received`` → every call so far; ``POST /_control/reset``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

AVAILABILITY = ("calendar", "availability")
PRICES = ("pricing", "rates", "prices")
RESERVATIONS = ("reservations", "bookings")


class FakePlatformState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.reservations: dict[str, list[dict[str, Any]]] = {}
        self.failures: list[dict[str, Any]] = []
        self.keep_received = True

    def next_failure(self, platform: str) -> dict[str, Any] | None:
        with self.lock:
            for rule in self.failures:
                if rule["count"] > 0 and rule.get("platform") in (None, platform):
                    rule["count"] -= 1
                    return dict(rule)
        return None


class _Platform:
    """Request handling, independent of the transport: (method, target, headers, body) → response."""

    def __init__(self, state: FakePlatformState) -> None:
        self.state = state

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any, dict[str, str], float]:
        url = urlsplit(target)
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
        if url.path.startswith("/_control/"):
            return (*self._control(url.path, body or {}), 0.0)
        parts = [p for p in url.path.split("/") if p]
        if len(parts) < 3:
            return 404, {"error": "not found"}, {}, 0.0
        platform, kind, listing = parts[0], parts[-1], parts[-2]
        rule = self.state.next_failure(platform)
        delay = rule["delay"] if rule else 0.0
        if rule and rule["status"]:
            self._record(
                {"platform": platform, "method": method, "kind": kind, "listing": listing, "at": time.time(), "status": rule["status"]}, None
            )
            extra = {"retry-after": str(rule["retry_after"])} if rule.get("retry_after") is not None else {}
            return rule["status"], {"error": f"injected {rule['status']}"}, extra, delay
        if not (headers.get("authorization") or "").startswith("Bearer "):
            return 401, {"error": "missing bearer token"}, {}, delay
        record = {"platform": platform, "method": method, "kind": kind, "listing": listing, "at": time.time(), "status": 200}
        if kind in AVAILABILITY and method == "PUT":
            record["ranges"] = len((body or {}).get("ranges", []))
            self._record(record, body)
            return 200, {"accepted": record["ranges"]}, {}, delay
        if kind in PRICES and method == "PUT":
            record["prices"] = len((body or {}).get("prices", []))
            self._record(record, body)
            return 200, {"accepted": record["prices"]}, {}, delay
        if kind in RESERVATIONS and method == "GET":
            record["since"] = parse_qs(url.query).get("since", [None])[0]
            self._record(record, None)
            with self.state.lock:
                items = list(self.state.reservations.get(listing, []))
            return 200, {"reservations": items}, {}, delay
        return 404, {"error": f"no such endpoint: {method} {kind}"}, {}, delay

    def _control(self, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        state = self.state
        with state.lock:
            if path == "/_control/fail":
                state.failures.append(
                    {
                        "status": int(body.get("status", 503)),
                        "count": int(body.get("count", 1)),
                        "retry_after": body.get("retry_after"),
                        "delay": float(body.get("delay", 0)),
                        "platform": body.get("platform"),
                    }
                )
            elif path == "/_control/reservations":
                state.reservations[str(body["listing"])] = list(body.get("reservations", []))
            elif path == "/_control/reset":
                state.received.clear()
                state.failures.clear()
                state.reservations.clear()
            elif path == "/_control/received":
                return 200, {"received": list(state.received)}, {}
            elif path == "/_control/keep":
                state.keep_received = bool(body.get("keep", True))
            else:
                return 404, {"error": "unknown control endpoint"}, {}
        return 200, {"ok": True}, {}

    def _record(self, record: dict[str, Any], body: Any) -> None:
        if not self.state.keep_received:
            return
        record["body"] = body
        with self.state.lock:
            self.state.received.append(record)


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


async def _serve_connection(platform: _Platform, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """HTTP/1.1 with keep-alive, just enough for JSON clients (no chunked request bodies).

    asyncio instead of http.server: the stdlib server parses headers with the e-mail
    parser and spends a thread per connection, which made the fake platform, not the
    code under test, the bottleneck of the throughput benchmark.
    """
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    key, value = line.split(":", 1)
                    headers[key.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            raw = await reader.readexactly(length) if length else b""
            status, payload, extra, delay = platform.handle(method, target, headers, raw)
            if delay:
                await asyncio.sleep(delay)
            data = json.dumps(payload).encode()
            head_out = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "content-type: application/json", f"content-length: {len(data)}"]
            head_out += [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(head_out) + "\r\n\r\n").encode("latin-1") + data)
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                break
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


class FakePlatform:
    """Run the fake platform on its own event loop in a thread (tests) or as ``python -m`` (sandbox)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None) -> None:
        self.state = FakePlatformState()
        self._platform = _Platform(self.state)
        self._host, self._port, self._sock = host, port, sock
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.AbstractServer | None = None
        self.thread: threading.Thread | None = None

    async def _start_server(self) -> None:
        serve = lambda r, w: _serve_connection(self._platform, r, w)  # noqa: E731
        if self._sock is not None:  # a listening socket handed over by the parent (--fd)
            self.server = await asyncio.start_server(serve, sock=self._sock)
        else:
            self.server = await asyncio.start_server(serve, self._host, self._port)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> "FakePlatform":
        self.loop.run_until_complete(self._start_server())
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-platform", daemon=True)
        self.thread.start()
        return self

    def serve_forever(self) -> None:
        self.loop.run_until_complete(self._start_server())
        self.loop.run_forever()

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread:
            self.thread.join(5)

    def fail_next(self, status: int, count: int = 1, retry_after: float | None = None, delay: float = 0.0, platform: str | None = None) -> None:
        with self.state.lock:
            self.state.failures.append({"status": status, "count": count, "retry_after": retry_after, "delay": delay, "platform": platform})

    def set_reservations(self, listing: str, reservations: list[dict[str, Any]]) -> None:
        with self.state.lock:
            self.state.reservations[listing] = reservations

    def received(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self.state.lock:
            return [r for r in self.state.received if kind is None or r["kind"] == kind]

    def reset(self) -> None:
        with self.state.lock:
            self.state.received.clear()
            self.state.failures.clear()
            self.state.reservations.clear()


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Fake OTA platform API on loopback")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--port", type=int, default=0)
    where.add_argument("--fd", type=int, default=None, help="serve on this inherited listening socket (the sandbox binds it)")
    args = parser.parse_args()
    from pmsops.sandbox.processes import inherited_socket

    FakePlatform(port=args.port, sock=inherited_socket(args.fd) if args.fd is not None else None).serve_forever()


if __name__ == "__main__":
    main()
