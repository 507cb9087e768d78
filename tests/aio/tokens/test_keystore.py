"""AsyncSQLKeyRepository, the key set shared by every instance, on the async engine (SQLite, PostgreSQL): first
start makes exactly one key however many instances start at once, keys sealed at rest, rotation seen by the
other instances within the refresh interval, revocation refused for the key that signs now."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sessionward.aio import db as aio_db
from sessionward.aio.tokens import AsyncSQLKeyRepository
from sessionward.aio.tokens.keystore import keys_table
from sessionward.clock import ManualClock
from sessionward.exceptions import ConfigError, NotFound, StoreUnavailable, ValidationError

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """The key set lives in SQL only."""
    return str(request.param)


@pytest.mark.parametrize("bad", [b"", secrets.token_bytes(16), secrets.token_bytes(33), b"k" * 32])
async def test_kek_must_be_32_random_bytes(tmp_path: Path, bad: bytes) -> None:
    engine = aio_db.make_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    with pytest.raises(ConfigError) as exc:
        AsyncSQLKeyRepository(engine, bad)
    assert exc.value.setting == "SESSIONWARD_KEY_ENCRYPTION_KEY"
    await engine.dispose()


async def test_instances_starting_at_once_make_one_key(make_repo: Callable[..., Any], clock: ManualClock) -> None:
    repos = [await make_repo() for _ in range(6)]
    sets = await asyncio.gather(*[r.load(now=clock.now()) for r in repos])
    assert {tuple(k.kid for k in s.keys) for s in sets} == {(sets[0].keys[0].kid,)}
    assert sets[0].signing_key(clock.now()).alg == "ES256"


async def test_private_parts_are_sealed_at_rest(make_repo: Callable[..., Any], engine: Any,
                                                clock: ManualClock) -> None:
    key = (await (await make_repo(default_alg="HS256")).load(now=clock.now())).signing_key(clock.now())
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(keys_table))).one()
    assert key.private not in bytes(row.sealed)
    other = await AsyncSQLKeyRepository.open(engine, secrets.token_bytes(32))
    with pytest.raises(ConfigError, match="cannot open signing key"):
        await other.load(now=clock.now())  # a wrong key-encryption key opens nothing


async def test_rotation_reaches_the_other_instance_before_it_signs(make_repo: Callable[..., Any],
                                                                   clock: ManualClock) -> None:
    a, b = await make_repo(refresh_interval=5), await make_repo(refresh_interval=5)
    first = (await a.current(clock.now())).signing_key(clock.now())
    assert (await b.current(clock.now())).signing_key(clock.now()).kid == first.kid
    new = await a.rotate(now=clock.now())
    assert new.activates_at == clock.now() + 10  # twice the refresh interval
    assert (await a.current(clock.now())).signing_key(clock.now()).kid == first.kid  # not yet
    clock.advance(5)
    seen = await b.current(clock.now())  # b re-reads after its interval ...
    assert seen.verification_key(new.kid) is not None  # ... and can verify the new key before anyone signs
    clock.advance(5)
    for repo in (a, b):
        assert (await repo.current(clock.now())).signing_key(clock.now()).kid == new.kid


async def test_concurrent_rotations_get_one_order(make_repo: Callable[..., Any], clock: ManualClock) -> None:
    repos = [await make_repo() for _ in range(4)]
    await repos[0].load(now=clock.now())
    made = await asyncio.gather(*[r.rotate(now=clock.now(), activate_after=0) for r in repos])
    serials = sorted(k.serial for k in made)
    assert len(set(serials)) == 4  # the version row serialises them: no two share a place in the order
    views = await asyncio.gather(*[r.load(now=clock.now()) for r in repos])
    assert len({v.signing_key(clock.now()).kid for v in views}) == 1  # every instance signs with the same key


async def test_revoke_refuses_the_signing_key_and_unknown_kids(make_repo: Callable[..., Any],
                                                               clock: ManualClock) -> None:
    repo = await make_repo(refresh_interval=5)
    signing = (await repo.load(now=clock.now())).signing_key(clock.now())
    with pytest.raises(ValidationError):
        await repo.revoke(signing.kid, now=clock.now())
    with pytest.raises(NotFound):
        await repo.revoke("no-such-kid", now=clock.now())
    new = await repo.rotate(now=clock.now())
    clock.set(new.activates_at)
    revocation = await repo.revoke(signing.kid, now=clock.now())
    assert revocation.kid == signing.kid and revocation.superseded_at == new.activates_at
    assert (await repo.current(clock.now())).verification_key(signing.kid) is None
    statuses = {info.kid: info.status for info in await repo.describe(now=clock.now())}
    assert statuses == {new.kid: "signing", signing.kid: "revoked"}


async def test_database_down_is_store_unavailable(clock: ManualClock) -> None:
    down = aio_db.make_engine("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1)
    repo = AsyncSQLKeyRepository(down, secrets.token_bytes(32))
    with pytest.raises(StoreUnavailable):
        await repo.ensure_schema()
    with pytest.raises(StoreUnavailable):
        await repo.current(clock.now())
    await down.dispose()


async def test_a_revocation_and_rotations_at_once_all_hold(make_repo: Callable[..., Any], clock: ManualClock) -> None:
    """`keys revoke` of a superseded key while other instances rotate: the version row serialises them, so the
    revocation holds on every instance afterwards and every instance still signs with one and the same key."""
    repos = [await make_repo() for _ in range(5)]
    now = clock.now()
    first = (await repos[0].load(now=now)).signing_key(now)
    await repos[0].rotate(now=now, activate_after=0)  # `first` is superseded, so it may be revoked
    results = await asyncio.gather(
        repos[1].revoke(first.kid, now=now), *[r.rotate(now=now, activate_after=0) for r in repos[2:]],
        return_exceptions=True,
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    views = await asyncio.gather(*[r.load(now=now) for r in repos])
    assert all(v.verification_key(first.kid) is None for v in views)
    assert len({v.signing_key(now).kid for v in views}) == 1
    statuses = {info.kid: info.status for info in await repos[0].describe(now=now)}
    assert statuses[first.kid] == "revoked" and list(statuses.values()).count("signing") == 1


async def test_revoking_the_key_a_rotation_is_superseding_never_revokes_the_signer(
    make_repo: Callable[..., Any], clock: ManualClock
) -> None:
    """Revoke of the signing key at the very moment another instance rotates: either the rotation came first
    (the key is superseded and the revocation stands) or the revocation did (refused: it signs). Never a revoked
    key that still signs, never no signing key at all."""
    for _ in range(5):
        a, b = await make_repo(), await make_repo()
        now = clock.now()
        signer = (await a.load(now=now)).signing_key(now)
        revoked, rotated = await asyncio.gather(
            a.revoke(signer.kid, now=now), b.rotate(now=now, activate_after=0), return_exceptions=True
        )
        assert not isinstance(rotated, BaseException)
        if isinstance(revoked, BaseException):
            assert isinstance(revoked, ValidationError)  # the revocation came first: it signs, refused
        for repo in (a, b):
            view = await repo.load(now=now)
            signing = view.signing_key(now)
            assert view.verification_key(signing.kid) is not None
            if not isinstance(revoked, BaseException):  # the rotation came first: superseded, and now gone
                assert signing.kid != signer.kid and view.verification_key(signer.kid) is None
        clock.advance(1)
