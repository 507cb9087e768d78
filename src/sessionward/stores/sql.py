# GENERATED from src/sessionward/aio/stores/sql.py by scripts/gen_sync.py: edit that file, not this one.
"""The SQL store: SQLite (the default, one machine) and PostgreSQL (several machines), with the same
SQLAlchemy Core code for both.

Atomicity comes from single statements or from row locks held for one transaction, never from an unlocked
read-then-write in Python:
- `advance` is one `UPDATE ... WHERE generation = :expected` (the row count says who won);
- `replace` deletes the old row (only if live) and inserts the new one in one transaction;
- `bump_epoch` and `deny` are one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`, which both SQLite
  (>= 3.35) and PostgreSQL run atomically;
- `use_once` is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE until <= :now` `RETURNING` (a row comes back only
  when this call made the use: a live row is left alone); on SQLite on disk it runs on a side file beside the
  database (`sessionward.oncefile.once_file`), so that a DPoP request neither waits for the database's write lock
  nor drops the remembered per-request reads;
- `throttle_update` is one transaction with row locks: it first makes sure every counter row exists
  (`INSERT ... ON CONFLICT DO NOTHING`, a write, so SQLite takes its write lock at once and never upgrades a
  read), locks the rows in key order (`SELECT ... FOR UPDATE` on PostgreSQL: no deadlock), reads, decides,
  writes and commits; a refused decision rolls back. Concurrent updates queue on the locks: no retries.

Every statement that may read or change a session carries the liveness condition
(`expires_at > now AND idle_expires_at > now`), so an expired row is never returned or changed and
`update`/`advance`/`replace` never resurrect one. `data` is stored as JSON text, never pickled.
Driver errors that mean "cannot reach the database" become `StoreUnavailable` (see `db`). The tables and the
mapping of records to rows are in `_sqltables`.

Async (`AsyncSQLStore`, this module, on SQLAlchemy's async engine) and sync (`SQLStore`, generated from it).
The per-request reads skip SQLAlchemy's per-call work (`sessionward.hotsql`, one hand-written module per flavour).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from sessionward import db
from sessionward._sqlflavour import construct_now
from sessionward.exceptions import CreateError
from sessionward.hotsql import HotReads
from sessionward.stores._sqltables import (
    TABLES,
    _by_secret_answer,
    _denied_answer,
    _hash_bytes,
    _hot_statements,
    _live,
    _record_to_row,
    _row_to_record,
    _state,
    _token_answer,
    _update_values,
    denylist,
    epochs,
    once,
    sessions,
    throttle,
)
from sessionward.stores.base import SessionRecord, ThrottleDecision, ThrottleState, TokenState

__all__ = ["SQLStore", "denylist", "epochs", "once", "sessions", "throttle"]

_COMPONENT = "store"
_WHAT = "session store (SQL)"


class _Refused(Exception):
    """The throttle decision writes nothing: roll back the placeholder rows."""


class SQLStore:
    """The session store on SQLite or PostgreSQL (`AsyncSQLStore` for asyncio, `SQLStore` sync).

    `open(engine)` (sync: also the constructor) uses an engine from the same flavour's `db.make_engine` (shared
    with the users table and key set if wanted); `from_url(url)` makes its own and
    disposes of it on `close()`. Both create the tables on first start (`create_schema=False` skips that).
    Raises `StoreUnavailable` if the database cannot be reached, `ConfigError` for a bad URL or a schema newer
    than this release. An async constructor cannot await: `AsyncSQLStore(engine)` leaves the tables to `open`,
    `from_url` or `ensure_schema`.
    """

    def __init__(self, engine: Engine, *, create_schema: bool = True, _owns_engine: bool = False) -> None:
        self._engine = engine
        self._owns_engine = _owns_engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._schema_pending = create_schema and not construct_now(db.ensure_schema, engine, _COMPONENT, TABLES)
        self._hot = HotReads(engine, what=_WHAT)
        self._by_secret_sql, self._token_sql, self._denied_sql = _hot_statements(engine)

    @classmethod
    def open(cls, engine: Engine, *, create_schema: bool = True) -> SQLStore:
        """A store on `engine` (not disposed of by `close()`), its tables created. Raises `StoreUnavailable`."""
        store = cls(engine, create_schema=create_schema)
        store.ensure_schema()
        return store

    @classmethod
    def from_url(cls, url: str, *, connect_timeout: float = 5.0, create_schema: bool = True) -> SQLStore:
        """Open `sqlite:///path` or `postgresql://...`. Raises `ConfigError`, `StoreUnavailable`."""
        engine = db.make_engine(url, connect_timeout=connect_timeout)
        try:
            store = cls(engine, create_schema=create_schema, _owns_engine=True)
            store.ensure_schema()
        except BaseException:
            engine.dispose()
            raise
        return store

    def ensure_schema(self) -> None:
        """Create the tables if they are missing and the constructor did not (idempotent)."""
        if self._schema_pending:
            db.ensure_schema(self._engine, _COMPONENT, TABLES)
            self._schema_pending = False

    @property
    def engine(self) -> Engine:
        return self._engine

    def _begin(self) -> Any:
        return db.begin(self._engine, _WHAT)

    # -- the session registry ---------------------------------------------------------------
    def create(self, record: SessionRecord, *, now: float) -> None:
        try:
            with self._begin() as conn:
                conn.execute(sessions.insert().values(**_record_to_row(record)))
        except sa.exc.IntegrityError:
            raise CreateError("a session with this id or secret exists already") from None

    def _get_where(self, cond: sa.ColumnElement[bool], now: float) -> SessionRecord | None:
        with self._begin() as conn:
            row = (conn.execute(sa.select(sessions).where(cond, _live(now)))).first()
        return None if row is None else _row_to_record(row)

    def get(self, session_id: str, *, now: float) -> SessionRecord | None:
        return self._get_where(sessions.c.id == session_id, now)

    def get_by_secret(self, secret_hash: str, *, now: float) -> SessionRecord | None:
        raw = _hash_bytes(secret_hash)
        return None if raw is None else self._get_where(sessions.c.secret_hash == raw, now)

    def load_by_secret(self, secret_hash: str, *, now: float) -> tuple[SessionRecord | None, int]:
        """One statement: the record joined with its user's epoch (answered from memory while the
        database is unchanged; see `HotReads.one_cached`)."""
        raw = _hash_bytes(secret_hash)
        if raw is None:
            return None, 0
        record, epoch = self._hot.one_cached(
            self._by_secret_sql, {"secret_hash": raw}, ("secret", raw), _by_secret_answer
        )
        if record is None or not record.is_live(now):
            return None, 0
        return record, epoch

    def token_state(self, *, jti: str, user_id: str, family_id: str, now: float) -> TokenState:
        """One statement: denylist entry and epoch as scalar subqueries beside the (outer-joined) family.
        On SQLite answered from memory while the database is unchanged, in two parts: the user's epoch and the
        family (shared by every token of the family) and the jti's denylist entry, so that a token not seen
        before costs only the denylist lookup."""
        (epoch, family), until = self._hot.one_cached_in_parts(
            self._token_sql,
            {"jti": jti, "user_id": user_id, "family_id": family_id},
            convert=_token_answer,
            keys=(("family", user_id, family_id), ("denied", jti)),
            second=self._denied_sql,
            convert_second=_denied_answer,
        )
        if family is not None and (family.user_id != user_id or not family.is_live(now)):
            family = None
        return TokenState(denied=until is not None and until > now, epoch=epoch, family=family)

    def update(self, session_id: str, changes: Mapping[str, Any], *, now: float) -> bool:
        """Raises `ValueError` for a field outside `UPDATABLE_FIELDS`."""
        values = _update_values(changes)
        if not values:
            return self.get(session_id, now=now) is not None
        with self._begin() as conn:
            stmt = sessions.update().where(sessions.c.id == session_id, _live(now)).values(**values)
            result = conn.execute(stmt)
        count: int = result.rowcount
        return count == 1

    def replace(self, old_id: str, new: SessionRecord, *, now: float) -> bool:
        """Raises `CreateError` (and keeps the old record) if `new`'s id or secret exists already."""
        try:
            with self._begin() as conn:
                # The DELETE comes first so that SQLite takes its write lock at once (no upgrade deadlock).
                old = (conn.execute(
                    sessions.delete().where(sessions.c.id == old_id, _live(now)).returning(sessions.c.secret_hash)
                )).first()
                if old is None:
                    return False  # nothing was written; the empty transaction commits
                same_secret = new.secret_hash is not None and _hash_bytes(new.secret_hash) == old.secret_hash
                if new.id == old_id or same_secret:
                    # a rotation that keeps the id or secret is no rotation; raising rolls the DELETE back
                    raise CreateError("the new session must have a new id and a new secret")
                conn.execute(sessions.insert().values(**_record_to_row(new)))
        except sa.exc.IntegrityError:
            raise CreateError("a session with this id or secret exists already") from None
        return True

    def advance(
        self,
        session_id: str,
        *,
        expected_generation: int,
        last_seen: float,
        idle_expires_at: float,
        now: float,
    ) -> bool:
        stmt = (
            sessions.update()
            .where(sessions.c.id == session_id, sessions.c.generation == expected_generation, _live(now))
            .values(generation=sessions.c.generation + 1, last_seen=last_seen, idle_expires_at=idle_expires_at)
        )
        with self._begin() as conn:
            count: int = (conn.execute(stmt)).rowcount
        return count == 1

    def delete(self, session_id: str) -> bool:
        with self._begin() as conn:
            count: int = (conn.execute(sessions.delete().where(sessions.c.id == session_id))).rowcount
        return count > 0

    def delete_for_user(self, user_id: str, *, except_id: str | None = None) -> int:
        stmt = sessions.delete().where(sessions.c.user_id == user_id)
        if except_id is not None:
            stmt = stmt.where(sessions.c.id != except_id)
        with self._begin() as conn:
            return int((conn.execute(stmt)).rowcount)

    def list_for_user(self, user_id: str, *, now: float) -> list[SessionRecord]:
        stmt = (
            sa.select(sessions)
            .where(sessions.c.user_id == user_id, _live(now))
            .order_by(sessions.c.created_at.desc(), sessions.c.id)
        )
        with self._begin() as conn:
            return [_row_to_record(row) for row in conn.execute(stmt)]

    def list_all(self, *, now: float, limit: int = 1000) -> list[SessionRecord]:
        stmt = sa.select(sessions).where(_live(now)).order_by(sessions.c.created_at.desc(), sessions.c.id).limit(limit)
        with self._begin() as conn:
            return [_row_to_record(row) for row in conn.execute(stmt)]

    # -- access-token denylist --------------------------------------------------------------
    def deny(self, jti: str, *, until: float, now: float) -> None:
        if until <= now:
            return  # already expired: nothing to deny
        ins = self._insert(denylist).values(jti=jti, until=until)
        stmt = ins.on_conflict_do_update(
            index_elements=[denylist.c.jti],
            # Never shorten an existing entry.
            set_={
                "until": sa.case((ins.excluded.until > denylist.c.until, ins.excluded.until), else_=denylist.c.until)
            },
        )
        with self._begin() as conn:
            conn.execute(stmt)

    def is_denied(self, jti: str, *, now: float) -> bool:
        stmt = sa.select(denylist.c.jti).where(denylist.c.jti == jti, denylist.c.until > now)
        with self._begin() as conn:
            return (conn.execute(stmt)).first() is not None

    # -- one-time uses ------------------------------------------------------------------------
    def use_once(self, key: str, *, until: float, now: float) -> bool:
        if until <= now:
            return True  # nothing left to guard (see the Protocol)
        if self._hot.has_once_file:  # SQLite on disk: the side file, off the database's lock and data_version
            return self._hot.use_once(key, until=until, now=now)
        ins = self._insert(once).values(key=key, until=until)
        stmt = ins.on_conflict_do_update(
            index_elements=[once.c.key], set_={"until": ins.excluded.until}, where=once.c.until <= now
        ).returning(once.c.key)  # a row comes back iff this call wrote it (rowcount is -1 on some drivers)
        with self._begin() as conn:
            return (conn.execute(stmt)).first() is not None

    # -- per-user revocation epoch ----------------------------------------------------------
    def get_epoch(self, user_id: str) -> int:
        with self._begin() as conn:
            value = (conn.execute(sa.select(epochs.c.epoch).where(epochs.c.user_id == user_id))).scalar()
        return int(value or 0)

    def bump_epoch(self, user_id: str) -> int:
        ins = self._insert(epochs).values(user_id=user_id, epoch=1)
        stmt = ins.on_conflict_do_update(
            index_elements=[epochs.c.user_id], set_={"epoch": epochs.c.epoch + 1}
        ).returning(epochs.c.epoch)
        with self._begin() as conn:
            return int((conn.execute(stmt)).scalar_one())

    # -- throttling counters ----------------------------------------------------------------
    def throttle_read(self, keys: Sequence[str], *, now: float, window: float) -> list[ThrottleState]:
        stmt = sa.select(throttle.c.key, throttle.c.failures, throttle.c.last_failure_at).where(
            throttle.c.key.in_(list(keys)), throttle.c.last_failure_at > now - window
        )
        with self._begin() as conn:
            rows = {row.key: row for row in conn.execute(stmt)}
        return [_state(rows.get(key), now, window) for key in keys]

    def throttle_update(
        self, keys: Sequence[str], decide: ThrottleDecision, *, now: float, window: float
    ) -> tuple[list[ThrottleState], list[ThrottleState] | None]:
        keys = list(keys)
        ordered = sorted(keys)
        placeholders = [{"key": k, "failures": 0, "last_failure_at": 0.0, "expires_at": now} for k in ordered]
        locked = (
            sa.select(throttle.c.key, throttle.c.failures, throttle.c.last_failure_at)
            .where(throttle.c.key.in_(ordered)).order_by(throttle.c.key).with_for_update()
        )
        states: list[ThrottleState] = []
        try:
            with self._begin() as conn:
                conn.execute(self._insert(throttle).values(placeholders).on_conflict_do_nothing(
                    index_elements=[throttle.c.key]))
                rows = {row.key: row for row in conn.execute(locked)}
                states = [_state(rows.get(k), now, window) for k in keys]
                new = decide(states)
                if new is None:
                    raise _Refused
                for key, old, state in zip(keys, states, new, strict=True):
                    if state.failures == 0:
                        conn.execute(throttle.delete().where(throttle.c.key == key))
                    elif state != old:
                        conn.execute(throttle.update().where(throttle.c.key == key).values(
                            failures=state.failures, last_failure_at=state.last_failure_at,
                            expires_at=state.last_failure_at + window))
        except _Refused:
            return states, None
        return states, list(new)

    def throttle_reset(self, *keys: str) -> None:
        if keys:
            with self._begin() as conn:
                conn.execute(throttle.delete().where(throttle.c.key.in_(list(keys))))

    # -- maintenance ------------------------------------------------------------------------
    def purge_expired(self, *, now: float) -> int:
        with self._begin() as conn:
            n = (conn.execute(sessions.delete().where(sa.not_(_live(now))))).rowcount
            n += (conn.execute(denylist.delete().where(denylist.c.until <= now))).rowcount
            n += (conn.execute(throttle.delete().where(throttle.c.expires_at <= now))).rowcount
            n += (conn.execute(once.delete().where(once.c.until <= now))).rowcount
        if self._hot.has_once_file:
            n += self._hot.purge_once(now=now)
        return int(n)

    def ping(self) -> None:
        with self._begin() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        self._hot.close()
        if self._owns_engine:
            self._engine.dispose()
