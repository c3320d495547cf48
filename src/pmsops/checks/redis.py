"""``check redis``: PING, server version, latency, and a SET/GET round trip.

Names failures as the runbook does: "Authentication required" / "invalid
username-password pair" point at encoding, mismatch or URL format; refused,
DNS and timeouts point at the container and its networks.
"""

from __future__ import annotations

import time
import uuid

from pmsops import results
from pmsops.checks.failures import classify
from pmsops.results import Result, Stopwatch
from pmsops.urlread import mask_url, read_url

LATENCY_WARN_MS = 100.0
"""The contract's alert threshold for Redis."""

AUTH_HINT = (
    "the password is wrong as the server sees it: (1) not URL-encoded — run pmsops redis-url check; "
    "(2) mismatch with requirepass — run pmsops compare-password-hash; "
    "(3) URL format — redis://:PASSWORD@HOST:6379/0 (colon before the password, usually no user name)"
)


def client_for(url: str, timeout: float):
    """A redis-py client that fails within ``timeout``: no retries, connect and read timeouts."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )


def auth_failure(exc: BaseException) -> str | None:
    """The server's words when the failure is about credentials."""
    text = str(exc)
    for marker in ("invalid username-password pair", "Authentication required", "WRONGPASS", "NOAUTH", "AUTH <password> called without any password configured"):
        if marker.lower() in text.lower():
            return text.strip()
    return None


def check_redis(url: str, timeout: float = 3.0, name: str = "redis", variable: str = "REDIS_URL") -> Result:
    """Connect, authenticate, PING, INFO, SET/GET/DEL a namespaced key with a 10 s TTL.

    The URL is read by redis-py's own parser first (:func:`pmsops.urlread.read_url`):
    a URL it would misread is bad input, and every line names the address redis-py
    really connects to (``localhost:6379`` when the URL has no host).
    """
    import redis

    reading = read_url(url, "redis-py", variable)
    host, port = reading.address.endpoint
    masked = f"{mask_url(url)} at {reading.where}"
    watch = Stopwatch()
    client = client_for(url, timeout)
    try:
        started = time.perf_counter()
        client.ping()
        latency = (time.perf_counter() - started) * 1000
        version = client.info("server").get("redis_version", "?")
        key = f"pmsops:check:{uuid.uuid4().hex}"
        client.set(key, "ok", ex=10)
        value = client.get(key)
        client.delete(key)
    except (redis.AuthenticationError, redis.ResponseError) as exc:
        words = auth_failure(exc)
        if words is None:
            return results.fail(name, f"{masked}: {exc}", hint="the server rejected a command: check ACLs for this user")
        return results.fail(name, f"{masked}: {words}", hint=AUTH_HINT, details={"url": mask_url(url), "address": str(reading.address), "error": "auth"})
    except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.InvalidResponse, OSError) as exc:  # InvalidResponse: not Redis on that port
        words = auth_failure(exc)
        if words:
            return results.fail(name, f"{masked}: {words}", hint=AUTH_HINT, details={"url": mask_url(url), "address": str(reading.address), "error": "auth"})
        failure = classify(exc, host, port, timeout, "Redis")
        return results.fail(name, f"{masked}: {failure.summary}", hint=failure.hint, details={"url": mask_url(url), "address": str(reading.address), "error": failure.kind})
    finally:
        client.close()
    details = {"url": mask_url(url), "address": str(reading.address), "fallback": reading.fallback, "version": version, "latency_ms": round(latency, 2), "set_get": value == b"ok"}
    summary = f"{masked}: PONG from Redis {version} in {latency:.1f} ms, SET/GET ok"
    if value != b"ok":
        return results.fail(name, f"{masked}: SET/GET round trip returned {value!r}", details=details, hint="another client may be evicting keys (maxmemory-policy)")
    if latency > LATENCY_WARN_MS:
        return results.warn(name, summary + f" (over the {LATENCY_WARN_MS:.0f} ms alert threshold)", details=details, duration_ms=watch.ms)
    return results.ok(name, summary, details=details, duration_ms=watch.ms)
