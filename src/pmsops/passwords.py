"""Compare the password a Redis URL carries with the server's ``requirepass``.

Only lengths and SHA-256 prefixes are ever shown. When the two differ, we try the
transformations that explain most real mismatches (password not encoded, encoded
twice, the server holding the *encoded* form, ``+`` read as a space) and name the
one that makes them match.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, unquote_plus

from pmsops import results
from pmsops.errors import UsageError
from pmsops.redaction import fingerprint, register_secret
from pmsops.results import Result
from pmsops.urls import encode_password, parse_with_redis_py, split_intended


def read_requirepass_from_conf(text: str, source: str = "redis.conf") -> str:
    """The last ``requirepass`` directive of a redis.conf (quotes handled as Redis does)."""
    value: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = re.match(r"(?i)^requirepass\s+(.*)$", stripped)
        if match:
            raw = match.group(1).strip()
            try:
                tokens = shlex.split(raw, posix=True)
            except ValueError:
                tokens = [raw]
            value = tokens[0] if tokens else ""
    if value is None:
        raise UsageError(f"no requirepass directive in {source}", hint="authentication is off, or the password is set on the command line: try pmsops host redis-password")
    register_secret(value)
    return value


def read_requirepass_file(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return read_requirepass_from_conf(text, path)


@dataclass
class Comparison:
    url_password: str | None
    requirepass: str
    cause: str | None

    @property
    def match(self) -> bool:
        return self.url_password == self.requirepass


def likely_cause(raw_in_url: str | None, decoded: str | None, requirepass: str) -> str | None:
    """Name the transformation that turns the URL's password into ``requirepass``."""
    if raw_in_url is None:
        return "the URL carries no password (missing ':' before it?)"
    if raw_in_url == requirepass:
        return "the URL holds the raw password but parsers decode %xx in it: encode it with pmsops encode-redis-password"
    if decoded is not None and unquote(decoded) == requirepass:
        return "the password in the URL is encoded twice (%25xx): encode the raw password once"
    if decoded == encode_password(requirepass) or decoded == quote(requirepass):
        return "Redis's requirepass holds the *encoded* password: put the raw password in Redis, the encoded one in the URL"
    if unquote_plus(raw_in_url) == requirepass:
        return "the password was encoded with quote_plus (space as '+'): use urllib.parse.quote(pw, safe='')"
    if decoded is not None and decoded.strip() == requirepass.strip():
        return "they differ only in leading/trailing whitespace (a copy-paste artefact)"
    if decoded is not None and requirepass.startswith(decoded) and decoded != requirepass:
        return "the URL's password is a truncated prefix of requirepass: a raw '/', '?' or '#' cut it (encode the password)"
    return None


def compare(url: str, requirepass: str) -> Comparison:
    """Decode ``url``'s password exactly as redis-py would and compare."""
    register_secret(requirepass)
    intended = split_intended(url)
    try:
        decoded = parse_with_redis_py(url.strip()).get("password")
    except ValueError:
        decoded = None
    cause = None if decoded == requirepass else likely_cause(intended.password, decoded, requirepass)
    return Comparison(decoded, requirepass, cause)


def compare_result(url: str, requirepass: str, source: str) -> Result:
    comparison = compare(url, requirepass)
    url_fp = fingerprint(comparison.url_password) if comparison.url_password is not None else "no password (URL does not parse, or has none)"
    details = {
        "url_password": {"length": len(comparison.url_password or ""), "sha256_prefix": fingerprint(comparison.url_password or "").split("sha256=")[1]} if comparison.url_password is not None else None,
        "requirepass": {"length": len(requirepass), "sha256_prefix": fingerprint(requirepass).split("sha256=")[1], "source": source},
        "match": comparison.match,
        "likely_cause": comparison.cause,
    }
    notes = [f"URL password (as redis-py decodes it): {url_fp}", f"requirepass ({source}): {fingerprint(requirepass)}"]
    if comparison.match:
        return results.ok("password-hash", "match: the URL's password is Redis's requirepass", notes=notes, details=details)
    return results.fail(
        "password-hash",
        "mismatch: the URL's password is not Redis's requirepass",
        notes=notes,
        details=details,
        hint=(f"likely cause: {comparison.cause}" if comparison.cause else "the passwords differ: copy requirepass again and encode it with pmsops encode-redis-password"),
    )
