"""``db check``: the schema drift the runbook names as a cause of 503s.

Missing tables, missing columns, and CHECK constraints that reject an operation
type or status the code writes. Constraints are probed, not parsed: inside a
transaction that is rolled back we insert a log row per value with a connection
id that does not exist. A CHECK violation (23514) means the value is rejected; a
foreign-key violation (23503) means the CHECK let it through. Nothing is written.
"""

from __future__ import annotations

import uuid

from pmsops import results
from pmsops.results import Result

EXPECTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "channel_connections": (
        "id",
        "agency_id",
        "property_id",
        "platform_type",
        "platform_listing_id",
        "status",
        "platform_metadata",
        "access_token_encrypted",
        "refresh_token_encrypted",
        "last_sync_at",
        "created_at",
        "updated_at",
        "deleted_at",
    ),
    "channel_sync_logs": (
        "id",
        "tenant_id",
        "connection_id",
        "operation_type",
        "direction",
        "status",
        "details",
        "error",
        "task_id",
        "batch_id",
        "created_at",
        "updated_at",
    ),
    "properties": ("id", "agency_id", "name"),
    "bookings": ("id", "property_id", "platform", "external_id", "check_in", "check_out", "status"),
    "nightly_rates": ("property_id", "night", "price", "currency"),
}
OPERATION_TYPES = ("full_sync", "availability_update", "pricing_update", "bookings_import", "bookings_sync")
LOG_STATUSES = ("triggered", "queued", "running", "success", "failed", "cancelled")


async def _columns(conn) -> dict[str, set[str]]:
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ANY($1::text[])",
        list(EXPECTED_COLUMNS),
    )
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["table_name"], set()).add(row["column_name"])
    return found


async def _rejected_values(conn, column: str, values: tuple[str, ...]) -> list[str]:
    """Values of ``column`` that a CHECK constraint of channel_sync_logs rejects."""
    import asyncpg

    rejected = []
    tr = conn.transaction()
    await tr.start()
    try:
        for value in values:
            row = {"operation_type": "availability_update", "status": "running", column: value}
            try:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO channel_sync_logs (connection_id, operation_type, status) VALUES ($1, $2, $3)",
                        uuid.uuid4(),
                        row["operation_type"],
                        row["status"],
                    )
            except asyncpg.CheckViolationError:
                rejected.append(value)
            except asyncpg.ForeignKeyViolationError:
                pass
    finally:
        await tr.rollback()
    return rejected


async def check_schema(conn) -> list[Result]:
    """One result per table, plus one per probed CHECK constraint."""
    out: list[Result] = []
    found = await _columns(conn)
    for table, expected in EXPECTED_COLUMNS.items():
        if table not in found:
            out.append(results.fail(f"table {table}", "missing", hint="run pmsops db migrate (the backend answers 503 while a table is missing)"))
            continue
        missing = [c for c in expected if c not in found[table]]
        if missing:
            out.append(
                results.fail(
                    f"table {table}",
                    f"missing columns: {', '.join(missing)}",
                    hint="schema out of date: run the backend's migrations (pmsops db migrate for the reference schema)",
                )
            )
        else:
            out.append(results.ok(f"table {table}", f"{len(expected)} expected columns present"))
    if "channel_sync_logs" in found:
        for column, values in (("operation_type", OPERATION_TYPES), ("status", LOG_STATUSES)):
            rejected = await _rejected_values(conn, column, values)
            if rejected:
                out.append(
                    results.fail(
                        f"check {column}",
                        f"a CHECK constraint rejects {', '.join(rejected)}",
                        hint=f"the sync endpoint answers 503 when it writes a log with this {column}: widen the constraint in a migration",
                    )
                )
            else:
                out.append(results.ok(f"check {column}", f"all {len(values)} values accepted"))
    return out
