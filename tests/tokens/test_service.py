"""TokenService against real forged tokens and the real SQL store (T1-T11, T13 at the service level).

Forged tokens are signed with our real private key wherever the point is that a *later* check must catch
them (so the test fails if that check is removed, not merely because the signature is wrong).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from sessionward import db
from sessionward.clock import ManualClock
from sessionward.exceptions import ConfigError, RefreshTokenReused, StoreUnavailable, TokenError, ValidationError
from sessionward.stores.base import SessionRecord
from sessionward.stores.sql import SQLStore
from sessionward.tokens import KeySet, SQLKeyRepository, TokenService
from sessionward.tokens import jws as jws_module
from sessionward.tokens import service as service_module

from .conftest import AUDIENCE, ISSUER
from .forge import b64u, compact, parts, resign


def reason_of(svc: TokenService, token: Any) -> str:
    with pytest.raises(TokenError) as exc:
        svc.verify_access(token)
    return exc.value.reason


@pytest.fixture
def pair(service: TokenService) -> Any:
    return service.issue("alice", fresh=True, user_agent="pytest", ip="192.0.2.1")


@pytest.fixture
def our_key(keyset: KeySet, clock: ManualClock) -> Any:
    return keyset.signing_key(clock.now())


# -- issue / verify -------------------------------------------------------------------------------------


def test_issue_verify_refresh_roundtrip(service: TokenService, pair: Any, our_key: Any, clock: ManualClock) -> None:
    header, payload, _ = parts(pair.access_token)
    assert header == {"alg": "EdDSA", "kid": our_key.kid, "typ": "at+jwt"}
    assert set(payload) == {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "sid", "uep", "fresh"}
    claims = service.verify_access(pair.access_token)
    assert (claims.sub, claims.sid, claims.fresh, claims.epoch) == ("alice", pair.family_id, True, 0)
    assert claims.exp - claims.iat == 900 and pair.expires_in == 900
    new = service.refresh(pair.refresh_token)
    again = service.verify_access(new.access_token)
    assert again.fresh is False and again.sid == pair.family_id and again.jti != claims.jti
    assert "access_token" in new.as_dict() and new.access_token not in repr(new) and new.refresh_token not in repr(new)


def test_extra_claims_survive_refresh_and_cannot_override(service: TokenService, store: SQLStore,
                                                          clock: ManualClock) -> None:
    p = service.issue("bob", fresh=True, extra_claims={"role": "admin"})
    assert service.verify_access(service.refresh(p.refresh_token).access_token).extra["role"] == "admin"
    before = len(store.list_for_user("bob", now=clock.now()))
    with pytest.raises(ValueError):
        service.issue("bob", fresh=True, extra_claims={"sub": "root"})
    assert len(store.list_for_user("bob", now=clock.now())) == before  # no half-made family


def test_refresh_key_checked_at_construction(make_service: Callable[..., TokenService], keyset: KeySet, store: SQLStore,
                                             clock: ManualClock) -> None:
    from sessionward.tokens import TokenPolicy

    pol = TokenPolicy(issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(ConfigError, match="TOKEN_REFRESH_KEY"):
        TokenService(store=store, keys=keyset, refresh_key=b"short", policy=pol, clock=clock)
    hs = KeySet.generate("HS256", now=clock.now())
    with pytest.raises(ConfigError, match="one key per purpose"):
        TokenService(store=store, keys=hs, refresh_key=hs.signing_key(clock.now()).private, policy=pol, clock=clock)


# -- T1: signature first, alg pinned, none refused ---------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_refused(service: TokenService, pair: Any, alg: str) -> None:
    header, payload, sig = parts(pair.access_token)
    assert reason_of(service, compact({**header, "alg": alg}, payload, sig)) == "alg none"
    assert reason_of(service, compact({**header, "alg": alg}, payload, b"")) == "malformed"
    h, p, _ = compact({**header, "alg": alg}, payload).split(".")
    assert reason_of(service, f"{h}.{p}") == "malformed"


def test_stripped_and_null_signatures(service: TokenService, pair: Any) -> None:
    h, p, s = pair.access_token.split(".")
    assert reason_of(service, f"{h}.{p}.") == "malformed"
    assert reason_of(service, f"{h}.{p}") == "malformed"
    assert reason_of(service, f"{h}.{p}.{b64u(bytes(64))}") == "bad signature"  # all-zero Ed25519 signature
    assert reason_of(service, f"{h}.{p}.{b64u(b'null')}") == "bad signature"


def test_tampered_payload(service: TokenService, pair: Any) -> None:
    header, payload, sig = parts(pair.access_token)
    assert reason_of(service, compact(header, {**payload, "sub": "admin"}, sig)) == "bad signature"
    assert reason_of(service, compact(header, {**payload, "exp": payload["exp"] + 10**6}, sig)) == "bad signature"


def test_signature_checked_before_claims_are_used(service: TokenService, pair: Any, store: SQLStore,
                                                  clock: ManualClock) -> None:
    # A forged token naming another family/user must not touch the store's records (no claim used unsigned).
    header, payload, sig = parts(pair.access_token)
    service.verify_access(pair.access_token)
    forged = compact(header, {**payload, "sid": "x" * 22, "sub": "mallory"}, sig)
    assert reason_of(service, forged) == "bad signature"
    assert store.get(pair.family_id, now=clock.now()) is not None


# -- T2: no key confusion -------------------------------------------------------------------------------------


def test_hmac_key_never_verifies_asymmetric_token_and_vice_versa(make_service: Callable[..., TokenService],
                                                                 clock: ManualClock) -> None:
    ks = KeySet.generate("HS256", now=clock.now())
    ed = ks.rotate(now=clock.now(), alg="EdDSA", activate_after=3600)  # verifies, does not sign yet
    svc = make_service(ks)
    hs_token = svc.issue("alice", fresh=True).access_token
    hs_key = ks.signing_key(clock.now())
    assert svc.verify_access(hs_token).sub == "alice"
    # EdDSA-signed token naming the HMAC key's kid, and HMAC-signed token naming the EdDSA kid
    as_ed = resign(hs_token, ed.private, alg="EdDSA", header={"kid": hs_key.kid, "typ": "at+jwt"})
    assert reason_of(svc, as_ed) == "alg does not match the key"
    as_hs = resign(hs_token, hs_key.private, alg="HS256", header={"kid": ed.kid, "typ": "at+jwt"})
    assert reason_of(svc, as_hs) == "alg does not match the key"


# -- T3: keys only from our key set ---------------------------------------------------------------------------


@pytest.fixture
def attacker() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def _attacker_jwk(attacker: ed25519.Ed25519PrivateKey) -> dict[str, Any]:
    return jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key(), as_dict=True)


@pytest.mark.parametrize(
    "extra",
    [
        lambda a: {"jwk": _attacker_jwk(a)},
        lambda a: {"jku": "https://evil.example/.well-known/jwks.json"},
        lambda a: {"x5u": "https://evil.example/cert.pem"},
        lambda a: {"x5c": ["MIIBszCCAVmgAwIBAgIUQ2"]},
    ],
    ids=["jwk", "jku", "x5u", "x5c"],
)
@pytest.mark.parametrize("kid_is_ours", [True, False])
def test_key_bearing_headers_refused(service: TokenService, pair: Any, attacker: Any, our_key: Any, extra: Any,
                                     kid_is_ours: bool) -> None:
    kid = our_key.kid if kid_is_ours else "attacker-key"
    forged = resign(pair.access_token, attacker, alg="EdDSA", header={"kid": kid, "typ": "at+jwt", **extra(attacker)},
                    sub="admin")
    assert reason_of(service, forged) == "key-bearing header refused"


@pytest.mark.parametrize("kid", ["../../dev/null", "/dev/null", "' OR 1=1 --", "https://evil.example/k", "unknown-kid"])
def test_kid_is_only_a_lookup_key(service: TokenService, pair: Any, our_key: Any, kid: str) -> None:
    # Even signed with our real key: a kid that is not exactly ours is refused.
    forged = resign(pair.access_token, our_key.private, alg="EdDSA", header={"kid": kid, "typ": "at+jwt"})
    assert reason_of(service, forged) == "unknown kid"
    # the classic: kid pointing at an empty file + HS256 with an empty secret
    header = {"alg": "HS256", "typ": "at+jwt", "kid": kid}
    _, payload, _ = parts(pair.access_token)
    unsigned = compact(header, payload).rsplit(".", 1)[0]
    sig = hmac.new(b"", unsigned.encode(), hashlib.sha256).digest()
    assert reason_of(service, f"{unsigned}.{b64u(sig)}") == "unknown kid"


# -- T4: times ------------------------------------------------------------------------------------------------


def test_expired_with_leeway(service: TokenService, pair: Any, clock: ManualClock) -> None:
    clock.advance(900 + 29)
    service.verify_access(pair.access_token)
    clock.advance(1)
    assert reason_of(service, pair.access_token) == "expired"


def test_future_nbf_and_iat(service: TokenService, pair: Any, our_key: Any, clock: ManualClock) -> None:
    for claim in ("nbf", "iat"):
        forged = resign(pair.access_token, our_key.private, alg="EdDSA", **{claim: int(clock.now()) + 3600})
        assert reason_of(service, forged) in {"not yet valid", "issued in the future"}


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "jti", "sub", "iss", "aud", "sid", "uep", "fresh"])
def test_required_claims(service: TokenService, pair: Any, our_key: Any, claim: str) -> None:
    forged = resign(pair.access_token, our_key.private, alg="EdDSA", **{claim: ...})
    with pytest.raises(TokenError):
        service.verify_access(forged)


# -- T5: iss exact, aud, typ, token types ----------------------------------------------------------------------


@pytest.mark.parametrize("iss", [ISSUER[:-3], ISSUER + ".evil", "https://evil" + ISSUER[8:], [ISSUER]])
def test_issuer_must_match_exactly(service: TokenService, pair: Any, our_key: Any, iss: Any) -> None:
    forged = resign(pair.access_token, our_key.private, alg="EdDSA", iss=iss)
    assert reason_of(service, forged) == "wrong issuer"


@pytest.mark.parametrize("aud", ["other-api", [AUDIENCE, "other-api"], AUDIENCE + "x"])
def test_audience_checked(service: TokenService, pair: Any, our_key: Any, aud: Any) -> None:
    forged = resign(pair.access_token, our_key.private, alg="EdDSA", aud=aud)
    assert reason_of(service, forged) == "wrong audience"


@pytest.mark.parametrize("typ", [None, "JWT"])
def test_typ_must_be_at_jwt(service: TokenService, pair: Any, our_key: Any, typ: Any) -> None:
    forged = resign(pair.access_token, our_key.private, alg="EdDSA", header={"kid": our_key.kid, "typ": typ})
    assert ("typ" in parts(forged)[0]) is (typ is not None)
    assert reason_of(service, forged) == "typ is not at+jwt"


def test_refresh_token_never_accepted_as_access_token_and_back(service: TokenService, pair: Any) -> None:
    assert reason_of(service, pair.refresh_token) in {"malformed", "malformed header"}
    with pytest.raises(TokenError) as exc:
        service.refresh(pair.access_token)
    assert exc.value.reason == "malformed refresh token"


# -- T6: crit, size ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crit", [["x"], ["b64"], []])
def test_crit_refused(service: TokenService, pair: Any, our_key: Any, crit: list[str]) -> None:
    forged = resign(pair.access_token, our_key.private, alg="EdDSA",
                    header={"kid": our_key.kid, "typ": "at+jwt", "crit": crit, "x": 1})
    assert reason_of(service, forged) == "crit header refused"


def test_oversized_token_refused_before_parsing(service: TokenService, pair: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_parse(_segment: str) -> bytes:
        raise AssertionError("an oversized token was parsed")

    monkeypatch.setattr(jws_module, "_decode_segment", must_not_parse)
    h, p, s = pair.access_token.split(".")
    huge = f"{h}.{p + 'A' * (1024 * 1024)}.{s}"
    assert reason_of(service, huge) == "too large"
    assert reason_of(service, "A" * (service.policy.max_token_bytes + 1)) == "too large"
    with pytest.raises(TokenError) as exc:
        service.refresh("A" * (1024 * 1024))
    assert exc.value.reason == "malformed refresh token"


@pytest.mark.parametrize("junk", ["", "a.b.c", "....", "é.é.é", "a.b", "{}.{}.{}", None, 12, b"abc"])
def test_junk_is_a_token_error_never_a_crash(service: TokenService, junk: Any) -> None:
    with pytest.raises(TokenError):
        service.verify_access(junk)
    with pytest.raises(TokenError):
        service.refresh(junk)


def test_duplicate_header_members_refused(service: TokenService, pair: Any) -> None:
    h, p, s = pair.access_token.split(".")
    header = parts(pair.access_token)[0]
    alg, kid = header["alg"], header["kid"]
    raw = f'{{"alg":"none","alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}'
    assert reason_of(service, f"{b64u(raw.encode())}.{p}.{s}") == "malformed header"


# -- T8: refresh rotation and reuse ---------------------------------------------------------------------------------


def test_rotation_and_reuse_revokes_family(service: TokenService, pair: Any, store: SQLStore, clock: ManualClock,
                                           caplog: Any) -> None:
    r2 = service.refresh(pair.refresh_token)
    assert r2.refresh_token != pair.refresh_token and r2.family_id == pair.family_id
    with caplog.at_level(logging.INFO, logger="sessionward.security"), pytest.raises(RefreshTokenReused):
        service.refresh(pair.refresh_token)
    assert store.get(pair.family_id, now=clock.now()) is None
    with pytest.raises(TokenError):
        service.refresh(r2.refresh_token)  # R2 died with its family
    reuse = [r for r in caplog.records if getattr(r, "event", None) == "token_reuse_detected"]
    assert len(reuse) == 1 and reuse[0].levelno == logging.WARNING
    assert reuse[0].fields["family"] == pair.family_id and reuse[0].fields["user_id"] == "alice"
    text = "\n".join(r.getMessage() + repr(getattr(r, "fields", "")) for r in caplog.records)
    assert pair.refresh_token.rsplit(".", 1)[1] not in text and r2.refresh_token.rsplit(".", 1)[1] not in text


def test_forged_old_generation_cannot_revoke_a_family(service: TokenService, pair: Any) -> None:
    r2 = service.refresh(pair.refresh_token)
    family, _, _ = pair.refresh_token.split(".")  # the family id is public: it is the access token's sid
    with pytest.raises(TokenError) as exc:
        service.refresh(f"{family}.0.{b64u(secrets.token_bytes(32))}")
    assert not isinstance(exc.value, RefreshTokenReused) and exc.value.reason == "bad refresh token mac"
    service.refresh(r2.refresh_token)  # still alive


def test_refresh_mac_binds_generation(service: TokenService, pair: Any) -> None:
    family, gen, mac = pair.refresh_token.split(".")
    with pytest.raises(TokenError) as exc:
        service.refresh(f"{family}.1.{mac}")
    assert exc.value.reason == "bad refresh token mac"


def _race(svc: TokenService, token: str, n: int) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = svc.refresh(token)
        except Exception as exc:  # noqa: BLE001 - collected and checked below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_refresh_exactly_one_wins_sqlite(service: TokenService) -> None:
    for _ in range(3):
        p = service.issue("alice", fresh=True)
        results = _race(service, p.refresh_token, 8)
        wins = [r for r in results if not isinstance(r, Exception)]
        assert len(wins) == 1, results
        assert all(isinstance(r, TokenError) for r in results if isinstance(r, Exception)), results
        assert any(isinstance(r, RefreshTokenReused) for r in results)


@pytest.mark.postgres
def test_concurrent_refresh_exactly_one_wins_postgres(postgres_url: str, make_service: Callable[..., TokenService],
                                                      keyset: KeySet) -> None:
    pg = SQLStore.from_url(postgres_url)
    try:
        svc = make_service(keyset, store_=pg)
        for _ in range(3):
            p = svc.issue("alice", fresh=True)
            results = _race(svc, p.refresh_token, 8)
            assert len([r for r in results if not isinstance(r, Exception)]) == 1, results
    finally:
        pg.close()


# -- grace period (default off) --------------------------------------------------------------------------------------


def test_grace_period_lets_a_retry_get_the_current_token(make_service: Callable[..., TokenService], keyset: KeySet,
                                                         clock: ManualClock) -> None:
    svc = make_service(keyset, reuse_grace=10)
    p = svc.issue("alice", fresh=True)
    r2 = svc.refresh(p.refresh_token)
    clock.advance(5)
    retry = svc.refresh(p.refresh_token)  # the client never saw r2 and retries
    assert retry.refresh_token == r2.refresh_token  # the same, current token: nothing rotated
    svc.verify_access(retry.access_token)
    r3 = svc.refresh(r2.refresh_token)
    clock.advance(1)
    with pytest.raises(RefreshTokenReused):
        svc.refresh(p.refresh_token)  # two generations old: never in grace
    with pytest.raises(TokenError):
        svc.refresh(r3.refresh_token)


def test_grace_period_ends(make_service: Callable[..., TokenService], keyset: KeySet, clock: ManualClock) -> None:
    svc = make_service(keyset, reuse_grace=10)
    p = svc.issue("alice", fresh=True)
    svc.refresh(p.refresh_token)
    clock.advance(10.5)
    with pytest.raises(RefreshTokenReused):
        svc.refresh(p.refresh_token)


# -- T10: idle and absolute family lifetime ----------------------------------------------------------------------------


def test_idle_lifetime(service: TokenService, pair: Any, clock: ManualClock) -> None:
    clock.advance(service.policy.refresh_idle)
    with pytest.raises(TokenError) as exc:
        service.refresh(pair.refresh_token)
    assert exc.value.reason == "unknown or expired token family"


def test_refreshing_moves_idle_but_not_absolute(service: TokenService, pair: Any, clock: ManualClock) -> None:
    day = 86400
    token = pair.refresh_token
    for _ in range(29):  # once a day: never idle, 29 days in
        clock.advance(day)
        token = service.refresh(token).refresh_token
    clock.advance(day)  # day 30: absolute lifetime reached
    with pytest.raises(TokenError):
        service.refresh(token)


# -- T9: logout and logout-everywhere ----------------------------------------------------------------------------------


def test_logout_revokes_family_and_denies_jti_until_exp(service: TokenService, pair: Any, store: SQLStore,
                                                        clock: ManualClock) -> None:
    claims = service.verify_access(pair.access_token)
    assert service.revoke(claims) is True
    assert reason_of(service, pair.access_token) == "revoked"
    with pytest.raises(TokenError):
        service.refresh(pair.refresh_token)
    clock.advance(900 + 29)  # still accepted by time until exp + leeway, so still denied
    assert reason_of(service, pair.access_token) == "revoked"
    clock.advance(1)
    assert reason_of(service, pair.access_token) == "expired"


def test_revoke_by_family_id(service: TokenService, pair: Any) -> None:
    assert service.revoke(pair.family_id) is True
    with pytest.raises(TokenError):
        service.refresh(pair.refresh_token)
    assert service.revoke(pair.family_id) is False
    with pytest.raises(ValueError):
        service.revoke(pair.family_id, jti="j")


def test_revoke_all_ends_tokens_families_and_cookie_sessions(service: TokenService, store: SQLStore,
                                                             clock: ManualClock) -> None:
    now = clock.now()
    a, b = service.issue("alice", fresh=True), service.issue("alice", fresh=False)
    other = service.issue("bob", fresh=True)
    store.create(
        SessionRecord(id=secrets.token_urlsafe(16), kind="cookie", user_id="alice", created_at=now, last_seen=now,
                      auth_at=now, expires_at=now + 3600, idle_expires_at=now + 600, epoch=0,
                      secret_hash=secrets.token_hex(32)),
        now=now,
    )
    assert service.revoke_all("alice") == 3
    for p in (a, b):
        assert reason_of(service, p.access_token) == "revoked (user epoch)"
        with pytest.raises(TokenError):
            service.refresh(p.refresh_token)
    assert store.list_for_user("alice", now=now) == []
    service.verify_access(other.access_token)
    fresh = service.issue("alice", fresh=True)  # a new login after the cutoff works
    assert service.verify_access(fresh.access_token).epoch == 1


def test_epoch_bumped_elsewhere_kills_family_and_access(service: TokenService, pair: Any, store: SQLStore,
                                                        clock: ManualClock) -> None:
    store.bump_epoch("alice")  # e.g. a password change through the cookie side, records not yet deleted
    assert reason_of(service, pair.access_token) == "revoked (user epoch)"
    with pytest.raises(TokenError) as exc:
        service.refresh(pair.refresh_token)
    assert exc.value.reason == "revoked (user epoch)"
    assert store.get(pair.family_id, now=clock.now()) is None


# -- T11: key rotation -------------------------------------------------------------------------------------------------


def test_rotation_logs_nobody_out(service: TokenService, pair: Any, keyset: KeySet, clock: ManualClock) -> None:
    old_kid = parts(pair.access_token)[0]["kid"]
    new_key = service.rotate_keys()
    newer = service.issue("alice", fresh=True)
    assert parts(newer.access_token)[0]["kid"] == new_key.kid != old_kid
    service.verify_access(pair.access_token)  # old token valid until its exp
    service.refresh(pair.refresh_token)  # refresh tokens do not depend on signing keys
    jwks = service.jwks()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_key.kid}
    assert not any({"d", "k", "p", "q"} & set(k) for k in jwks["keys"])
    clock.advance(service.policy.max_token_lifetime + 1)
    assert service.retire_keys() == [old_kid]
    assert [k["kid"] for k in service.jwks()["keys"]] == [new_key.kid]


def test_retired_key_stops_verifying_even_a_cached_token(service: TokenService, pair: Any, keyset: KeySet,
                                                         clock: ManualClock) -> None:
    service.verify_access(pair.access_token)  # now cached
    keyset.rotate(now=clock.now())
    clock.advance(5)
    keyset.retire_expired(now=clock.now(), max_token_lifetime=1)
    assert reason_of(service, pair.access_token) == "unknown kid"


# -- T14: keys retire by themselves, a leaked key is revoked at once ---------------------------------------------------


def late_token(pair: Any, key: Any, clock: ManualClock) -> str:
    """What a holder of `key`'s private part could sign now: the same live family, fresh times."""
    now = int(clock.now())
    return resign(pair.access_token, key.private, alg=key.alg, iat=now, nbf=now, exp=now + 900)


def test_T14_superseded_key_leaves_key_set_and_jwks_once_its_tokens_are_dead(
    service: TokenService, pair: Any, our_key: Any, clock: ManualClock
) -> None:
    new_key = service.rotate_keys()
    stopped = clock.now()  # the old key's last token was signed just before now
    clock.set(stopped + service.policy.max_token_lifetime)  # access TTL + leeway
    late = late_token(pair, our_key, clock)
    service.verify_access(late)  # still in the key set
    assert our_key.kid in {k["kid"] for k in service.jwks()["keys"]}
    clock.advance(1)  # no command, no sleeping: the clock alone retires it
    assert {k["kid"] for k in service.jwks()["keys"]} == {new_key.kid}
    assert reason_of(service, late) == "unknown kid"  # even though it was verified (and cached) a second ago
    service.verify_access(service.issue("alice", fresh=True).access_token)


@pytest.fixture
def instances(tmp_path: Any, make_service: Callable[..., TokenService]) -> tuple[TokenService, TokenService]:
    """Two instances: one key table (SQLite), one store, each its own key cache (refresh every 5 s)."""
    url, kek = f"sqlite:///{tmp_path}/keys.db", secrets.token_bytes(32)
    return (make_service(SQLKeyRepository(db.make_engine(url), kek, refresh_interval=5)),
            make_service(SQLKeyRepository(db.make_engine(url), kek, refresh_interval=5)))


def kids(svc: TokenService) -> set[str]:
    return {k["kid"] for k in svc.jwks()["keys"]}


def test_T14_retired_on_every_instance_without_a_command(instances: Any, clock: ManualClock) -> None:
    a, b = instances
    p = a.issue("alice", fresh=True)
    old_kid = parts(p.access_token)[0]["kid"]
    old_key = a._keys.current(clock.now()).verification_key(old_kid)
    b.verify_access(p.access_token)
    new_key = a.rotate_keys()  # signs 10 s later, once every instance has read it
    clock.set(new_key.activates_at + a.policy.max_token_lifetime)
    late = late_token(p, old_key, clock)
    for svc in (a, b):
        svc.verify_access(late)
        assert old_kid in kids(svc)
    clock.advance(1)
    for svc in (a, b):
        assert reason_of(svc, late) == "unknown kid"
        assert kids(svc) == {new_key.kid}


def test_T14_revoked_key_refused_at_once_on_every_instance(instances: Any, clock: ManualClock) -> None:
    a, b = instances
    p1, p2 = a.issue("alice", fresh=True), b.issue("carol", fresh=True)
    old_kid = parts(p1.access_token)[0]["kid"]
    for svc in (a, b):
        svc.verify_access(p1.access_token)  # verified and cached on both
    with pytest.raises(ValidationError, match="keys rotate"):
        a.revoke_key(old_kid)  # the key that signs now: rotate first
    b.verify_access(p1.access_token)  # the refusal left nothing behind
    new_key = a.rotate_keys()
    clock.set(new_key.activates_at)
    q = b.issue("bob", fresh=True)
    assert parts(q.access_token)[0]["kid"] == new_key.kid
    revocation, families = a.revoke_key(old_kid)
    assert revocation.kid == old_kid and families == 2  # alice's and carol's families; not bob's
    assert old_kid in kids(b)  # b has not re-read the key set ...
    for svc in (a, b):  # ... and still refuses the key's tokens at once
        assert reason_of(svc, p1.access_token) in {"revoked signing key", "unknown kid"}
        assert reason_of(svc, p2.access_token) in {"revoked signing key", "unknown kid"}
        svc.verify_access(q.access_token)
    assert reason_of(b, p1.access_token) == "revoked signing key"
    fresh = b.refresh(p1.refresh_token)  # the family lives on: refresh tokens do not depend on signing keys
    for svc in (a, b):
        svc.verify_access(fresh.access_token)
    clock.advance(5)
    assert old_kid not in kids(a) and old_kid not in kids(b)


def test_T14_revoke_with_the_store_down_revokes_nothing(tmp_path: Any, make_service: Callable[..., TokenService],
                                                      clock: ManualClock) -> None:
    """Fail closed: without the shared store no instance could learn of the revocation at once, so the key stays
    and the command fails (the operator retries), rather than a revocation that other instances ignore."""
    keys = SQLKeyRepository(db.make_engine(f"sqlite:///{tmp_path}/keys.db"), secrets.token_bytes(32))
    old = keys.load(now=clock.now()).signing_key(clock.now())
    keys.rotate(now=clock.now(), activate_after=0)
    down = SQLStore.from_url("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1, create_schema=False)
    with pytest.raises(StoreUnavailable):
        make_service(keys, store_=down).revoke_key(old.kid)
    assert keys.load(now=clock.now()).verification_key(old.kid) is not None
    assert [i.status for i in keys.describe(now=clock.now())] == ["verifying", "signing"]


def test_hmac_keys_never_in_jwks(make_service: Callable[..., TokenService], clock: ManualClock) -> None:
    ks = KeySet.generate("HS256", now=clock.now())
    svc = make_service(ks)
    assert svc.jwks() == {"keys": []}
    svc.rotate_keys(alg="ES256")
    assert [k["kty"] for k in svc.jwks()["keys"]] == ["EC"]


def test_second_instance_verifies_after_rotation_on_first(tmp_path: Any, store: SQLStore, refresh_key: bytes,
                                                          clock: ManualClock) -> None:
    from sessionward.tokens import TokenPolicy

    url, kek = f"sqlite:///{tmp_path}/keys.db", secrets.token_bytes(32)
    pol = TokenPolicy(issuer=ISSUER, audience=AUDIENCE)

    def instance() -> TokenService:
        keys = SQLKeyRepository(db.make_engine(url), kek, refresh_interval=5)
        return TokenService(store=store, keys=keys, refresh_key=refresh_key, policy=pol, clock=clock)

    a, b = instance(), instance()
    first = a.issue("alice", fresh=True)
    b.verify_access(first.access_token)
    new_key = a.rotate_keys()
    # Until the new key activates, a keeps signing with the old one, which b verifies.
    b.verify_access(a.issue("alice", fresh=True).access_token)
    clock.advance(10)
    signed_new = a.issue("alice", fresh=True)
    assert parts(signed_new.access_token)[0]["kid"] == new_key.kid
    assert b.verify_access(signed_new.access_token).sub == "alice"
    b.verify_access(first.access_token)
    assert b.refresh(signed_new.refresh_token).family_id == signed_new.family_id  # shared families too


# -- the verified-token cache ------------------------------------------------------------------------------------------


def test_cache_skips_signature_but_rechecks_exp_denylist_epoch(service: TokenService, pair: Any, clock: ManualClock,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    service.verify_access(pair.access_token)
    calls = []
    real = service_module.verify_compact  # parse + signature check: what a cache hit skips
    monkeypatch.setattr(service_module, "verify_compact", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3):
        service.verify_access(pair.access_token)
    assert calls == []  # served from the cache
    p2 = service.issue("alice", fresh=True)
    service.verify_access(p2.access_token)
    service.revoke(service.verify_access(p2.access_token))
    assert reason_of(service, p2.access_token) == "revoked"
    service._store.bump_epoch("alice")  # type: ignore[attr-defined]
    assert reason_of(service, pair.access_token) == "revoked (user epoch)"
    p3 = service.issue("alice", fresh=True)
    service.verify_access(p3.access_token)
    clock.advance(900 + 30)
    assert reason_of(service, p3.access_token) == "expired"


def test_cache_is_bounded(make_service: Callable[..., TokenService], keyset: KeySet, store: SQLStore,
                          clock: ManualClock, refresh_key: bytes) -> None:
    svc = TokenService(store=store, keys=keyset, refresh_key=refresh_key, policy=make_service(keyset).policy,
                       clock=clock, cache_size=4)
    for _ in range(10):
        svc.verify_access(svc.issue("alice", fresh=True).access_token)
    assert len(svc._cache) == 4  # type: ignore[attr-defined]


# -- fail closed -------------------------------------------------------------------------------------------------------


def test_store_down_is_store_unavailable_not_access(make_service: Callable[..., TokenService], service: TokenService,
                                                    pair: Any, keyset: KeySet) -> None:
    down = SQLStore.from_url("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1, create_schema=False)
    svc = make_service(keyset, store_=down)
    with pytest.raises(StoreUnavailable):
        svc.verify_access(pair.access_token)
    with pytest.raises(StoreUnavailable):
        svc.refresh(pair.refresh_token)
    with pytest.raises(StoreUnavailable):
        svc.issue("alice", fresh=True)


def test_ending_a_family_ends_its_access_tokens_at_once(service: TokenService, store: SQLStore,
                                                        clock: ManualClock) -> None:
    """C7/T9: ending a token family from anywhere (the sessions page, the CLI, reuse detection) kills the access
    tokens it issued, also those from earlier generations, without waiting for them to expire."""
    first = service.issue("alice", fresh=True)
    second = service.refresh(first.refresh_token)
    other = service.issue("alice", fresh=True)
    service.verify_access(first.access_token)
    service.verify_access(second.access_token)
    assert store.delete(first.family_id)  # what SessionManager.revoke / `sessions revoke ID` do
    assert reason_of(service, first.access_token) == "token family ended"
    assert reason_of(service, second.access_token) == "token family ended"
    service.verify_access(other.access_token)  # another family of the same user lives on


def test_reuse_detection_ends_the_thief_s_access_token_too(service: TokenService) -> None:
    pair = service.issue("alice", fresh=True)
    thief = service.refresh(pair.refresh_token)  # the thief spends it first
    with pytest.raises(TokenError):
        service.refresh(pair.refresh_token)  # the victim comes back: reuse, family revoked
    assert reason_of(service, thief.access_token) == "token family ended"


def test_long_user_agent_and_address_are_cut_on_issue_and_refresh(
    service: TokenService, store: SQLStore, clock: ManualClock
) -> None:
    from sessionward.stores.base import MAX_IP, MAX_USER_AGENT

    pair = service.issue("alice", fresh=True, user_agent="U" * 5000, ip="1" * 500)
    family = store.get(pair.family_id, now=clock.now())
    assert family is not None and (family.user_agent, family.ip) == ("U" * MAX_USER_AGENT, "1" * MAX_IP)
    service.refresh(pair.refresh_token, user_agent="V" * 5000, ip="2" * 500)
    family = store.get(pair.family_id, now=clock.now())
    assert family is not None and family.data["last_client"] == {"user_agent": "V" * MAX_USER_AGENT, "ip": "2" * MAX_IP}
