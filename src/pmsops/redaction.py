"""The last line of defence between a secret and the operator's terminal.

Secrets are wrapped in :class:`Secret` the moment they are read, so ``repr`` and
``str`` never show them. Strings that come from libraries (exception texts embed
URLs; tracebacks embed arguments) still pass through :func:`redact` before they
leave the process: every renderer, the error handler and the logging filter call it.

What it masks:

- the userinfo of any URL (``redis://:***@host:6379/0``, ``postgresql://user:***@db``);
  a Redis URL whose only userinfo is a user name (``redis://secret@host``) is
  masked whole, because that "user" is almost always a password without its colon;
- JSON Web Tokens and ``Bearer`` values;
- ``password=…``-style pairs in DSNs and query strings;
- every value registered with :func:`register_secret` (all secret variables of the
  environment, the passwords inside URL variables), also in its URL-encoded forms.

Only lengths and SHA-256 prefixes (16 hex digits) of secrets are ever shown.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Shorter values are not masked wherever they occur: a 3-letter secret would mask
ordinary words. Such passwords are weak anyway; URLs holding them are still masked."""

_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*)://(?P<userinfo>[^\s'\"<>`]*)@(?=[^\s'\"<>`@]*)"
)
_JSON_SECRET = re.compile(
    r'(?i)("[A-Za-z_]*(?:password|passwd|secret|token|api_?key|apikey|authorization)"\s*:\s*)"(?!\*\*\*")[^"]*"'
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*")
_BEARER = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9_\-\.=+/]{8,})")
_KEY_VALUE = re.compile(
    r"(?i)\b([A-Za-z_]*(?:password|passwd|pwd|requirepass|secret|token|api_?key|apikey|anon_key))"
    r"(=)(?!\*\*\*|len=)(\"[^\"]*\"|'[^']*'|[^\s&;,'\"]+)"
)


def sha256_prefix(value: str, length: int = 16) -> str:
    """First ``length`` hex digits of the SHA-256 of ``value`` (UTF-8), as the runbook compares them."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:length]


def fingerprint(value: str) -> str:
    """What may be shown of a secret: its length and a SHA-256 prefix."""
    return f"len={len(value)} sha256={sha256_prefix(value)}"


class Secret:
    """A string that refuses to print itself.

    ``str()``, ``repr()`` and f-strings give ``***``; :meth:`reveal` returns the value
    for the one place that needs it (a connection, or a value the operator asked for).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def fingerprint(self) -> str:
        return fingerprint(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return self._value == other._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __format__ = lambda self, spec: MASK  # noqa: E731  (f"{secret}" must not reveal)


def _mask_userinfo(match: re.Match[str]) -> str:
    """``scheme://userinfo@`` masked by the one masker, :func:`pmsops.urlread.mask_url`."""
    from pmsops.urlread import mask_url

    if not match.group("userinfo"):
        return match.group(0)
    return mask_url(match.group(0))


class Redactor:
    """Masks known secrets and secret-shaped substrings; thread-safe."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str | None) -> None:
        if not value or len(value) < MIN_SECRET_LENGTH:
            return
        forms = {value, quote(value, safe=""), quote(value), quote_plus(value), json.dumps(value)[1:-1]}
        with self._lock:
            before = len(self._secrets)
            self._secrets.update(f for f in forms if len(f) >= MIN_SECRET_LENGTH)
            if len(self._secrets) != before:
                self._pattern = None

    def forget_all(self) -> None:
        """For tests: start from an empty registry."""
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._secrets:
                alternatives = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(s) for s in alternatives))
            return self._pattern

    def redact(self, text: str) -> str:
        if not text:
            return text
        pattern = self._compiled()
        if pattern is not None:
            text = pattern.sub(MASK, text)
        text = _URL_USERINFO.sub(_mask_userinfo, text)
        text = _JSON_SECRET.sub(lambda m: m.group(1) + f'"{MASK}"', text)
        text = _JWT.sub(lambda m: f"<jwt {fingerprint(m.group(0))}>", text)
        text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
        text = _KEY_VALUE.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
        return text

    def redact_obj(self, obj: Any) -> Any:
        """Redact every string inside a JSON-like structure (keys included)."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Secret):
            return MASK
        if isinstance(obj, dict):
            return {self.redact(str(k)): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple, set)):
            return [self.redact_obj(v) for v in obj]
        return obj


REDACTOR = Redactor()
register_secret = REDACTOR.register
redact = REDACTOR.redact
redact_obj = REDACTOR.redact_obj


class RedactingFormatter(logging.Formatter):
    """Wraps another formatter and redacts its whole output, tracebacks included."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(record))


def redact_logging(logger: logging.Logger | None = None) -> None:
    """Make every handler of ``logger`` (default: root) redact what it writes."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))
