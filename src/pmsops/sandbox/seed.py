"""Seed data for the reference stack: two agencies, properties, rates, bookings,
connections on several platforms, and one user per agency."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from importlib import resources
from typing import Any

from pmsops.sandbox.auth import hash_password
from pmsops.sync.crypto import encrypt


async def apply_sandbox_schema(conn) -> None:
    await conn.execute(resources.files("pmsops.sandbox").joinpath("schema.sql").read_text(encoding="utf-8"))


async def seed(conn, encryption_key: str, users: dict[str, str]) -> dict[str, Any]:
    """Insert the demo world; ``users`` maps e-mail → password (first: agency A, second: agency B)."""
    today = date.today()
    agency_a, agency_b = uuid.uuid4(), uuid.uuid4()
    props = {
        "seeblick": (uuid.uuid4(), agency_a, "Seeblick Apartment"),
        "duenenhaus": (uuid.uuid4(), agency_a, "Dünenhaus"),
        "bergchalet": (uuid.uuid4(), agency_b, "Bergchalet"),
    }
    connections = [
        ("airbnb", "seeblick", agency_a, "active"),
        ("booking_com", "duenenhaus", agency_a, "active"),
        ("expedia", "seeblick", agency_a, "active"),
        ("fewo_direkt", "duenenhaus", agency_a, "paused"),
        ("google", "bergchalet", agency_b, "active"),
    ]
    ids: dict[str, Any] = {
        "agencies": {"a": str(agency_a), "b": str(agency_b)},
        "connections": [],
        "listings": {},
        "properties": {key: {"id": str(pid), "agency": "a" if agency == agency_a else "b"} for key, (pid, agency, _) in props.items()},
    }
    async with conn.transaction():
        await conn.execute("INSERT INTO agencies (id, name) VALUES ($1, 'Kolibri Ferienwohnungen'), ($2, 'Alpen Chalets')", agency_a, agency_b)
        await _properties(conn, props, today)
        await _connections(conn, connections, props, agency_a, encryption_key, ids)
        for (email, password), agency in zip(users.items(), (agency_a, agency_b)):
            uid = uuid.uuid4()
            await conn.execute("INSERT INTO sandbox_users (id, email, password_hash) VALUES ($1, $2, $3)", uid, email, hash_password(password))
            await conn.execute("INSERT INTO agency_members (user_id, agency_id) VALUES ($1, $2)", uid, agency)
    return ids


async def _properties(conn, props: dict[str, tuple], today: date) -> None:
    """The properties, 120 nights of rates each (weekends dearer), and two direct bookings at Seeblick."""
    for pid, agency, name in props.values():
        await conn.execute("INSERT INTO properties (id, agency_id, name) VALUES ($1, $2, $3)", pid, agency, name)
        await conn.executemany(
            "INSERT INTO nightly_rates (property_id, night, price, min_stay) VALUES ($1, $2, $3, 2)",
            [(pid, today + timedelta(days=d), 90 + (d % 7) * 10 + (30 if (today + timedelta(days=d)).weekday() >= 4 else 0)) for d in range(120)],
        )
    for start, nights, ref in ((3, 4, "DIRECT-1001"), (15, 7, "DIRECT-1002")):
        await conn.execute(
            "INSERT INTO bookings (property_id, platform, external_id, guest_name, check_in, check_out) VALUES ($1, 'direct', $2, 'Guest', $3, $4)",
            props["seeblick"][0],
            ref,
            today + timedelta(days=start),
            today + timedelta(days=start + nights),
        )


async def _connections(conn, connections: list[tuple], props: dict[str, tuple], agency_a, encryption_key: str, ids: dict[str, Any]) -> None:
    """One channel connection per row, each with its own encrypted partner token; recorded in ``ids``."""
    for index, (platform, prop, agency, status) in enumerate(connections):
        cid, listing = uuid.uuid4(), f"{platform.upper()}-{1000 + index}"
        await conn.execute(
            """INSERT INTO channel_connections
               (id, agency_id, property_id, platform_type, platform_listing_id, status, access_token_encrypted, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))""",
            cid,
            agency,
            props[prop][0],
            platform,
            listing,
            status,
            encrypt(f"{platform}-partner-token-{uuid.uuid4().hex[:12]}", encryption_key),
            float(index),
        )
        ids["connections"].append(
            {"id": str(cid), "platform": platform, "agency": "a" if agency == agency_a else "b", "status": status, "listing": listing}
        )
        ids["listings"][platform] = listing


def demo_reservations(today: date | None = None) -> list[dict[str, Any]]:
    """What the fake platform serves for the first Airbnb listing: one booking, one double booking."""
    today = today or date.today()
    return [
        {
            "id": "HMABC123",
            "check_in": (today + timedelta(days=30)).isoformat(),
            "check_out": (today + timedelta(days=33)).isoformat(),
            "guest_name": "A. Lovelace",
        },
        {
            "id": "HMDBL999",
            "check_in": (today + timedelta(days=16)).isoformat(),
            "check_out": (today + timedelta(days=18)).isoformat(),
            "guest_name": "C. Babbage",
        },
    ]
