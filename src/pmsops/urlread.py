"""One URL reader: every URL is read the way the client that will use it reads it.

The runbook's most common outage is a URL that the operator reads one way and the
client library another (a raw ``/``, ``?``, ``#`` or ``@`` in a password). So every
URL (Redis, broker, result backend, database) passes through :func:`read_url`
before any client sees it:

- the *author's* split is made once, here (:func:`split_raw`: the userinfo runs to
  the **last** ``@``), and every candidate fragment of the password, as any parser
  could cut it, is registered with the redactor (:func:`register_url_secrets`);
- the *client's* reading comes from the client's own parser: redis-py
  (``ConnectionPool.from_url`` and its connection class; for a lower-case ``redis://``
  or ``rediss://`` URL without a query, a model of them that tests pin to the installed
  redis-py, see :func:`redis_py_model_applies`) for ``REDIS_URL``, kombu's
  ``Connection`` for ``CELERY_BROKER_URL``, Celery's ``RedisBackend`` (its
  ``connparams``) for ``CELERY_RESULT_BACKEND``, asyncpg's DSN parser (without
  connecting) for ``DATABASE_URL``; nothing connects;
- where the two differ on the user name or password, or the client raises, the URL
  is bad input (:class:`~pmsops.errors.UsageError`, exit 2) with one line that names
  the raw characters to encode. A parser's exception text is never shown: it often
  quotes a piece of the password. It is mapped to a named, fragment-free message.

The answer (:class:`Reading`) names the address the client will really use: the
first host of a list, the socket, or the fallback when the URL has no host
(redis-py: ``localhost:6379``).

Heavy parsers are imported inside functions, so ``pmsops --help`` stays light, and
``redis-url check`` reads a plain Redis URL without importing redis-py (~0.1-0.2 s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from pmsops.errors import UsageError
from pmsops.internals import asyncpg_parse  # noqa: F401 - asyncpg's private DSN reader lives in the one module of internals
from pmsops.redaction import mask_url  # noqa: F401 - the one masker, re-exported beside the reader
from pmsops.urlparts import _PASSWORD_ONLY_SCHEMES, MASK, SCHEME, RawUrl, _plausible_user, split_raw  # noqa: F401 - the author's split


CLIENTS = {
    "redis-py": "redis-py",
    "kombu": "kombu (Celery's broker)",
    "celery-backend": "Celery's Redis result backend",
    "asyncpg": "asyncpg",
}
"""Client id → how messages name it."""

VARIABLE_CLIENTS = {
    "REDIS_URL": "redis-py",
    "CELERY_BROKER_URL": "kombu",
    "CELERY_RESULT_BACKEND": "celery-backend",
    "DATABASE_URL": "asyncpg",
}
"""Which client reads which environment variable."""

_DELIMITERS = "/?#@:[];,&= \t\r\n\\"
"""Characters at which some parser cuts a URL: password fragments start and end here."""

_RAW_DANGEROUS = {
    "/": "%2F",
    "?": "%3F",
    "#": "%23",
    "@": "%40",
    "[": "%5B",
    "]": "%5D",
    ";": "%3B",
    ",": "%2C",
    "\\": "%5C",
    " ": "%20",
    "\t": "%09",
    "\n": "%0A",
    "\r": "%0D",
}
_CHAR_NAMES = {" ": "space", "\t": "tab", "\n": "line break", "\r": "carriage return"}
MIN_FRAGMENT_LENGTH = 4
"""Pieces of a password shorter than this are not registered (the whole password always is)."""
_CUTS_USERINFO = "/?#[]@;\t\r\n"
"""Raw characters that make at least one client's parser cut the userinfo short (urlsplit, asyncpg's '@', kombu's ';')."""
_MAX_BOUNDARIES = 24
"""Above this many cut points, register runs between delimiters (not every span): bounded work."""


# --- secrets: every piece of the password as any parser could cut it -------------------------


def _cut_points(text: str) -> list[int]:
    points = {0, len(text)}
    for i, ch in enumerate(text):
        if ch in _DELIMITERS:
            points.update((i, i + 1))
    return sorted(points)


def secret_fragments(url: str) -> set[str]:
    """Every string a parser might take as (a piece of) this URL's password.

    Parsers cut the userinfo at different characters (``urlsplit`` at the first
    ``/ ? #``, asyncpg at the first ``@``, kombu at ``;``) and then show the pieces as
    host, port or database in their errors. So every span between two cut points of
    the secret part is a candidate, raw, percent-decoded and lower-cased (``urlsplit``
    lower-cases host names), with tabs and line breaks removed (``urlsplit`` drops them).
    """
    raw = split_raw(url)
    if raw is None or raw.userinfo is None:
        return set()
    if raw.password is None and not raw.scheme.lower().startswith(_PASSWORD_ONLY_SCHEMES):
        return set()  # postgresql://user@host: a user name, not a secret
    secret = raw.password if raw.password is not None else raw.userinfo
    if not secret:
        return set()
    forms = {secret, raw.userinfo}
    # Without a character that makes some parser end the userinfo early, every parser reads the
    # password whole: registering its pieces would only mask ordinary words ("pass=word" → "word").
    cut_anywhere = any(c in secret for c in _CUTS_USERINFO)
    for text in {secret, re.sub(r"[\t\r\n]", "", secret)} if cut_anywhere else ():
        points = _cut_points(text)
        if len(points) > _MAX_BOUNDARIES:
            spans = [(a, b) for a, b in zip(points, points[1:])]
            spans += [(0, p) for p in points] + [(p, len(text)) for p in points]
        else:
            spans = [(a, b) for i, a in enumerate(points) for b in points[i + 1 :]]
        forms.update(text[a:b] for a, b in spans)
    whole = {secret, unquote(secret)}
    out: set[str] = set()
    for form in forms | {f.strip() for f in forms}:
        for variant in (form, unquote(form)):
            out.update((variant, variant.lower()))
    # pieces shorter than 4 characters would mask ordinary tokens ('0', 'db'); the whole password is always kept
    return {f for f in out if len(f) >= MIN_FRAGMENT_LENGTH or f in whole}


def register_url_secrets(url: str) -> None:
    """Register :func:`secret_fragments` of ``url`` with the redactor (no-op without userinfo)."""
    from pmsops.redaction import register_secret

    raw = split_raw(url)
    whole = {raw.password, raw.userinfo} if raw is not None else set()
    whole |= {unquote(w) for w in whole if w}
    for fragment in secret_fragments(url):
        register_secret(fragment, fragment=fragment not in whole)


# --- the client's reading -----------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    """Where a client connects: a TCP host and port, or a Unix socket path."""

    host: str | None = None
    port: int | None = None
    socket: str | None = None

    @property
    def endpoint(self) -> tuple[str | None, int | None]:
        """(host, port) for failure messages; a socket is (path, None)."""
        return (self.socket, None) if self.socket else (self.host, self.port)

    def __str__(self) -> str:
        if self.socket:
            return self.socket
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass
class Finding:
    level: str  # "error" | "warning" | "note"
    code: str
    message: str


@dataclass
class Reading:
    """A URL as its client reads it: the client's own answer, and where it differs from the author."""

    client: str
    name: str
    url: str
    scheme: str
    addresses: list[Address]
    user: str | None = None
    password: str | None = None
    database: str | None = None
    tls: bool = False
    options: dict[str, str] = field(default_factory=dict)
    fallback: str | None = None
    """Set when the URL names no host: what the client falls back to, in its words."""
    findings: list[Finding] = field(default_factory=list)
    raw: RawUrl | None = None
    """The author's split (the raw pieces, nothing decoded)."""

    @property
    def address(self) -> Address:
        """The address the client tries first."""
        return self.addresses[0]

    @property
    def where(self) -> str:
        """``host:port`` (or the socket) the client really uses, with the fallback said aloud."""
        text = str(self.address)
        if len(self.addresses) > 1:
            text += f" (first of {len(self.addresses)})"
        if self.fallback:
            text += f" ({self.fallback})"
        return text


def _name_chars(chars: list[str]) -> str:
    return (
        " ".join(_CHAR_NAMES.get(c, repr(c)) for c in chars)
        + " (encode as "
        + " ".join(_RAW_DANGEROUS.get(c, quote(c, safe="")) for c in chars)
        + ")"
    )


def _dangerous_in(text: str, client: str) -> list[str]:
    """The raw characters in ``text`` that make ``client`` cut the URL elsewhere."""
    relevant = set("/?#[]\t\r\n")
    if client == "asyncpg":
        relevant.add("@")
    if client == "kombu":
        relevant.add(";")
    return sorted({c for c in text if c in relevant}, key=lambda c: list(_RAW_DANGEROUS).index(c) if c in _RAW_DANGEROUS else 99)


def _misread_error(name: str, client: str, raw: RawUrl, problem: str) -> UsageError:
    """The one line for a URL whose userinfo the client reads differently (nothing of it quoted)."""
    chars = _dangerous_in(raw.userinfo or "", client)
    what = CLIENTS[client]
    if chars and raw.password is None:
        message = (
            f"{name}: the text before the last '@' (a user name or a password without its ':') contains raw {_name_chars(chars)}: "
            f"{what} {problem}; if that '@' belongs to the path or query, encode it as %40"
        )
    elif chars:
        message = f"{name}: the password contains raw {_name_chars(chars)}: {what} {problem}"
    else:
        message = f"{name}: {what} reads another user name or password than written ({problem}); URL-encode every special character of the password"
    how = (
        "pmsops encode-redis-password prints the encoded URL"
        if client != "asyncpg"
        else "urllib.parse.quote(password, safe='') gives the encoded form"
    )
    return UsageError(f"{message} ({how})")


def parser_error_text(exc: BaseException, client: str) -> str:
    """A parser's exception as a named, fragment-free phrase (its own text quotes pieces of the URL)."""
    text = str(exc)
    lowered = text.lower()
    if "must specify one of the following schemes" in lowered:
        return "accepts only the schemes redis://, rediss:// and unix://"
    if "port could not be cast" in lowered or "invalid literal for int" in lowered or "port out of range" in lowered:
        return "cannot read the port (not a number between 0 and 65535)"
    if "ipv6" in lowered or "does not appear to be an ipv4 or ipv6" in lowered:
        return "cannot read the host: '[' and ']' do not enclose an IPv6 address"
    if "bad query field" in lowered:
        return "cannot read the query string (it must be key=value pairs joined by '&')"
    if "invalid value for" in lowered and "connection url" in lowered:
        key = re.search(r"'([a-z_]+)'", text)
        return f"rejects the value of the query option {key.group(1)!r}" if key and len(key.group(1)) < 32 else "rejects a query option's value"
    if isinstance(exc, TypeError) and "unexpected keyword argument" in lowered:
        key = re.search(r"argument '([A-Za-z_][A-Za-z0-9_]{0,40})'", text)
        return f"fails on the unknown query option {key.group(1)!r}" if key else "fails on an unknown query option"
    if "could not match" in lowered and "port numbers" in lowered:
        return "cannot match the list of ports to the list of hosts"
    if "invalid dsn" in lowered and "scheme" in lowered:
        return "accepts only postgresql:// and postgres://"
    if "no such transport" in lowered:
        return "has no transport for this scheme"
    if "invalid ssl certificate requirements flag" in lowered:
        return "rejects the ssl_cert_reqs value: redis-py accepts only required, optional or none (lower-case; CERT_REQUIRED is Celery's spelling)"
    if "must have parameter ssl_cert_reqs" in lowered:
        return (
            'requires the query option ssl_cert_reqs on a rediss:// URL (the worker dies at start: "A rediss:// URL must have parameter '
            'ssl_cert_reqs"): add ssl_cert_reqs=required&ssl_ca_certs=/path/to/ca.pem (lower-case values work for every client)'
        )
    if "root certificate file" in lowered and ("does not exist" in lowered or "cannot be accessed" in lowered):
        return (
            "needs a root certificate for sslmode=verify-full/verify-ca and finds none (~/.postgresql/root.crt): add sslrootcert=/path/to/ca.pem "
            "(the server's CA certificate) to the URL, or use sslmode=require (encrypted, server not verified)"
        )
    if client == "asyncpg" and isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return "cannot open a certificate file the URL names (sslrootcert, sslcert or sslkey): check the path as the container sees it"
    if "sslmode" in lowered:
        return "rejects the sslmode option (disable, allow, prefer, require, verify-ca, verify-full)"
    if "tls version" in lowered:
        return "rejects the TLS version option"
    if "target_session_attrs" in lowered:
        return "rejects the target_session_attrs option"
    return f"cannot read it ({type(exc).__name__})"


def _describe_misreading(raw: RawUrl, reading: "Reading") -> str:
    """What the client would do instead, without quoting any piece of the URL's secret part.

    Host and port are named only when they are the author's; otherwise they are
    pieces of the password and are described by their origin alone.
    """
    got = reading.password
    said = f"would send a password of {len(got)} character{'s' if len(got) != 1 else ''}" if got else "would send no password"
    address = reading.address
    if address.socket:
        return f"{said} to the socket the URL names"
    mine = unquote(raw.host).lower()
    if (address.host or "").lower() == mine and mine:
        return f"{said} to {address}"
    return f"{said} to a host made of a piece of the password (not {raw.host or 'the host written'})"


def _check_userinfo(name: str, client: str, raw: RawUrl, reading: "Reading") -> None:
    """Raise when the client's user name or password differ from the author's (decoded)."""
    user, password = reading.user, reading.password
    want_user = unquote(raw.user) if raw.user else None
    want_password = unquote(raw.password) if raw.password else None
    if raw.userinfo is None:
        return
    # only what the URL sets: asyncpg fills a missing user or password from PGUSER, PGPASSWORD, .pgpass
    if (want_user is not None and user != want_user) or (want_password is not None and password != want_password):
        raise _misread_error(name, client, raw, _describe_misreading(raw, reading))


def read_url(url: str, client: str, name: str = "URL") -> Reading:
    """``url`` as ``client`` reads it; :class:`UsageError` (exit 2) when it would misread or fail.

    ``client`` is one of :data:`CLIENTS`. The password is registered with the
    redactor first, so even a message we did not foresee cannot show it.
    """
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}")
    register_url_secrets(url)
    raw = split_raw(url)
    if raw is None:
        raise UsageError(f"{name} is not a URL (no scheme://)", hint="quote the URL in single quotes so the shell keeps special characters")
    if url != url.lstrip() and client != "asyncpg":  # urlparse strips it for asyncpg; redis-py rejects, kombu misreads
        raise UsageError(f"{name}: whitespace before the scheme (a copy-paste artefact): {CLIENTS[client]} rejects or misreads the URL; remove it")
    reader = {"redis-py": _read_redis_py, "kombu": _read_kombu, "celery-backend": _read_celery_backend, "asyncpg": _read_asyncpg}[client]
    try:
        reading = reader(url, name)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - every parser failure becomes one named line
        if raw.userinfo is not None and _dangerous_in(raw.userinfo, client):
            raise _misread_error(name, client, raw, parser_error_text(exc, client)) from None
        raise UsageError(f"{name}: {CLIENTS[client]} {parser_error_text(exc, client)}") from None
    if raw.userinfo is not None:
        _check_userinfo(name, client, raw, reading)
    reading.raw = raw
    return reading


# --- the readers: one per client, each asking the client's own code ---------------------------


@dataclass(frozen=True)
class RedisPyConnection:
    """What redis-py's connection would hold: the URL's keyword arguments and the connection's own attributes."""

    kwargs: dict
    """What the URL sets of the connection's keyword arguments (redis-py's ``parse_url``; ``connection_class`` left out)."""
    host: str | None
    port: int | None
    db: str
    path: str | None
    tls: bool


def redis_py_model_applies(url: str) -> bool:
    """Whether :func:`redis_py_connection_model` reads ``url`` exactly as redis-py does (proven domain).

    The domain: the URL starts with the lower-case ``redis://`` or ``rediss://`` and holds no
    ``?`` anywhere (so no query: redis-py's per-option parsers and the options they add to the
    connection never come in). Every other character is allowed: raw or encoded passwords,
    ``/ # @ : [ ] ; %``, blanks, tabs, line breaks, non-ASCII, IPv6 literals, any port or path
    text, the errors ``urlparse`` raises (port, IPv6). Outside it (``unix://``, upper-case
    schemes, a query, anything else) redis-py itself reads the URL.
    ``tests/test_url_redis_py_model.py`` pins model and library against each other on
    arbitrary URLs of the domain (the :class:`Reading`, or the exception's type and text).
    """
    return url.startswith(("redis://", "rediss://")) and "?" not in url


def redis_py_connection_model(url: str) -> RedisPyConnection:
    """redis-py's ``ConnectionPool.from_url(url)`` and the connection it builds, without importing
    redis-py (~0.1-0.2 s of start-up): :func:`pmsops.clientmodels.redis_py_rules` (``parse_url``), then the
    connection's defaults (``localhost``, 6379, db 0) and ``SSLConnection`` for ``rediss://``.
    Only inside :func:`redis_py_model_applies`; raises ``ValueError`` as ``parse_url`` does."""
    from pmsops.clientmodels import redis_py_rules

    if not redis_py_model_applies(url):
        raise ValueError("the redis-py model reads only redis:// and rediss:// URLs without a query")
    kwargs = redis_py_rules(url)
    return RedisPyConnection(
        kwargs, kwargs.get("host", "localhost"), int(kwargs.get("port", 6379)), str(kwargs.get("db", 0)), None, url.startswith("rediss://")
    )


def redis_py_connection_library(url: str) -> RedisPyConnection:
    """redis-py's own reading: ``ConnectionPool.from_url`` and the connection it would build (no I/O)."""
    import redis
    from redis.connection import parse_url

    pool = redis.ConnectionPool.from_url(url)
    conn = pool.connection_class(**pool.connection_kwargs)
    # the URL's part of the keyword arguments (the pool adds its own: orig_host_address, maint_notifications_config, …)
    kwargs = {k: v for k, v in parse_url(url).items() if k != "connection_class"}
    path = getattr(conn, "path", None)
    if path:
        return RedisPyConnection(kwargs, None, None, str(conn.db), path, isinstance(conn, redis.SSLConnection))
    return RedisPyConnection(kwargs, conn.host, int(conn.port), str(conn.db), None, isinstance(conn, redis.SSLConnection))


def redis_py_connection(url: str) -> RedisPyConnection:
    """redis-py's reading of ``url``: by the proven model inside its domain, by redis-py itself outside."""
    return redis_py_connection_model(url) if redis_py_model_applies(url) else redis_py_connection_library(url)


def _read_redis_py(url: str, name: str) -> Reading:
    """redis-py: ``ConnectionPool.from_url`` and the connection it would build (no I/O), see :func:`redis_py_connection`."""
    scheme = url.split("://", 1)[0]
    if scheme.lower() not in ("redis", "rediss", "unix"):
        raise UsageError(
            f"{name}: unknown scheme {scheme + '://'!r} (redis-py accepts redis://, rediss:// and unix://)",
            hint="the runbook's form is redis://:<PASSWORD>@coolify-redis:6379/0",
        )
    conn = redis_py_connection(url)
    kwargs = conn.kwargs
    addresses = [Address(socket=conn.path)] if conn.path else [Address(conn.host, conn.port)]
    fallback = None
    if not conn.path and "host" not in kwargs:
        fallback = (
            "no host in the URL: redis-py falls back to localhost:6379"
            if "port" not in kwargs
            else "no host in the URL: redis-py falls back to localhost"
        )
    options = {
        k: str(v)
        for k, v in kwargs.items()
        if k not in ("host", "port", "db", "path", "username", "password") and isinstance(v, (str, int, float, bool))
    }
    return Reading(
        "redis-py",
        name,
        url,
        scheme,
        addresses,
        kwargs.get("username"),
        kwargs.get("password"),
        conn.db,
        tls=conn.tls,
        options=options,
        fallback=fallback,
    )


def _read_kombu(url: str, name: str) -> Reading:
    """kombu: ``Connection(url)`` (failover list split at ';') and its Redis transport's defaults."""
    from kombu import Connection

    if url.strip().lower().startswith(("unix://", "socket://")):
        raise UsageError(
            f"{name}: kombu (Celery's broker) has no {url.strip().split(':', 1)[0].lower()!r} transport (Celery fails with "
            '"No such transport"): write a Unix socket as redis+socket:///path/to/redis.sock (unix:// is redis-py\'s form, for REDIS_URL)'
        )
    conn = Connection(url)
    info = conn.info()
    scheme = url.split("://", 1)[0]
    host = conn.hostname
    port = conn.port or info.get("port")
    if not host:  # kombu's Redis channel connects to 127.0.0.1 (Channel._connparams); other transports: localhost
        host = "127.0.0.1" if conn.transport_cls.split("+")[0] in ("redis", "rediss") else info.get("hostname")
    if host and "://" in host:  # redis+socket:// keeps the URL as its "host" and reads the path later
        from kombu.utils.url import url_to_parts

        parts = url_to_parts(host)
        addresses = [Address(socket="/" + (parts.path or "").lstrip("/"))]
        return Reading("kombu", name, url, scheme, addresses, parts.username, parts.password, None, options=dict(parts.query))
    fallback = None if conn.hostname else f"no host in the URL: kombu falls back to {host}"
    findings = []
    if conn.alt and len(conn.alt) > 1:
        findings.append(Finding("note", "failover", f"kombu reads a failover list of {len(conn.alt)} URLs split at ';' and uses the first"))
    reading = Reading(
        "kombu",
        name,
        url,
        scheme,
        [Address(host, int(port) if port else None)],
        info.get("userid"),
        info.get("password"),
        info.get("virtual_host"),
        tls=bool(info.get("ssl")) or scheme.lower().startswith("rediss"),
        fallback=fallback,
        findings=findings,
    )
    return reading


def _kombu_parts(url: str):
    from kombu.utils.url import url_to_parts

    return url_to_parts(url)


_BACKEND_APP = None


def _read_celery_backend(url: str, name: str) -> Reading:
    """Celery's Redis result backend: the class Celery's ``by_url`` picks, then ``RedisBackend(url=…).connparams``.

    Celery maps the scheme to a backend (``redis``, ``rediss``; ``redis+socket://``
    becomes the Redis backend on ``socket://``; ``socket://`` and ``unix://`` are no
    backend at all), parses the URL with kombu's ``url_to_parts`` and adds its own
    rules (a ``rediss://`` URL must carry ``ssl_cert_reqs``; no host means
    localhost:6379). Nothing connects.
    """
    global _BACKEND_APP
    from celery import Celery
    from celery.app.backends import by_url
    from celery.backends.redis import RedisBackend

    scheme = url.split("://", 1)[0]
    if scheme.lower() in ("socket", "unix"):
        raise UsageError(
            f'{name}: Celery has no {scheme.lower()!r} result backend (it fails with "Unknown result backend"): '
            "write a Unix socket as redis+socket:///path/to/redis.sock"
        )
    if scheme.lower() not in ("redis", "rediss", "redis+socket"):
        raise UsageError(f"{name}: unknown scheme {scheme + '://'!r} for Celery's Redis result backend (redis://, rediss:// or redis+socket://)")
    if _BACKEND_APP is None:
        _BACKEND_APP = Celery("pmsops-url-reader", set_as_current=False)
    backend_cls, backend_url = by_url(url.strip(), _BACKEND_APP.loader)
    if not issubclass(backend_cls, RedisBackend):
        raise UsageError(f"{name}: Celery reads {scheme + '://'!r} as another result backend ({backend_cls.__name__}), not Redis")
    params = RedisBackend(app=_BACKEND_APP, url=backend_url).connparams
    parts = _kombu_parts(backend_url)
    if params.get("path"):
        addresses = [Address(socket=params["path"])]
        fallback = None
    else:
        addresses = [Address(params["host"], int(params["port"]))]
        fallback = None if parts.hostname else f"no host in the URL: Celery's backend falls back to {addresses[0]}"
    return Reading(
        "celery-backend",
        name,
        url,
        scheme,
        addresses,
        params.get("username"),
        params.get("password"),
        str(params.get("db", 0)),
        tls="ssl_cert_reqs" in params or scheme.lower() == "rediss",
        options=dict(parts.query),
        fallback=fallback,
    )


def asyncpg_dsn(url: str) -> tuple[str, str | None]:
    """The DSN asyncpg gets, and a note when a SQLAlchemy-style ``postgresql+asyncpg://`` was normalised."""
    text = url.strip()
    match = SCHEME.match(text)
    if match and "+" in match.group(1):
        base, _, driver = match.group(1).partition("+")
        if base.lower() in ("postgresql", "postgres"):
            return "postgresql://" + text[match.end() :], f"normalised {match.group(1)}:// (SQLAlchemy style) to postgresql:// for asyncpg"
    return text, None


def _read_asyncpg(url: str, name: str) -> Reading:
    """asyncpg's own DSN parser (:func:`pmsops.internals.asyncpg_parse`), without connecting."""

    dsn, note = asyncpg_dsn(url)
    match = SCHEME.match(dsn)
    scheme = match.group(1) if match else ""
    if scheme.lower() not in ("postgresql", "postgres"):
        raise UsageError(
            f"{name}: unknown database scheme {scheme + '://'!r} (asyncpg accepts postgresql:// and postgres://; postgresql+asyncpg:// is normalised)"
        )
    if scheme != scheme.lower():
        raise UsageError(f"{name}: asyncpg accepts only the lower-case schemes postgresql:// and postgres://, not {scheme + '://'!r}")
    addrs, params = asyncpg_parse(dsn)
    addresses = [Address(socket=a) if isinstance(a, str) else Address(a[0], int(a[1])) for a in addrs]
    raw = split_raw(dsn)
    fallback = None
    if raw is not None and not _asyncpg_has_host(dsn):
        fallback = (
            f"no host in the URL: asyncpg tries {len(addresses)} places, first {addresses[0]}"
            if len(addresses) > 1
            else f"no host in the URL: asyncpg uses {addresses[0]}"
        )
    findings = [Finding("note", "normalised", note)] if note else []
    sslmode = getattr(getattr(params, "sslmode", None), "name", None)
    return Reading(
        "asyncpg",
        name,
        url,
        scheme,
        addresses,
        params.user,
        params.password,
        params.database,
        tls=sslmode not in (None, "disable"),
        options={"sslmode": sslmode} if sslmode else {},
        fallback=fallback,
        findings=findings,
    )


def _asyncpg_has_host(dsn: str) -> bool:
    from urllib.parse import parse_qs, urlparse

    parsed = urlparse(dsn)
    hostspec = parsed.netloc.partition("@")[2] if "@" in parsed.netloc else parsed.netloc
    if hostspec:
        return True
    return "host" in parse_qs(parsed.query)


def host_of(url: str) -> tuple[str | None, int | None]:
    """Host and port of a URL that is *not* one of the four client URLs (HTTP APIs): ``urlsplit``.

    Client URLs use :func:`read_url`, which names the address the client really uses.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        return parts.hostname, parts.port
    except ValueError:
        return None, None


def read_all(pairs: list[tuple[str, str | None, str]]) -> list[Reading]:
    """Read each ``(variable, url, client)`` whose URL is set; the first bad one raises :class:`UsageError`.

    Commands that use several URLs (doctor, worker-check, wait-for-deps) call this
    before any check starts, so a misread URL is one line and exit 2, never a check
    that fails with a parser's words.
    """
    return [read_url(url, client, variable) for variable, url, client in pairs if url]


def environment_pairs(env, broker_clients: tuple[str, ...] = ("kombu",)) -> list[tuple[str, str | None, str]]:
    """(variable, url, client) for the four client URLs of ``env`` (a mapping or :class:`Settings`).

    The broker falls back to REDIS_URL, as Celery is configured in the runbook; it is
    named by the variable that supplied it.
    """
    get = env.get
    broker_name = "CELERY_BROKER_URL" if get("CELERY_BROKER_URL") else "REDIS_URL"
    broker = get("CELERY_BROKER_URL") or get("REDIS_URL")
    pairs = [("REDIS_URL", get("REDIS_URL"), "redis-py"), ("DATABASE_URL", get("DATABASE_URL"), "asyncpg")]
    pairs += [(broker_name, broker, client) for client in broker_clients]
    pairs.append(("CELERY_RESULT_BACKEND", get("CELERY_RESULT_BACKEND"), "celery-backend"))
    return pairs
