"""The SQL of the sync operations: what each reads and writes in the channel manager's tables.

No orchestration here (see :mod:`pmsops.sync.operations`): each function takes an
asyncpg connection and returns plain values.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from pmsops.sync.adapters import AvailabilityRange, ExternalBooking, NightlyPrice


def window(days: int) -> tuple[date, date]:
    start = datetime.now(timezone.utc).date()
    return start, start + timedelta(days=days)


async def availability_ranges(conn, property_id, start: date, end: date) -> list[AvailabilityRange]:
    """Collapse nights into ranges: booked (confirmed) nights are unavailable.

    One statement reads both the confirmed stays and the nights' stay limits (one round
    trip, two through a transaction pooler, instead of two or four)."""
    rows = await conn.fetch(
        """SELECT true AS booking, check_in AS day, check_out, NULL::int AS min_stay, NULL::int AS max_stay
             FROM bookings WHERE property_id = $1 AND status = 'confirmed' AND stay && daterange($2, $3, '[)')
           UNION ALL
           SELECT false, night, NULL, min_stay, max_stay FROM nightly_rates WHERE property_id = $1 AND night >= $2 AND night < $3""",
        property_id,
        start,
        end,
    )
    bookings = [(r["day"], r["check_out"]) for r in rows if r["booking"]]
    stays = {r["day"]: (r["min_stay"], r["max_stay"]) for r in rows if not r["booking"]}
    return collapse_nights(start, end, bookings, stays)


AVAILABILITY_PRELOAD = """SELECT b.ins AS pre_booked_in, b.outs AS pre_booked_out, r.nights AS pre_stay_nights, r.mins AS pre_min_stays,
       r.maxs AS pre_max_stays
  FROM (SELECT array_agg(check_in) AS ins, array_agg(check_out) AS outs FROM bookings
         WHERE property_id = c.property_id AND status = 'confirmed' AND stay && daterange($7, $8, '[)')) AS b,
       (SELECT array_agg(night) AS nights, array_agg(min_stay) AS mins, array_agg(max_stay) AS maxs FROM nightly_rates
         WHERE property_id = c.property_id AND night >= $7 AND night < $8) AS r"""
"""What :func:`availability_ranges` reads, as columns of the task's first statement (``$7``, ``$8``: the window)."""

PRICES_PRELOAD = """SELECT array_agg(night ORDER BY night) AS pre_price_nights, array_agg(price ORDER BY night) AS pre_prices,
       array_agg(currency ORDER BY night) AS pre_currencies
  FROM nightly_rates WHERE property_id = c.property_id AND night >= $7 AND night < $8"""
"""What :func:`nightly_prices` reads, as columns of the task's first statement."""

PRELOADS = {"availability": AVAILABILITY_PRELOAD, "pricing": PRICES_PRELOAD}
"""Operation → the rows it needs, read with the log's start (one round trip less per sync)."""


def preloaded_ranges(row: dict[str, Any], start: date, end: date) -> list[AvailabilityRange]:
    """:func:`availability_ranges` from the columns of :data:`AVAILABILITY_PRELOAD`."""
    bookings = list(zip(row["pre_booked_in"] or (), row["pre_booked_out"] or ()))
    stays = dict(zip(row["pre_stay_nights"] or (), zip(row["pre_min_stays"] or (), row["pre_max_stays"] or ())))
    return collapse_nights(start, end, bookings, stays)


def preloaded_prices(row: dict[str, Any]) -> list[NightlyPrice]:
    """:func:`nightly_prices` from the columns of :data:`PRICES_PRELOAD`."""
    return [
        NightlyPrice(n, str(p), c.strip()) for n, p, c in zip(row["pre_price_nights"] or (), row["pre_prices"] or (), row["pre_currencies"] or ())
    ]


_NO_STAY = (None, None)


def collapse_nights(
    start: date, end: date, bookings: list[tuple[date, date]], stays: dict[date, tuple[int | None, int | None]]
) -> list[AvailabilityRange]:
    """Nights ``start`` … ``end`` (exclusive) as ranges of equal (available, min_stay, max_stay).

    A night is unavailable when a booking's [check-in, check-out) covers it. Only the nights
    where something may change are looked at (booking edges, nights with stay limits and the
    night after each), not every night of the window: a property without bookings or limits
    is one range whatever the window."""
    first, days = start.toordinal(), (end - start).days
    booked: set[int] = set()
    points = {0, days}
    for check_in, check_out in bookings:
        a, b = max(check_in.toordinal() - first, 0), min(check_out.toordinal() - first, days)
        if a < b:
            booked.update(range(a, b))
            points.update((a, b))
    limits = {}
    for night, stay in stays.items():
        i = night.toordinal() - first
        if 0 <= i < days:
            limits[i] = stay
            points.update((i, i + 1))
    ranges: list[AvailabilityRange] = []
    edges = sorted(points)
    key = None
    opened = 0
    for i in edges[:-1]:
        here = (i not in booked, *limits.get(i, _NO_STAY))
        if here != key:
            if key is not None:
                ranges.append(AvailabilityRange(date.fromordinal(first + opened), date.fromordinal(first + i), *key))
            key, opened = here, i
    if key is not None:
        ranges.append(AvailabilityRange(date.fromordinal(first + opened), end, *key))
    return ranges


async def nightly_prices(conn, property_id, start: date, end: date) -> list[NightlyPrice]:
    rows = await conn.fetch(
        "SELECT night, price, currency FROM nightly_rates WHERE property_id = $1 AND night >= $2 AND night < $3 ORDER BY night",
        property_id,
        start,
        end,
    )
    return [NightlyPrice(r["night"], str(r["price"]), r["currency"].strip()) for r in rows]


async def import_bookings(conn, property_id, platform: str, bookings: list[ExternalBooking]) -> dict[str, Any]:
    """Upsert by (platform, external id); an overlap with a confirmed booking is stored as a conflict."""
    import asyncpg

    created = updated = unchanged = 0
    conflicts: list[dict[str, Any]] = []
    for booking in bookings:
        status = booking.status if booking.status in ("confirmed", "tentative", "cancelled") else "confirmed"
        args = (property_id, platform, booking.external_id, booking.guest_name, booking.check_in, booking.check_out)
        try:
            async with conn.transaction():
                row = await conn.fetchrow(
                    """INSERT INTO bookings (property_id, platform, external_id, guest_name, check_in, check_out, status)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)
                       ON CONFLICT (platform, external_id) DO UPDATE SET guest_name = EXCLUDED.guest_name,
                           check_in = EXCLUDED.check_in, check_out = EXCLUDED.check_out, status = EXCLUDED.status, updated_at = now()
                       WHERE (bookings.guest_name, bookings.check_in, bookings.check_out, bookings.status)
                             IS DISTINCT FROM (EXCLUDED.guest_name, EXCLUDED.check_in, EXCLUDED.check_out, EXCLUDED.status)
                       RETURNING (xmax = 0) AS inserted""",
                    *args,
                    status,
                )
        except asyncpg.ExclusionViolationError:
            conflicts.append(await _store_conflict(conn, booking, property_id, platform))
            continue
        if row is None:
            unchanged += 1
        elif row["inserted"]:
            created += 1
        else:
            updated += 1
    return {"received": len(bookings), "created": created, "updated": updated, "unchanged": unchanged, "conflicts": conflicts}


async def _store_conflict(conn, booking: ExternalBooking, property_id, platform: str) -> dict[str, Any]:
    """Keep the overlapping booking (status 'conflict') and say which confirmed booking it hits."""
    await conn.execute(
        """INSERT INTO bookings (property_id, platform, external_id, guest_name, check_in, check_out, status)
           VALUES ($1, $2, $3, $4, $5, $6, 'conflict')
           ON CONFLICT (platform, external_id) DO UPDATE SET check_in = EXCLUDED.check_in, check_out = EXCLUDED.check_out,
               status = 'conflict', updated_at = now()""",
        property_id,
        platform,
        booking.external_id,
        booking.guest_name,
        booking.check_in,
        booking.check_out,
    )
    existing = await conn.fetchrow(
        """SELECT id, platform, external_id FROM bookings WHERE property_id = $1 AND status = 'confirmed'
           AND stay && daterange($2, $3, '[)') LIMIT 1""",
        property_id,
        booking.check_in,
        booking.check_out,
    )
    return {
        "external_id": booking.external_id,
        "check_in": booking.check_in.isoformat(),
        "check_out": booking.check_out.isoformat(),
        "overlaps_booking_id": str(existing["id"]) if existing else None,
        "overlaps": f"{existing['platform'] or 'direct'}:{existing['external_id']}" if existing and existing["external_id"] else None,
    }


CURSOR_OVERLAP = timedelta(minutes=10)
"""Fetch a little before the last fetch began: imports are idempotent, clocks drift."""


def bookings_cursor(row: dict[str, Any]) -> datetime | None:
    """Where the next bookings pull starts: set only by bookings pulls, at fetch start.

    Not ``last_sync_at``: a pricing push finishing after a pull would move that
    forward, and the next pull would skip the bookings made in between."""
    meta = row.get("platform_metadata") or {}
    if isinstance(meta, str):
        import json

        meta = json.loads(meta)
    value = meta.get("bookings_cursor") if isinstance(meta, dict) else None
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


async def save_bookings_cursor(conn, connection_id, when: datetime) -> None:
    await conn.execute(
        "UPDATE channel_connections SET platform_metadata = platform_metadata || jsonb_build_object('bookings_cursor', $2::text) WHERE id = $1",
        connection_id,
        when.isoformat(),
    )
