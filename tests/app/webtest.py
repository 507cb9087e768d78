"""Helpers for driving the reference service through Flask's test client (fixtures are in conftest.py).

A module of its own, not conftest: `from conftest import` picks whichever conftest was imported last."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sessionward.clock import ManualClock
from sessionward.flask import state

PASSWORD = "correct horse battery staple"
BASE = "https://localhost"


@dataclass
class Web:
    app: object
    clock: ManualClock

    def client(self):
        return self.app.test_client()  # type: ignore[attr-defined]

    def raw_client(self):
        """No cookie jar: the Cookie header is exactly what the test sends."""
        return self.app.test_client(use_cookies=False)  # type: ignore[attr-defined]

    @property
    def state(self):
        with self.app.app_context():  # type: ignore[attr-defined]
            return state()

    def add_user(self, name: str, password: str = PASSWORD):
        return self.state.users.create(name, password)

    def management(self):
        """A test client of the management listener's app (metrics, detailed health) over this app's stores."""
        return management_client(self.app)


def management_client(app):
    from werkzeug.test import Client

    from sessionward.app.management import health_checks, management_app

    with app.app_context():
        st = state()
        return Client(management_app(health_checks(st.store, st.users)))


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token in the page"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD, *, follow: bool = False):
    page = client.get("/login", base_url=BASE)
    token = form_token(page.get_data(as_text=True))
    return client.post(
        "/login",
        base_url=BASE,
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=follow,
    )


def page_token(client, path: str = "/dashboard") -> str:
    return form_token(client.get(path, base_url=BASE).get_data(as_text=True))
