"""``check redis``: PING, server version, latency, and a SET/GET round trip.

Names failures as the runbook does: "Authentication required" / "invalid
username-password pair" point at encoding, mismatch or URL format (or, with ACL
users, at the user); refused, DNS and timeouts point at the container and its
networks. Production variants are named too:

- TLS: ``redis://`` sent to a TLS port (the server resets the connection) is
  told to use ``rediss://``; ``rediss://`` sent to a plain port is told the
  opposite; an untrusted certificate names ``ssl_ca_certs``; a PONG over TLS
  with ``ssl_cert_reqs=none`` says that the certificate was not verified.
- ACL users (``+@all -@dangerous``): INFO is optional (Celery never sends it);
  what the user may do is reported (PING, SET/GET on our key or, outside its key
  pattern, on the keys Celery uses, PUBLISH) and only what the application
  needs fails the check.
- Unix sockets: ``unix://`` (redis-py) and Celery's ``redis+socket://`` and
  ``socket://`` are all checked on the socket they name.
"""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from dataclasses import dataclass, field

from pmsops import results
from pmsops.failures import classify
from pmsops.results import Result, Stopwatch
from pmsops.redisclient import AUTH_HINT, SOCKET_SCHEMES, auth_failure, client_for, scheme_of, socket_parts  # noqa: F401 - re-exported
from pmsops.urlread import Reading, mask_url, read_url

LATENCY_WARN_MS = 100.0
"""The contract's alert threshold for Redis."""

CELERY_KEYS = ("celery-task-meta-{id}", "{id}.reply.celery.pidbox", "_kombu.binding.{id}")
"""Key shapes Celery writes (result, remote-control reply queue, exchange binding): probed when our own key is denied."""
CELERY_READ_KEYS = ("celery", "unacked", "unacked_index", "_kombu.binding.celery")
"""Keys Celery's broker reads on every start."""


def read_redis_url(url: str, variable: str = "REDIS_URL") -> Reading:
    """The URL read by the client that accepts its scheme: redis-py, or kombu/Celery's backend for socket URLs.

    A URL that client would misread is :class:`~pmsops.errors.UsageError` (exit 2).
    """
    scheme = scheme_of(url)
    client = {"redis+socket": "kombu", "socket": "celery-backend"}.get(scheme, "redis-py")
    return read_url(url, client, variable)


def auth_hint(url: str) -> str:
    """What to check when the server refused the credentials, for *this* URL.

    With a user name in the URL the server checks an ACL user: requirepass and
    "usually no user name" do not apply. Without one, the server checks the
    ``default`` user, which may be requirepass or disabled (ACL users only). URL
    encoding is named only when the password holds ``%xx`` escapes (a URL that a
    client would cut elsewhere never gets here: it is bad input, exit 2).
    """
    from urllib.parse import unquote

    from pmsops.urlread import split_raw

    raw = split_raw(url)
    user = unquote(raw.user) if raw and raw.user and raw.password is not None else None
    escapes = bool(raw and raw.password and unquote(raw.password) != raw.password)
    encoding = (
        "the password's %xx escapes are decoded before AUTH: a '%' that is part of the real password must be written %25 "
        "(pmsops encode-redis-password)"
        if escapes
        else None
    )
    if user and user != "default":
        steps = [
            (
                f"the server has no enabled ACL user {user!r} with the password given; look the user up on the server (ACL GETUSER {user}, users.acl,"
                " or the provider's console): it may be disabled ('off'), missing, or have another password"
            ),
            f"the URL form for an ACL user is redis://{user}:PASSWORD@HOST:PORT/DB",
        ]
    else:
        steps = [
            (
                "requirepass differs from the URL's password — run pmsops compare-password-hash (and pmsops redis-url check for encoding slips, "
                "such as '+' written for a space)"
            ),
            (
                "the server uses ACL users and its default user is disabled (or has another password), so the URL must name the user —"
                " redis://USER:PASSWORD@HOST:PORT/DB"
            ),
        ]
        if raw and raw.password is None and raw.userinfo:
            steps.insert(0, "the URL has no ':' before the password: write redis://:PASSWORD@HOST:PORT/DB")
    if encoding:
        steps.append(encoding)
    return "the server refused these credentials: " + "; ".join(f"({i}) {s}" for i, s in enumerate(steps, 1))


# --- TLS: what the port really speaks ----------------------------------------------------------------


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Does ``host:port`` complete a TLS handshake (certificate not checked: we only ask what it speaks)?"""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            raw.settimeout(timeout)
            with context.wrap_socket(raw, server_hostname=host):
                return True
    except (OSError, ssl.SSLError, ValueError):
        return False


def speaks_plain_redis(host: str, port: int, timeout: float) -> bool:
    """Does ``host:port`` answer a plain-text ``PING`` the way Redis does (``+PONG`` or an error line)?"""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(b"PING\r\n")
            answer = conn.recv(64)
    except OSError:
        return False
    return answer.startswith((b"+PONG", b"-NOAUTH", b"-ERR", b"-WRONGPASS"))


def tls_failure(url: str, reading: Reading, exc: BaseException, timeout: float) -> tuple[str, str, str] | None:
    """(kind, summary, hint) when the failure is TLS on one side only, or an untrusted certificate; else None."""
    host, port = reading.address.endpoint
    if port is None or not host:
        return None
    text = f"{type(exc).__name__}: {exc}".lower()
    scheme = scheme_of(url)
    budget = min(timeout, 2.0)
    if scheme == "redis" and ("reset by peer" in text or "closed by server" in text or "connection closed" in text or "errno 104" in text):
        if speaks_tls(host, port, budget):
            return (
                "tls-expected",
                f"{host}:{port} speaks TLS, the URL plain redis:// (the server reset the connection)",
                (
                    "use rediss:// with ssl_cert_reqs and ssl_ca_certs:"
                    " rediss://:PASSWORD@HOST:PORT/0?ssl_cert_reqs=required&ssl_ca_certs=/path/to/ca.pem"
                ),
            )
    if scheme == "rediss":
        if "certificate verify failed" in text or "certificate_verify_failed" in text:
            why = "hostname mismatch" if "hostname" in text or "ip address mismatch" in text else "not signed by a trusted CA"
            return (
                "tls-untrusted",
                f"TLS certificate of {host}:{port} was not accepted ({why})",
                (
                    "give the server's CA: add ssl_ca_certs=/path/to/ca.pem to the URL (ssl_cert_reqs=none skips the check: traffic is then open to"
                    " interception)"
                ),
            )
        if speaks_plain_redis(host, port, budget):
            return (
                "tls-unexpected",
                f"{host}:{port} speaks plain Redis (no TLS), the URL rediss://",
                "use redis:// for this port, or the server's TLS port (tls-port) with rediss://",
            )
    return None


def not_verified(reading: Reading, url: str) -> bool:
    """A TLS connection that does not check the server certificate (``ssl_cert_reqs=none``/``CERT_NONE``)."""
    if not reading.tls:
        return False
    from urllib.parse import parse_qs, urlsplit

    try:
        query = parse_qs(urlsplit(url.strip()).query)
    except ValueError:
        return False
    values = [v.lower() for v in query.get("ssl_cert_reqs", [])]
    if reading.client == "kombu" and not values:
        return True  # kombu: "Secure redis scheme specified (rediss) with no ssl options, defaulting to insecure SSL behaviour"
    return any(v in ("none", "cert_none") for v in values)


# --- ACL: what this user may do ------------------------------------------------------------------------


@dataclass
class Abilities:
    """What the connected user may do, found by trying it (ACL GETUSER itself is @dangerous)."""

    user: str | None = None
    version: str | None = None
    info_denied: bool = False
    own_key: bool = False
    celery_keys_denied: list[str] = field(default_factory=list)
    publish_denied: bool = False
    set_get_value: bytes | None = None

    @property
    def needed_denied(self) -> list[str]:
        """What the application needs and may not do."""
        out = []
        if not self.own_key and self.celery_keys_denied:
            out.append("the keys Celery uses (" + ", ".join(self.celery_keys_denied) + ")")
        if self.publish_denied:
            out.append("PUBLISH (Celery's remote control and events use pub/sub channels)")
        return out

    def notes(self) -> list[str]:
        lines = []
        if self.user is not None and self.user != "default":
            lines.append(f"ACL user {self.user!r}")
        if self.info_denied:
            lines.append("INFO is denied for this user (ACL, e.g. -@dangerous): server version unknown; Celery does not need INFO")
        if not self.own_key:
            lines.append(
                "SET/GET on pmsops:check:* is denied (outside this user's key pattern); "
                + ("the keys Celery uses are allowed" if not self.celery_keys_denied else "the keys Celery uses are denied too")
            )
        return lines


def _denied(exc: BaseException) -> bool:
    import redis

    return isinstance(exc, redis.exceptions.NoPermissionError) or "noperm" in str(exc).lower() or "no permissions" in str(exc).lower()


def _round_trip(client, key: str) -> bytes | None:
    client.set(key, "ok", ex=10)
    try:
        return client.get(key)
    finally:
        client.delete(key)


def probe_abilities(client) -> Abilities:
    """INFO (optional), SET/GET on our key, else on Celery's keys, and PUBLISH: each tried, denials collected."""
    import redis

    found = Abilities()
    try:
        found.user = client.acl_whoami()
        found.user = found.user.decode() if isinstance(found.user, bytes) else found.user
    except redis.ResponseError:
        found.user = None  # ACL WHOAMI denied or unknown (Redis < 6)
    try:
        found.version = client.info("server").get("redis_version", "?")
    except redis.ResponseError as exc:
        if not _denied(exc):
            raise
        found.info_denied = True
    token = uuid.uuid4().hex
    try:
        found.set_get_value = _round_trip(client, f"pmsops:check:{token}")
        found.own_key = True
    except redis.ResponseError as exc:
        if not _denied(exc):
            raise
        for shape in CELERY_KEYS:
            key = shape.format(id=f"pmsops-check-{token}")
            try:
                value = _round_trip(client, key)
                found.set_get_value = value if found.set_get_value is None else found.set_get_value
            except redis.ResponseError as inner:
                if not _denied(inner):
                    raise
                found.celery_keys_denied.append(shape.format(id="*"))
        for key in CELERY_READ_KEYS:
            try:
                client.exists(key)
            except redis.ResponseError as inner:
                if not _denied(inner):
                    raise
                found.celery_keys_denied.append(key)
    try:
        client.publish(f"pmsops-check-{token}", "ping")  # no subscriber: nothing is delivered
    except redis.ResponseError as exc:
        if not _denied(exc):
            raise
        found.publish_denied = True
    return found


# --- the check ------------------------------------------------------------------------------------------


def check_redis(url: str, timeout: float = 3.0, name: str = "redis", variable: str = "REDIS_URL") -> Result:
    """Connect, authenticate, PING, INFO (optional), SET/GET/DEL a namespaced key with a 10 s TTL.

    The URL is read by its client's own parser first (:func:`read_redis_url`): a URL
    it would misread is bad input, and every line names the address the client
    really connects to (``localhost:6379`` when the URL has no host).
    """
    import redis

    reading = read_redis_url(url, variable)
    host, port = reading.address.endpoint
    masked = f"{mask_url(url)} at {reading.where}"
    base = {"url": mask_url(url), "address": str(reading.address)}
    notes: list[str] = []
    if scheme_of(url) in SOCKET_SCHEMES:
        notes.append(f"{scheme_of(url)}:// is Celery's socket form; redis-py (REDIS_URL) reads only unix://{reading.address}")
    watch = Stopwatch()
    client = client_for(url, timeout)
    try:
        # The first PING also connects and authenticates (TCP, AUTH, CLIENT SETINFO): the latency the alert threshold
        # means is one round trip on an open connection, as `check db` times a SELECT 1 after connecting.
        client.ping()
        started = time.perf_counter()
        client.ping()
        latency = (time.perf_counter() - started) * 1000
        can = probe_abilities(client)
    except (redis.AuthenticationError, redis.ResponseError) as exc:
        words = auth_failure(exc)
        if words is None:
            what = "PING is denied for this user: Celery needs it" if _denied(exc) else str(exc)
            return results.fail(
                name,
                f"{masked}: {what}",
                hint="the server rejected a command: check ACLs for this user",
                notes=notes,
                details={**base, "error": "acl"},
            )
        return results.fail(name, f"{masked}: {words}", hint=auth_hint(url), notes=notes, details={**base, "error": "auth"})
    except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.InvalidResponse, OSError) as exc:  # InvalidResponse: not Redis on that port
        words = auth_failure(exc)
        if words:
            return results.fail(name, f"{masked}: {words}", hint=auth_hint(url), notes=notes, details={**base, "error": "auth"})
        tls = tls_failure(url, reading, exc, timeout)
        if tls:
            kind, summary, hint = tls
            return results.fail(name, f"{masked}: {summary}", hint=hint, notes=notes, details={**base, "error": kind})
        failure = classify(exc, host, port, timeout, "Redis")
        return results.fail(name, f"{masked}: {failure.summary}", hint=failure.hint, notes=notes, details={**base, "error": failure.kind})
    finally:
        client.close()
    return _verdict(name, url, reading, masked, base, can, latency, notes, watch)


def _verdict(
    name: str, url: str, reading: Reading, masked: str, base: dict, can: Abilities, latency: float, notes: list[str], watch: Stopwatch
) -> Result:
    unverified = not_verified(reading, url)
    details = {
        **base,
        "fallback": reading.fallback,
        "version": can.version,
        "latency_ms": round(latency, 2),
        "set_get": can.set_get_value == b"ok",
        "user": can.user,
        "info_denied": can.info_denied,
        "tls": reading.tls,
        "certificate_verified": reading.tls and not unverified,
    }
    notes = notes + can.notes()
    server = f"Redis {can.version}" if can.version else "Redis (version hidden: INFO denied)"
    summary = f"{masked}: PONG from {server} in {latency:.1f} ms, SET/GET ok"
    if can.needed_denied:
        return results.fail(
            name,
            f"{masked}: PONG, but this user may not use " + " and ".join(can.needed_denied),
            notes=notes,
            details=details,
            hint="give the ACL user what Celery needs: ~celery* ~_kombu.* ~unacked* ~*.pidbox* &* +@all -@dangerous (or ~* &*)",
        )
    if can.set_get_value != b"ok":
        return results.fail(
            name,
            f"{masked}: SET/GET round trip returned {can.set_get_value!r}",
            details=details,
            notes=notes,
            hint="another client may be evicting keys (maxmemory-policy)",
        )
    if unverified:
        return results.warn(
            name,
            summary + "; TLS on, but the server certificate was NOT verified (ssl_cert_reqs=none)",
            details=details,
            notes=notes,
            hint="anyone on the path can impersonate the server: set ssl_cert_reqs=required and ssl_ca_certs=/path/to/ca.pem",
            duration_ms=watch.ms,
        )
    if reading.tls:  # said before a latency warning too: a slow answer does not make the certificate any less verified
        summary += ", TLS certificate verified"
    if latency > LATENCY_WARN_MS:
        return results.warn(
            name, summary + f" (over the {LATENCY_WARN_MS:.0f} ms alert threshold)", details=details, notes=notes, duration_ms=watch.ms
        )
    return results.ok(name, summary, details=details, notes=notes, duration_ms=watch.ms)
