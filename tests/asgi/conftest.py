"""Fixtures for the ASGI adapter's tests: a small FastAPI app over real SQLite stores."""

from __future__ import annotations

import pytest
from asgiapp import client, make_app  # type: ignore[import-not-found]

from sessionward.clock import ManualClock


@pytest.fixture
def asgi(tmp_path):
    """A started client (lifespan run, so the stores are closed at the end) of the test app."""
    clock = ManualClock()
    app = make_app(tmp_path, clock)
    app.state.clock = clock
    with client(app) as c:
        yield c
