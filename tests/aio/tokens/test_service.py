"""AsyncTokenService on real stores (SQLite, PostgreSQL): issue, verify, refresh rotation with reuse detection,
the denylist, user epochs, key rotation and revocation through the shared key set, and bursts of concurrent
refreshes on one event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from sessionward.aio.sessions import AsyncSessionManager
from sessionward.aio.stores.protocol import AsyncSessionStore
from sessionward.aio.tokens import AsyncKeySetSource, AsyncTokenService, TokenPair
from sessionward.audit.forge import compact, parts
from sessionward.clock import ManualClock
from sessionward.exceptions import ConfigError, RefreshTokenReused, TokenError, ValidationError
from sessionward.tokens import KeySet, SigningKey
from sessionward.tokens.claims import Claims

from ..conftest import username

pytestmark = pytest.mark.asyncio


async def reason_of(svc: AsyncTokenService, token: Any) -> str:
    with pytest.raises(TokenError) as exc:
        await svc.verify_access(token)
    return exc.value.reason


async def test_issue_verify_refresh_roundtrip(service: AsyncTokenService, clock: ManualClock) -> None:
    alice = username()
    pair = await service.issue(alice, fresh=True, user_agent="pytest", ip="192.0.2.1")
    claims = await service.verify_access(pair.access_token)
    assert isinstance(claims, Claims) and claims.sub == alice and claims.sid == pair.family_id and claims.fresh
    clock.advance(30)
    new = await service.refresh(pair.refresh_token, ip="192.0.2.2")
    assert new.family_id == pair.family_id and new.refresh_token != pair.refresh_token
    again = await service.verify_access(new.access_token)
    assert again.sub == alice and not again.fresh
    assert (await service.jwks())["keys"][0]["kid"] == parts(pair.access_token)[0]["kid"]


async def test_a_tampered_payload_is_refused_before_any_claim_is_used(service: AsyncTokenService,
                                                                     store: AsyncSessionStore,
                                                                     clock: ManualClock) -> None:
    pair = await service.issue(username(), fresh=True)
    await service.verify_access(pair.access_token)  # cached: the cache is keyed by the exact text
    header, payload, sig = parts(pair.access_token)
    assert await reason_of(service, compact(header, {**payload, "sub": "admin"}, sig)) == "bad signature"
    forged = compact(header, {**payload, "sid": "x" * 22, "sub": "mallory"}, sig)
    assert await reason_of(service, forged) == "bad signature"
    assert await store.get(pair.family_id, now=clock.now()) is not None


async def test_refresh_key_checked_at_construction(make_service: Callable[..., AsyncTokenService],
                                                   refresh_key: bytes, clock: ManualClock) -> None:
    hmac_keys = KeySet([SigningKey(kid="k1", alg="HS256", private=refresh_key, activates_at=clock.now())])
    with pytest.raises(ConfigError) as exc:
        make_service(hmac_keys)
    assert exc.value.setting == "TOKEN_REFRESH_KEY"
    with pytest.raises(ConfigError):  # also through the source wrapper
        make_service(AsyncKeySetSource(hmac_keys))


async def test_rotation_and_reuse_revokes_the_family(service: AsyncTokenService, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="sessionward.security")
    pair = await service.issue(username(), fresh=True)
    second = await service.refresh(pair.refresh_token)
    with pytest.raises(RefreshTokenReused):
        await service.refresh(pair.refresh_token)  # the spent one comes back: theft assumed
    with pytest.raises(TokenError):
        await service.refresh(second.refresh_token)  # the whole family is gone, the legitimate holder's too
    assert await reason_of(service, second.access_token) == "token family ended"
    assert "token_reuse_detected" in caplog.text


async def test_forged_old_generation_cannot_revoke_a_family(service: AsyncTokenService) -> None:
    pair = await service.issue(username(), fresh=True)
    family, _generation, mac = pair.refresh_token.split(".")
    forged = f"{family}.0.{'A' * len(mac)}"
    await service.refresh(pair.refresh_token)
    with pytest.raises(TokenError) as exc:
        await service.refresh(forged)
    assert not isinstance(exc.value, RefreshTokenReused)
    assert (await service.verify_access((await service.issue(username(), fresh=False)).access_token))


async def test_concurrent_refreshes_of_one_token_exactly_one_wins(service: AsyncTokenService) -> None:
    for _ in range(3):
        pair = await service.issue(username(), fresh=True)
        results = await asyncio.gather(*[service.refresh(pair.refresh_token) for _ in range(20)],
                                       return_exceptions=True)
        winners = [r for r in results if isinstance(r, TokenPair)]
        losers = [r for r in results if not isinstance(r, TokenPair)]
        assert len(winners) == 1, results
        assert all(isinstance(r, TokenError) for r in losers), losers
        assert any(isinstance(r, RefreshTokenReused) for r in losers)  # a lost race counts as reuse
        with pytest.raises(TokenError):
            await service.refresh(winners[0].refresh_token)  # ... and the family is revoked


async def test_grace_lets_a_retry_get_the_current_token_concurrently(
    make_service: Callable[..., AsyncTokenService], keyset: KeySet
) -> None:
    service = make_service(keyset, reuse_grace=30)
    pair = await service.issue(username(), fresh=True)
    results = await asyncio.gather(*[service.refresh(pair.refresh_token) for _ in range(10)])
    assert len({r.refresh_token for r in results}) == 1  # the one rotation; every retry gets its result
    assert await service.verify_access(results[0].access_token)


async def test_logout_denies_the_access_token_until_it_expires(service: AsyncTokenService,
                                                               clock: ManualClock) -> None:
    pair = await service.issue(username(), fresh=True)
    claims = await service.verify_access(pair.access_token)  # verified and cached
    other = await service.issue(claims.sub, fresh=True)
    assert await service.revoke(claims) is True
    assert await reason_of(service, pair.access_token) == "revoked"  # the denylist, checked after the cache
    with pytest.raises(TokenError):
        await service.refresh(pair.refresh_token)
    assert await service.verify_access(other.access_token)  # the user's other family is untouched
    assert await service.revoke(pair.family_id) is False


async def test_revoke_all_ends_tokens_families_and_cookie_sessions(service: AsyncTokenService,
                                                                   store: AsyncSessionStore,
                                                                   clock: ManualClock) -> None:
    alice = username()
    sessions = AsyncSessionManager(store=store, clock=clock)
    cookie = await sessions.login(alice)
    p1, p2 = await service.issue(alice, fresh=True), await service.issue(alice, fresh=False)
    bob = await service.issue(username(), fresh=True)
    assert await service.revoke_all(alice) == 3
    for p in (p1, p2):
        assert await reason_of(service, p.access_token) in {"revoked (user epoch)", "token family ended"}
        with pytest.raises(TokenError):
            await service.refresh(p.refresh_token)
    assert await sessions.load(cookie.secret) is None
    assert await service.verify_access(bob.access_token)


async def test_epoch_bumped_elsewhere_kills_the_access_token(service: AsyncTokenService,
                                                             store: AsyncSessionStore) -> None:
    alice = username()
    pair = await service.issue(alice, fresh=True)
    await service.verify_access(pair.access_token)
    await store.bump_epoch(alice)
    assert await reason_of(service, pair.access_token) == "revoked (user epoch)"
    with pytest.raises(TokenError):
        await service.refresh(pair.refresh_token)


async def test_key_rotation_through_an_in_memory_key_set_logs_nobody_out(service: AsyncTokenService,
                                                                          clock: ManualClock) -> None:
    pair = await service.issue(username(), fresh=True)
    new_key = await service.rotate_keys()
    clock.set(new_key.activates_at)
    later = await service.issue(username(), fresh=True)
    assert parts(later.access_token)[0]["kid"] == new_key.kid
    assert await service.verify_access(pair.access_token)  # the old key still verifies
    with pytest.raises(ConfigError):
        await service.revoke_key(parts(pair.access_token)[0]["kid"])  # an in-memory set cannot revoke


# -- the shared key set (AsyncSQLKeyRepository) -------------------------------------------------------------


async def test_T14_revoked_key_refused_at_once_on_every_instance(
    make_service: Callable[..., AsyncTokenService], make_repo: Callable[..., Any], clock: ManualClock
) -> None:
    a = make_service(await make_repo(refresh_interval=5))
    b = make_service(await make_repo(refresh_interval=5))
    p1 = await a.issue(username(), fresh=True)
    old_kid = parts(p1.access_token)[0]["kid"]
    for svc in (a, b):
        await svc.verify_access(p1.access_token)  # verified and cached on both
    with pytest.raises(ValidationError, match="keys rotate"):
        await a.revoke_key(old_kid)  # the key that signs now: rotate first
    new_key = await a.rotate_keys()
    clock.set(new_key.activates_at)
    q = await b.issue(username(), fresh=True)
    assert parts(q.access_token)[0]["kid"] == new_key.kid  # b read the rotation within the interval
    revocation, families = await a.revoke_key(old_kid)
    assert revocation.kid == old_kid and families >= 1  # p1's (the PostgreSQL database also holds other tests')
    assert old_kid in {k["kid"] for k in (await b.jwks())["keys"]}  # b has not re-read the key set ...
    assert await reason_of(b, p1.access_token) == "revoked signing key"  # ... and refuses the key's tokens
    assert await reason_of(a, p1.access_token) in {"revoked signing key", "unknown kid"}
    await b.verify_access(q.access_token)
    fresh = await b.refresh(p1.refresh_token)  # the family lives on: refresh tokens do not depend on keys
    await a.verify_access(fresh.access_token)
    clock.advance(5)
    assert old_kid not in {k["kid"] for k in (await b.jwks())["keys"]}
