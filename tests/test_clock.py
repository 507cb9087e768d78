"""The clock and the one timestamp format."""

from __future__ import annotations

from sessionward.clock import ManualClock, iso_utc


def test_iso_utc_is_iso_8601_utc_to_the_second() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    assert iso_utc(1_800_000_000.9) == "2027-01-15T08:00:00Z"  # truncated, never rounded into the next second


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(100.0)
    assert clock.now() == 100.0
    clock.advance(5)
    assert clock.now() == 105.0
    clock.set(7)
    assert clock.now() == 7.0
