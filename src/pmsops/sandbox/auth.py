"""Sandbox auth: a Supabase-compatible password grant and HS256 JWT verification.

Passwords are stored as scrypt hashes. Tokens are HS256, audience
``authenticated``, user id in ``sub``, one hour, signed with ``SUPABASE_JWT_SECRET``
(the backend verifies with the same secret, as in production). A token without
``exp``, ``sub`` or ``aud`` is refused (:data:`REQUIRED_CLAIMS`): one without ``exp``
would be valid forever.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from typing import Any

from pmsops.api.token import REQUIRED_CLAIMS, missing_claim_text

TOKEN_LIFETIME = 3600
AUDIENCE = "authenticated"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
    except ValueError:
        return False
    expected = hash_password(password, base64.b64decode(salt)).split("$")[2]
    return hmac.compare_digest(expected, digest)


_UNKNOWN_USER_HASH: list[str] = []


def verify_login(stored_hash: str | None, password: str) -> bool:
    """The password check of a login, with the same scrypt work whether the email exists or not (``stored_hash``
    None): the answer's timing must not tell which emails have accounts."""
    if not _UNKNOWN_USER_HASH:
        _UNKNOWN_USER_HASH.append(hash_password("no such user", b"\0" * 16))
    matches = check_password(password, stored_hash if stored_hash is not None else _UNKNOWN_USER_HASH[0])
    return matches and stored_hash is not None


def issue_token(
    secret: str, user_id: str, email: str, lifetime: int = TOKEN_LIFETIME, audience: str = AUDIENCE, extra: dict[str, Any] | None = None
) -> str:
    import jwt

    now = int(time.time())
    claims = {
        "sub": user_id,
        "aud": audience,
        "role": "authenticated",
        "email": email,
        "iat": now,
        "exp": now + lifetime,
        "iss": "pmsops-sandbox",
        "session_id": secrets.token_hex(8),
        **(extra or {}),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


class AuthFailure(Exception):
    """401 with the contract's detail text."""


def verify_token(token: str, secret: str, audience: str = AUDIENCE) -> dict[str, Any]:
    import jwt

    try:
        return jwt.decode(token, secret, algorithms=["HS256"], audience=audience, options={"require": list(REQUIRED_CLAIMS)})
    except jwt.ExpiredSignatureError:
        raise AuthFailure("Token has expired") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthFailure(missing_claim_text(exc.claim)) from None
    except jwt.PyJWTError:
        raise AuthFailure("Invalid authentication token") from None
