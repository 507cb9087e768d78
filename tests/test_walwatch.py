"""`sessionward.walwatch`: the wal-index header moves with every commit, as `PRAGMA data_version` does, and the
SQL store's remembered reads rely on it only as a hint (a real SQLite, other connections, another process)."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "stores"))
from contract import T0, make_record  # noqa: E402

from sessionward.stores.sql import SQLStore  # noqa: E402
from sessionward.walwatch import WalWatch  # noqa: E402


def _wal(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
    return conn


def test_the_header_moves_whenever_data_version_does(tmp_path: Path) -> None:
    """Commits, rollbacks and every kind of checkpoint (TRUNCATE and RESTART start the log again): whenever
    another connection's data_version moved, the header's bytes moved too."""
    writer = _wal(tmp_path / "x.db")
    reader = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    watch = WalWatch.open(tmp_path / "x.db", reader)
    assert watch is not None
    rng = random.Random(7)
    head, version = watch.header(), reader.execute("PRAGMA data_version").fetchone()[0]
    moved = 0
    for i in range(3000):
        op = rng.random()
        if op < 0.5:
            writer.execute("INSERT INTO t VALUES (?)", (i,))
        elif op < 0.6:
            writer.execute(f"PRAGMA wal_checkpoint({rng.choice(['PASSIVE', 'FULL', 'RESTART', 'TRUNCATE'])})")
        elif op < 0.7:
            writer.execute("BEGIN")
            writer.execute("INSERT INTO t VALUES (0)")
            writer.execute("ROLLBACK")
        elif op < 0.75:
            writer.execute("DELETE FROM t WHERE rowid % 5 = 0")
        new_head, new_version = watch.header(), reader.execute("PRAGMA data_version").fetchone()[0]
        if new_version != version:
            moved += 1
            assert new_head != head, f"step {i}: data_version moved, the header did not"
        head, version = new_head, new_version
    assert moved > 1000
    watch.close()
    with pytest.raises(ValueError):
        watch.header()


def test_no_watch_without_wal_and_the_reason_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    conn = sqlite3.connect(tmp_path / "plain.db", isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    with caplog.at_level(logging.INFO, logger="sessionward.store"):
        assert WalWatch.open(tmp_path / "plain.db", conn) is None
    assert "not in WAL mode" in caplog.text


def _count_statements(store: SQLStore) -> list[str]:
    ran: list[str] = []
    conn = store._hot._sqlite()
    conn.set_trace_callback(ran.append)
    return ran


def test_remembered_reads_run_no_statement_while_nothing_commits(tmp_path: Path) -> None:
    """The point of the watch: a remembered read costs no statement at all (not even PRAGMA data_version)
    until something commits, and then the commit is seen at once."""
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    a, b = SQLStore.from_url(url), SQLStore.from_url(url)
    try:
        family = make_record(kind="token", secret=None)
        a.create(family, now=T0)
        for _ in range(2):  # the first reads map the header and remember the answer
            a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)
        ran = _count_statements(a)
        for _ in range(5):
            assert not a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).denied
        assert ran == []
        b.deny("j", until=T0 + 60, now=T0)
        assert a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).denied
        assert any("data_version" in s for s in ran)
    finally:
        a.close()
        b.close()


def test_a_revocation_committed_by_another_process_is_seen_by_the_next_read(tmp_path: Path) -> None:
    """Each round a forked process denies one more jti (or ends the family): the next remembered read here
    sees it, with nothing in between but the other process's commit."""
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    a = SQLStore.from_url(url)
    try:
        family = make_record(kind="token", secret=None)
        a.create(family, now=T0)
        jtis = [f"j{i}" for i in range(12)]
        for jti in jtis:  # every jti's answer remembered as "not denied"
            assert not a.token_state(jti=jti, user_id="alice", family_id=family.id, now=T0).denied
        for i, jti in enumerate(jtis):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                code = 1
                try:
                    child = SQLStore.from_url(url)
                    if i == len(jtis) - 1:
                        child.delete(family.id)
                    else:
                        child.deny(jti, until=T0 + 60, now=T0)
                    child.close()
                    code = 0
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            state = a.token_state(jti=jti, user_id="alice", family_id=family.id, now=T0)
            if i == len(jtis) - 1:
                assert state.family is None
            else:
                assert state.denied, jti
            if i + 1 < len(jtis):
                assert not a.token_state(jti=jtis[i + 1], user_id="alice", family_id=family.id, now=T0).denied
    finally:
        a.close()


def test_reads_stay_right_under_writes_and_checkpoints_from_elsewhere(tmp_path: Path) -> None:
    """Random denials, epoch bumps and log restarts by another connection; after each, every remembered answer
    equals the truth."""
    path = tmp_path / "sw.db"
    url = f"sqlite:///{path}"
    a, b = SQLStore.from_url(url), SQLStore.from_url(url)
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        family = make_record(kind="token", secret=None)
        a.create(family, now=T0)
        rng = random.Random(11)
        denied: set[str] = set()
        epoch = 0
        jtis = [f"j{i}" for i in range(20)]
        for _ in range(300):
            op = rng.random()
            if op < 0.3:
                jti = rng.choice(jtis)
                b.deny(jti, until=T0 + 60, now=T0)
                denied.add(jti)
            elif op < 0.4:
                b.bump_epoch("alice")
                epoch += 1
            elif op < 0.5:
                raw.execute(f"PRAGMA wal_checkpoint({rng.choice(['RESTART', 'TRUNCATE', 'PASSIVE'])})")
            for jti in rng.sample(jtis, 5):
                state = a.token_state(jti=jti, user_id="alice", family_id=family.id, now=T0)
                assert (state.denied, state.epoch) == (jti in denied, epoch)
    finally:
        raw.close()
        a.close()
        b.close()


def test_without_a_watch_every_read_checks_data_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the header cannot be mapped the store checks `PRAGMA data_version` on every read, as before."""
    monkeypatch.setattr(WalWatch, "open", classmethod(lambda cls, database, conn: None))
    url = f"sqlite:///{tmp_path / 'sw.db'}"
    a, b = SQLStore.from_url(url), SQLStore.from_url(url)
    try:
        family = make_record(kind="token", secret=None)
        a.create(family, now=T0)
        a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)
        ran = _count_statements(a)
        a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)
        assert ran == ["PRAGMA data_version"]
        b.deny("j", until=T0 + 60, now=T0)
        assert a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).denied
    finally:
        a.close()
        b.close()


def test_a_closed_store_still_fails_closed(tmp_path: Path) -> None:
    from sessionward.exceptions import StoreUnavailable

    url = f"sqlite:///{tmp_path / 'sw.db'}"
    a = SQLStore.from_url(url)
    family = make_record(kind="token", secret=None)
    a.create(family, now=T0)
    a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)
    a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)
    a.close()
    with pytest.raises(StoreUnavailable):
        a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)




def test_a_database_that_cannot_be_opened_is_store_unavailable(tmp_path: Path) -> None:
    """A thread's first read opens its own connection: when the file cannot be opened (here its directory is
    gone), the answer is StoreUnavailable (503, not authenticated), never a raw sqlite3 error (a 500)."""
    import shutil
    import threading

    from sessionward.exceptions import StoreUnavailable

    folder = tmp_path / "db"
    folder.mkdir()
    a = SQLStore.from_url(f"sqlite:///{folder / 'sw.db'}")
    try:
        family = make_record(kind="token", secret=None)
        a.create(family, now=T0)
        shutil.rmtree(folder)
        raised: list[BaseException] = []

        def read() -> None:  # a thread of its own: no connection opened yet
            try:
                a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)
            except BaseException as exc:  # noqa: BLE001 - the test looks at which
                raised.append(exc)

        thread = threading.Thread(target=read)
        thread.start()
        thread.join(10)
        assert len(raised) == 1 and isinstance(raised[0], StoreUnavailable), raised
    finally:
        a.close()
