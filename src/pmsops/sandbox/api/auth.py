"""``/auth/v1/token`` (a Supabase-compatible password grant) and :func:`current_agency`, the dependency every
agency-scoped route takes: bearer JWT → user → agency."""

from __future__ import annotations

import hmac
import os
import uuid
from typing import Optional

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pmsops.sandbox.api.deps import SHORT_TEXT, env, with_db
from pmsops.sandbox.auth import AuthFailure, issue_token, verify_login, verify_token

router = APIRouter()


class PasswordGrant(BaseModel):
    email: str = Field(max_length=SHORT_TEXT)
    password: str = Field(max_length=1024)


@router.post("/auth/v1/token")
async def password_grant(
    request: Request, grant: PasswordGrant, grant_type: str = Query(..., max_length=SHORT_TEXT), apikey: Optional[str] = Header(None)
) -> JSONResponse:
    if not apikey or not hmac.compare_digest(apikey.encode(), env("ANON_KEY").encode()):  # constant time
        return JSONResponse(status_code=401, content={"message": "Invalid API key"})
    if grant_type != "password":
        return JSONResponse(status_code=400, content={"error": "unsupported_grant_type", "error_description": "only grant_type=password"})
    row = await with_db(request, lambda c: c.fetchrow("SELECT id, email, password_hash FROM sandbox_users WHERE email = $1", grant.email))
    if not verify_login(row["password_hash"] if row is not None else None, grant.password):
        return JSONResponse(status_code=400, content={"error": "invalid_grant", "error_description": "Invalid login credentials"})
    token = issue_token(env("SUPABASE_JWT_SECRET"), str(row["id"]), row["email"])
    return JSONResponse(
        {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": 3600,
            "refresh_token": uuid.uuid4().hex,
            "user": {"id": str(row["id"]), "email": row["email"], "aud": "authenticated", "role": "authenticated"},
        }
    )


async def current_agency(request: Request, authorization: Optional[str] = Header(None), x_agency_id: Optional[str] = Header(None)) -> uuid.UUID:
    """Bearer JWT → user → agency (x-agency-id with membership, agency_id claim, or the single membership)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise HTTPException(401, "Not authenticated")
    try:
        claims = verify_token(authorization.split(" ", 1)[1].strip(), env("SUPABASE_JWT_SECRET"), os.environ.get("JWT_AUDIENCE") or "authenticated")
    except AuthFailure as exc:
        raise HTTPException(401, str(exc)) from None
    try:
        user_id = uuid.UUID(str(claims.get("sub")))
    except ValueError:
        raise HTTPException(401, "Invalid authentication token") from None
    memberships = await with_db(request, lambda c: c.fetch("SELECT agency_id FROM agency_members WHERE user_id = $1", user_id))
    agencies = [r["agency_id"] for r in memberships]
    wanted = x_agency_id or claims.get("agency_id")
    if wanted:
        try:
            agency = uuid.UUID(str(wanted))
        except ValueError:
            raise HTTPException(403, "Not a member of this agency") from None
        if agency not in agencies:
            raise HTTPException(403, "Not a member of this agency")
        return agency
    if len(agencies) == 1:
        return agencies[0]
    raise HTTPException(403, "Choose an agency with the x-agency-id header" if agencies else "User has no agency membership")
