"""The adapter interface and the HTTP status → sync error mapping of the contract.

401/403 authentication, 404 not found, 429 rate limited (``Retry-After``
honoured), 400/422 validation, ≥500 platform error; 30 s timeout.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pmsops.http_status import retry_after_seconds
from pmsops.sync.errors import (
    NotFound,
    PlatformAuthError,
    PlatformTimeout,
    PlatformUnavailable,
    RateLimited,
    SyncError,
    ValidationFailed,
)


def idempotency_key(operation: str, method: str, path: str, body: Any) -> str:
    """What is pushed, named: the operation (its task id, the same on every attempt, re-send and redelivery)
    and a digest of the request, so a platform that honours the header applies a duplicated push once, and a
    response it replays for that key can never stand for other data (an attempt that re-read changed prices
    sends another key)."""
    import hashlib
    import json

    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    return f"{operation}:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


@dataclass(frozen=True)
class AvailabilityRange:
    """Nights ``start`` (inclusive) to ``end`` (exclusive)."""

    start: date
    end: date
    available: bool
    min_stay: int | None = None
    max_stay: int | None = None

    def to_json(self) -> dict[str, Any]:
        # the fields in their order, as dataclasses.asdict gave them (without its deep copy of each value)
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "available": self.available,
            "min_stay": self.min_stay,
            "max_stay": self.max_stay,
        }


@dataclass(frozen=True)
class NightlyPrice:
    night: date
    price: str
    currency: str = "EUR"

    def to_json(self) -> dict[str, Any]:
        return {"date": self.night.isoformat(), "price": self.price, "currency": self.currency}


@dataclass(frozen=True)
class ExternalBooking:
    external_id: str
    check_in: date
    check_out: date
    status: str = "confirmed"
    guest_name: str | None = None


class PlatformAdapter(abc.ABC):
    """What every platform integration offers the sync tasks."""

    name: str

    @abc.abstractmethod
    async def push_availability(self, listing_id: str, ranges: list[AvailabilityRange]) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def push_prices(self, listing_id: str, prices: list[NightlyPrice]) -> dict[str, Any]: ...

    @abc.abstractmethod
    async def fetch_bookings(self, listing_id: str, since: datetime) -> list[ExternalBooking]: ...


def safe_snippet(body: str, token: str | None = None) -> str:
    """What of a platform's error body may be stored in a sync log (which the API serves
    and the CLI prints): its error/message/detail fields, short, redacted, never our token."""
    import json

    from pmsops.redaction import MASK, redact
    from pmsops.visible import visible

    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        text = " ".join(str(data[k]) for k in ("error", "message", "detail", "error_description") if data.get(k) is not None)
    else:
        text = "non-JSON body" if body.strip() else "empty body"
    text = " ".join(text.split())
    if token and len(token) >= 4:
        text = text.replace(token, MASK)
    return visible(redact(text), one_line=True)[:120]  # cleaned where it enters: the log is read by terminals and the API


def error_for_status(platform: str, status: int, body: str, retry_after: str | None = None, token: str | None = None) -> SyncError | None:
    """The sync error an HTTP status means, or None for success (whose body is not read here)."""
    if status < 400:
        return None
    snippet = safe_snippet(body, token)
    where = f"{platform} answered HTTP {status}"
    if status in (401, 403):
        return PlatformAuthError(f"{where}: the platform rejected our credentials ({snippet})")
    if status == 404:
        return NotFound(f"{where}: listing or resource not found ({snippet})")
    if status == 429:
        return RateLimited(f"{where}: rate limited", retry_after=retry_after_seconds(retry_after))
    if status >= 500:
        return PlatformUnavailable(f"{where} ({snippet})")
    return ValidationFailed(f"{where}: the platform rejected the request ({snippet})")


class HttpPlatformAdapter(PlatformAdapter):
    """A JSON-over-HTTP platform API; subclasses name the platform and its paths."""

    name = "generic"
    availability_path = "/listings/{listing}/availability"
    prices_path = "/listings/{listing}/prices"
    reservations_path = "/listings/{listing}/reservations"

    def __init__(self, base_url: str, token: str | None, client, timeout: float = 30.0, idempotency_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._client = client
        self._timeout = timeout
        self._idempotency_key = idempotency_key

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpcore

        from pmsops.sync.http import TRANSPORT_ERRORS

        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if self._idempotency_key:
            headers["Idempotency-Key"] = idempotency_key(self._idempotency_key, method, path, kwargs.get("json"))
        try:
            response = await self._client.request(method, self.base_url + path, headers=headers, timeout=self._timeout, **kwargs)
        except httpcore.TimeoutException as exc:
            raise PlatformTimeout(f"{self.name} did not answer within {self._timeout:g} s ({type(exc).__name__})") from None
        except TRANSPORT_ERRORS as exc:
            raise PlatformUnavailable(f"{self.name} unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            raise error_for_status(self.name, response.status_code, response.text, response.headers.get("retry-after"), self._token)
        try:
            return response.json() if response.content else {}
        except ValueError:
            raise PlatformUnavailable(f"{self.name} answered HTTP {response.status_code} with a non-JSON body") from None

    async def push_availability(self, listing_id: str, ranges: list[AvailabilityRange]) -> dict[str, Any]:
        body = {"listing_id": listing_id, "ranges": [r.to_json() for r in ranges]}
        return await self._request("PUT", self.availability_path.format(listing=listing_id), json=body)

    async def push_prices(self, listing_id: str, prices: list[NightlyPrice]) -> dict[str, Any]:
        body = {"listing_id": listing_id, "currency": prices[0].currency if prices else "EUR", "prices": [p.to_json() for p in prices]}
        return await self._request("PUT", self.prices_path.format(listing=listing_id), json=body)

    async def fetch_bookings(self, listing_id: str, since: datetime) -> list[ExternalBooking]:
        data = await self._request("GET", self.reservations_path.format(listing=listing_id), params={"since": since.isoformat()})
        items = data.get("reservations", data) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ValidationFailed(f"{self.name} returned reservations in an unexpected shape")
        try:
            return [
                ExternalBooking(
                    external_id=str(item["id"]),
                    check_in=date.fromisoformat(item["check_in"]),
                    check_out=date.fromisoformat(item["check_out"]),
                    status=str(item.get("status", "confirmed")),
                    guest_name=item.get("guest_name"),
                )
                for item in items
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationFailed(f"{self.name} returned a reservation without valid id/check_in/check_out ({type(exc).__name__}: {exc})") from None
