"""What-if rows: lower bounds that show what the suggested fixes could reach. NOT safe implementations and
not part of sessionward; in-process only, shown apart from the goals.

- `DriverSpeedSQL`: the SQLStore's two request-path reads (`get_by_secret`, `get_epoch`, `is_denied`) done
  with `sqlite3` directly on a per-thread connection with the same SQL and the same liveness condition: what
  a SQL store without SQLAlchemy Core's per-call overhead would cost.
- `LocalRevocation`: `is_denied`, `get_epoch` and the token family (`get`) answered from process memory, as a local cache kept current by
  Redis pub/sub would answer them on the fast path (the real thing must also subscribe before loading, drop the
  cache and fall back to the store, i.e. fail closed, whenever the subscription is down, and have every
  writer publish; none of that is here).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sessionward.stores.base import SessionRecord


class _Proxy:
    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class DriverSpeedSQL(_Proxy):
    _BY_SECRET = ("SELECT id, kind, user_id, created_at, last_seen, auth_at, expires_at, idle_expires_at, epoch, "
                  "secret_hash, generation, salt, user_agent, ip, data FROM sw_sessions "
                  "WHERE secret_hash = ? AND expires_at > ? AND idle_expires_at > ?")

    def __init__(self, store: Any, path: Path) -> None:
        super().__init__(store)
        self._path = str(path)
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        return conn

    def get_by_secret(self, secret_hash: str, *, now: float) -> SessionRecord | None:
        row = self._conn().execute(self._BY_SECRET, (secret_hash, now, now)).fetchone()
        if row is None:
            return None
        return SessionRecord(*row[:14], data=json.loads(row[14]))

    def get_epoch(self, user_id: str) -> int:
        row = self._conn().execute("SELECT epoch FROM sw_epochs WHERE user_id = ?", (user_id,)).fetchone()
        return int(row[0]) if row else 0

    def is_denied(self, jti: str, *, now: float) -> bool:
        return self._conn().execute("SELECT 1 FROM sw_denylist WHERE jti = ? AND until > ?", (jti, now)).fetchone() is not None


class LocalRevocation(_Proxy):
    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self._epochs: dict[str, int] = {}
        self._denied: dict[str, float] = {}
        self._families: dict[str, SessionRecord | None] = {}

    def get(self, session_id: str, *, now: float) -> SessionRecord | None:
        if session_id not in self._families:
            self._families[session_id] = self._store.get(session_id, now=now)
        record = self._families[session_id]
        return record if record is not None and record.is_live(now) else None

    def get_epoch(self, user_id: str) -> int:
        epoch = self._epochs.get(user_id)
        if epoch is None:
            epoch = self._epochs[user_id] = self._store.get_epoch(user_id)
        return epoch

    def is_denied(self, jti: str, *, now: float) -> bool:
        until = self._denied.get(jti)
        return until is not None and until > now


def sqlite_cookie_app(workdir: Path) -> Any:
    from sessionward.flask import state

    from .apps import _sw_cookie_app

    app = _sw_cookie_app(workdir, "sqlite")
    with app.app_context():
        st = state()
        st.sessions.store = DriverSpeedSQL(st.store, workdir / "sw_store.sqlite3")
    return app


def jwt_core_local_app(workdir: Path) -> Any:
    from .apps import _sw_jwt_core_app

    app = _sw_jwt_core_app(workdir, "HS256", "redis")
    service = app.extensions["bench_tokens"]
    service._store = LocalRevocation(service._store)
    return app


def jwt_local_app(workdir: Path) -> Any:
    """The extension's `jwt_required` with revocation answered locally and the user row at driver speed."""
    from sessionward.flask import state, token_service

    from .apps import _sw_jwt_app

    app = _sw_jwt_app(workdir, "HS256", "redis")
    with app.app_context():
        service = token_service()
        service._store = LocalRevocation(service._store)
        _ = state()
    return app
