"""One injectable clock, so that expiry is tested without sleeping."""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock", "iso_utc"]


def iso_utc(ts: float) -> str:
    """`ts` (seconds since the epoch) as ISO 8601 UTC to the second, e.g. `2027-01-15T08:00:00Z`."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...


class SystemClock:
    """The wall clock, in whole milliseconds (`ms / 1000`): the Redis store keeps such times in 6 bytes instead of
    8 (`sessionward.stores._redis_record`), and nothing needs a finer one."""

    def now(self) -> float:
        return time.time_ns() // 1_000_000 / 1000


class ManualClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._t = float(start)

    def now(self) -> float:
        return self._t

    def advance(self, seconds: float) -> None:
        self._t += seconds

    def set(self, t: float) -> None:
        self._t = float(t)
