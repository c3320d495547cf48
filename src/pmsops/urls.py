"""Redis URLs: encode passwords, read URLs the way clients do, and lint them.

The runbook's most common outage is a Redis password pasted into a URL without
URL-encoding. What each raw character does to today's clients (redis-py's
``parse_url`` and kombu's ``url_to_parts``, both ``urlparse`` + ``unquote``):

======================  ==========================================================
``/ ? #``               end the host part early: "Port could not be cast to integer",
                        or, worse, a *different host* and a truncated password
                        (``redis://:p+ss=w@rd/#1@host:6379/0`` → host ``rd``)
``[ ]``                 "Invalid IPv6 URL" / "does not appear to be an IPv4 or IPv6 address"
``%xx``                 silently decoded (``%41`` → ``A``)
``;``                   kombu splits the broker URL into a failover list
``+ = @ : & space``,    kept literally by these parsers (``unquote``, not
non-ASCII               ``unquote_plus``) but the runbook says to encode them, and
                        other tools read ``+`` as a space
======================  ==========================================================

The heavy parsers (redis-py, kombu) are imported only inside the functions that
need them, so ``pmsops --help`` stays light.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from pmsops.errors import UsageError
from pmsops.redaction import fingerprint
from pmsops.clientmodels import kombu_rules, redis_py_rules  # noqa: F401 - re-exported: the parsers' models
from pmsops.urlread import Finding, host_of, mask_url, parser_error_text, split_raw  # noqa: F401 - re-exported: one masker, one reader

REDIS_SCHEMES = ("redis", "rediss", "unix")
SOCKET_SCHEMES = ("redis+socket", "socket")
"""kombu's (and Celery's backend's) Unix-socket broker URLs; redis-py does not read them."""
DEFAULT_PORT = 6379

_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_STRUCTURAL = "/?#"
_BRACKETS = "[]"
_RUNBOOK_SPECIALS = "+=@:&% "


def encodings_of(password: str) -> list[tuple[str, str]]:
    """Each kind of character of ``password`` that must be encoded, with its encoding: ``[("+", "%2B"), …]``.

    Non-ASCII letters are summed up as one entry (naming them would give the password away).
    """
    found: list[tuple[str, str]] = []
    for char in sorted({c for c in password if ord(c) < 128 and encode_password(c) != c}):
        found.append(("space" if char == " " else char, encode_password(char)))
    if any(ord(c) > 127 for c in password):
        found.append(("non-ASCII letters", "their UTF-8 bytes as %XX"))
    return found


def encode_password(password: str) -> str:
    """``urllib.parse.quote(password, safe="")``: the runbook's one right encoding."""
    return quote(password, safe="")


def build_redis_url(password: str, host: str, port: int = DEFAULT_PORT, db: int = 0, scheme: str = "redis") -> str:
    """A Redis URL with the password encoded, in the runbook's ``redis://:PW@host:port/db`` form."""
    userinfo = f":{encode_password(password)}@" if password else ""
    return f"{scheme}://{userinfo}{host}:{port}/{db}"


def _sanitise_parser_error(exc: Exception) -> str:
    """Parser errors quote fragments of the password ("… as 'abc'"): never shown, only named."""
    return parser_error_text(exc, "redis-py")


def parse_with_redis_py(url: str) -> dict:
    """What redis-py will use: ``redis.connection.parse_url``; raises ``ValueError``."""
    from redis.connection import parse_url

    return parse_url(url)


def parse_with_kombu(url: str) -> dict:
    """What kombu (Celery's broker layer) will use; raises ``ValueError``.

    kombu first splits a broker URL on ``;`` into a failover list: we report how
    many URLs it would see and parse the first, as ``Connection`` does.
    """
    from kombu.utils.url import url_to_parts

    pieces = url.split(";")
    parts = url_to_parts(pieces[0])
    return {
        "host": parts.hostname,
        "port": parts.port,
        "username": parts.username,
        "password": parts.password,
        "db": parts.path,
        "failover_urls": len(pieces),
    }


@dataclass
class IntendedUrl:
    """The URL as a human meant it: userinfo runs to the *last* ``@``."""

    scheme: str
    username: str | None
    password: str | None  # as written, not decoded
    host: str
    port: int | None
    db: str | None
    query: str

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORT


def split_intended(url: str) -> IntendedUrl:
    """Split ``url`` as its author meant it; raises :class:`UsageError` if it is no Redis URL.

    The userinfo split is :func:`pmsops.urlread.split_raw` (the one hand-split of the
    tool); the host part ends at the first ``/``, ``?`` or ``#`` after it, so a query
    without ``/DB`` (``redis://localhost?db=0``) is a query, not a port.
    """
    raw = split_raw(url)
    if raw is None:
        raise UsageError(
            "not a URL (expected redis://:<PASSWORD>@<HOST>:<PORT>/<DB>)",
            hint="quote the URL in single quotes so the shell keeps special characters",
        )
    scheme = raw.scheme.lower()
    if scheme not in REDIS_SCHEMES + SOCKET_SCHEMES:
        raise UsageError(
            f"unknown scheme '{scheme}://' (expected redis://, rediss://, unix:// or kombu's redis+socket://)",
            hint="the runbook's form is redis://:<PASSWORD>@coolify-redis:6379/0",
        )
    username = raw.user if raw.userinfo is not None else None
    password = raw.password
    rest = raw.hostpart
    if scheme in ("unix",) + SOCKET_SCHEMES:
        hostport, tail = "", rest
    else:
        cut = re.search(r"[/?#]", rest)
        hostport, tail = (rest[: cut.start()], rest[cut.start() :]) if cut else (rest, "")
    tail = tail.split("#", 1)[0]
    path, _, query = tail.partition("?")
    path = path[1:] if path.startswith("/") and scheme not in ("unix",) + SOCKET_SCHEMES else path
    host, port_text = hostport, None
    if hostport.startswith("["):  # an IPv6 literal: [::1]:6379
        bracket = hostport.find("]")
        if bracket > 0:
            host, after = hostport[1:bracket], hostport[bracket + 1 :]
            port_text = after[1:] if after.startswith(":") else (after or None)
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
    port = None
    if port_text is not None:
        port = int(port_text) if _is_number(port_text) else -1
    return IntendedUrl(scheme, username or None, password, host, port, path or None, query)


def _is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts '²', which ``int`` rejects."""
    return text.isascii() and text.isdigit()


@dataclass
class UrlReport:
    name: str
    url: str
    findings: list[Finding] = field(default_factory=list)
    intended: IntendedUrl | None = None
    effective_password: str | None = None
    effective_host: str | None = None
    effective_port: int | None = None
    effective_db: int | None = None
    corrected: str | None = None
    """The URL with the password encoded (never shown: masked it looks like the input); None when the
    port or db is wrong too, since only the author knows the right one."""
    encodings: list[tuple[str, str]] = field(default_factory=list)
    """What changes: (raw character, its encoding) for each kind of character the password must encode."""
    encode_command: str | None = None
    """``pmsops encode-redis-password --host H --port P --db D``: the command that prints the real value."""

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def add(self, level: str, code: str, message: str) -> None:
        self.findings.append(Finding(level, code, message))


def _check_password_characters(report: UrlReport, password: str) -> None:
    """Findings for raw characters in the password as written."""
    structural = sorted({c for c in password if c in _STRUCTURAL})
    if structural:
        chars = " ".join(f"'{c}'" for c in structural)
        report.add(
            "error",
            "raw-delimiter",
            f"password contains raw {chars}: URL parsers end the host part there (must be encoded:"
            f" {', '.join(encode_password(c) for c in structural)})",
        )
    if any(c in password for c in _BRACKETS):
        report.add("error", "raw-bracket", "password contains raw '[' or ']': parsers fail with \"Invalid IPv6 URL\" (encode as %5B %5D)")
    if ";" in password:
        report.add(
            "error",
            "raw-semicolon",
            "password contains raw ';': kombu splits the broker URL there into a failover list and Celery cannot connect (encode as %3B)",
        )
    escapes = _ESCAPE.findall(password)
    raw_specials = sorted({c for c in password if c in _RUNBOOK_SPECIALS and c != "%"})
    non_ascii = any(ord(c) > 127 for c in password)
    stray_percent = "%" in _ESCAPE.sub("", password)
    if escapes and (raw_specials or non_ascii or structural):
        report.add(
            "warning",
            "partially-encoded",
            f"password mixes %xx escapes ({len(escapes)}) with raw special characters: the escapes are decoded, the raw characters kept; if the real"
            " password contains a literal '%', it must be written %25",
        )
    elif escapes:
        report.add(
            "note",
            "encoded",
            f"password is URL-encoded: {len(escapes)} escape(s) decoded by the parsers (if the real password literally contains '%', write it as"
            " %25)",
        )
    if stray_percent:
        report.add(
            "warning",
            "raw-percent",
            "password contains a raw '%' not followed by two hex digits: kept literally today, but the runbook says to encode it as %25",
        )
    if raw_specials:
        chars = " ".join("space" if c == " " else f"'{c}'" for c in raw_specials)
        report.add(
            "warning",
            "raw-special",
            f"password contains raw {chars}: redis-py and kombu keep these literally (they decode with unquote, not unquote_plus), but the runbook"
            " requires encoding them and other clients read '+' as a space; encode with urllib.parse.quote(pw, safe='') (quote_plus is wrong: it"
            " writes a space as '+')",
        )
    if non_ascii:
        report.add(
            "warning",
            "non-ascii",
            "password contains non-ASCII characters: kept literally by redis-py and kombu, but the runbook says to URL-encode them (UTF-8 %xx)",
        )


def lint_redis_url(url: str, name: str = "URL") -> UrlReport:
    """Everything that will make a client read this URL differently from its author.

    Raises :class:`UsageError` when the text is not a Redis URL at all.
    """
    report = UrlReport(name, url)
    _check_whitespace(report, url)
    intended = split_intended(url)
    report.intended = intended
    socket_url = intended.scheme in ("unix",) + SOCKET_SCHEMES
    _check_scheme(report, intended, name, socket_url)
    _check_userinfo(report, intended)
    if not socket_url:
        _check_address(report, intended)
    if socket_url and intended.scheme != "unix":
        _compare_with_kombu_only(report)
    else:
        _compare_with_parsers(report)
    if intended.password and (report.errors or any(f.code in ("raw-special", "non-ascii", "raw-percent") for f in report.findings)):
        _suggest_encoding(report, intended, socket_url)
    return report


def _check_whitespace(report: UrlReport, url: str) -> None:
    if url != url.lstrip():
        report.add(
            "error",
            "leading-whitespace",
            'whitespace before the scheme (a copy-paste artefact): redis-py rejects the URL ("Redis URL must specify one of the following schemes")'
            " and kombu reads it as no host and no password",
        )
    if url != url.rstrip():
        report.add(
            "warning",
            "trailing-whitespace",
            "whitespace after the URL (a copy-paste artefact): parsers drop a trailing newline, but a trailing space ends up in the db, port or host",
        )


def _check_scheme(report: UrlReport, intended: IntendedUrl, name: str, socket_url: bool) -> None:
    if intended.scheme == "unix":
        report.add("note", "unix", "unix socket URL: host and port checks do not apply")
        _check_unix_role(report, name)
    elif socket_url:
        report.add(
            "note",
            "kombu-socket",
            f"{intended.scheme}:// is kombu's Unix-socket broker URL: Celery reads it, redis-py does not (use unix:// for REDIS_URL)",
        )
    if intended.scheme == "rediss":
        _check_tls_options(report, intended, name)


def _check_userinfo(report: UrlReport, intended: IntendedUrl) -> None:
    password = intended.password
    if intended.username is not None and password is None:
        report.add(
            "error",
            "missing-colon",
            "userinfo has no ':' — clients send it as a user name and no password (\"Authentication required\"); write redis://:<PASSWORD>@<HOST>",
        )
    elif intended.username and unquote(intended.username) != "default":
        report.add(
            "warning",
            "username",
            f"a user name is set (len {len(unquote(intended.username))}): Redis usually has none; clients will AUTH as that ACL user (write"
            " redis://:<PASSWORD>@<HOST> for requirepass)",
        )
    if password is not None:
        if password == "":
            report.add("error", "empty-password", "the password after ':' is empty")
        else:
            _check_password_characters(report, password)


def _check_address(report: UrlReport, intended: IntendedUrl) -> None:
    if not intended.host:
        report.add(
            "warning",
            "no-host",
            "no host in the URL: redis-py and kombu fall back to localhost:6379 (write redis://:<PASSWORD>@<HOST>:<PORT>/<DB>)",
        )
    if intended.port is not None and not (0 < intended.port < 65536):
        report.add("error", "bad-port", "port is not a number between 1 and 65535")
    if intended.db is not None and not _is_number(intended.db):
        report.add("error", "bad-db", "database must be a number (redis://…:6379/0): redis-py ignores the path and uses database 0")
    if intended.db is None and not re.search(r"(^|&)db=", intended.query):
        report.add("note", "default-db", "no /DB given: database 0 is used")


def _suggest_encoding(report: UrlReport, intended: IntendedUrl, socket_url: bool) -> None:
    """The password's encodings, the command that writes the URL, and the corrected URL where only the author's
    port and db are known to be right (never "correct" 99999 to 6379: only the author knows)."""
    password = intended.password or ""
    literal = password if not (_ESCAPE.search(password) and not report.warnings) else unquote(password)
    port_ok = 0 < intended.effective_port < 65536
    db_ok = not intended.db or _is_number(intended.db)
    db = int(intended.db) if intended.db and _is_number(intended.db) else 0
    host = f"[{intended.host}]" if ":" in intended.host else (intended.host or "HOST")
    report.encodings = encodings_of(literal)
    port_text = str(intended.effective_port) if port_ok else "PORT"
    db_text = str(db) if db_ok else "DB"
    report.encode_command = f"pmsops encode-redis-password --host {host if not socket_url else 'HOST'} --port {port_text} --db {db_text}"
    if port_ok and db_ok:
        report.corrected = build_redis_url(literal, host, intended.effective_port, db, intended.scheme if not socket_url else "redis")


_CERT_REQS_LOWER = ("required", "optional", "none")
_CERT_REQS_UPPER = ("CERT_REQUIRED", "CERT_OPTIONAL", "CERT_NONE")
_CELERY_VARIABLES = ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")


def _check_unix_role(report: UrlReport, name: str) -> None:
    """``unix://`` is redis-py's socket form only: Celery's broker and backend have no 'unix' transport."""
    if name in _CELERY_VARIABLES:
        report.add(
            "error",
            "unix-for-celery",
            f"{name}: Celery has no 'unix' transport (\"No such transport: unix\"): write redis+socket:///path/to/redis.sock",
        )
    elif name not in ("REDIS_URL",):
        report.add(
            "note",
            "unix-redis-py-only",
            "unix:// is redis-py's form (REDIS_URL); CELERY_BROKER_URL and CELERY_RESULT_BACKEND need redis+socket:///path/to/redis.sock",
        )


def _check_tls_options(report: UrlReport, intended: IntendedUrl, name: str) -> None:
    """A rediss:// URL as each client reads its ``ssl_cert_reqs``.

    Celery's result backend refuses a rediss:// URL without it (the worker dies at
    start); kombu (the broker) connects without checking the certificate; redis-py
    checks by default but reads only the lower-case values.
    """
    from urllib.parse import parse_qs

    try:
        values = parse_qs(intended.query, keep_blank_values=True).get("ssl_cert_reqs", [])
    except ValueError:
        return
    value = values[-1] if values else None
    fix = "add ssl_cert_reqs=required&ssl_ca_certs=/path/to/ca.pem (lower-case values work for redis-py, kombu and Celery)"
    if value is None:
        if name == "REDIS_URL":
            report.add(
                "note",
                "tls-default",
                "rediss:// without ssl_cert_reqs: redis-py verifies the certificate (the CA must be trusted or given as"
                " ssl_cert_reqs=required&ssl_ca_certs=…); Celery needs the option spelled out, and the runbook uses one URL for all three",
            )
        elif name == "CELERY_BROKER_URL":
            report.add(
                "error",
                "tls-no-cert-reqs",
                "rediss:// without ssl_cert_reqs: kombu (Celery's broker) then does not verify the server certificate (\"defaulting to insecure SSL"
                ' behaviour"), and as result backend Celery refuses it at start ("A rediss:// URL must have parameter ssl_cert_reqs"): ' + fix,
            )
        else:
            report.add(
                "error",
                "tls-no-cert-reqs",
                "rediss:// without ssl_cert_reqs: Celery's result backend refuses it and the worker dies at start "
                '("A rediss:// URL must have parameter ssl_cert_reqs"); kombu (the broker) would not verify the certificate: ' + fix,
            )
        return
    if value not in _CERT_REQS_LOWER + _CERT_REQS_UPPER:
        report.add("error", "tls-bad-cert-reqs", f"ssl_cert_reqs has a value no client accepts (use {', '.join(_CERT_REQS_LOWER)})")
        return
    if value in _CERT_REQS_UPPER:
        level = "warning" if name in _CELERY_VARIABLES else "error"
        report.add(
            level,
            "tls-upper-cert-reqs",
            f'ssl_cert_reqs={value} is Celery\'s spelling: redis-py (REDIS_URL) rejects it ("Invalid SSL Certificate Requirements Flag"); '
            f"write ssl_cert_reqs={value[5:].lower()}, which every client reads",
        )
    if value.lower() in ("none", "cert_none"):
        report.add(
            "warning",
            "tls-unverified",
            "ssl_cert_reqs=none: TLS without checking the server certificate (anyone on the path can impersonate Redis); "
            "use ssl_cert_reqs=required&ssl_ca_certs=/path/to/ca.pem",
        )


def _compare_with_parsers(report: UrlReport) -> None:
    """Parse with redis-py and kombu and report where they disagree with the author.

    By their rules (:func:`parse_redis_url`, :func:`parse_kombu_url`) where those are pinned to the
    libraries, by the libraries themselves otherwise (a query): ``redis-url check`` starts without them."""
    intended = report.intended
    assert intended is not None
    url = report.url.strip()
    try:
        parsed = parse_redis_url(url)
    except ValueError as exc:
        problem = _sanitise_parser_error(exc)
        try:
            parse_kombu_url(url)
        except ValueError as kombu_exc:
            kombu_problem = _sanitise_parser_error(kombu_exc)
            if kombu_problem == problem:
                report.add("error", "parser-error", f"redis-py and kombu cannot parse it: {problem}")
            else:
                report.add("error", "parser-error", f"redis-py cannot parse it: {problem}")
                report.add("error", "kombu-error", f"kombu (Celery's broker layer) cannot parse it: {kombu_problem}")
        else:
            report.add("error", "parser-error", f"redis-py (the backend's client) cannot parse it: {problem}")
        return
    report.effective_password = parsed.get("password")
    report.effective_host = parsed.get("host") or parsed.get("path") or "localhost"  # redis-py's fallback without a host
    report.effective_port = None if parsed.get("path") else (parsed.get("port") or DEFAULT_PORT)  # a socket has no port
    report.effective_db = parsed.get("db", 0)
    if intended.scheme != "unix" and intended.host and (report.effective_host or "").lower() != unquote(intended.host).lower():
        pw_len = len(report.effective_password or "")
        report.add(
            "error",
            "wrong-host",
            f"clients read a different host (len {len(report.effective_host or '')}, a piece of the password) and a truncated password (len"
            f" {pw_len}): a raw '/', '?' or '#' in the password ends the host part",
        )
    elif intended.password and (report.effective_password or "") != unquote(intended.password):
        report.add(
            "error",
            "password-differs",
            f"clients read a different password (len {len(report.effective_password or '')}) than the one written (len"
            f" {len(unquote(intended.password))}): URL parsers drop tabs and line breaks; encode the password",
        )
    try:
        kombu = parse_kombu_url(report.url.strip())
    except ValueError as exc:
        report.add("error", "kombu-error", f"kombu (Celery's broker layer) cannot parse it: {_sanitise_parser_error(exc)}")
        return
    if kombu["failover_urls"] > 1:
        report.add("error", "kombu-failover", f"kombu splits it at ';' into {kombu['failover_urls']} failover URLs")


def _compare_with_kombu_only(report: UrlReport) -> None:
    """A kombu socket URL: only kombu reads it; the socket path stands in for the host."""
    try:
        kombu = parse_kombu_url(report.url.strip())
    except ValueError as exc:
        report.add("error", "kombu-error", f"kombu (Celery's broker layer) cannot parse it: {_sanitise_parser_error(exc)}")
        return
    report.effective_password = kombu["password"]
    report.effective_host = "/" + (kombu["db"] or "").lstrip("/")
    report.effective_port = None
    report.effective_db = 0


def reads_password_as_host(report: UrlReport) -> bool:
    """Whether clients take a piece of the password for host, port and db (never show those)."""
    return any(f.code == "wrong-host" for f in report.findings)


def describe(report: UrlReport) -> str:
    """One line: masked URL, where it points, and the password's fingerprint."""
    parts = [mask_url(report.url)]
    if report.effective_host is not None and reads_password_as_host(report):
        parts.append("host, port and db: (pieces of the password)")
    elif report.effective_host is not None and report.effective_port is None:
        parts.append(f"socket {report.effective_host}")
    elif report.effective_host is not None:
        parts.append(f"host {report.effective_host}")
        parts.append(f"port {report.effective_port}")
        parts.append(f"db {report.effective_db}")
    if report.effective_password:
        parts.append(f"password {fingerprint(report.effective_password)}")
    elif report.effective_host is not None:
        parts.append("no password")
    return ", ".join(parts)


def compare_redis_urls(reports: list[UrlReport]) -> list[Finding]:
    """The three Redis URLs must agree on host, port and effective password."""
    findings: list[Finding] = []
    usable = [r for r in reports if r.effective_host is not None]
    if len(usable) < 2:
        return findings
    reference = usable[0]
    hidden = "(a piece of the password)"
    for other in usable[1:]:
        secret_ref, secret_other = reads_password_as_host(reference), reads_password_as_host(other)
        for label, a, b in (
            ("host", reference.effective_host, other.effective_host),
            ("port", reference.effective_port, other.effective_port),
        ):
            if a != b:
                shown_a, shown_b = (hidden if secret_ref else a), (hidden if secret_other else b)
                findings.append(
                    Finding("error", f"differs-{label}", f"{other.name} points at another {label} than {reference.name} ({shown_a} vs {shown_b})")
                )
        pa, pb = reference.effective_password or "", other.effective_password or ""
        if pa != pb:
            findings.append(
                Finding(
                    "error", "differs-password", f"{other.name} has another password than {reference.name} ({fingerprint(pb)} vs {fingerprint(pa)})"
                )
            )
        if reference.effective_db != other.effective_db and not (secret_ref or secret_other):
            findings.append(
                Finding(
                    "warning",
                    "differs-db",
                    f"{other.name} uses db {other.effective_db}, {reference.name} db {reference.effective_db}: allowed, but the runbook gives all"
                    " three the same URL",
                )
            )
    return findings


@dataclass
class RoundTrip:
    parser: str
    ok: bool
    problem: str | None = None


def parse_redis_url(url: str) -> dict:
    """What redis-py reads from ``url``: by its rules for a URL without a query, by redis-py itself otherwise."""
    return redis_py_rules(url) if "?" not in url else parse_with_redis_py(url)


def parse_kombu_url(url: str) -> dict:
    """What kombu reads from ``url``: by its rules for a URL without a query, by kombu itself otherwise."""
    return kombu_rules(url) if "?" not in url.split(";")[0] else parse_with_kombu(url)


LIBRARY_PARSERS = (("redis-py", parse_with_redis_py), ("kombu", parse_with_kombu))
"""The libraries themselves."""
LIBRARY_RULES = (("redis-py", parse_redis_url), ("kombu", parse_kombu_url))
"""The same parsing without their import cost where the rules cover the URL (``encode-redis-password``)."""


def verify_round_trip(url: str, password: str, parsers=LIBRARY_PARSERS) -> list[RoundTrip]:
    """Does ``url`` give back exactly ``password`` with redis-py's and kombu's parsers?"""
    checks: list[RoundTrip] = []
    for parser, fn in parsers:
        try:
            got = fn(url).get("password")
        except ValueError as exc:
            checks.append(RoundTrip(parser, False, _sanitise_parser_error(exc)))
            continue
        if got == password:
            checks.append(RoundTrip(parser, True))
        else:
            checks.append(RoundTrip(parser, False, f"decodes to a different password ({fingerprint(got or '')})"))
    return checks


@dataclass
class EncodedPassword:
    encoded: str
    length: int
    sha256: str
    urls: dict[str, str]
    round_trip: list[RoundTrip]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.round_trip)


def encode_report(password: str, host: str | None = None, port: int = DEFAULT_PORT, db: int = 0) -> EncodedPassword:
    """Encode ``password``, build the three URLs for ``host``, and verify the round trip."""
    from pmsops.redaction import sha256_prefix

    encoded = encode_password(password)
    urls: dict[str, str] = {}
    if host:
        url = build_redis_url(password, host, port, db)
        urls = {name: url for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")}
    probe = next(iter(urls.values()), build_redis_url(password, "localhost", port, db))
    return EncodedPassword(encoded, len(password), sha256_prefix(password), urls, verify_round_trip(probe, password, LIBRARY_RULES))
