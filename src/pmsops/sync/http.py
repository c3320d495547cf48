"""The platform calls' HTTP client: httpcore's connection pool on asyncio's own sockets.

httpcore is httpx's transport (same maintainers): HTTP/1.1 through h11, keep-alive
pooling, TLS and HTTP proxies stay its job. Two layers of httpx's stack are left
out, because the worker's profile showed them as its largest cost after Celery:

- httpx's ``Client``/``Request``/``Response`` models (URL objects, header
  normalisation, event hooks, redirects, cookies) around every call: the platform
  adapters need a method, a URL, a few headers and a JSON body;
- anyio under httpcore (a cancel scope and a task lookup around every read and
  write, and a ``poll()`` system call per idle connection whenever the pool hands
  one out): :class:`AsyncioBackend` gives httpcore plain asyncio transports
  (:meth:`asyncio.loop.create_connection`, :meth:`asyncio.loop.start_tls`).
  It also sends a request's head and body in one ``send()`` instead of two.

Measured on the throughput benchmark's worker: see the commit that introduced this
module. What httpx did that still happens: the TLS context is httpx's own
(:func:`httpx.create_ssl_context`: ``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi),
proxies come from the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
``NO_PROXY``, read by :mod:`urllib.request`), every phase has a timeout (connect,
write, read, pool). Redirects are not followed (a platform API that redirects a
push is an error to see, not to follow).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import ssl
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpcore

TRANSPORT_ERRORS = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError, httpcore.UnsupportedProtocol, OSError)
"""What a call can raise short of an answer, besides :class:`httpcore.TimeoutException` (connect, read, write, pool)."""

_FLUSH_AT = 64 * 1024
"""Writes are gathered and sent as one ``send()`` when the request is complete (or this much is pending)."""

_READ_HIGH = 256 * 1024
"""Stop reading the socket while this much answer is unread (a large bookings list is read as it is consumed)."""


class _Protocol(asyncio.Protocol):
    """Received bytes, end of stream and write flow control for one connection."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future | None = None
        self.drained: asyncio.Future | None = None
        self.paused_reading = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _READ_HIGH and not self.paused_reading:
            self.paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        if self.drained is None or self.drained.done():
            self.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection as httpcore's network stream, every wait under its timeout."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._write_timeout: float | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._pending:
            await self._flush(self._write_timeout)
        protocol = self._protocol
        while not protocol.buffer and not protocol.eof:
            protocol.waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await protocol.waiter
            except TimeoutError:
                raise httpcore.ReadTimeout(f"no answer within {timeout:g} s") from None
            finally:
                protocol.waiter = None
        if protocol.buffer:
            data = bytes(protocol.buffer[:max_bytes])
            del protocol.buffer[:max_bytes]
            if protocol.paused_reading and len(protocol.buffer) < _READ_HIGH // 4:
                protocol.paused_reading = False
                self._transport.resume_reading()
            return data
        if protocol.error is not None:
            raise httpcore.ReadError(f"{type(protocol.error).__name__}: {protocol.error}")
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._protocol.eof and self._protocol.error is not None:
            raise httpcore.WriteError(f"{type(self._protocol.error).__name__}: {self._protocol.error}")
        self._pending.append(buffer)
        self._pending_size += len(buffer)
        self._write_timeout = timeout
        if self._pending_size >= _FLUSH_AT:
            await self._flush(timeout)

    async def _flush(self, timeout: float | None) -> None:
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if self._transport.is_closing():
            return  # the server closed it: the read that follows reports that (as any HTTP client does)
        self._transport.write(data)
        drained = self._protocol.drained
        if drained is not None and not drained.done():
            try:
                async with asyncio.timeout(timeout):
                    await drained
            except TimeoutError:
                raise httpcore.WriteTimeout(f"could not send within {timeout:g} s") from None

    async def aclose(self) -> None:
        self._pending.clear()
        self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None) -> "AsyncioStream":
        if self._pending:
            await self._flush(timeout)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(self._transport, self._protocol, ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"no TLS handshake within {timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(f"{type(exc).__name__}: {exc}") from None
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # an idle keep-alive connection with bytes or an end of stream waiting: the server closed it
            return bool(self._protocol.buffer) or self._protocol.eof
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on the running asyncio loop (no anyio in the call path)."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None, socket_options=None):
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(_Protocol, host, port, local_addr=(local_address, 0) if local_address else None)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout:g} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"{type(exc).__name__}: {exc}") from None
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options=None):  # pragma: no cover - not used
        raise httpcore.UnsupportedProtocol("unix sockets are not used for platform calls")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class PlatformResponse:
    """A read answer: status, headers (lower-case names) and body."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


_BAD_HEADER = ("\r", "\n", "\0")


class PlatformHttpClient:
    """Keep-alive HTTP/1.1 to the platforms, one per worker process (see the module docstring)."""

    def __init__(self, timeout: float, max_connections: int = 50, max_keepalive_connections: int = 20, trust_env: bool = True) -> None:
        import httpx

        self.timeout = timeout
        self._limits = {"max_connections": max_connections, "max_keepalive_connections": max_keepalive_connections}
        self._ssl = httpx.create_ssl_context(trust_env=trust_env)
        self._backend = AsyncioBackend()
        self._direct = httpcore.AsyncConnectionPool(ssl_context=self._ssl, network_backend=self._backend, **self._limits)
        self._proxies: dict[str, str] = {}
        if trust_env:
            from urllib.request import getproxies_environment

            self._proxies = getproxies_environment()
        self._proxy_pools: dict[str, httpcore.AsyncHTTPProxy] = {}
        self._route: dict[tuple[str, str], Any] = {}

    def _pool_for(self, scheme: str, host: str):
        """The direct pool, or the pool of the proxy the environment names for this URL (cached per origin)."""
        key = (scheme, host)
        pool = self._route.get(key)
        if pool is None:
            pool = self._direct
            proxy = self._proxies.get(scheme) or self._proxies.get("all")
            if proxy:
                from urllib.request import proxy_bypass_environment

                if not proxy_bypass_environment(host, self._proxies):
                    pool = self._proxy_pools.get(proxy)
                    if pool is None:
                        pool = self._proxy_pools[proxy] = httpcore.AsyncHTTPProxy(
                            proxy_url=proxy, ssl_context=self._ssl, network_backend=self._backend, **self._limits
                        )
            self._route[key] = pool
        return pool

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> PlatformResponse:
        """Send one request and read the whole answer; every phase bounded by ``timeout`` (default: the client's)."""
        parts = urlsplit(url)
        if params:
            url += ("&" if parts.query else "?") + urlencode(params)
        out = [("Host", parts.netloc.rpartition("@")[2]), ("User-Agent", "pmsops-sync")]
        for name, value in (headers or {}).items():
            if any(c in name or c in value for c in _BAD_HEADER):
                raise httpcore.LocalProtocolError(f"header {name!r} has a line break or NUL in its name or value")
            out.append((name, value))
        body = b""
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            out.append(("Content-Type", "application/json"))
        if body or method in ("POST", "PUT", "PATCH"):
            out.append(("Content-Length", str(len(body))))
        seconds = self.timeout if timeout is None else timeout
        extensions = {"timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}}
        response = await self._pool_for(parts.scheme, parts.hostname or "").request(method, url, headers=out, content=body, extensions=extensions)
        return PlatformResponse(response.status, {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}, response.content)

    async def aclose(self) -> None:
        await self._direct.aclose()
        for pool in self._proxy_pools.values():
            await pool.aclose()
