"""The async SQL store (the source the sync one is generated from) on SQLite and PostgreSQL, through the same
contract as every store (via `aio_adapter`), plus native asyncio bursts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aio_adapter import SyncFacade, on_private_loop
from contract import T0, every_method, make_record
from test_sql import TABLES, SQLContract, _closed_port

from sessionward import db
from sessionward.aio import db as aio_db
from sessionward.aio.stores.sql import AsyncSQLStore
from sessionward.exceptions import ConfigError, StoreUnavailable
from sessionward.ids import hash_secret, new_secret
from sessionward.stores.base import ThrottleState


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sw.db'}"


def _facade(url: str, *, truncate: bool = False) -> Iterator[SyncFacade]:
    inspect_engine = db.make_engine(url)  # a sync engine on the same database, for stored_count/stored_text
    try:
        with on_private_loop(lambda: AsyncSQLStore.from_url(url), engine=inspect_engine) as facade:
            if truncate:
                with inspect_engine.begin() as conn:
                    conn.execute(sa.text("TRUNCATE " + ", ".join(TABLES)))
            yield facade
    finally:
        inspect_engine.dispose()


class TestAsyncSQLiteStore(SQLContract):
    @pytest.fixture
    def store(self, sqlite_url: str) -> Iterator[SyncFacade]:
        yield from _facade(sqlite_url)


@pytest.mark.postgres
class TestAsyncPostgresStore(SQLContract):
    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[SyncFacade]:
        yield from _facade(postgres_url, truncate=True)


# -- construction, URLs, failure ---------------------------------------------------------------------


def test_constructor_leaves_the_tables_to_open(sqlite_url: str) -> None:
    async def main() -> None:
        engine = aio_db.make_engine(sqlite_url)
        try:
            bare = AsyncSQLStore(engine)
            with pytest.raises(StoreUnavailable):  # no tables yet: fails closed, never half-works
                await bare.get("x", now=T0)
            store = await AsyncSQLStore.open(engine)
            rec = make_record()
            await store.create(rec, now=T0)
            assert await bare.get(rec.id, now=T0) == rec
            await bare.close()
            await store.close()
        finally:
            await engine.dispose()

    asyncio.run(main())


@pytest.mark.parametrize("url", ["mysql://localhost/x", "sqlite+pysqlite:///x.db", "no url at all"])
def test_bad_or_sync_only_url_is_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        asyncio.run(AsyncSQLStore.from_url(url))


def test_unreachable_postgres_raises_store_unavailable_everywhere() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/test"

    async def main() -> None:
        with pytest.raises(StoreUnavailable):
            await AsyncSQLStore.from_url(url, connect_timeout=1)
        store = await AsyncSQLStore.from_url(url, connect_timeout=1, create_schema=False)
        for call in every_method(store):  # type: ignore[arg-type]  # each call returns a coroutine here
            with pytest.raises(StoreUnavailable):
                await call()
        await store.close()

    asyncio.run(main())


def test_closed_store_fails_closed(sqlite_url: str) -> None:
    async def main() -> None:
        store = await AsyncSQLStore.from_url(sqlite_url)
        secret = new_secret()
        await store.create(make_record(secret=secret), now=T0)
        assert (await store.load_by_secret(hash_secret(secret), now=T0))[0] is not None
        await store.close()
        with pytest.raises(StoreUnavailable):
            await store.load_by_secret(hash_secret(secret), now=T0)

    asyncio.run(main())


async def _two_connections(url: str) -> tuple[AsyncSQLStore, Any, str, Any, Any]:
    """The async store and a sync one on the same SQLite file (another connection, as another process would
    be), with a cookie session (its secret) and a token family made through the async store."""
    from sessionward.stores.sql import SQLStore

    a = await AsyncSQLStore.from_url(url)
    b = SQLStore.from_url(url)
    secret = new_secret()
    rec = make_record(secret=secret)
    family = make_record(kind="token", secret=None)
    await a.create(rec, now=T0)
    await a.create(family, now=T0)
    return a, b, secret, rec, family


def test_sqlite_remembered_reads_see_every_commit_from_any_connection(sqlite_url: str) -> None:
    """As the sync store's: the worker thread's remembered answers are dropped on any commit anywhere (here: by
    a sync store, i.e. another process)."""

    async def main() -> None:
        a, b, secret, rec, family = await _two_connections(sqlite_url)
        try:
            for _ in range(3):
                assert await a.load_by_secret(hash_secret(secret), now=T0) == (rec, 0)
                assert (await a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)).family == family
            b.bump_epoch("alice")
            assert await a.load_by_secret(hash_secret(secret), now=T0) == (rec, 1)
            b.deny("j", until=T0 + 60, now=T0)
            assert (await a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)).denied
            b.delete(family.id)
            assert (await a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)).family is None
            await a.delete(rec.id)
            assert await a.load_by_secret(hash_secret(secret), now=T0) == (None, 0)
        finally:
            await a.close()
            b.close()

    asyncio.run(main())


def _count_hops(store: AsyncSQLStore) -> list[int]:
    """Count the store's hops to its worker threads (one item per hop)."""
    hot = store._hot
    hops: list[int] = []
    real = hot._in_worker

    async def counted(fn: object, *args: object) -> object:
        hops.append(1)
        return await real(fn, *args)  # type: ignore[arg-type]

    hot._in_worker = counted  # type: ignore[method-assign]
    return hops


def test_sqlite_remembered_reads_are_answered_on_the_loop_until_something_commits(sqlite_url: str) -> None:
    """A remembered read hops to no worker thread while the wal-index header is unchanged; after a commit from
    another connection (another process, for SQLite's shared memory) the very next read hops and sees it."""

    async def main() -> None:
        a, b, secret, rec, family = await _two_connections(sqlite_url)
        try:
            hops = _count_hops(a)
            for _ in range(20):  # the first reads hop (and open the loop's view of the header)
                hops.clear()
                assert await a.load_by_secret(hash_secret(secret), now=T0) == (rec, 0)
                assert not (await a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)).denied
                if not hops:
                    break
            for _ in range(50):
                assert await a.load_by_secret(hash_secret(secret), now=T0) == (rec, 0)
                assert not (await a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)).denied
            assert hops == []  # answered on the loop
            b.deny("j", until=T0 + 60, now=T0)  # another connection commits
            assert (await a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)).denied
            assert hops == [1]
            b.bump_epoch("alice")
            assert await a.load_by_secret(hash_secret(secret), now=T0) == (rec, 1)
            assert len(hops) == 2
            assert await a.load_by_secret(hash_secret(secret), now=T0) == (rec, 1)
            assert len(hops) == 2  # remembered again
        finally:
            await a.close()
            b.close()

    asyncio.run(main())


def test_sqlite_reads_on_the_loop_stay_right_under_random_commits_from_elsewhere(sqlite_url: str) -> None:
    """Random denials, epoch bumps, deletions and checkpoints by another connection, interleaved with reads of
    the same answers (some remembered on the loop, some not): every read gives the database's current answer."""
    import random

    from sessionward.stores.sql import SQLStore

    async def main() -> None:
        a = await AsyncSQLStore.from_url(sqlite_url)
        b = SQLStore.from_url(sqlite_url)
        rng = random.Random(11)
        try:
            secrets_ = [new_secret() for _ in range(4)]
            records = [make_record(secret=s, user_id=f"u{i}") for i, s in enumerate(secrets_)]
            for rec in records:
                await a.create(rec, now=T0)
            live = dict.fromkeys(range(4), True)
            epochs = dict.fromkeys(range(4), 0)
            denied: set[str] = set()
            for _step in range(400):
                op = rng.random()
                i = rng.randrange(4)
                if op < 0.15:
                    epochs[i] = b.bump_epoch(f"u{i}")
                elif op < 0.25:
                    jti = f"j{rng.randrange(8)}"
                    b.deny(jti, until=T0 + 60, now=T0)
                    denied.add(jti)
                elif op < 0.28 and live[i]:
                    b.delete(records[i].id)
                    live[i] = False
                elif op < 0.32:
                    with b._engine.connect() as conn:  # a checkpoint restarts the log: new salts in the header
                        conn.exec_driver_sql(f"PRAGMA wal_checkpoint({rng.choice(['PASSIVE', 'TRUNCATE'])})")
                for _ in range(rng.randrange(1, 4)):
                    j = rng.randrange(4)
                    got = await a.load_by_secret(hash_secret(secrets_[j]), now=T0)
                    assert got == ((records[j], epochs[j]) if live[j] else (None, 0)), (_step, j)
                    jti = f"j{rng.randrange(8)}"
                    state = await a.token_state(jti=jti, user_id="u0", family_id="none", now=T0)
                    assert state.denied == (jti in denied) and state.epoch == epochs[0], (_step, jti)
        finally:
            await a.close()
            b.close()

    asyncio.run(main())


# -- native asyncio bursts: many coroutines on one loop -------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_sql_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    url: str = request.getfixturevalue("postgres_url")
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            for table in TABLES:
                if sa.inspect(conn).has_table(table):
                    conn.execute(sa.text(f"TRUNCATE {table}"))
    finally:
        engine.dispose()
    return url


def test_burst_advance_has_exactly_one_winner(any_sql_url: str) -> None:
    async def main() -> None:
        store = await AsyncSQLStore.from_url(any_sql_url)
        try:
            for _round in range(3):
                fam = make_record(kind="token", secret=None)
                await store.create(fam, now=T0)
                results = await asyncio.gather(*(
                    store.advance(fam.id, expected_generation=0, last_seen=T0 + i, idle_expires_at=T0 + 500 + i,
                                  now=T0 + 1)
                    for i in range(40)
                ))
                assert results.count(True) == 1
                got = await store.get(fam.id, now=T0 + 1)
                assert got is not None and got.generation == 1 and got.last_seen == T0 + results.index(True)
        finally:
            await store.close()

    asyncio.run(main())


def test_burst_throttle_update_loses_no_count_and_bump_epoch_is_atomic(any_sql_url: str) -> None:
    cap = 25

    def bump(states: list[ThrottleState]) -> list[ThrottleState] | None:
        if states[0].failures >= cap:
            return None
        return [ThrottleState(s.failures + 1, T0 + 2) for s in states]

    async def main() -> None:
        store = await AsyncSQLStore.from_url(any_sql_url)
        try:
            results = await asyncio.gather(*(
                store.throttle_update(["hot", f"own{i}"], bump, now=T0 + 2, window=600) for i in range(40)
            ))
            taken = sorted(states[0].failures for states, new in results if new is not None)
            assert taken == list(range(cap))  # every count taken once, none lost, the cap held
            assert await store.throttle_read(["hot"], now=T0 + 3, window=600) == [ThrottleState(cap, T0 + 2)]
            epochs = await asyncio.gather(*(store.bump_epoch("carol") for _ in range(30)))
            assert sorted(epochs) == list(range(1, 31))
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.postgres
def test_O5_async_driver_errors_never_carry_the_parameters(postgres_url: str) -> None:
    """As the sync engine's: a value the driver refuses (NUL on PostgreSQL) raises an error whose text does not
    contain it."""
    secret_text = "typed-by-a-user-\x00-secret"

    async def main() -> None:
        engine = aio_db.make_engine(postgres_url)
        try:
            with pytest.raises(Exception) as info:  # noqa: PT011 - any driver error; its text is the point
                async with engine.connect() as conn:
                    await conn.execute(sa.text("SELECT :v"), {"v": secret_text})
            assert "typed-by-a-user" not in str(info.value)
        finally:
            await engine.dispose()

    asyncio.run(main())
