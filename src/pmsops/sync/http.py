"""The platform calls' HTTP client: HTTP/1.1 with keep-alive on asyncio streams.

Why not httpx here: profiled under ``make bench``, httpx (with httpcore and anyio)
was a quarter of the sync worker's Python time, ~0.5 ms of CPU per platform call,
against ~0.05 ms for writing one request and reading one response ourselves. The
adapters see the same interface (``request(method, url, headers=, timeout=, json=,
params=)`` → ``status_code``, ``headers``, ``content``, ``text``, ``json()``) and the
same exceptions (httpx's, so :mod:`pmsops.sync.adapters.base` maps them unchanged).

What it does, as httpx did for these calls: one total ``timeout`` per call (connect +
send + answer; :class:`httpx.ConnectTimeout` or :class:`httpx.ReadTimeout`), TLS
verified against ``SSL_CERT_FILE``/``SSL_CERT_DIR`` or certifi's bundle, keep-alive
connections (at most ``max_connections`` per process, idle ones closed after
``keepalive_expiry`` s), ``Content-Length`` and chunked bodies, no redirects followed.
A connection the server closed while idle is never used; a request that met such a
close before any answer byte is sent once more on a fresh connection (the push carries
an ``Idempotency-Key``). With a proxy in the environment (``HTTP(S)_PROXY``,
``ALL_PROXY``), or for a scheme other than http/https, every call goes through httpx.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import os
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

MAX_HEAD = 256 * 1024
"""Longest status line plus headers accepted from a platform."""

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


class Headers(dict):
    """Response headers, names lower-cased; ``get`` ignores case like httpx's."""

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)


class Response:
    """What the adapters read of an answer."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: Headers, content: bytes) -> None:
        self.status_code, self.headers, self.content = status_code, headers, content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class _Connection:
    __slots__ = ("reader", "writer", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.idle_since = reader, writer, time.monotonic()

    def usable(self, expiry: float) -> bool:
        """Not expired, and the server has not closed it (nor sent anything unasked) while idle."""
        if time.monotonic() - self.idle_since > expiry or self.writer.transport.is_closing() or self.reader.at_eof():
            return False
        return not self.reader._buffer  # noqa: SLF001 - unasked bytes: the stream is out of step

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - closing a broken transport
            pass


class _ServerClosed(Exception):
    """The connection ended before any byte of an answer (a reused connection the server had closed)."""


def proxies_configured(env: dict[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return any(env.get(name) or env.get(name.upper()) for name in _PROXY_VARIABLES)


def _ssl_context():
    """Verified TLS as httpx does it: SSL_CERT_FILE / SSL_CERT_DIR when set, else certifi's bundle."""
    import ssl

    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if (cafile and os.path.isfile(cafile)) or (capath and os.path.isdir(capath)):
        context = ssl.create_default_context(cafile=cafile if cafile and os.path.isfile(cafile) else None,
                                             capath=capath if capath and os.path.isdir(capath) else None)
    else:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


class PlatformHttpClient:
    """A pool of keep-alive connections per (scheme, host, port); one per process, on the runtime's loop."""

    def __init__(self, timeout: float, max_connections: int = 50, max_keepalive: int = 20, keepalive_expiry: float = 5.0) -> None:
        self.timeout = timeout
        self.max_keepalive = max_keepalive
        self.keepalive_expiry = keepalive_expiry
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._ssl = None
        self._fallback = None
        self._use_fallback = proxies_configured()

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, timeout: float | None = None,
                      json: Any = None, params: dict[str, Any] | None = None) -> Any:
        import httpx

        parts = urlsplit(url)
        if self._use_fallback or parts.scheme not in ("http", "https") or not parts.hostname:
            return await self._httpx().request(method, url, headers=headers, timeout=timeout if timeout is not None else self.timeout, json=json, params=params)
        body = b"" if json is None else jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        head = self._head(method, parts, headers or {}, params, body, json is not None)
        key = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        limit = self.timeout if timeout is None else timeout
        phase = "connect"
        try:
            async with asyncio.timeout(limit):
                async with self._slots:
                    for attempt in (1, 2):
                        conn, reused = self._take(key) if attempt == 1 else (None, False)  # a retry gets a fresh connection
                        if conn is None:
                            phase = "connect"
                            conn = await self._open(key)
                        phase = "read"
                        try:
                            response, keep = await self._exchange(conn, head + body, method)
                        except _ServerClosed:
                            conn.close()
                            if reused and attempt == 1:
                                continue
                            raise httpx.RemoteProtocolError("the server closed the connection without answering") from None
                        except BaseException:
                            conn.close()
                            raise
                        self._give_back(key, conn, keep)
                        return response
        except TimeoutError:
            raise (httpx.ConnectTimeout if phase == "connect" else httpx.ReadTimeout)(f"no answer within {limit:g} s") from None
        except httpx.HTTPError:
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            kind = httpx.ConnectError if phase == "connect" else httpx.ReadError
            raise kind(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
        raise httpx.RemoteProtocolError("the server closed the connection without answering")  # pragma: no cover

    @staticmethod
    def _head(method: str, parts, headers: dict[str, str], params: dict[str, Any] | None, body: bytes, is_json: bool) -> bytes:
        import httpx

        target = parts.path or "/"
        query = parts.query
        if params:
            query = (query + "&" if query else "") + urlencode(params)
        if query:
            target += "?" + query
        default_port = 443 if parts.scheme == "https" else 80
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}" if (parts.port or default_port) == default_port else f"Host: {host}:{parts.port}",
                 "User-Agent: pmsops", "Accept-Encoding: identity"]
        for name, value in headers.items():
            if any(c in str(value) for c in "\r\n\0") or any(c in name for c in "\r\n\0: "):
                raise httpx.LocalProtocolError(f"header {name.split(':')[0][:40]!r} has a line break or NUL in its name or value")
            lines.append(f"{name}: {value}")
        if is_json:
            lines.append("Content-Type: application/json")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _take(self, key) -> tuple[_Connection | None, bool]:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.usable(self.keepalive_expiry):
                return conn, True
            conn.close()
        return None, False

    def _give_back(self, key, conn: _Connection, keep: bool) -> None:
        idle = self._idle.setdefault(key, [])
        if keep and len(idle) < self.max_keepalive:
            conn.idle_since = time.monotonic()
            idle.append(conn)
        else:
            conn.close()

    async def _open(self, key) -> _Connection:
        scheme, host, port = key
        ssl = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = _ssl_context()
            ssl = self._ssl
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl, limit=MAX_HEAD)
        return _Connection(reader, writer)

    async def _exchange(self, conn: _Connection, request: bytes, method: str) -> tuple[Response, bool]:
        import httpx

        conn.writer.write(request)
        await conn.writer.drain()
        reader = conn.reader
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise _ServerClosed() from None
                raise
            lines = head.decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            code = rest.partition(" ")[0]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise httpx.RemoteProtocolError("the platform's answer is not HTTP/1.x")
            status = int(code)
            headers = Headers()
            for line in lines[1:]:
                if not line:
                    continue
                name, sep, value = line.partition(":")
                if not sep:
                    raise httpx.RemoteProtocolError("malformed header line in the platform's answer")
                name, value = name.strip().lower(), value.strip()
                headers[name] = f"{dict.get(headers, name)}, {value}" if name in headers else value
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue and other interim answers: the real one follows
            break
        keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return Response(status, headers, b""), keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return Response(status, headers, await self._chunked(reader)), keep
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise httpx.RemoteProtocolError("invalid Content-Length in the platform's answer")
            return Response(status, headers, await reader.readexactly(int(length))), keep
        return Response(status, headers, await reader.read()), False  # the body ends with the connection

    @staticmethod
    async def _chunked(reader: asyncio.StreamReader) -> bytes:
        import httpx

        body = bytearray()
        while True:
            size_line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise httpx.RemoteProtocolError("invalid chunk size in the platform's answer") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)

    def _httpx(self):
        if self._fallback is None:
            import httpx

            self._fallback = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout), limits=httpx.Limits(max_connections=50, max_keepalive_connections=20))
        return self._fallback

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        if self._fallback is not None:
            await self._fallback.aclose()
