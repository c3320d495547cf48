"""The sync worker's platform HTTP client (httpcore on asyncio sockets) against real HTTP servers on loopback.

Each scenario runs a small asyncio server and the client on one event loop; the
server scripts what a platform (or a proxy) does on the wire.
"""

from __future__ import annotations

import asyncio
import json
import socket

import httpcore
import pytest

from pmsops.sync.adapters.base import HttpPlatformAdapter
from pmsops.sync.errors import PlatformUnavailable, RateLimited
from pmsops.sync.http import TRANSPORT_ERRORS, PlatformHttpClient


class Server:
    """A loopback server whose ``answer(request_head, body)`` returns raw bytes to send (None: say nothing)."""

    def __init__(self, answer, close_after_answer: bool = False) -> None:
        self.answer = answer
        self.close_after_answer = close_after_answer
        self.connections = 0
        self.closed = 0
        self.requests: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> "Server":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                reply = self.answer(head, body)
                if reply is None:
                    await asyncio.sleep(30)  # the fault: a server that never answers
                    return
                writer.write(reply)
                await writer.drain()
                if self.close_after_answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.closed += 1


async def until(condition, timeout: float = 5.0) -> None:
    """Wait for ``condition()`` on the running loop (a condition, not a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def ok(body: bytes = b'{"accepted": 3}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_platform_calls_share_one_keep_alive_connection():
    async def scenario():
        async with Server(lambda head, body: ok()) as server:
            client = PlatformHttpClient(5.0)
            answers = [await client.request("PUT", server.url + "/google/listings/L1/calendar", json={"ranges": [1, 2, 3]}) for _ in range(3)]
            await client.aclose()
            return server, answers

    server, answers = asyncio.run(scenario())
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == {"accepted": 3}
    assert server.connections == 1
    assert server.requests[0].startswith(b"PUT /google/listings/L1/calendar HTTP/1.1\r\n")
    assert server.requests[0].endswith(b'\r\n\r\n{"ranges":[1,2,3]}')
    assert b"Content-Type: application/json" in server.requests[0]


def test_a_chunked_answer_is_read_whole_and_the_connection_reused():
    chunked = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"reser\r\n10;ext=1\r\nvations": [1, 2]\r\n1\r\n}\r\n0\r\n\r\n'

    async def scenario():
        async with Server(lambda head, body: chunked) as server:
            client = PlatformHttpClient(5.0)
            first = await client.request("GET", server.url + "/airbnb/listings/L1/reservations", params={"since": "2026-01-01T00:00:00+00:00"})
            second = await client.request("GET", server.url + "/airbnb/listings/L1/reservations")
            await client.aclose()
            return server, first, second

    server, first, second = asyncio.run(scenario())
    assert first.json() == {"reservations": [1, 2]} and second.json() == {"reservations": [1, 2]}
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /airbnb/listings/L1/reservations?since=2026-01-01T00%3A00%3A00%2B00%3A00 HTTP/1.1\r\n")


def test_a_connection_the_platform_closed_while_idle_is_replaced_not_reported_as_an_error():
    async def scenario():
        async with Server(lambda head, body: ok(), close_after_answer=True) as server:
            client = PlatformHttpClient(5.0)
            first = await client.request("PUT", server.url + "/x/listings/L/calendar", json={})
            # the server's FIN arrives while the connection is idle in the pool
            await until(lambda: server.closed == 1 and all(c.has_expired() for c in client._direct.connections))
            second = await client.request("PUT", server.url + "/x/listings/L/calendar", json={})
            await client.aclose()
            return server, first, second

    server, first, second = asyncio.run(scenario())
    assert (first.status_code, second.status_code) == (200, 200)
    assert server.connections == 2


def test_a_platform_that_never_answers_is_a_read_timeout_at_the_deadline():
    async def scenario():
        async with Server(lambda head, body: None) as server:
            client = PlatformHttpClient(0.5)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(httpcore.ReadTimeout) as caught:
                await client.request("PUT", server.url + "/x/listings/L/calendar", json={})
            return loop.time() - started, str(caught.value)

    waited, text = asyncio.run(scenario())
    assert 0.45 <= waited < 2.0
    assert text == "no answer within 0.5 s"


def test_an_unreachable_platform_is_a_connect_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused

        async def scenario():
            client = PlatformHttpClient(2.0)
            with pytest.raises(httpcore.ConnectError):
                await client.request("GET", f"http://127.0.0.1:{port}/x/listings/L/reservations")

        asyncio.run(scenario())


def test_a_token_with_a_line_break_is_refused_without_showing_it():
    async def scenario():
        async with Server(lambda head, body: ok()) as server:
            client = PlatformHttpClient(2.0)
            with pytest.raises(httpcore.LocalProtocolError) as caught:
                await client.request("GET", server.url + "/x", headers={"Authorization": "Bearer s3cret-t0ken\r\nX-Injected: 1"})
            return server, str(caught.value)

    server, text = asyncio.run(scenario())
    assert server.requests == []
    assert "s3cret" not in text and "Injected" not in text
    assert text == "header 'Authorization' has a line break or NUL in its name or value"


def test_platform_statuses_map_to_the_contracts_sync_errors_through_the_adapter():
    replies = iter(
        [
            b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 22\r\n\r\n{"error": "try later"}',
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: 2\r\n\r\n{}",
        ]
    )

    async def scenario():
        async with Server(lambda head, body: next(replies)) as server:
            client = PlatformHttpClient(2.0)
            adapter = HttpPlatformAdapter(server.url, "tok-123456", client, 2.0, idempotency_key="task-1")
            with pytest.raises(PlatformUnavailable) as unavailable:
                await adapter.push_availability("L1", [])
            with pytest.raises(RateLimited) as limited:
                await adapter.push_availability("L1", [])
            await client.aclose()
            return server, unavailable.value, limited.value

    server, unavailable, limited = asyncio.run(scenario())
    assert str(unavailable) == "generic answered HTTP 503 (try later)"
    assert limited.retry_after == 7.0
    assert b"Authorization: Bearer tok-123456\r\n" in server.requests[0] and b"Idempotency-Key: task-1:" in server.requests[0]


def test_with_a_proxy_in_the_environment_calls_go_through_the_proxy(monkeypatch):
    async def scenario():
        async with Server(lambda head, body: ok(b'{"via": "proxy"}')) as proxy:
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            client = PlatformHttpClient(2.0)
            answer = await client.request("GET", "http://platform.invalid:8080/x/listings/L/reservations")
            await client.aclose()
            return proxy, answer

    proxy, answer = asyncio.run(scenario())
    assert answer.json() == {"via": "proxy"}
    assert proxy.requests[0].startswith(b"GET http://platform.invalid:8080/x/listings/L/reservations HTTP/1.1\r\n")


def _self_signed(directory) -> tuple[str, str]:
    """A certificate for 127.0.0.1/localhost and its key, made with the cryptography package."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def _tls_server_scenario(cert: str, key: str, trusted: bool, monkeypatch):
    import ssl

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", cert)
    else:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    async def scenario():
        served: list[bytes] = []

        async def serve(reader, writer):
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                served.append(head)
                writer.write(ok())
                await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        client = PlatformHttpClient(3.0)
        try:
            answer = await client.request("GET", f"https://localhost:{port}/x/listings/L/reservations")
            return answer.status_code, served
        except (httpcore.TimeoutException, *TRANSPORT_ERRORS) as exc:
            return type(exc).__name__, served
        finally:
            await client.aclose()
            server.close()

    return asyncio.run(scenario())


def test_https_platform_is_verified_against_ssl_cert_file(tmp_path, monkeypatch):
    cert, key = _self_signed(tmp_path)

    status, served = _tls_server_scenario(cert, key, trusted=True, monkeypatch=monkeypatch)

    assert status == 200
    assert served[0].startswith(b"GET /x/listings/L/reservations HTTP/1.1\r\nHost: localhost:")


def test_an_https_platform_with_an_untrusted_certificate_is_refused_before_any_request(tmp_path, monkeypatch):
    cert, key = _self_signed(tmp_path)

    status, served = _tls_server_scenario(cert, key, trusted=False, monkeypatch=monkeypatch)

    assert status == "ConnectError"
    assert served == []


def test_a_large_answer_is_read_whole_while_the_socket_is_paused_and_resumed():
    """A bookings list larger than the client's read buffer: reading pauses and resumes, nothing is lost."""
    items = [{"id": f"R{i:06d}", "check_in": "2026-01-01", "check_out": "2026-01-02"} for i in range(20000)]
    payload = json.dumps({"reservations": items}).encode()

    async def scenario():
        async with Server(lambda head, body: ok(payload)) as server:
            client = PlatformHttpClient(5.0)
            answer = await client.request("GET", server.url + "/x/listings/L/reservations")
            again = await client.request("GET", server.url + "/x/listings/L/reservations")
            await client.aclose()
            return server, answer, again

    server, answer, again = asyncio.run(scenario())
    assert len(payload) > 4 * 256 * 1024
    assert answer.json() == {"reservations": items} and again.content == payload
    assert server.connections == 1
