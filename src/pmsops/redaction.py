"""The last line of defence between a secret and the operator's terminal.

Secrets are wrapped in :class:`Secret` the moment they are read, so ``repr`` and
``str`` never show them. Strings that come from libraries (exception texts embed
URLs; tracebacks embed arguments) and from other programs (container logs) still
pass through :func:`redact` before they leave the process: every renderer (text and
``--json``), the error handler, ``--debug`` tracebacks and the logging filter call it.

What it masks, known or not:

- every value registered with :func:`register_secret` (all secret variables of the
  environment, the passwords inside URL variables), also in its URL-encoded and
  JSON-escaped forms; values shorter than 4 characters wherever they stand as a
  whole token (not inside a longer word: a password ``Qz7`` masks ``Qz7`` and
  ``'Qz7'`` but leaves ``xQz7y`` alone);
- the userinfo of any URL (``redis://:***@host:6379/0``, ``postgresql://user:***@db``),
  also JSON-escaped (``redis:\\/\\/:***@host``) and with a raw blank or quote in the password;
- secrets in the shapes logs and configs put them, whatever their value
  (:data:`SECRET_KEYWORDS`): ``password=X``, ``password = X``, ``PASSWORD: X``,
  ``password: "X"``, ``{'password': 'X'}``, ``"api_key":"X"``, ``X-Api-Key: X``,
  ``requirepass X``, ``--requirepass 'X'``, ``--password=X``, ``redis-cli -a X``,
  ``mysql -pX``, ``AUTH [user] X``, ``Authorization: Basic|Bearer|Token X``, a bare
  ``Basic <base64 of user:pass>``, JSON Web Tokens;
- in :func:`redact_obj` (``--json``), every string value under a secret-ish key.

What is shown instead: ``***``, or, where the caller asks for it (``host logs``),
the value's :func:`fingerprint` so an operator can tell which password a log line used.

False positives, by rule: ``-p`` is a port (redis-cli, psql) and is masked only glued
to ``mysql -pX``; a keyword followed by a blank is masked only for the Redis
directives (``requirepass``, ``masterauth``), command-line flags and ``AUTH``; an
ordinary word after a keyword (``requirepass is not set``) is no value
(:data:`NOT_A_VALUE`).

Fingerprints (:func:`fingerprint`): ``len=N pbkdf2=<16 hex> salt=<salt>``,
PBKDF2-HMAC-SHA256 keyed by a salt that is random per invocation unless the operator
sets one (``--fingerprint-salt``, ``PMSOPS_FINGERPRINT_SALT``) to compare two
machines. The runbook's unsalted ``sha256sum | cut -c1-16`` is shown only with
``--reveal-fingerprint`` (``PMSOPS_REVEAL_FINGERPRINT=1``).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import html
import json
import logging
import os
import re
import secrets as _random
import threading
from typing import Any, Callable
from urllib.parse import quote, quote_plus

from pmsops.ownwords import is_own_word
from pmsops.visible import visible
from pmsops.urlparts import _PASSWORD_ONLY_SCHEMES, _plausible_user, split_raw

MASK = "***"
MIN_SECRET_LENGTH = 4
"""Values shorter than this with no letter or digit (a ``:``) are never registered; see :data:`ANYWHERE_LENGTH`."""
HARMLESS_VALUES = frozenset({"0", "1", "no", "on", "off", "yes", "y", "n"})
"""Short flag values of secret-named variables (``*_TOKEN_ENABLED=1``): not secrets, never registered.
Neither are values under 4 characters without a letter or digit (``:``, ``-``)."""
FINGERPRINT_ITERATIONS = 100_000
FINGERPRINT_HEX = 16
SALT_ENV = "PMSOPS_FINGERPRINT_SALT"
REVEAL_ENV = "PMSOPS_REVEAL_FINGERPRINT"
_SALT_SHAPE = re.compile(r"[A-Za-z0-9._\-]{4,64}")

_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*)://(?P<userinfo>[^\s'\"<>`]*)@(?=[^\s'\"<>`@]*)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*")
_BEARER = re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9_\-\.=+/]{8,})")

# --- secrets in the shapes logs, configs and command lines put them --------------------------------------------------

SECRET_KEYWORDS = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "pass",
    "secret",
    "token",
    "auth",
    "requirepass",
    "masterauth",
    "credential",
    "credentials",
    "client[-_]?secret",
    "api[-_]?key",
    "apikey",
    "access[-_]?key",
    "private[-_]?key",
    "secret[-_]?key",
    "signing[-_]?key",
    "encryption[-_]?key",
    "anon[-_]?key",
    "service[-_]?role[-_]?key",
    "session[-_]?key",
    "master[-_]?key",
)
"""A key *ending* in one of these names a secret (``db_password``, ``X-Api-Key``, ``auth_token``);
``password_hash``, ``tokens`` or ``routing_key`` do not."""
_KEYWORD = "(?:" + "|".join(sorted(SECRET_KEYWORDS, key=len, reverse=True)) + ")"
_KEY_NAME = rf"(?<![\w.\-])[\w.\-]*?{_KEYWORD}(?![\w\-])"
_QUOTED = r"\\\"(?:[^\"\\\n]|\\(?!\")[^\n])*\\\"|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.|'')*'"
"""A value in JSON-escaped double quotes, double quotes or single quotes (backslash escapes and SQL's ``''`` honoured)."""
_VALUE = (
    rf"(?P<value>(?:{_QUOTED})(?=[ \t]*(?:[,}}\]);]|\r?\n|\Z))"  # one quoted value ending a JSON/dict/YAML/kwarg item
    rf"|(?:{_QUOTED}|[^\s\"'])+(?=[\s,;)\]}}]|\Z)"  # a shell word: quoted pieces glued together ('p'"'"'w')
    r"|[^\s]+)"  # anything else up to the next blank (trailing punctuation is given back)
)

NOT_A_VALUE = frozenset(
    {
        "a",
        "an",
        "the",
        "is",
        "was",
        "are",
        "not",
        "no",
        "must",
        "should",
        "may",
        "can",
        "will",
        "missing",
        "required",
        "empty",
        "set",
        "unset",
        "given",
        "found",
        "none",
        "null",
        "nil",
        "true",
        "false",
        "undefined",
        "ok",
        "failed",
        "invalid",
        "wrong",
        "incorrect",
        "mismatch",
        "match",
        "matches",
        "differs",
        "directive",
        "takes",
        "line",
        "holds",
        "of",
        "in",
        "for",
        "from",
        "and",
        "or",
        "to",
        "on",
        "with",
        "by",
        "as",
        "if",
        "when",
        "via",
        "only",
        "still",
        "also",
        "has",
        "have",
        "had",
        "file",
        "value",
        "option",
        "argument",
        "command",
        "str",
        "int",
        "bytes",
        "bool",
        "optional",
        "any",
        "authentication",
        "error",
        "expired",
        "rejected",
        "refused",
        "changed",
        "updated",
        "reset",
        "again",
        "where",
        "up",
        "really",
        "full",
        "else",
        "after",
        "before",
        "that",
        "this",
        "it",
        "its",
        "which",
        "|",
        "—",
        "-",
        "+",
    }
)
"""Words that follow a keyword in prose (``requirepass is not set``, ``password: missing``): not a value."""

_COMMON_PASSWORDS = frozenset({"secret", "password", "passwd", "admin", "root", "default", "changeme", "test", "redis", "postgres"})
"""Words pmsops also writes that are too often a real password to be read as prose after a keyword."""

_PAIR = re.compile(rf"(?i)(?P<key>{_KEY_NAME})(?P<kq>\\?[\"']?)(?P<sep>[ \t]*(?:=>|:=|=|:)[ \t]*)(?!//){_VALUE}")
"""``key=value``, ``key = value``, ``key: value``, ``"key": "value"``, ``{'key': 'value'}``, ``key => value``."""
_QUOTED_AFTER_KEYWORD = re.compile(rf"(?i)(?P<key>{_KEY_NAME}|\bidentified[ \t]+by)(?P<kq>)(?P<sep>[ \t]+)(?P<value>{_QUOTED})")
"""SQL and prose: ``ALTER ROLE pms WITH PASSWORD 'X'``, ``IDENTIFIED BY 'X'``, ``the password "X" is wrong``."""
_DIRECTIVE = re.compile(rf"(?i)(?P<key>(?<![\w\-])(?:requirepass|masterauth))(?P<kq>)(?P<sep>[ \t]+){_VALUE}")
"""Redis's config directives and ``CONFIG SET`` arguments: ``requirepass X``."""
_QUOTED_ARGS = re.compile(rf"(?i)(?P<key>([\"'])(?:requirepass|masterauth|auth)\2)(?P<kq>)(?P<sep>[ \t]+)(?:\"default\"[ \t]+)?{_VALUE}")
"""``MONITOR``'s quoting: ``"config" "set" "requirepass" "X"``, ``"auth" "X"``."""
_FLAG = re.compile(
    r"(?i)(?P<key>(?<![\w\-])--?[\w\-]*?(?:password|passwd|pass|pwd|secret|token|api-?key|apikey|requirepass|masterauth|auth"
    rf"|credentials?|private-?key|access-?key))(?![\w\-])(?P<kq>)(?P<sep>[ \t]*=[ \t]*|[ \t]+)(?!-){_VALUE}"
)
"""``--password X``, ``--requirepass 'X'``, ``--auth-token=X`` (``--password-stdin`` is no flag with a value)."""
_REDIS_CLI_A = re.compile(rf"(?P<key>\bredis-cli\b[^\n]*?[ \t]-a)(?P<kq>)(?P<sep>[ \t]+){_VALUE}")
"""``redis-cli -a X`` (``-p`` stays: it is the port)."""
_MYSQL_P = re.compile(r"(?P<key>\b(?:mysql|mysqldump|mysqladmin|mariadb)\b[^\n]*?[ \t]-p)(?P<kq>)(?P<sep>)(?P<value>[^\s]+)")
"""``mysql -pX`` (the password glued to ``-p``); a lone ``-p`` prompts and holds nothing."""
_AUTH_COMMAND = re.compile(rf"(?P<key>(?<![\w\-])AUTH)(?P<sep>[ \t]+)(?P<first>{_QUOTED}|[^\s]+)(?:(?P<sep2>[ \t]+)(?P<second>{_QUOTED}|[^\s]+))?")
"""Redis's ``AUTH password`` and ``AUTH user password`` (upper case, as clients and scripts write it)."""
_AUTH_HEADER = re.compile(
    r"(?i)(?P<key>\b(?:proxy-)?authorization)(?P<sep>\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?)"
    r"(?P<scheme>(?:basic|bearer|token|digest|negotiate|ntlm|hawk|apikey|key|aws4-hmac-sha256)[ \t]+)?"
    r"(?P<value>[^\s]+)"
)
"""``Authorization: Basic …``, ``Bearer …``, ``Token …``, also in JSON or dict form."""
_BASIC = re.compile(r"(?i)\b(basic[ \t]+)([A-Za-z0-9+/_\-]{6,}={0,2})(?![\w+/=])")
"""A bare ``Basic <base64>``: masked when it decodes to ``user:password``."""
_URL_USERINFO_ESCAPED = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*):\\/\\/(?P<userinfo>(?:[^\s\"<>\\]|\\.)*)@(?=[\w\[])")
"""A URL inside a JSON string: ``"redis:\\/\\/:X@host"``."""
_URL_USERINFO_UNUSUAL = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*)(?P<slashes>://|:\\/\\/)(?P<user>[^\s:/@'\"<>`]*):"
    r"(?P<password>(?:(?!://|:\\/\\/)[^\n])*)@(?=[\w\[])"
)
"""A URL whose raw password holds what the plain pattern stops at (a blank, a quote, a backtick:
``redis://:my pass@host``): masked up to the last ``@`` of the line, never across another URL."""
_UNUSUAL_IN_PASSWORD = re.compile(r"[\s'\"<>`]")
_PORT_THEN_PATH = re.compile(r"\d+(?:[/?#\s]|$)")
_ENV_REFERENCE = re.compile(r"\$\{?[A-Z_][A-Z0-9_]*\}?")
_TRAILING = re.compile(r"[,;)\]}>\"'\\]+$")
_TRAILING_AFTER_QUOTE = re.compile(r"[,;)\]}>]+$")
_QUERY_NEXT = re.compile(r"&[\w.\-]+=")

Hide = Callable[[str], str]
"""What replaces a secret value: ``***`` or a fingerprint tag."""


def _unquote(value: str) -> tuple[str, str, str]:
    """(opening quote, inner value, closing quote) of a value that is exactly one quoted string."""
    if re.fullmatch(_QUOTED, value):
        mark = '\\"' if value.startswith('\\"') else value[0]
        return mark, value[len(mark) : -len(mark)], mark
    return "", value, ""


_ESCAPE = re.compile(r"\\(.)")


def _decoded(raw: str, inner: str, opening: str) -> str:
    """The value a reader of ``raw`` gets (backslash escapes in quotes, shell quoting): what a fingerprint is of."""
    if opening == "'" and "''" in inner:
        return inner.replace("''", "'")  # SQL doubles quotes and has no backslash escapes
    if opening:
        return _ESCAPE.sub(r"\1", inner)
    if "'" in raw or '"' in raw:
        import shlex

        try:
            words = shlex.split(raw)
        except ValueError:
            return raw
        return words[0] if len(words) == 1 else raw
    return raw


_PLACEHOLDER = re.compile(r"<[A-Za-z_]+>|[A-Z][A-Z_]{2,}")


def _is_own_placeholder(inner: str) -> bool:
    """The tool's own stand-ins in an example (``redis://:PASSWORD@HOST``, ``AUTH <password>``): never a value."""
    return bool(_PLACEHOLDER.fullmatch(inner)) and is_own_word(inner.strip("<>"))


def _is_own_phrase(inner: str) -> bool:
    """A quoted phrase of three or more of the tool's own words after a keyword in prose
    (``invalid token: 'Token has expired'``): a message quoted in a hint, not a password."""
    words = inner.split()
    return len(words) >= 3 and all(is_own_word(word.strip(".,;:!?'\"()")) for word in words)


def _is_placeholder(inner: str, prose: bool) -> bool:
    """Values that are no secret: already masked, a fingerprint, an empty or null value, a ``$VARIABLE``."""
    if not inner or inner.startswith(("**", "<len=", "<jwt", "len=", "<redacted", "[redacted", "[REDACTED", "<hidden")):
        return True
    if _ENV_REFERENCE.fullmatch(inner) or inner.startswith("$(") or inner in ("…", "...") or _is_own_placeholder(inner):
        return True
    lowered = inner.lower()
    if lowered in ("none", "null", "nil", "undefined", "true", "false", "''", '""'):
        return True
    word = inner.rstrip(".,;:!")
    if prose and word.lower() not in _COMMON_PASSWORDS and is_own_word(word):
        return True  # pmsops's own words: "fetch a new token: pmsops token", "password: skipped"
    return prose and (word.lower() in NOT_A_VALUE or inner.startswith(("(", "[")))


def _split_value(raw: str, sep: str) -> tuple[str, str]:
    """(secret part, what follows it) of an unquoted value: trailing punctuation and ``&next=`` stay visible."""
    secret, rest = raw, ""
    if "=" in sep:
        found = _QUERY_NEXT.search(secret)
        if found:
            secret, rest = secret[: found.start()], secret[found.start() :]
    trailing = (_TRAILING_AFTER_QUOTE if re.match(_QUOTED, secret) else _TRAILING).search(secret)
    if trailing and trailing.start() > 0:
        secret, rest = secret[: trailing.start()], secret[trailing.start() :] + rest
    return secret, rest


def _hide_value(match: re.Match[str], hide: Hide, prose: bool) -> str:
    """Replace the ``value`` group of a keyword match, keeping key, separator and (in JSON or dict form) quotes."""
    raw, rest = match.group("value"), ""
    opening, inner, closing = _unquote(raw)
    if not opening:
        raw, rest = _split_value(raw, match.group("sep"))
        opening, inner, closing = _unquote(raw)
    if _is_placeholder(inner, prose and not opening) or (prose and opening and _is_own_phrase(inner)):
        return match.group(0)
    if match.group("key").upper() in ("PWD", "OLDPWD") and inner.startswith("/"):
        return match.group(0)  # the shell's working directory, not a password
    keep_quotes = bool(opening) and (bool(match.group("kq")) or match.group("key")[-1:] in "\"'")
    shown = f"{opening}{hide(_decoded(raw, inner, opening))}{closing}" if keep_quotes else hide(_decoded(raw, inner, opening))
    return match.group(0)[: match.start("value") - match.start()] + shown + rest


def _hide_auth_command(match: re.Match[str], hide: Hide) -> str:
    """``AUTH X`` → ``AUTH ***``; ``AUTH default X`` keeps ``default``; another first word is masked too (it may be the password)."""
    first, second = match.group("first"), match.group("second")
    if _is_placeholder(_unquote(first)[1], prose=True):
        return match.group(0)
    head = match.group("key") + match.group("sep")
    if second is None:
        return head + hide(_unquote(first)[1])
    if _unquote(first)[1] == "default":
        return (
            head
            + first
            + match.group("sep2")
            + (
                match.group(0)[match.start("second") - match.start() :]
                if _is_placeholder(_unquote(second)[1], prose=True)
                else hide(_unquote(second)[1])
            )
        )
    return head + hide(_unquote(first)[1]) + match.group("sep2") + hide(_unquote(second)[1])


def _hide_auth_header(match: re.Match[str], hide: Hide) -> str:
    """The credentials after ``Authorization:`` and its scheme, up to the next blank (a closing quote stays)."""
    value, rest = _split_value(match.group("value"), "")
    if _is_placeholder(value, prose=False):
        return match.group(0)
    return match.group("key") + match.group("sep") + (match.group("scheme") or "") + hide(value) + rest


def _looks_like_basic_credentials(token: str) -> bool:
    """Whether ``token`` is base64 of ``user:password`` (what ``Basic`` carries)."""
    try:
        decoded = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_" if ("-" in token or "_" in token) else None, validate=True)
        return ":" in decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False


def _mask_escaped_userinfo(match: re.Match[str]) -> str:
    """``redis:\\/\\/:X@h`` → ``redis:\\/\\/:***@h``: the JSON-escaped twin of :func:`_mask_userinfo`."""
    scheme, userinfo = match.group("scheme"), match.group("userinfo")
    if not userinfo:
        return match.group(0)
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        if any(ch in user for ch in "/?#[]%\\"):
            user = ""
        return f"{scheme}:\\/\\/{user}:{MASK}@"
    return f"{scheme}:\\/\\/{MASK}@"


def _mask_unusual_userinfo(match: re.Match[str]) -> str:
    """``redis://:my pass@h`` → ``redis://:***@h``; a plain URL (the usual pattern's job) or a port is left alone."""
    user, password = match.group("user"), match.group("password")
    if password.startswith(MASK) or not _UNUSUAL_IN_PASSWORD.search(password) or _is_own_placeholder(password):
        return match.group(0)
    if user and _PORT_THEN_PATH.match(password):
        return match.group(0)  # redis://host:6379/0 … user@example.com: a port, then prose
    if any(ch in user for ch in "?#[]%\\"):
        user = ""
    return f"{match.group('scheme')}{match.group('slashes')}{user}:{MASK}@"


def redact_patterns(text: str, hide: Hide) -> str:
    """Mask every secret-shaped value in ``text`` whatever its value (nothing registered needed)."""
    text = _URL_USERINFO_ESCAPED.sub(_mask_escaped_userinfo, text)
    text = _AUTH_HEADER.sub(lambda m: _hide_auth_header(m, hide), text)
    text = _BASIC.sub(lambda m: m.group(1) + hide(m.group(2)) if _looks_like_basic_credentials(m.group(2)) else m.group(0), text)
    text = _REDIS_CLI_A.sub(lambda m: _hide_value(m, hide, prose=True), text)
    text = _MYSQL_P.sub(lambda m: _hide_value(m, hide, prose=False), text)
    text = _FLAG.sub(lambda m: _hide_value(m, hide, prose="=" not in m.group("sep")), text)
    text = _QUOTED_ARGS.sub(lambda m: _hide_value(m, hide, prose=False), text)
    text = _DIRECTIVE.sub(lambda m: _hide_value(m, hide, prose=True), text)
    text = _QUOTED_AFTER_KEYWORD.sub(lambda m: _hide_value(m, hide, prose=False), text)
    text = _AUTH_COMMAND.sub(lambda m: _hide_auth_command(m, hide), text)
    text = _PAIR.sub(lambda m: _hide_value(m, hide, prose="=" not in m.group("sep")), text)
    return text


_FLAG_WORD = re.compile(
    r"(?i)--?[\w\-]*?(?:password|passwd|pass|pwd|secret|token|api-?key|apikey|requirepass|masterauth|auth|credentials?|private-?key|access-?key)"
)
_MYSQL_CLIENTS = ("mysql", "mysqldump", "mysqladmin", "mariadb")


def _secret_followers(words: list[str], i: int) -> int:
    """How many of the words after ``words[i]`` are secrets: ``--password X``, ``requirepass X``,
    ``redis-cli … -a X``, ``AUTH X`` / ``AUTH user X`` (``AUTH default X`` keeps ``default``)."""
    word = words[i]
    programs = [w.rsplit("/", 1)[-1] for w in words[:i]]
    if _FLAG_WORD.fullmatch(word) or word.lower() in ("requirepass", "masterauth") or (word == "-a" and "redis-cli" in programs):
        return 1
    if word.upper() == "AUTH" and i + 1 < len(words):
        return 2
    return 0


def redact_argv(argv: list[str]) -> list[str]:
    """A command's words fit to show: each word redacted, and the word after a secret-taking flag masked
    whatever it holds (``["redis-server", "--requirepass", X]`` has no ``--requirepass X`` string to match)."""
    out = [redact(word) for word in argv]
    programs: list[str] = []
    for i, word in enumerate(argv):
        programs.append(word.rsplit("/", 1)[-1])
        if word.startswith("-p") and len(word) > 2 and any(p in _MYSQL_CLIENTS for p in programs[:-1]):
            out[i] = "-p" + MASK
            continue
        count = _secret_followers(argv, i)
        targets = range(i + 1, min(i + 1 + count, len(argv)))
        for j in targets:
            if count == 2 and j == i + 1 and argv[j] == "default":
                continue
            if argv[j].startswith("-") and count == 1 and argv[j] != "-":
                break  # --no-password -h db: the flag takes no value
            if not _is_placeholder(out[j], prose=False):
                out[j] = MASK
    return out


def is_secret_key(key: str) -> bool:
    """Whether a JSON/dict key names a secret (its value is masked in ``--json`` output)."""
    return bool(re.fullmatch(rf"(?i)[\w.\-]*?{_KEYWORD}", key.strip()))


# --- fingerprints ---------------------------------------------------------------------------------------------------

_FINGERPRINT_STATE: dict[str, Any] = {"salt": None, "reveal": None}


def set_fingerprint_salt(salt: str | None) -> None:
    """Use ``salt`` for every fingerprint from now on (two machines with one salt can compare); ``None``: draw again."""
    if salt is not None and not _SALT_SHAPE.fullmatch(salt):
        from pmsops.errors import UsageError

        raise UsageError("a fingerprint salt is 4 to 64 letters, digits, '.', '_' or '-'", hint="for example: --fingerprint-salt incident-0412")
    _FINGERPRINT_STATE["salt"] = salt


def set_reveal_fingerprint(reveal: bool | None) -> None:
    """Show the runbook's unsalted SHA-256 prefix instead of the salted fingerprint (the entry point sets it:
    ``--reveal-fingerprint``, ``PMSOPS_REVEAL_FINGERPRINT``)."""
    _FINGERPRINT_STATE["reveal"] = reveal


def fingerprint_salt() -> str:
    """This process's salt: as the entry point set it (``--fingerprint-salt``, ``PMSOPS_FINGERPRINT_SALT``), else random (once per run)."""
    if _FINGERPRINT_STATE["salt"] is None:  # the entry point sets it (--fingerprint-salt, PMSOPS_FINGERPRINT_SALT)
        set_fingerprint_salt(_random.token_hex(4))
    return _FINGERPRINT_STATE["salt"]


def reveal_fingerprints() -> bool:
    return bool(_FINGERPRINT_STATE["reveal"])


def sha256_prefix(value: str, length: int = 16) -> str:
    """First ``length`` hex digits of the unsalted SHA-256 (the runbook's ``sha256sum | cut -c1-16``): only with --reveal-fingerprint."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:length]


@functools.lru_cache(maxsize=1024)
def _derive(value: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", value.encode("utf-8"), salt.encode("utf-8"), FINGERPRINT_ITERATIONS).hex()[:FINGERPRINT_HEX]


def salted_digest(value: str, salt: str | None = None) -> str:
    """PBKDF2-HMAC-SHA256(value, salt, 100 000 rounds), first 16 hex digits.

    Why not plain SHA-256: a short or dictionary password's unsalted hash is in
    every lookup table; a fresh salt defeats tables and the rounds make each guess
    100 000 times dearer, while equal passwords under one salt still compare equal.
    """
    return _derive(value, salt or fingerprint_salt())


def derive_fingerprints(values) -> None:
    """Derive the fingerprints of many values at once, on every core (hashlib's PBKDF2 releases the GIL): a report
    fingerprints every variable it reads, ~0.1 s each here. The results land in the cache :func:`fingerprint` reads."""
    if reveal_fingerprints():
        return
    salt = fingerprint_salt()
    todo = list(dict.fromkeys(v for v in values if v))
    workers = min(len(todo), os.cpu_count() or 1)
    if workers < 2:
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers, thread_name_prefix="pmsops-fingerprint") as pool:
        list(pool.map(lambda value: _derive(value, salt), todo))


def fingerprint_fields(value: str) -> dict[str, Any]:
    """The fingerprint for ``--json``: ``{"length", "pbkdf2", "salt"}`` (or ``{"length", "sha256_prefix"}`` when revealed)."""
    if reveal_fingerprints():
        return {"length": len(value), "sha256_prefix": sha256_prefix(value)}
    salt = fingerprint_salt()
    return {"length": len(value), "pbkdf2": salted_digest(value, salt), "salt": salt}


def fingerprint(value: str) -> str:
    """What may be shown of a secret: ``len=N pbkdf2=<16 hex> salt=<salt>`` (``len=N sha256=<16 hex>`` when revealed).

    The one fingerprint of the project: every command that shows or compares a
    secret calls this, so one invocation's fingerprints share one salt.
    """
    fields = fingerprint_fields(value)
    if "sha256_prefix" in fields:
        return f"len={fields['length']} sha256={fields['sha256_prefix']}"
    return f"len={fields['length']} pbkdf2={fields['pbkdf2']} salt={fields['salt']}"


def fingerprint_tag(value: str) -> str:
    """A fingerprint standing in for a value inside quoted text: ``<len=8 pbkdf2=… salt=…>``."""
    return f"<{fingerprint(value)}>"


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
    """``scheme://userinfo@`` masked by the one masker, :func:`mask_url`."""
    if not match.group("userinfo"):
        return match.group(0)
    return mask_url(match.group(0))


ANYWHERE_LENGTH = 8
"""A form of a secret this long is masked wherever it occurs; a shorter one only as a whole token (no letter or digit
glued to either side): a password ``pass`` leaves "password" alone. A *fragment* (a piece some parser cut from a
password) shorter than this is never masked inside other text, only where it is the whole text."""
PREFIX_LENGTH = 12
"""A run of this many leading characters of a form counts as the secret (a log that cut the value short)."""


def secret_forms(value: str) -> dict[str, str]:
    """Form name → how ``value`` looks once an encoder that loggers, languages and URLs apply has been at it.

    The one list the redactor masks and the report's fail-closed scan searches: raw; percent-encoded in full
    (upper- and lower-case hex), the way ``encodeURI`` leaves reserved characters, and only the non-ASCII bytes;
    ``quote_plus``; JSON (UTF-8, ASCII ``\\u``, and with ``\\/`` as PHP and some loggers write it); Python's
    ``repr`` of the str and of its UTF-8 bytes (``\\xc3\\xbc``), ``ascii()`` (``\\xfc``, ``\\u20ac``); base64 standard and
    URL-safe, padded or not; hex, lower and upper case; HTML-escaped.
    """
    raw = value.encode("utf-8")
    b64 = base64.b64encode(raw).decode()
    b64url = base64.urlsafe_b64encode(raw).decode()
    json_ascii = json.dumps(value)[1:-1]
    out = {
        "raw": value,
        "percent-encoded": quote(value, safe=""),
        "percent-encoded (safe /)": quote(value),
        "percent-encoded (encodeURI)": quote(value, safe=";,/?:@&=+$-_.!~*'()#"),
        "percent-encoded (non-ASCII only)": quote(value, safe="".join(chr(c) for c in range(0x20, 0x7F))),
        "quote_plus": quote_plus(value),
        "JSON-escaped": json.dumps(value, ensure_ascii=False)[1:-1],
        "JSON-escaped (ASCII)": json_ascii,
        "JSON-escaped (slashes)": json_ascii.replace("/", "\\/"),
        "JSON-escaped (UTF-8, slashes)": json.dumps(value, ensure_ascii=False)[1:-1].replace("/", "\\/"),
        "repr": repr(value)[1:-1],
        "ascii escapes": ascii(value)[1:-1],
        "repr of UTF-8 bytes": repr(raw)[2:-1],
        "backslash escapes": value.encode("ascii", "backslashreplace").decode(),
        "backslash escapes of UTF-8 bytes": raw.decode("ascii", "backslashreplace"),
        "base64": b64,
        "base64 (unpadded)": b64.rstrip("="),
        "base64url": b64url,
        "base64url (unpadded)": b64url.rstrip("="),
        "hex": raw.hex(),
        "hex (upper case)": raw.hex().upper(),
        "HTML-escaped": html.escape(value, quote=True),
    }
    for name in ("percent-encoded", "percent-encoded (encodeURI)", "percent-encoded (non-ASCII only)", "quote_plus"):
        out[name + " (lower-case hex)"] = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), out[name])
    return out


def _trie_pattern(words) -> str:
    """One regex for many literals, as a trie (``ab(?:c|d)`` for abc, abd): Python's ``re`` tries each alternative of a
    plain ``a|b|c`` at every position, so 200 secrets' 1,000 forms cost 5x a trie's time per line. Longest match first
    at a shared prefix, as the plain alternation sorted by length did."""
    trie: dict = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = True

    def build(node: dict) -> str:
        run: list[str] = []
        keys = [ch for ch in node if ch != ""]
        while "" not in node and len(keys) == 1:  # a chain with no branch: literal text, no nesting (a JWT is 800 deep)
            run.append(re.escape(keys[0]))
            node = node[keys[0]]
            keys = [ch for ch in node if ch != ""]
        if not keys:
            return "".join(run)
        body = "(?:" + "|".join(re.escape(ch) + build(node[ch]) for ch in sorted(keys)) + ")"
        return "".join(run) + body + ("?" if "" in node else "")

    return build(trie)


def _spelled_to(text: str, start: int, form: str) -> int:
    """Where ``text`` stops spelling ``form`` from ``start`` on."""
    end = start
    while end < len(text) and end - start < len(form) and text[end] == form[end - start]:
        end += 1
    return end


class Redactor:
    """Masks known secrets and secret-shaped substrings; thread-safe.

    What is registered is outside data's enemy, never pmsops's own words: a whole secret is masked in every form of
    :func:`secret_forms` (and by its first :data:`PREFIX_LENGTH` characters), as a whole token when shorter than
    :data:`ANYWHERE_LENGTH`; a fragment is masked as a whole token, and when short only where it is the whole text.
    """

    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}
        """Every form to mask → the secret it is a form of (fingerprints are of the secret, not of the form)."""
        self._whole: set[str] = set()
        """The registered secrets themselves (not fragments, not forms): what the fail-closed scan searches."""
        self._token_only: set[str] = set()
        """Forms masked only as whole tokens: short forms, and fragments (pieces of a password, maybe ordinary words)."""
        self._exact: set[str] = set()
        """Short fragments: masked only where a text is nothing else (a parser's port field, a JSON value)."""
        self._prefixes: dict[str, set[str]] = {}
        """The first PREFIX_LENGTH characters of each long form → the forms that start so."""
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None
        self._short_pattern: re.Pattern[str] | None = None

    def register(self, value: str | None, fragment: bool = False) -> None:
        """Mask ``value`` in every form of :func:`secret_forms` from now on.

        ``fragment`` is for pieces of a secret (where some parser cuts a password): they may also be ordinary
        words ("pass" of ``Summer2024#pass``, "tail" of ``Prefix/tail``), so they are masked only as a whole token
        and, below :data:`ANYWHERE_LENGTH` characters, only where they are the whole text.
        """
        if not value or value.lower() in HARMLESS_VALUES or (len(value) < MIN_SECRET_LENGTH and not any(ch.isalnum() for ch in value)):
            return  # a short run of punctuation (the ':' of "redis://:@h") would mask every ':' of the output
        with self._lock:
            if not fragment and value in self._whole:
                return  # registered already (every command re-registers its environment): forms and patterns stand
            before = (len(self._secrets), len(self._token_only), len(self._prefixes))
            if fragment:
                self._register_fragment(value)
            else:
                self._register_whole(value)
            if (len(self._secrets), len(self._token_only), len(self._prefixes)) != before:
                self._pattern = self._short_pattern = None  # recompiled on the next redact only when the forms changed

    def _register_fragment(self, value: str) -> None:
        if value in self._secrets and value not in self._exact:
            return  # already masked as much or more (a whole secret, or a longer fragment's form)
        if len(value) < ANYWHERE_LENGTH:
            self._exact.add(value)
            return
        for form in (value, quote(value, safe=""), json.dumps(value)[1:-1]):
            if form not in self._secrets:
                self._token_only.add(form)
                self._secrets[form] = value

    def _register_whole(self, value: str) -> None:
        self._whole.add(value)
        self._exact.discard(value)
        for form in set(secret_forms(value).values()):
            if len(form) < MIN_SECRET_LENGTH and not any(ch.isalnum() for ch in form):
                continue
            if len(form) >= ANYWHERE_LENGTH:
                self._token_only.discard(form)
            elif form not in self._secrets or form in self._token_only:
                self._token_only.add(form)
            self._secrets[form] = value
            if len(form) > PREFIX_LENGTH:
                self._prefixes.setdefault(form[:PREFIX_LENGTH], set()).add(form)

    def secrets(self) -> list[str]:
        """The registered secrets themselves (not fragments, not encoded forms), for scans that must fail closed."""
        with self._lock:
            return sorted(self._whole)

    def forget_all(self) -> None:
        """For tests: start from an empty registry."""
        with self._lock:
            for registry in (self._secrets, self._whole, self._token_only, self._exact, self._prefixes):
                registry.clear()
            self._pattern = self._short_pattern = None

    def _compiled(self) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
        """(long forms and prefixes anywhere, short forms as whole tokens), longest first so a form never masks half of another."""
        with self._lock:
            if self._pattern is None and self._short_pattern is None and (self._secrets or self._prefixes):
                anywhere = {s for s in self._secrets if s not in self._token_only} | {p for p in self._prefixes if p not in self._secrets}
                short_forms = sorted(self._token_only, key=len, reverse=True)
                if anywhere:
                    self._pattern = re.compile(_trie_pattern(anywhere))
                if short_forms:
                    self._short_pattern = re.compile(rf"(?<![^\W_])(?:{_trie_pattern(short_forms)})(?![^\W_])")
            return self._pattern, self._short_pattern

    def _anywhere_spans(self, text: str, pattern: re.Pattern[str]):
        """(start, end, secret) of each match; a prefix match runs on as far as the text goes on spelling its form."""
        position = 0
        while (match := pattern.search(text, position)) is not None:
            end = match.end()
            secret = self._secrets.get(match.group(0))
            if secret is None:  # a prefix: take as much of its forms as the text holds
                end, form = max((_spelled_to(text, match.start(), form), form) for form in self._prefixes[match.group(0)])
                secret = self._secrets[form]
            yield match.start(), end, secret
            position = end

    def _mask_anywhere(self, text: str, pattern: re.Pattern[str], conceal: Hide) -> str:
        out: list[str] = []
        position = 0
        for start, end, secret in self._anywhere_spans(text, pattern):
            out.append(text[position:start])
            out.append(conceal(secret))
            position = end
        out.append(text[position:])
        return "".join(out)

    def _conceal_token(self, form: str, conceal: Hide) -> str:
        """A whole-token match masked, unless it is a fragment that is one of pmsops's own words (``connection`` of
        ``Autumn#connection``): the tool's text is never garbled; the whole secret is always masked."""
        secret = self._secrets.get(form, form)
        if secret not in self._whole and is_own_word(form):
            return form
        return conceal(secret)

    def found(self, text: str) -> list[tuple[str, str]]:
        """(secret, the text that spelled it) for every registered secret in ``text``, by the rule :meth:`redact`
        masks with: the fail-closed scan of a report asks this after redaction, so it refuses exactly what slipped by."""
        pattern, short_pattern = self._compiled()
        hits = [(secret, text[start:end]) for start, end, secret in (self._anywhere_spans(text, pattern) if pattern else ())]
        if short_pattern is not None:
            hits += [(self._secrets[m.group(0)], m.group(0)) for m in short_pattern.finditer(text)]
        return hits

    def redact(self, text: str, hide: Hide | None = None) -> str:
        """``text`` with every secret replaced by ``hide(secret)`` (default ``***``), then every secret-shaped value
        masked whatever it is (:func:`redact_patterns`). See the class for what registered values match."""
        if not text:
            return text
        conceal: Hide = hide or (lambda _value: MASK)
        if self._exact and text.strip() in self._exact and not is_own_word(text.strip()):
            return text.replace(text.strip(), conceal(text.strip()))
        pattern, short_pattern = self._compiled()
        if pattern is not None:
            text = self._mask_anywhere(text, pattern, conceal)
        if short_pattern is not None:
            text = short_pattern.sub(lambda m: self._conceal_token(m.group(0), conceal), text)
        text = _URL_USERINFO.sub(_mask_userinfo, text)
        text = _URL_USERINFO_UNUSUAL.sub(_mask_unusual_userinfo, text)
        text = _JWT.sub(lambda m: f"<jwt {fingerprint(m.group(0))}>", text)
        text = _BEARER.sub(lambda m: m.group(1) + conceal(m.group(2)), text)
        text = redact_patterns(text, conceal)
        return text

    def redact_obj(self, obj: Any, hide: Hide | None = None) -> Any:
        """Redact every string inside a JSON-like structure (keys included); a string under a secret-ish key is masked whole."""
        if isinstance(obj, str):
            return self.redact(obj, hide)
        if isinstance(obj, Secret):
            return MASK
        if isinstance(obj, dict):
            out = {}
            for key, value in obj.items():
                if isinstance(value, str) and is_secret_key(str(key)) and not _is_placeholder(value, prose=False):
                    out[self.redact(str(key), hide)] = (hide or (lambda _value: MASK))(value)
                else:
                    out[self.redact(str(key), hide)] = self.redact_obj(value, hide)
            return out
        if isinstance(obj, (list, tuple, set)):
            return [self.redact_obj(v, hide) for v in obj]
        return obj


REDACTOR = Redactor()
register_secret = REDACTOR.register
registered_secrets = REDACTOR.secrets
redact = REDACTOR.redact
redact_obj = REDACTOR.redact_obj


def redact_with_fingerprints(text: str) -> str:
    """:func:`redact`, but each secret becomes its :func:`fingerprint_tag`: quoted log lines then tell which password they held."""
    return REDACTOR.redact(text, fingerprint_tag)


class RedactingFormatter(logging.Formatter):
    """Wraps another formatter and redacts its whole output, tracebacks included."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        """Redacted, and no steering character: the worker's log quotes platform text, read later with ``cat``."""
        return visible(redact(self._inner.format(record)))


def redact_logging(logger: logging.Logger | None = None) -> None:
    """Make every handler of ``logger`` (default: root) redact what it writes."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))


def mask_url(url: str) -> str:
    """The URL with its password masked (``redis://ops:***@host:6379/0``); the user name is kept.

    The user name is dropped when it holds characters no user name has (then it is a
    piece of a raw password). A Redis URL whose only userinfo has no ``:`` is masked
    whole: that "user" is almost always a password without its colon.
    """
    raw = split_raw(url)
    if raw is None:
        return redact(url)
    if raw.userinfo is None:
        return redact(url.strip())  # still masks ?password=… and registered secrets
    if raw.password is None:
        if raw.scheme.lower().startswith(_PASSWORD_ONLY_SCHEMES) or not _plausible_user(raw.userinfo):
            return f"{raw.scheme}://{MASK}@{redact(raw.hostpart)}"
        return f"{raw.scheme}://{redact(raw.userinfo)}@{redact(raw.hostpart)}"
    user = raw.user if raw.user and _plausible_user(raw.user) else ""
    if _is_own_placeholder(raw.password) and raw.password not in REDACTOR.secrets():
        return f"{raw.scheme}://{raw.userinfo}@{redact(raw.hostpart)}"  # a hint's example: redis://:PASSWORD@HOST
    return f"{raw.scheme}://{redact(user)}:{MASK}@{redact(raw.hostpart)}"
