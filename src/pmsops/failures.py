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
from typing import Callable

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


@dataclass(frozen=True)
class Seen:
    """What a rule reads of one failure: the exception chain, its text (lower case), and where we were going."""

    exc: BaseException
    chain: list[BaseException]
    text: str
    host: str | None
    port: int | None
    timeout: float
    what: str

    @property
    def where(self) -> str:
        if not self.host:
            return self.what
        return self.host if self.port is None or self.host.startswith("/") else f"{self.host}:{self.port}"  # a socket has a path, no port

    @property
    def on_socket(self) -> bool:
        return self.port is None and bool(self.host) and str(self.host).startswith("/")

    def raised(self, *types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in self.chain)

    def says(self, *phrases: str) -> bool:
        return any(p in self.text for p in phrases)

    def detail(self, limit: int) -> str:
        return redact(str(self.exc))[:limit]


@dataclass(frozen=True)
class Rule:
    """One row of the table: when it matches, the failure's kind, summary and hint."""

    kind: str
    matches: Callable[[Seen], bool]
    summary: Callable[[Seen], str]
    hint: Callable[[Seen], str]


RULES: tuple[Rule, ...] = (
    Rule(
        "dns",
        lambda s: (
            s.raised(socket.gaierror)
            or s.says(
                "name or service not known",
                "temporary failure in name resolution",
                "nodename nor servname",
                "no address associated",
                "name resolution",
            )
        ),
        lambda s: f"cannot resolve host {s.host!r}",
        lambda s: (
            f"DNS failure: this container is not on {s.what}'s Docker network (docker network connect …), or the host name is wrong;"
            " DNS can also flap for 30-60 s after a deploy"
        ),
    ),
    Rule(
        "timeout",
        lambda s: s.raised(TimeoutError, socket.timeout) or s.says("timed out", "timeout"),
        lambda s: f"no answer from {s.where} within {s.timeout:g} s",
        lambda s: f"{s.what} is black-holed (firewall, wrong network, stopped container that still has an IP) or overloaded",
    ),
    Rule(
        "refused",
        lambda s: s.raised(ConnectionRefusedError) or s.says("connection refused", "errno 111", "connect call failed"),
        lambda s: f"connection refused by {s.where}",
        lambda s: f"{s.what} is not running or not listening on that port: check the container (docker ps) and the port in the URL",
    ),
    Rule(
        "ssl",
        lambda s: s.raised(ssl.SSLError) or s.says("ssl") and s.says("handshake", "certificate", "wrong version"),
        lambda s: f"TLS/SSL problem talking to {s.where}: {s.detail(200)}",
        lambda s: "check sslmode/rediss:// and the server's TLS settings",
    ),
    Rule(
        "no-socket",
        lambda s: s.on_socket and (s.raised(FileNotFoundError) or s.says("no such file or directory", "errno 2 ", "error 2 ")),
        lambda s: f"no socket at {s.where}",
        lambda s: (
            f"{s.what} is not running, or its socket is elsewhere: compare the path with the server's unixsocket setting and the volume"
            " that shares it"
        ),
    ),
    Rule(
        "socket-permission",
        lambda s: s.on_socket and (s.raised(PermissionError) or s.says("permission denied", "error 13 ")),
        lambda s: f"permission denied on the socket {s.where}",
        lambda s: f"this user may not open {s.what}'s socket: check unixsocketperm and the socket's owner and group",
    ),
    Rule(
        "unreachable",
        lambda s: s.says("network is unreachable", "no route to host"),
        lambda s: f"network unreachable for {s.where}",
        lambda s: "the container has no route to that network: check its Docker networks",
    ),
    Rule(
        "not-redis",
        lambda s: s.says("protocol error", "invalidresponse"),
        lambda s: f"{s.where} answered in {'HTTP' if s.says('http/') else 'another protocol'}, not as {s.what}: {s.detail(120)}",
        lambda s: (
            f"something other than {s.what} listens on that port (a web server or proxy answered): check the port in the URL "
            f"({s.what} usually 6379) and the host name (docker ps; docker port coolify-redis)"
        ),
    ),
    Rule(
        "closed",
        lambda s: s.says("connection closed by server"),
        lambda s: f"{s.where} closed the connection at once",
        lambda s: f"not {s.what} on that port, a proxy in between, or a server that expects TLS (rediss://): check the host, port and scheme",
    ),
)
"""The runbook's names for network failures, first match wins (DNS before timeout: a resolver that times out is DNS)."""


def classify(exc: BaseException, host: str | None, port: int | None, timeout: float, what: str) -> Failure:
    """The runbook's name for the failure behind ``exc`` (``what`` is "Redis", "PostgreSQL", …): the first rule of
    :data:`RULES` that matches, else "other"."""
    seen = Seen(exc, _chain(exc), _text(exc), host, port, timeout, what)
    for rule in RULES:
        if rule.matches(seen):
            return Failure(rule.kind, rule.summary(seen), rule.hint(seen))
    return Failure("other", redact(f"{type(exc).__name__}: {exc}")[:300], f"unexpected error talking to {what}")
