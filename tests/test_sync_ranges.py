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
