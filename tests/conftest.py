"""Shared fixtures. Service fixtures (real Redis / PostgreSQL) live in `_services.py`."""

from __future__ import annotations

import pytest

from sessionward.clock import ManualClock

pytest_plugins = ["_services"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sqlite_store(tmp_path):
    """The default store: SQLite in a temporary file."""
    from sessionward.stores.sql import SQLStore

    store = SQLStore.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.close()
