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

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: FakePlatformState

    def log_message(self, *args: Any) -> None:
        pass

    def _body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode(errors="replace")

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _control(self, path: str, body: Any) -> None:
        state = self.state
        if path == "/_control/fail":
            with state.lock:
                state.failures.append({"status": int(body.get("status", 503)), "count": int(body.get("count", 1)),
                                       "retry_after": body.get("retry_after"), "delay": float(body.get("delay", 0)), "platform": body.get("platform")})
            return self._send(200, {"ok": True})
        if path == "/_control/reservations":
            with state.lock:
                state.reservations[str(body["listing"])] = list(body.get("reservations", []))
            return self._send(200, {"ok": True})
        if path == "/_control/reset":
            with state.lock:
                state.received.clear()
                state.failures.clear()
                state.reservations.clear()
            return self._send(200, {"ok": True})
        if path == "/_control/received":
            with state.lock:
                return self._send(200, {"received": list(state.received)})
        if path == "/_control/keep":
            state.keep_received = bool(body.get("keep", True))
            return self._send(200, {"ok": True})
        return self._send(404, {"error": "unknown control endpoint"})

    def _handle(self) -> None:
        url = urlsplit(self.path)
        body = self._body() if self.command in ("POST", "PUT", "PATCH") else None
        if url.path.startswith("/_control/"):
            return self._control(url.path, body or {})
        parts = [p for p in url.path.split("/") if p]
        if len(parts) < 3:
            return self._send(404, {"error": "not found"})
        platform, kind, listing = parts[0], parts[-1], parts[-2]
        rule = self.state.next_failure(platform)
        if rule and rule["delay"]:
            time.sleep(rule["delay"])
        if rule and rule["status"]:
            self._record({"platform": platform, "method": self.command, "kind": kind, "listing": listing, "at": time.time(), "status": rule["status"]}, None)
            headers = {"retry-after": str(rule["retry_after"])} if rule.get("retry_after") is not None else {}
            return self._send(rule["status"], {"error": f"injected {rule['status']}"}, headers)
        if not (self.headers.get("authorization") or "").startswith("Bearer "):
            return self._send(401, {"error": "missing bearer token"})
        record = {"platform": platform, "method": self.command, "kind": kind, "listing": listing, "at": time.time(), "status": 200}
        if kind in AVAILABILITY and self.command == "PUT":
            record["ranges"] = len((body or {}).get("ranges", []))
            self._record(record, body)
            return self._send(200, {"accepted": record["ranges"]})
        if kind in PRICES and self.command == "PUT":
            record["prices"] = len((body or {}).get("prices", []))
            self._record(record, body)
            return self._send(200, {"accepted": record["prices"]})
        if kind in RESERVATIONS and self.command == "GET":
            record["since"] = parse_qs(url.query).get("since", [None])[0]
            self._record(record, None)
            with self.state.lock:
                items = list(self.state.reservations.get(listing, []))
            return self._send(200, {"reservations": items})
        return self._send(404, {"error": f"no such endpoint: {self.command} {kind}"})

    def _record(self, record: dict[str, Any], body: Any) -> None:
        if not self.state.keep_received:
            return
        record["body"] = body
        with self.state.lock:
            self.state.received.append(record)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _handle


class FakePlatform:
    """Run the fake platform in a thread of this process (tests) or as ``python -m`` (sandbox)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = FakePlatformState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakePlatform":
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-platform", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

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
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the bound port here once listening")
    args = parser.parse_args()
    platform = FakePlatform(port=args.port)
    if args.port_file:
        with open(args.port_file, "w") as handle:
            handle.write(str(platform.server.server_address[1]))
    platform.server.serve_forever()


if __name__ == "__main__":
    main()
