"""Platform tokens at rest: Fernet (AES-128-CBC + HMAC-SHA256) with ``ENCRYPTION_KEY``.

``cryptography``'s Fernet is a well-kept, audited recipe; writing our own AES
mode and MAC would be the riskiest code in the package. ``ENCRYPTION_KEY`` is a
Fernet key (32 url-safe base64 bytes: ``Fernet.generate_key()``); for keys of another
shape we derive one with SHA-256 so an existing deployment's key still works.
"""

from __future__ import annotations

import base64
import hashlib

from pmsops.errors import UsageError
from pmsops.redaction import register_secret


def _fernet(key: str):
    from cryptography.fernet import Fernet

    if not key:
        raise UsageError(
            "ENCRYPTION_KEY is not set",
            hint="generate one: python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
        )
    register_secret(key)
    try:
        return Fernet(key.encode())
    except ValueError:
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))


def encrypt(plaintext: str, key: str) -> str:
    register_secret(plaintext)
    return _fernet(key).encrypt(plaintext.encode()).decode()


def decrypt(token: str, key: str) -> str:
    from cryptography.fernet import InvalidToken

    try:
        value = _fernet(key).decrypt(token.encode()).decode()
    except InvalidToken:
        from pmsops.sync.errors import PlatformAuthError

        raise PlatformAuthError(
            "stored platform token cannot be decrypted: ENCRYPTION_KEY differs from the one that encrypted it (worker and backend must share it)"
        ) from None
    register_secret(value)
    return value


def generate_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()
