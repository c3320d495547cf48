"""``token``: get a JWT (Supabase password grant or TOKEN), show only what is safe.

What is shown of a token: its length, its number of parts, and decoded claims
(sub, aud, role, agency, time left). Never the token itself, unless ``--print``
asks for exactly that, alone on stdout, for ``export TOKEN=$(pmsops token --print)``.
``--verify`` refuses a token without ``exp``, ``sub`` or ``aud`` as the backend does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pmsops import results
from pmsops.api.errors import ApiError
from pmsops.errors import UsageError
from pmsops.redaction import register_secret
from pmsops.results import Result
from pmsops.settings import Settings

REQUIRED_CLAIMS = ("exp", "sub", "aud")
"""Claims a backend token must carry: without ``exp`` it would be valid forever; ``sub`` is the user;
``aud`` says which service it is for. The reference API (pmsops.sandbox.auth) requires the same."""


def missing_claim_text(claim: str) -> str:
    """The one-line reason for a token without a required claim (the API's 401 detail, ``token --verify``)."""
    return f"Token has no '{claim}' claim ({', '.join(REQUIRED_CLAIMS)} are required)"


@dataclass
class TokenInfo:
    token: str = field(repr=False)
    source: str

    @property
    def parts(self) -> int:
        return len(self.token.split("."))


def _token_hint(status: int) -> str:
    """What a failed password grant means, by status: credentials, keys, or an auth service that is down."""
    if status in (400, 401):
        return "wrong EMAIL/PASSWORD, or ANON_KEY of another project"
    if status == 403:
        return "ANON_KEY is not accepted by this project: check SB_URL and ANON_KEY belong together"
    if status == 429:
        return "Supabase Auth rate-limits token requests: wait a minute, or export TOKEN for repeated runs"
    if status >= 500:
        return (
            f"the login failed on the auth side (HTTP {status}), not your credentials: Supabase Auth (GoTrue) keeps its users in "
            "Supabase's PostgreSQL, so a database that is down fails every login (pmsops check db); otherwise GoTrue itself "
            '(curl -s "$SB_URL/auth/v1/health"). Export a still-valid TOKEN meanwhile'
        )
    return "check SB_URL and ANON_KEY"


def fetch_token(sb_url: str, anon_key: str, email: str, password: str, timeout: float = 10.0) -> str:
    """POST {SB_URL}/auth/v1/token?grant_type=password with apikey; returns access_token."""
    import httpx

    from pmsops.api.client import decode_body
    from pmsops.failures import classify
    from pmsops.urls import host_of

    url = sb_url.rstrip("/") + "/auth/v1/token?grant_type=password"
    try:
        response = httpx.post(
            url,
            headers={"apikey": anon_key, "Content-Type": "application/json"},
            json={"email": email, "password": password},
            timeout=httpx.Timeout(timeout),
        )
    except httpx.HTTPError as exc:
        host, port = host_of(url)
        failure = classify(exc, host, port, timeout, "Supabase auth")
        raise ApiError(f"POST {url}: {failure.summary}", hint=f'{failure.hint}; check SB_URL (curl -s "$SB_URL/health")') from None
    body = decode_body(response.text)
    if response.status_code != 200:
        detail = body.get("error_description") or body.get("msg") or body.get("error") if isinstance(body, dict) else None
        hint = _token_hint(response.status_code)
        raise ApiError(
            f"token request failed: HTTP {response.status_code}" + (f" ({detail})" if detail else ""), response.status_code, None, hint=hint
        )
    token = body.get("access_token") if isinstance(body, dict) else None
    if not token:
        raise ApiError("token response has no access_token", response.status_code, None, hint="SB_URL does not point at Supabase's GoTrue")
    register_secret(token)
    return token


def obtain(settings: Settings, timeout: float = 10.0) -> TokenInfo:
    """TOKEN when set, else the password grant with SB_URL, ANON_KEY, EMAIL, PASSWORD."""
    ready = settings.get("TOKEN")
    if ready:
        register_secret(ready)
        return TokenInfo(ready.strip(), settings.source("TOKEN") or "TOKEN")
    missing = [n for n in ("SB_URL", "ANON_KEY", "EMAIL", "PASSWORD") if not settings.get(n)]
    if missing:
        raise UsageError(
            f"no TOKEN and not set: {', '.join(missing)}", hint="source /root/pms_env.sh (pmsops --env-file /root/pms_env.sh …), or export TOKEN"
        )
    token = fetch_token(settings.require("SB_URL"), settings.require("ANON_KEY"), settings.require("EMAIL"), settings.require("PASSWORD"), timeout)
    return TokenInfo(token, "password grant")


def claims(token: str) -> dict[str, Any]:
    import jwt

    try:
        return jwt.decode(token, options={"verify_signature": False, "verify_exp": False, "verify_aud": False})
    except jwt.PyJWTError as exc:
        raise UsageError(f"not a JWT: {exc}") from None


def describe(info: TokenInfo, verify_secret: str | None = None, audience: str | None = None) -> list[Result]:
    """Length, parts, claims; with a secret, signature and audience verification."""
    out: list[Result] = []
    shape = f"len={len(info.token)} parts={info.parts} (from {info.source})"
    if info.parts != 3:
        return [results.fail("token", shape, hint="a JWT has 3 parts (header.payload.signature): the variable holds something else")]
    data = claims(info.token)
    left = data.get("exp", 0) - time.time() if data.get("exp") else None
    shown = {k: data.get(k) for k in ("sub", "aud", "role", "email", "agency_id", "iss") if data.get(k) is not None}
    notes = [f"{k}: {v}" for k, v in shown.items()]
    if left is not None:
        notes.append(f"expires in {left / 60:.0f} min" if left > 0 else f"EXPIRED {-left / 60:.0f} min ago")
    details = {
        "length": len(info.token),
        "parts": info.parts,
        "claims": shown,
        "seconds_left": round(left) if left is not None else None,
        "source": info.source,
    }
    missing = [c for c in REQUIRED_CLAIMS if data.get(c) in (None, "")]
    if missing:  # seen without --verify too: the backend refuses such a token whatever its signature
        out.append(
            results.fail(
                "token",
                shape + ", " + "; ".join(missing_claim_text(c) for c in missing),
                notes=notes,
                details={**details, "missing_claims": missing},
                hint="the backend refuses it (HTTP 401): get a token from the password grant (pmsops token)",
            )
        )
    elif left is not None and left <= 0:
        out.append(
            results.fail(
                "token", shape + ", expired", notes=notes, details=details, hint="fetch a new token: pmsops token (tokens live about an hour)"
            )
        )
    else:
        out.append(results.ok("token", shape, notes=notes, details=details))
    if verify_secret is not None:
        out.append(verify(info.token, verify_secret, audience))
    return out


def verify(token: str, secret: str, audience: str | None) -> Result:
    import jwt

    register_secret(secret)
    try:
        jwt.decode(
            token, secret, algorithms=["HS256"], audience=audience or "authenticated", options={"verify_exp": False, "require": list(REQUIRED_CLAIMS)}
        )
    except jwt.MissingRequiredClaimError as exc:
        return results.fail(
            "verify", missing_claim_text(exc.claim), hint="the backend refuses it (HTTP 401): get a token from the password grant (pmsops token)"
        )
    except jwt.InvalidAudienceError:
        return results.fail(
            "verify", f"audience mismatch (expected {audience or 'authenticated'})", hint="JWT_AUDIENCE must match the token's aud claim"
        )
    except jwt.InvalidSignatureError:
        return results.fail(
            "verify",
            "signature does not match the secret",
            hint=(
                "the backend's SUPABASE_JWT_SECRET/JWT_SECRET differs from GoTrue's: copy it exactly (the API answers 401 'Invalid authentication"
                " token')"
            ),
        )
    except jwt.PyJWTError as exc:
        return results.fail("verify", f"cannot verify: {exc}")
    return results.ok("verify", f"signature valid (HS256), audience {audience or 'authenticated'}")
