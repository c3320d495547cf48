"""The five platforms of the contract. Real partner APIs differ in paths and payloads;
each adapter keeps those differences in one class."""

from __future__ import annotations

from pmsops.sync.adapters.base import HttpPlatformAdapter
from pmsops.sync.errors import ValidationFailed


class AirbnbAdapter(HttpPlatformAdapter):
    name = "airbnb"
    availability_path = "/v2/listings/{listing}/calendar"
    prices_path = "/v2/listings/{listing}/pricing"
    reservations_path = "/v2/listings/{listing}/reservations"


class BookingComAdapter(HttpPlatformAdapter):
    name = "booking_com"
    availability_path = "/hotels/{listing}/availability"
    prices_path = "/hotels/{listing}/rates"
    reservations_path = "/hotels/{listing}/reservations"


class ExpediaAdapter(HttpPlatformAdapter):
    name = "expedia"
    availability_path = "/properties/{listing}/availability"
    prices_path = "/properties/{listing}/rates"
    reservations_path = "/properties/{listing}/bookings"


class FewoDirektAdapter(HttpPlatformAdapter):
    name = "fewo_direkt"


class GoogleAdapter(HttpPlatformAdapter):
    name = "google"
    availability_path = "/v1/properties/{listing}/availability"
    prices_path = "/v1/properties/{listing}/prices"
    reservations_path = "/v1/properties/{listing}/bookings"


ADAPTERS: dict[str, type[HttpPlatformAdapter]] = {
    cls.name: cls for cls in (AirbnbAdapter, BookingComAdapter, ExpediaAdapter, FewoDirektAdapter, GoogleAdapter)
}


def adapter_for(
    platform: str, base_url: str | None, token: str | None, client, timeout: float = 30.0, idempotency_key: str | None = None
) -> HttpPlatformAdapter:
    if platform not in ADAPTERS:
        raise ValidationFailed(f"unknown platform {platform!r} (expected one of {', '.join(ADAPTERS)})")
    if not base_url:
        raise ValidationFailed(f"no API URL configured for {platform}: set PLATFORM_URL_{platform.upper()} or PLATFORM_BASE_URL")
    return ADAPTERS[platform](base_url, token, client, timeout, idempotency_key)
