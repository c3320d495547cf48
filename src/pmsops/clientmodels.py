"""Models of the client libraries' URL parsers, without importing them (a leaf: no pmsops imports).

Importing redis-py and kombu costs ~0.1-0.2 s, more than the rest of an offline command; for URLs without a query
these functions read a URL as the libraries do. ``tests/test_url_parser_rules.py`` pins them to the installed
libraries on arbitrary URLs and passwords; :mod:`pmsops.urlread` uses them, :mod:`pmsops.urls` re-exports them.
"""

from __future__ import annotations

from urllib.parse import unquote


def redis_py_rules(url: str) -> dict:
    """redis-py's ``parse_url`` for a URL without a query, without importing redis-py: its
    scheme check, ``urlparse``, ``unquote`` of user name, password, host and path, the port
    cast and the db from the path, as redis-py 8.2 does them (``connection_class`` left out):
    the scheme compared case-insensitively and any port given, ``0`` included, kept (8.1 and
    earlier compared schemes case-sensitively and dropped port 0; ``pyproject.toml`` requires 8.2).

    Importing redis-py and kombu costs ~0.1-0.2 s, more than the rest of an offline
    command. A query brings in redis-py's per-argument parsers: :func:`parse_redis_url`
    hands such URLs to the library. ``tests/test_url_parser_rules.py`` pins this (and
    :func:`kombu_rules`) to the installed libraries on arbitrary URLs and passwords."""
    from urllib.parse import urlparse

    if not url.lower().startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("Redis URL must specify one of the following schemes (redis://, rediss://, unix://)")
    if "?" in url:
        raise ValueError("redis_py_rules reads URLs without a query")
    parts = urlparse(url)
    found: dict = {}
    if parts.username:
        found["username"] = unquote(parts.username)
    if parts.password:
        found["password"] = unquote(parts.password)
    if parts.scheme == "unix":
        if parts.path:
            found["path"] = unquote(parts.path)
        return found
    if parts.hostname:
        found["host"] = unquote(parts.hostname)
    if parts.port is not None:
        found["port"] = int(parts.port)
    if parts.path:
        try:
            found["db"] = int(unquote(parts.path).replace("/", ""))
        except (AttributeError, ValueError):
            pass
    return found


def kombu_rules(url: str) -> dict:
    """``pmsops.urls.parse_with_kombu`` without importing kombu: ``url_to_parts`` of the first URL of a
    failover list (``urlparse`` with HTTP semantics, ``unquote``); see :func:`redis_py_rules`."""
    from urllib.parse import urlparse

    pieces = url.split(";")
    first = pieces[0]
    scheme = urlparse(first).scheme
    parts = urlparse("http://" + first[len(scheme) + 3 :])
    path = parts.path or ""
    path = path[1:] if path and path[0] == "/" else path
    return {
        "host": unquote(parts.hostname or "") or None,
        "port": parts.port,
        "username": unquote(parts.username or "") or None,
        "password": unquote(parts.password or "") or None,
        "db": unquote(path or "") or None,
        "failover_urls": len(pieces),
    }
