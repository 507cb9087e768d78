"""Fixtures for the reference service through Flask's test client, on a temporary instance folder (SQLite)."""

from __future__ import annotations

import pytest
from webtest import Web  # type: ignore[import-not-found]

from sessionward.app import create_app
from sessionward.clock import ManualClock


@pytest.fixture
def web(tmp_path) -> Web:
    clock = ManualClock()
    app = create_app(tmp_path / "instance", clock=clock)
    return Web(app, clock)


@pytest.fixture
def alice(web):
    return web.add_user("alice")
