"""Every registered secret in every form it could take in a file, and the fail-closed scan.

The redaction layer masks what it recognises; this is the check after it. Before
the report is written, its whole content is searched for every secret registered
with :func:`pmsops.redaction.register_secret` in each form a tool might have
written it in: raw, percent-encoded (upper- and lower-case hex, ``safe=""`` and
``safe="/"``), ``quote_plus``, base64 (standard and URL-safe, with and without
padding), JSON-escaped and HTML-escaped. A hit means a leak the redactor missed: nothing is
written (:class:`SecretFound`, exit 1). Messages name the file and the form, and
show the secret only as a fingerprint.
"""

from __future__ import annotations

import base64
import html
import json
import re
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

from pmsops.errors import OperationError
from pmsops.redaction import MIN_SECRET_LENGTH, fingerprint, registered_secrets


class SecretFound(OperationError):
    """The report's content holds a registered secret: nothing was written."""


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def forms(value: str) -> dict[str, str]:
    """Form name → the text that form of ``value`` would appear as."""
    raw = value.encode("utf-8")
    out = {
        "raw": value,
        "percent-encoded": quote(value, safe=""),
        "percent-encoded (safe /)": quote(value),
        "quote_plus": quote_plus(value),
        "base64": base64.b64encode(raw).decode(),
        "base64 (unpadded)": base64.b64encode(raw).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(raw).decode(),
        "base64url (unpadded)": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "JSON-escaped": json.dumps(value)[1:-1],
        "JSON-escaped (ASCII)": json.dumps(value, ensure_ascii=True)[1:-1],
        "HTML-escaped": html.escape(value, quote=True),
    }
    out["percent-encoded (lower-case hex)"] = _lower_hex(out["percent-encoded"])
    out["quote_plus (lower-case hex)"] = _lower_hex(out["quote_plus"])
    return {name: text for name, text in out.items() if len(text) >= MIN_SECRET_LENGTH}


@dataclass(frozen=True)
class Hit:
    member: str
    form: str
    secret_fingerprint: str


def scan(members: dict[str, bytes | str], secrets: list[str] | None = None) -> list[Hit]:
    """Every (file, form) where a registered secret appears; an empty list means clean."""
    # the secret itself, not its fingerprint: a fingerprint is 100 000 PBKDF2 rounds, needed only for a hit (none, normally)
    needles: dict[str, tuple[str, str]] = {}
    for secret in secrets if secrets is not None else registered_secrets():
        if len(secret) < MIN_SECRET_LENGTH:
            continue
        for form, text in forms(secret).items():
            needles.setdefault(text, (form, secret))
    if not needles:
        return []
    pattern = re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)))
    hits: list[Hit] = []
    for name, content in members.items():
        text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
        seen = set()
        for match in pattern.finditer(text):
            form, secret = needles[match.group(0)]
            if (form, secret) not in seen:
                seen.add((form, secret))
                hits.append(Hit(name, form, fingerprint(secret)))
    return hits


def ensure_clean(members: dict[str, bytes | str]) -> None:
    """Raise :class:`SecretFound` (naming files and forms, never values) if any secret is present."""
    hits = scan(members)
    if hits:
        where = "; ".join(f"{h.member}: {h.form} form of a secret ({h.secret_fingerprint})" for h in hits[:5])
        more = f" and {len(hits) - 5} more" if len(hits) > 5 else ""
        raise SecretFound(
            f"report not written: a registered secret is in its content ({where}{more})",
            hint="the redaction layer missed this form; nothing was written. Leave out the source (e.g. --worker-log) and report this as a bug",
        )
