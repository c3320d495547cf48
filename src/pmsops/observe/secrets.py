"""Every registered secret in every form it could take in a file, and the fail-closed scan.

The redaction layer masks what it recognises; this is the check after it. Before
the report is written, its whole content is searched for every secret registered
with :func:`pmsops.redaction.register_secret` in each form a tool might have
written it in (:func:`pmsops.redaction.secret_forms`: percent-encoded fully or partly,
JSON, ``repr`` of str and bytes, escapes, base64, hex, HTML), by the rule the redactor
masks with. A hit means a leak the redactor missed (a writer that skipped it): nothing is
written (:class:`SecretFound`, exit 1). Messages name the file and the form, and
show the secret only as a fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass

from pmsops.errors import OperationError
from pmsops.redaction import Redactor, fingerprint, registered_secrets, secret_forms


class SecretFound(OperationError):
    """The report's content holds a registered secret: nothing was written."""


@dataclass(frozen=True)
class Hit:
    member: str
    form: str
    secret_fingerprint: str


def scan(members: dict[str, bytes | str], secrets: list[str] | None = None) -> list[Hit]:
    """Every (file, form) where a registered secret appears, by the redactor's own rule (every form of
    :func:`pmsops.redaction.secret_forms`, a 12-character prefix, short forms as whole tokens); empty means clean."""
    # the secret itself, not its fingerprint: a fingerprint is 100 000 PBKDF2 rounds, needed only for a hit (none, normally)
    finder = Redactor()
    for secret in secrets if secrets is not None else registered_secrets():
        finder.register(secret)
    hits: list[Hit] = []
    seen = set()
    for name, content in members.items():
        text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
        for secret, spelled in finder.found(text):
            form = _form_name(secret, spelled)
            if (name, form, secret) not in seen:
                seen.add((name, form, secret))
                hits.append(Hit(name, form, fingerprint(secret)))
    return hits


def _form_name(secret: str, spelled: str) -> str:
    """Which encoder's output ``spelled`` is (a prefix of a form names that form)."""
    for name, text in secret_forms(secret).items():
        if text == spelled:
            return name
    for name, text in secret_forms(secret).items():
        if text.startswith(spelled):
            return f"{name} (prefix)"
    return "raw"


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
