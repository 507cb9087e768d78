"""Shared fixtures. Service fixtures (real Redis / PostgreSQL) live in `_services.py`."""

from __future__ import annotations

import pytest

from sessionward.clock import ManualClock

pytest_plugins = ["_services"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
