"""The SQL store on SQLite (temp file) and PostgreSQL (a throwaway database), both through the contract."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from contract import T0, StoreContract, every_method, make_record

from sessionward import db
from sessionward.exceptions import ConfigError, StoreUnavailable
from sessionward.oncefile import once_file
from sessionward.stores import open_store
from sessionward.stores.sql import SQLStore

TABLES = ("sw_sessions", "sw_denylist", "sw_epochs", "sw_throttle", "sw_once")


def _once_rows(store: SQLStore) -> list[tuple[Any, ...]]:
    """The rows of the one-time keys' side file of an SQLite store on disk (`oncefile.once_file`)."""
    import sqlite3

    url = store.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return []
    path = once_file(url.database or "")
    if not path.exists():
        return []
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM sw_once").fetchall()
    finally:
        conn.close()


class SQLContract(StoreContract):
    def stored_count(self, store: SQLStore) -> int:  # type: ignore[override]
        with store.engine.connect() as conn:
            count = sum(int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in TABLES)
        return count + len(_once_rows(store))

    def stored_text(self, store: SQLStore) -> str:  # type: ignore[override]
        parts: list[str] = []
        with store.engine.connect() as conn:
            rows = [row for t in TABLES for row in conn.execute(sa.text(f"SELECT * FROM {t}"))]
        for row in [*rows, *_once_rows(store)]:
            parts.extend(bytes(v).hex() if isinstance(v, (bytes, memoryview)) else str(v) for v in row)
        return "\n".join(parts)


class TestSQLiteStore(SQLContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SQLStore]:
        s = SQLStore.from_url(f"sqlite:///{tmp_path / 'sw.db'}")
        yield s
        s.close()

    def test_schema_is_versioned_and_creation_idempotent(self, store: SQLStore, tmp_path: Path) -> None:
        again = SQLStore(store.engine)  # second start on the same database
        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT version FROM sw_schema_version WHERE component = 'store'")
            ).all()
        assert [r.version for r in rows] == [db.SCHEMA_VERSION]
        again.create(make_record(), now=T0)
        assert self.stored_count(store) == 1

    def test_indexes(self, store: SQLStore) -> None:
        insp = sa.inspect(store.engine)
        indexed = {tuple(i["column_names"]) for i in insp.get_indexes("sw_sessions")}
        uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("sw_sessions")}
        unique_idx = {tuple(i["column_names"]) for i in insp.get_indexes("sw_sessions") if i["unique"]}
        assert ("user_id",) in indexed
        assert ("secret_hash",) in uniques | unique_idx

    def test_open_store_picks_sql(self, tmp_path: Path) -> None:
        s = open_store(f"sqlite:///{tmp_path / 'x.db'}")
        try:
            assert isinstance(s, SQLStore)
        finally:
            s.close()

    def test_bad_url_is_config_error(self) -> None:
        with pytest.raises(ConfigError):
            SQLStore.from_url("mysql://localhost/x")

    def test_data_is_never_pickled(self, store: SQLStore) -> None:
        with pytest.raises(TypeError):
            store.create(make_record(data={"obj": object()}), now=T0)
        assert self.stored_count(store) == 0


@pytest.mark.postgres
class TestPostgresStore(SQLContract):
    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[SQLStore]:
        s = SQLStore.from_url(postgres_url)
        with s.engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE " + ", ".join(TABLES)))
        yield s
        s.close()

    def test_same_schema_version(self, store: SQLStore) -> None:
        with store.engine.connect() as conn:
            v = conn.execute(sa.text("SELECT version FROM sw_schema_version WHERE component = 'store'")).scalar_one()
        assert v == db.SCHEMA_VERSION

    def test_two_instances_share_state(self, store: SQLStore, postgres_url: str) -> None:
        other = SQLStore.from_url(postgres_url)
        try:
            rec = make_record()
            store.create(rec, now=T0)
            assert other.get(rec.id, now=T0) == rec
            assert other.delete(rec.id)
            assert store.get(rec.id, now=T0) is None
        finally:
            other.close()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_postgres_raises_store_unavailable_quickly() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/test"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        SQLStore.from_url(url, connect_timeout=1)
    store = SQLStore.from_url(url, connect_timeout=1, create_schema=False)
    calls = every_method(store)
    for call in calls:
        with pytest.raises(StoreUnavailable):
            call()
    store.close()
    assert time.monotonic() - started < 10


def test_sqlite_remembered_reads_see_every_commit_from_any_connection(tmp_path: Path) -> None:
    """The per-request reads are answered from memory while SQLite's data_version is unchanged; a commit
    from this store, from another store object (another process) or from anywhere makes them read again."""
    from sessionward.ids import hash_secret, new_secret

    url = f"sqlite:///{tmp_path / 'sw.db'}"
    a, b = SQLStore.from_url(url), SQLStore.from_url(url)
    try:
        secret = new_secret()
        rec = make_record(secret=secret)
        family = make_record(kind="token", secret=None)
        a.create(rec, now=T0)
        a.create(family, now=T0)
        for _ in range(3):  # remembered
            assert a.load_by_secret(hash_secret(secret), now=T0) == (rec, 0)
            assert a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).family == family
        b.bump_epoch("alice")  # another "process"
        assert a.load_by_secret(hash_secret(secret), now=T0) == (rec, 1)
        b.deny("j", until=T0 + 60, now=T0)
        assert a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).denied
        b.delete(family.id)
        assert a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).family is None
        a.delete(rec.id)  # this store's own write goes through another connection too
        assert a.load_by_secret(hash_secret(secret), now=T0) == (None, 0)
        # time still applies
        assert not a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0 + 61).denied
    finally:
        a.close()
        b.close()


def test_sqlite_token_state_of_a_new_jti_reads_only_its_denylist_entry_and_sees_it(tmp_path: Path) -> None:
    """The token state is remembered in two parts: the user's epoch and the family (shared by every token of
    the family) and each jti's denylist entry. A token not seen before costs one small statement, and its own
    denylist entry is read (a denied jti is never answered from another jti's part)."""
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    a, b = SQLStore.from_url(url), SQLStore.from_url(url)
    try:
        family = make_record(kind="token", secret=None)
        a.create(family, now=T0)
        b.deny("j2", until=T0 + 60, now=T0)  # denied before `a` remembers anything
        ran: list[str] = []
        hot = a._hot
        original = hot.one

        def counting(compiled: Any, values: dict[str, Any]) -> Any:
            ran.append(compiled.sql)
            return original(compiled, values)

        hot.one = counting  # type: ignore[method-assign]
        first = a.token_state(jti="j1", user_id="alice", family_id=family.id, now=T0)
        assert not first.denied and first.family == family
        assert len(ran) == 1 and "sw_sessions" in ran[0]  # the whole statement: family, epoch and jti
        second = a.token_state(jti="j2", user_id="alice", family_id=family.id, now=T0)
        assert second.denied and second.family == family
        assert len(ran) == 2 and "sw_sessions" not in ran[1]  # only the denylist lookup for the new jti
        assert not a.token_state(jti="j1", user_id="alice", family_id=family.id, now=T0).denied
        assert a.token_state(jti="j2", user_id="alice", family_id=family.id, now=T0).denied
        assert len(ran) == 2  # both remembered
        b.bump_epoch("alice")  # a commit elsewhere: both parts are read again
        assert a.token_state(jti="j2", user_id="alice", family_id=family.id, now=T0).epoch == 1
    finally:
        a.close()
        b.close()


def test_token_state_without_a_row_fails_closed_even_under_python_O() -> None:
    """The outer join always answers one row; if the database ever answers none, the token is not trusted:
    `StoreUnavailable` (503), a real check that `python -O` does not strip, never an `AssertionError`."""
    from sessionward.stores.sql import _token_answer

    with pytest.raises(StoreUnavailable):
        _token_answer(None)


def test_O5_driver_errors_never_carry_the_parameters(postgres_url: str) -> None:
    """Defence in depth behind the edge check: a value the driver refuses (NUL on PostgreSQL) raises an error
    whose text (what a traceback would log) does not contain it."""
    import sqlalchemy as sa

    from sessionward.db import make_engine

    engine = make_engine(postgres_url)
    secret_text = "typed-by-a-user-\x00-secret"
    try:
        with pytest.raises(Exception) as info, engine.connect() as conn:
            conn.execute(sa.text("SELECT :v"), {"v": secret_text})
        assert "typed-by-a-user" not in str(info.value)
    finally:
        engine.dispose()


# -- one-time keys in SQLite's side file -----------------------------------------------------------


def test_sqlite_use_once_lives_in_a_private_side_file_and_leaves_the_database_alone(tmp_path: Path) -> None:
    """A DPoP proof id written per request must neither take the database's write lock nor change its
    data_version (every thread would drop its remembered reads): it goes to `<db>-once`, mode 0600, and the
    database's remembered token state survives the write."""
    import sqlite3

    path = tmp_path / "sw.db"
    store = SQLStore.from_url(f"sqlite:///{path}")
    try:
        family = make_record(kind="token", secret=None)
        store.create(family, now=T0)
        store.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)  # remembered
        watcher = sqlite3.connect(path)
        before = watcher.execute("PRAGMA data_version").fetchone()[0]
        ran: list[str] = []
        original = store._hot.one
        store._hot.one = lambda compiled, values: (ran.append(compiled.sql), original(compiled, values))[1]  # type: ignore[method-assign]
        assert store.use_once("proof-1", until=T0 + 60, now=T0) is True
        assert store.use_once("proof-1", until=T0 + 60, now=T0) is False
        store.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)
        assert ran == []  # still answered from memory: the database did not change
        # the watcher's data_version moves only when another connection commits to the database itself
        assert watcher.execute("PRAGMA data_version").fetchone()[0] == before
        watcher.close()
        side = once_file(path)
        assert side.exists() and (side.stat().st_mode & 0o777) == 0o600
        with sa.create_engine(f"sqlite:///{path}").connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM sw_once")).scalar_one() == 0
    finally:
        store.close()


def test_sqlite_side_file_is_shared_by_every_store_on_the_database_and_a_burst_has_one_winner(tmp_path: Path) -> None:
    """Two store objects (two processes of one machine) share the one-time keys: a proof used on one is a
    replay on the other, and a burst spread over both has exactly one winner."""
    from contract import run_concurrently

    url = f"sqlite:///{tmp_path / 'sw.db'}"
    a, b = SQLStore.from_url(url), SQLStore.from_url(url)
    try:
        assert a.use_once("proof-x", until=T0 + 60, now=T0) is True
        assert b.use_once("proof-x", until=T0 + 60, now=T0 + 1) is False
        for round_ in range(3):
            results = run_concurrently(
                16, lambda i, r=round_: (a if i % 2 else b).use_once(f"burst-{r}", until=T0 + 60, now=T0)
            )
            assert sorted(results) == [False] * 15 + [True]
        assert b.purge_expired(now=T0 + 61) >= 4  # the side file is purged with the rest
        assert a.use_once("proof-x", until=T0 + 200, now=T0 + 61) is True
    finally:
        a.close()
        b.close()


def test_sqlite_side_file_unusable_fails_closed(tmp_path: Path) -> None:
    """A side file that cannot be opened or written is `StoreUnavailable` (503), never a pass."""
    path = tmp_path / "sw.db"
    store = SQLStore.from_url(f"sqlite:///{path}")
    try:
        once_file(path).mkdir()  # a directory where the file should be
        with pytest.raises(StoreUnavailable):
            store.use_once("proof-1", until=T0 + 60, now=T0)
    finally:
        store.close()


def test_sqlite_side_file_connection_syncs_as_the_database_and_leaves_checkpoints_to_the_thread(tmp_path: Path) -> None:
    """The claiming connection keeps WAL and synchronous=NORMAL (no fsync per commit, and no corruption on a
    power cut as OFF could give) and checkpoints by itself only far beyond SQLite's default of 1000 pages, so a
    claim does not wait for a checkpoint's syncs (the checkpoint thread does them)."""
    from sessionward import oncefile

    store = SQLStore.from_url(f"sqlite:///{tmp_path / 'sw.db'}")
    try:
        assert store.use_once("proof-1", until=T0 + 60, now=T0) is True
        conn = store._hot._local.once
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == oncefile.AUTOCHECKPOINT_BACKSTOP
        assert oncefile.AUTOCHECKPOINT_BACKSTOP >= 10 * oncefile.CHECKPOINT_EVERY
    finally:
        store.close()


def test_sqlite_side_file_is_checkpointed_on_a_thread_every_so_many_claims(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `CHECKPOINT_EVERY` claims the checkpoint thread copies the log into the side file itself (read
    here from a copy of the file without its -wal), and the thread ends with the store."""
    import shutil
    import sqlite3

    from sessionward import oncefile

    monkeypatch.setattr(oncefile, "CHECKPOINT_EVERY", 5)
    path = tmp_path / "sw.db"
    store = SQLStore.from_url(f"sqlite:///{path}")
    checkpointer = store._hot._checkpointer
    assert checkpointer is not None
    try:
        for i in range(4):
            assert store.use_once(f"proof-{i}", until=T0 + 60, now=T0) is True
        assert checkpointer.runs == 0 and checkpointer._thread is None  # not yet asked
        assert store.use_once("proof-4", until=T0 + 60, now=T0) is True
        deadline = time.monotonic() + 10
        while checkpointer.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpointer.runs >= 1
        copy = tmp_path / "copy.db"
        shutil.copyfile(once_file(path), copy)  # the file alone: only what was checkpointed into it
        conn = sqlite3.connect(copy)
        try:
            assert conn.execute("SELECT count(*) FROM sw_once").fetchone()[0] == 5
        finally:
            conn.close()
        thread = checkpointer._thread
        assert thread is not None and thread.is_alive()
    finally:
        store.close()
    assert not thread.is_alive()
    checkpointer.kick()  # closed: never started again
    assert checkpointer._thread is thread and not thread.is_alive()


def test_a_child_forked_while_the_checkpointer_lock_is_held_does_not_hang(tmp_path: Path) -> None:
    """A fork while another thread of the parent holds the checkpointer's lock (starting or stopping its thread):
    the child's first claims start its own thread instead of waiting forever on the copied lock."""
    import os
    import threading

    path = tmp_path / "sw.db"
    store = SQLStore.from_url(f"sqlite:///{path}")
    checkpointer = store._hot._checkpointer
    assert checkpointer is not None
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with checkpointer._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                checkpointer.kick()
                code = 0 if checkpointer._thread is not None else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.01)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the child hung on the lock it inherited")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        release.set()
        holder.join()
        store.close()
