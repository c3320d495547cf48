"""Name a network failure the way the runbook does, from whatever a client raised.

Clients wrap the same few root causes in their own exception types (redis-py's
``ConnectionError`` with "Error 111 … Connection refused", asyncpg's
``ConnectionRefusedError``, httpx's ``ConnectError``). We look at the exception
chain and its text and return one :class:`Failure` with a summary and a hint.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from pmsops.redaction import redact


@dataclass
class Failure:
    kind: str  # dns | refused | timeout | auth | ssl | too-many | unreachable | other
    summary: str
    hint: str


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _text(exc: BaseException) -> str:
    return " | ".join(f"{type(e).__name__}: {e}" for e in _chain(exc)).lower()


def classify(exc: BaseException, host: str | None, port: int | None, timeout: float, what: str) -> Failure:
    """The runbook's name for the failure behind ``exc`` (``what`` is "Redis", "PostgreSQL", …)."""
    where = (host if port is None or host.startswith("/") else f"{host}:{port}") if host else what  # a Unix socket has a path, no port
    chain, text = _chain(exc), _text(exc)
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
        s in text
        for s in (
            "name or service not known",
            "temporary failure in name resolution",
            "nodename nor servname",
            "no address associated",
            "name resolution",
        )
    ):
        return Failure(
            "dns",
            f"cannot resolve host {host!r}",
            f"DNS failure: this container is not on {what}'s Docker network (docker network connect …), or the host name is wrong; DNS can also flap"
            " for 30-60 s after a deploy",
        )
    if any(isinstance(e, (TimeoutError, socket.timeout)) for e in chain) or "timed out" in text or "timeout" in text:
        return Failure(
            "timeout",
            f"no answer from {where} within {timeout:g} s",
            f"{what} is black-holed (firewall, wrong network, stopped container that still has an IP) or overloaded",
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or any(
        s in text for s in ("connection refused", "errno 111", "connect call failed")
    ):
        return Failure(
            "refused",
            f"connection refused by {where}",
            f"{what} is not running or not listening on that port: check the container (docker ps) and the port in the URL",
        )
    if any(isinstance(e, ssl.SSLError) for e in chain) or "ssl" in text and ("handshake" in text or "certificate" in text or "wrong version" in text):
        return Failure(
            "ssl", f"TLS/SSL problem talking to {where}: {redact(str(exc))[:200]}", "check sslmode/rediss:// and the server's TLS settings"
        )
    if port is None and host and host.startswith("/"):  # a Unix socket: the file is missing or not ours to open
        if any(isinstance(e, FileNotFoundError) for e in chain) or "no such file or directory" in text or "errno 2 " in text or "error 2 " in text:
            return Failure(
                "no-socket",
                f"no socket at {where}",
                f"{what} is not running, or its socket is elsewhere: compare the path with the server's unixsocket setting and the volume that"
                " shares it",
            )
        if any(isinstance(e, PermissionError) for e in chain) or "permission denied" in text or "error 13 " in text:
            return Failure(
                "socket-permission",
                f"permission denied on the socket {where}",
                f"this user may not open {what}'s socket: check unixsocketperm and the socket's owner and group",
            )
    if "network is unreachable" in text or "no route to host" in text:
        return Failure("unreachable", f"network unreachable for {where}", "the container has no route to that network: check its Docker networks")
    if "protocol error" in text or "invalidresponse" in text:
        spoke = "HTTP" if "http/" in text else "another protocol"
        return Failure(
            "not-redis",
            f"{where} answered in {spoke}, not as {what}: {redact(str(exc))[:120]}",
            f"something other than {what} listens on that port (a web server or proxy answered): check the port in the URL "
            f"({what} usually 6379) and the host name (docker ps; docker port coolify-redis)",
        )
    if "connection closed by server" in text:
        return Failure(
            "closed",
            f"{where} closed the connection at once",
            f"not {what} on that port, a proxy in between, or a server that expects TLS (rediss://): check the host, port and scheme",
        )
    return Failure("other", redact(f"{type(exc).__name__}: {exc}")[:300], f"unexpected error talking to {what}")
