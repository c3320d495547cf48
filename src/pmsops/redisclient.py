"""A Redis client that fails within its timeout, and the server's words when it refuses credentials.

Shared by the checks, the worker's dependency wait and the snapshot: below all of them (no pmsops imports).
"""

from __future__ import annotations


AUTH_HINT = (
    "the password is wrong as the server sees it: (1) not URL-encoded — run pmsops redis-url check; "
    "(2) mismatch with requirepass — run pmsops compare-password-hash; "
    "(3) the server uses ACL users and its default user is disabled — name the user: redis://USER:PASSWORD@HOST:6379/0"
)
"""The generic hint when nothing is known about the URL (prefer :func:`auth_hint`)."""

SOCKET_SCHEMES = ("redis+socket", "socket")
"""Celery's Unix-socket URLs: kombu reads ``redis+socket://``, the result backend ``socket://``; redis-py reads neither."""


def client_for(url: str, timeout: float):
    """A redis-py client that fails within ``timeout``: no retries, connect and read timeouts.

    Celery's socket URLs (``redis+socket://``, ``socket://``) get a client on the
    socket they name, as kombu and the result backend would connect.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    common = dict(socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0), health_check_interval=0)
    if scheme_of(url) in SOCKET_SCHEMES:
        path, user, password, db = socket_parts(url)
        return redis.Redis(unix_socket_path=path, username=user, password=password, db=db, **common)
    return redis.Redis.from_url(url, retry_on_timeout=False, **common)


def scheme_of(url: str) -> str:
    return url.strip().split("://", 1)[0].lower() if "://" in url else ""


def socket_parts(url: str) -> tuple[str, str | None, str | None, int]:
    """(path, user, password, db) of a ``redis+socket://`` or ``socket://`` URL, as kombu and Celery read it."""
    from kombu.utils.url import url_to_parts

    parts = url_to_parts(url.strip())  # user name and password come back decoded
    query = dict(parts.query)
    db_text = str(query.get("virtual_host") or query.get("db") or "0").strip("/") or "0"
    return "/" + (parts.path or "").lstrip("/"), parts.username or None, parts.password or None, int(db_text) if db_text.isdigit() else 0


def auth_failure(exc: BaseException) -> str | None:
    """The server's words when the failure is about credentials."""
    text = str(exc)
    for marker in (
        "invalid username-password pair",
        "Authentication required",
        "WRONGPASS",
        "NOAUTH",
        "AUTH <password> called without any password configured",
    ):
        if marker.lower() in text.lower():
            return text.strip()
    return None
