"""Compare the password a Redis URL carries with the server's ``requirepass``.

Only lengths and fingerprints (:func:`pmsops.redaction.fingerprint`: salted, one
salt for both sides of one comparison) are ever shown. When the two differ, we try the
transformations that explain most real mismatches (password not encoded, encoded
twice, the server holding the *encoded* form, ``+`` read as a space) and name the
one that makes them match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_plus

from pmsops import results
from pmsops.errors import UsageError
from pmsops.redaction import fingerprint, fingerprint_fields, register_secret
from pmsops.results import Result
from pmsops.urls import encode_password, parse_with_redis_py, split_intended

_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


_CONF_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
_HEX = b"0123456789abcdefABCDEF"


def split_redis_config_line(line: str) -> list[str]:
    """Split a redis.conf line exactly as Redis's ``sdssplitargs`` does.

    Unquoted text is literal (a backslash stays a backslash); ``"…"`` understands
    ``\\xHH``, ``\\n``, ``\\t`` … and ``\\<char>``; ``'…'`` only ``\\'``. A closing
    quote must be followed by a blank. Raises ``ValueError`` where Redis would refuse
    the line (unbalanced quotes).
    """
    data = line.encode("utf-8")
    tokens: list[str] = []
    i, n = 0, len(data)
    while True:
        while i < n and data[i : i + 1].isspace():
            i += 1
        if i >= n:
            return tokens
        current = bytearray()
        in_double = in_single = False
        while True:
            ch = data[i : i + 1]
            if in_double:
                if ch == b"\\" and data[i + 1 : i + 2] == b"x" and len(data[i + 2 : i + 4]) == 2 and all(c in _HEX for c in data[i + 2 : i + 4]):
                    current.append(int(data[i + 2 : i + 4], 16))
                    i += 3
                elif ch == b"\\" and i + 1 < n:
                    i += 1
                    current += _CONF_ESCAPES.get(data[i], data[i : i + 1])
                elif ch == b'"':
                    if i + 1 < n and not data[i + 1 : i + 2].isspace():
                        raise ValueError("closing quote must be followed by a space")
                    i += 1
                    break
                elif not ch:
                    raise ValueError("unbalanced quotes")
                else:
                    current += ch
            elif in_single:
                if ch == b"\\" and data[i + 1 : i + 2] == b"'":
                    i += 1
                    current += b"'"
                elif ch == b"'":
                    if i + 1 < n and not data[i + 1 : i + 2].isspace():
                        raise ValueError("closing quote must be followed by a space")
                    i += 1
                    break
                elif not ch:
                    raise ValueError("unbalanced quotes")
                else:
                    current += ch
            elif not ch or ch.isspace():
                break
            elif ch == b'"':
                in_double = True
            elif ch == b"'":
                in_single = True
            else:
                current += ch
            i += 1
        tokens.append(current.decode("utf-8", errors="replace"))


def read_requirepass_from_conf(text: str, source: str = "redis.conf") -> str:
    """The last ``requirepass`` directive of a redis.conf (quotes handled as Redis does)."""
    value: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not re.match(r"(?i)^requirepass(\s|$)", stripped):
            continue
        try:
            tokens = split_redis_config_line(stripped)
        except ValueError as exc:
            raise UsageError(f"{source}:{number}: the requirepass line has {exc} (Redis itself refuses to start with it)") from None
        if len(tokens) != 2:
            raise UsageError(
                f"{source}:{number}: requirepass takes exactly one value, found {len(tokens) - 1} (Redis itself refuses to start with it)",
                hint='quote a password that contains spaces: requirepass "…"',
            )
        value = tokens[1]
    if value is None:
        raise UsageError(
            f"no requirepass directive in {source}",
            hint="authentication is off, or the password is set on the command line: try pmsops host redis-password",
        )
    register_secret(value)
    return value


def read_requirepass_file(path: str) -> str:
    from pmsops.safefile import read_regular

    try:  # a regular file of at most 1 MiB: never a FIFO (hangs) or /dev/zero (never ends)
        text = read_regular(path, 1024 * 1024, "redis.conf").decode("utf-8", errors="replace")
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
    """Name the transformation that turns the URL's password into ``requirepass``.

    ``raw_in_url`` is the password as written (up to the last ``@``), ``decoded``
    what redis-py makes of it (``None``: no password, or the URL does not parse).
    """
    if raw_in_url is None:
        return "the URL carries no password (missing ':' before it?)"
    truncated = decoded is not None and decoded != requirepass and requirepass.startswith(decoded)
    if requirepass in (raw_in_url, unquote(raw_in_url)) and any(c in raw_in_url for c in "/?#[]"):
        if truncated:
            return (
                "the URL's password is a truncated prefix of requirepass (a raw '/', '?' or '#' in it ends the host part): encode it with pmsops"
                " encode-redis-password"
            )
        return "the URL holds the raw password and its raw '/', '?', '#', '[' or ']' breaks the URL: encode it with pmsops encode-redis-password"
    if decoded is not None and requirepass in (encode_password(decoded), quote(decoded)):
        return (
            "Redis's requirepass holds the *encoded* password (the URL is decoded, Redis is not): put the raw password in Redis, the encoded one in"
            " the URL (or, if the password really contains '%xx', write each '%' as %25 in the URL)"
        )
    if raw_in_url == requirepass and _ESCAPE.search(raw_in_url):
        return "the URL holds the raw password but parsers decode the %xx in it: encode it with pmsops encode-redis-password ('%' becomes %25)"
    if raw_in_url == requirepass:
        return "the URL holds the raw password, which clients read differently: encode it with pmsops encode-redis-password"
    if decoded is not None and unquote(decoded) == requirepass:
        return "the password in the URL is encoded twice (%25xx): encode the raw password once"
    if unquote_plus(raw_in_url) == requirepass:
        return "the password was encoded with quote_plus (space as '+'): use urllib.parse.quote(pw, safe='')"
    if decoded is not None and decoded.strip() == requirepass.strip():
        return "they differ only in leading/trailing whitespace (a copy-paste artefact)"
    if decoded is not None and requirepass.startswith(decoded) and decoded != requirepass:
        return "the URL's password is a truncated prefix of requirepass (a raw '/', '?' or '#' cut it): encode the password"
    return None


def compare(url: str, requirepass: str) -> Comparison:
    """Decode ``url``'s password exactly as redis-py would and compare."""
    from pmsops.urlread import register_url_secrets

    register_secret(requirepass)
    register_url_secrets(url)
    intended = split_intended(url)
    try:
        decoded = parse_with_redis_py(url.strip()).get("password")
    except ValueError:
        decoded = None
    cause = None if decoded == requirepass else likely_cause(intended.password, decoded, requirepass)
    return Comparison(decoded, requirepass, cause)


def compare_result(url: str, requirepass: str, source: str) -> Result:
    """Match or mismatch, with both sides' fingerprints under one salt (shown once, in each fingerprint)."""
    comparison = compare(url, requirepass)
    url_fp = fingerprint(comparison.url_password) if comparison.url_password is not None else "no password (URL does not parse, or has none)"
    details = {
        "url_password": fingerprint_fields(comparison.url_password) if comparison.url_password is not None else None,
        "requirepass": {**fingerprint_fields(requirepass), "source": source},
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
        hint=(
            f"likely cause: {comparison.cause}"
            if comparison.cause
            else "the passwords differ: copy requirepass again and encode it with pmsops encode-redis-password"
        ),
    )
