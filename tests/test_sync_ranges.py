"""Availability ranges: the collapse that looks only at change points equals the night-by-night definition."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from pmsops.sync.adapters import AvailabilityRange
from pmsops.sync.store import collapse_nights

START = date(2026, 3, 1)


def night_by_night(start: date, end: date, bookings, stays) -> list[AvailabilityRange]:
    """The definition: every night's (available, min_stay, max_stay), equal neighbours merged."""
    ranges: list[AvailabilityRange] = []
    night = start
    while night < end:
        key = (not any(a <= night < b for a, b in bookings), *stays.get(night, (None, None)))
        if ranges and (ranges[-1].available, ranges[-1].min_stay, ranges[-1].max_stay) == key:
            ranges[-1] = AvailabilityRange(ranges[-1].start, night + timedelta(days=1), *key)
        else:
            ranges.append(AvailabilityRange(night, night + timedelta(days=1), *key))
        night += timedelta(days=1)
    return ranges


offsets = st.integers(min_value=-20, max_value=60)
stay = st.tuples(st.none() | st.integers(1, 3), st.none() | st.integers(7, 8))


@settings(max_examples=300, deadline=None)
@given(
    days=st.integers(min_value=0, max_value=40),
    bookings=st.lists(st.tuples(offsets, st.integers(min_value=1, max_value=15)), max_size=6),
    stays=st.dictionaries(offsets, stay, max_size=25),
)
def test_collapse_equals_the_night_by_night_definition(days, bookings, stays):
    end = START + timedelta(days=days)
    stays_by_night = {START + timedelta(days=i): s for i, s in stays.items()}
    booked = [(START + timedelta(days=a), START + timedelta(days=a + n)) for a, n in bookings]

    assert collapse_nights(START, end, booked, stays_by_night) == night_by_night(START, end, booked, stays_by_night)


def test_a_property_without_bookings_or_limits_is_one_available_range():
    assert collapse_nights(START, START + timedelta(days=90), [], {}) == [AvailabilityRange(START, START + timedelta(days=90), True)]


def _start_with_preload(database_url: str, connection_id: str, operation: str):
    """The task's first statement with the operation's preload, and the operation's own queries, on one connection."""
    from pmsops.sync import logs, store

    from sync_helpers import run

    window = store.window(90)

    async def go(conn):
        row, _ = await logs.claim(conn, "no-such-task", connection_id, 0, "t#1", 30.0, {}, preload=store.PRELOADS[operation], preload_args=window)
        ranges = await store.availability_ranges(conn, row["property_id"], *window)
        prices = await store.nightly_prices(conn, row["property_id"], *window)
        return row, ranges, prices

    return window, *run(database_url, go)


def test_the_first_statement_reads_what_availability_and_pricing_read_themselves(sync_db):
    from pmsops.sync import store

    from sync_helpers import seed_connection

    ids = seed_connection(sync_db, bookings=[(2, 3), (40, 5), (88, 10)], rates_days=30)
    (start, end), row, ranges, _ = _start_with_preload(sync_db, ids["connection_id"], "availability")
    assert store.preloaded_ranges(row, start, end) == ranges
    assert [r.available for r in ranges].count(False) == 3 and ranges[0].min_stay == 2

    _, row, _, prices = _start_with_preload(sync_db, ids["connection_id"], "pricing")
    assert store.preloaded_prices(row) == prices and len(prices) == 30


def test_the_first_statement_reads_nothing_of_a_property_of_another_agency(sync_db):
    from sync_helpers import seed_cross_tenant_connection

    ids = seed_cross_tenant_connection(sync_db)
    _, row, ranges, _ = _start_with_preload(sync_db, ids["connection_id"], "availability")
    assert row["property_agency_id"] != row["agency_id"]
    assert (row["pre_booked_in"], row["pre_stay_nights"], row["pre_min_stays"]) == (None, None, None)
