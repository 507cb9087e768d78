"""Signing keys, the key set and the shared SQL key repository (T3, T7, T11)."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sessionward import db
from sessionward.clock import ManualClock
from sessionward.exceptions import ConfigError, NotFound, ValidationError
from sessionward.tokens import KeySet, SigningKey, SQLKeyRepository
from sessionward.tokens.keystore import keys_revoked_table, keys_table

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


# -- SigningKey: one algorithm per key, material checked ------------------------------------------------


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256", "HS256"])
def test_generate_each_algorithm(alg: str) -> None:
    key = SigningKey.generate(alg, now=1.0)
    assert key.alg == alg and key.activates_at == 1.0
    token = jwt.encode({"x": 1}, key.private, algorithm=alg)
    assert jwt.decode(token, key.verifying_key(), algorithms=[alg]) == {"x": 1}


def test_private_material_not_in_repr() -> None:
    key = SigningKey(kid="k1", alg="HS256", private=secrets.token_bytes(32))
    assert key.private.hex() not in repr(key) and "private" not in repr(key)


@pytest.mark.parametrize("short", [b"", b"x" * 16, secrets.token_bytes(31)])
def test_hmac_key_shorter_than_256_bits_refused(short: bytes) -> None:
    with pytest.raises(ConfigError, match="at least 256 random bits") as exc:
        SigningKey(kid="k1", alg="HS256", private=short)
    assert exc.value.setting == "TOKEN_SIGNING_KEY"


@pytest.mark.parametrize("weak", [b"a" * 32, b"password" * 4, "a-text-password-that-is-long-enough!"])
def test_human_memorable_or_text_hmac_key_refused(weak: Any) -> None:
    with pytest.raises(ConfigError):
        SigningKey(kid="k1", alg="HS256", private=weak)


def test_rsa_below_2048_bits_refused() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ConfigError, match="2048"):
        SigningKey(kid="k1", alg="RS256", private=small)


@pytest.mark.parametrize(
    ("alg", "make"),
    [
        ("EdDSA", lambda: ec.generate_private_key(ec.SECP256R1())),
        ("ES256", lambda: ec.generate_private_key(ec.SECP384R1())),  # wrong curve for ES256
        ("ES256", ed25519.Ed25519PrivateKey.generate),
        ("RS256", lambda: secrets.token_bytes(32)),
        ("HS256", ed25519.Ed25519PrivateKey.generate),
    ],
)
def test_material_must_fit_the_pinned_algorithm(alg: str, make: Any) -> None:
    with pytest.raises(ConfigError):
        SigningKey(kid="k1", alg=alg, private=make())  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", ["none", "None", "HS512", "RS384", "PS256", "ES512", ""])
def test_unsupported_algorithms_refused(alg: str) -> None:
    with pytest.raises(ConfigError):
        SigningKey.generate(alg, now=0)


@pytest.mark.parametrize("kid", ["", "../../dev/null", "' OR 1=1 --", "a" * 65, "k/1", "k 1"])
def test_kid_shape_enforced_for_our_keys(kid: str) -> None:
    with pytest.raises(ConfigError):
        SigningKey(kid=kid, alg="EdDSA", private=ed25519.Ed25519PrivateKey.generate())


# -- KeySet ------------------------------------------------------------------------------------------------


def test_lookup_by_kid_is_exact_and_only_ours() -> None:
    ks = KeySet.generate(now=0)
    key = ks.signing_key(0)
    assert ks.verification_key(key.kid) is key
    probes = ["../../dev/null", "' OR 1=1 --", key.kid + " ", key.kid[:-1], "", None, 1, [key.kid], {"kid": key.kid}]
    for probe in probes:
        assert ks.verification_key(probe) is None


def test_rotate_new_key_signs_old_keeps_verifying() -> None:
    ks = KeySet.generate(now=0)
    old = ks.signing_key(0)
    v0 = ks.version
    new = ks.rotate(now=10)
    assert new.kid != old.kid and new.alg == old.alg
    assert ks.signing_key(10) is new
    assert ks.verification_key(old.kid) is old
    assert ks.version > v0


def test_rotate_with_delayed_activation_keeps_signing_with_old_key() -> None:
    ks = KeySet.generate(now=0)
    old = ks.signing_key(0)
    new = ks.rotate(now=10, activate_after=30)
    assert ks.signing_key(39) is old  # the new key verifies already but does not sign yet
    assert ks.verification_key(new.kid) is new
    assert ks.signing_key(40) is new


def test_rotate_can_change_algorithm() -> None:
    ks = KeySet.generate("EdDSA", now=0)
    assert ks.rotate(now=1, alg="ES256").alg == "ES256"
    assert ks.signing_key(1).alg == "ES256"


def test_retire_only_after_last_token_expired() -> None:
    ks = KeySet.generate(now=0)
    old = ks.signing_key(0)
    new = ks.rotate(now=100)
    assert ks.retire_expired(now=100 + 930, max_token_lifetime=930) == []  # a token signed at 99.9 may live
    assert ks.verification_key(old.kid) is old
    assert ks.retire_expired(now=100 + 931, max_token_lifetime=930) == [old.kid]
    assert ks.verification_key(old.kid) is None
    # the active key is never retired, however old
    assert ks.retire_expired(now=10**9, max_token_lifetime=1) == []
    assert ks.signing_key(10**9) is new


def test_T14_superseded_key_retires_by_itself_after_ttl_plus_leeway() -> None:
    ks = KeySet.generate(now=0)
    ks.bind_token_lifetime(930)  # what a TokenService does: access TTL 900 + leeway 30
    old = ks.signing_key(0)
    new = ks.rotate(now=100)
    assert ks.current(100 + 930).verification_key(old.kid) is old  # a token signed at 99.9 may still live
    assert old.kid in {k["kid"] for k in ks.current(100 + 930).jwks()["keys"]}
    assert ks.current(100 + 931).verification_key(old.kid) is None  # no command: time did it
    assert [k["kid"] for k in ks.jwks()["keys"]] == [new.kid]
    assert ks.current(10**9).signing_key(10**9) is new  # the key that signs never retires


def test_T14_retirement_waits_for_the_successor_to_activate() -> None:
    ks = KeySet.generate(now=0)
    ks.bind_token_lifetime(930)
    old = ks.signing_key(0)
    ks.rotate(now=100, activate_after=50)  # old signs until 150
    assert ks.current(100 + 931).verification_key(old.kid) is old
    assert ks.current(150 + 930).verification_key(old.kid) is old
    assert ks.current(150 + 931).verification_key(old.kid) is None


def test_signing_kid_follows_the_clock_like_signing_key() -> None:
    ks = KeySet([SigningKey.generate(now=0, activates_at=10)])
    first = ks.keys[0]
    assert ks.signing_kid(5) is None
    second = ks.rotate(now=12, activate_after=8)
    for t in (5, 11, 19.9, 20, 25, 3, 10, 30):
        expected = None if t < 10 else first.kid if t < 20 else second.kid
        assert ks.signing_kid(t) == expected, t
        if expected is not None:
            assert ks.signing_key(t).kid == expected


def test_no_active_key_is_a_config_error() -> None:
    ks = KeySet([SigningKey.generate(now=0, activates_at=100)])
    with pytest.raises(ConfigError):
        ks.signing_key(50)


def test_jwks_public_only_no_hmac_no_private_members() -> None:
    ks = KeySet.generate("EdDSA", now=0)
    ks.rotate(now=1, alg="ES256")
    ks.rotate(now=2, alg="RS256")
    hs = ks.rotate(now=3, alg="HS256")
    jwks = ks.jwks()
    kids = {k["kid"] for k in jwks["keys"]}
    assert len(jwks["keys"]) == 3 and hs.kid not in kids
    for jwk in jwks["keys"]:
        assert not PRIVATE_JWK_MEMBERS & set(jwk), jwk
        assert jwk["use"] == "sig" and jwk["alg"] in {"EdDSA", "ES256", "RS256"}
        # the published key verifies what the matching private key signs
        key = ks.verification_key(jwk["kid"])
        assert key is not None
        token = jwt.encode({"a": 1}, key.private, algorithm=key.alg)
        assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[key.alg]) == {"a": 1}
    assert hs.private.hex() not in str(jwks) and jwt.utils.base64url_encode(hs.private).decode() not in str(jwks)


# -- SQLKeyRepository: the key set shared by every instance ------------------------------------------------


@pytest.fixture
def url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/keys.db"


@pytest.fixture
def kek() -> bytes:
    return secrets.token_bytes(32)


def repo(url: str, kek: bytes, **kw: Any) -> SQLKeyRepository:
    return SQLKeyRepository(db.make_engine(url), kek, **kw)


@pytest.mark.parametrize("bad", [b"", secrets.token_bytes(16), secrets.token_bytes(33), b"k" * 32])
def test_kek_must_be_32_random_bytes(url: str, bad: bytes) -> None:
    with pytest.raises(ConfigError) as exc:
        repo(url, bad)
    assert exc.value.setting == "SESSIONWARD_KEY_ENCRYPTION_KEY"


def test_first_load_makes_one_key_and_other_instances_read_it(url: str, kek: bytes, clock: ManualClock) -> None:
    a = repo(url, kek).load(now=clock.now())
    b = repo(url, kek).load(now=clock.now())
    assert len(a) == 1 and [k.kid for k in a.keys] == [k.kid for k in b.keys]
    assert a.signing_key(clock.now()).alg == "ES256"  # DEFAULT_ALG


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256", "HS256"])
def test_private_parts_are_sealed_at_rest(url: str, kek: bytes, clock: ManualClock, alg: str) -> None:
    r = repo(url, kek, default_alg=alg)
    key = r.load(now=clock.now()).signing_key(clock.now())
    with db.make_engine(url).connect() as conn:
        row = conn.execute(sa.select(keys_table)).one()
    if isinstance(key.private, bytes):
        secret = key.private
    else:
        secret = key.private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        raw = key.private.private_bytes(  # the bare scalar/seed for Ed25519 and P-256
            serialization.Encoding.Raw if alg == "EdDSA" else serialization.Encoding.DER,
            serialization.PrivateFormat.Raw if alg == "EdDSA" else serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        assert raw not in bytes(row.sealed)
    assert secret not in bytes(row.sealed)
    assert set(row._mapping) == {"kid", "alg", "created_at", "activates_at", "serial", "sealed"}


def test_wrong_kek_refused_with_clear_message(url: str, kek: bytes, clock: ManualClock) -> None:
    repo(url, kek).load(now=clock.now())
    with pytest.raises(ConfigError, match="cannot open signing key"):
        repo(url, secrets.token_bytes(32)).load(now=clock.now())


@pytest.mark.parametrize("column", ["kid", "alg"])
def test_row_with_edited_kid_or_alg_does_not_open(url: str, kek: bytes, clock: ManualClock, column: str) -> None:
    repo(url, kek, default_alg="HS256").load(now=clock.now())
    value = "other-kid" if column == "kid" else "EdDSA"
    with db.make_engine(url).begin() as conn:
        conn.execute(keys_table.update().values(**{column: value}))
    with pytest.raises(ConfigError, match="cannot open"):
        repo(url, kek).load(now=clock.now())


def test_rotation_on_one_instance_reaches_the_other_within_the_interval(url: str, kek: bytes,
                                                                        clock: ManualClock) -> None:
    a, b = repo(url, kek, refresh_interval=5), repo(url, kek, refresh_interval=5)
    t0 = clock.now()
    old = a.current(t0).signing_key(t0)
    b.current(t0)
    new = a.rotate(now=t0)
    assert new.activates_at == t0 + 10  # 2 x interval: everyone can verify before anyone signs
    assert a.current(t0).signing_key(t0).kid == old.kid
    assert b.current(t0 + 4.9).verification_key(new.kid) is None  # not re-read yet
    assert b.current(t0 + 5).verification_key(new.kid) is not None
    assert b.current(t0 + 10).signing_key(t0 + 10).kid == new.kid


def test_no_instance_signs_with_a_key_another_cannot_verify(url: str, kek: bytes, clock: ManualClock) -> None:
    a, b = repo(url, kek, refresh_interval=5), repo(url, kek, refresh_interval=5)
    t0 = clock.now()
    a.current(t0)
    b.current(t0)
    a.rotate(now=t0 + 4.99)  # just before b's next poll: worst case
    # b polls only when asked; ask at every instant where a could sign
    for step in range(0, 400):
        t = t0 + 4.99 + step * 0.05
        signer = a.current(t).signing_key(t)
        assert b.current(t).verification_key(signer.kid) is not None, t


def test_repository_keysets_are_read_only(url: str, kek: bytes, clock: ManualClock) -> None:
    ks = repo(url, kek).load(now=clock.now())
    with pytest.raises(ConfigError, match="SQLKeyRepository"):
        ks.rotate(now=clock.now())
    with pytest.raises(ConfigError):
        ks.add(SigningKey.generate(now=clock.now()))


def test_retire_expired_deletes_rows_for_everyone(url: str, kek: bytes, clock: ManualClock) -> None:
    a, b = repo(url, kek, refresh_interval=1), repo(url, kek, refresh_interval=1)
    t0 = clock.now()
    old = a.current(t0).signing_key(t0)
    a.rotate(now=t0, activate_after=0)
    assert a.retire_expired(now=t0 + 100, max_token_lifetime=930) == []
    assert a.retire_expired(now=t0 + 1000, max_token_lifetime=930) == [old.kid]
    assert b.current(t0 + 1000).verification_key(old.kid) is None


def test_T14_retirement_reaches_every_instance_without_a_command(url: str, kek: bytes, clock: ManualClock) -> None:
    a, b = repo(url, kek, refresh_interval=5), repo(url, kek, refresh_interval=5)
    for r in (a, b):
        r.bind_token_lifetime(930)
    t0 = clock.now()
    old = a.current(t0).signing_key(t0)
    b.current(t0)
    new = a.rotate(now=t0)  # signs from t0 + 10
    stop = new.activates_at
    assert b.current(stop + 930).verification_key(old.kid) is not None
    assert b.current(stop + 930.5).verification_key(old.kid) is None  # within b's refresh interval: no read
    assert b.current(stop + 931).verification_key(old.kid) is None
    assert old.kid not in {k["kid"] for k in b.current(stop + 931).jwks()["keys"]}
    assert a.current(stop + 931).verification_key(old.kid) is None
    with db.make_engine(url).connect() as conn:  # nobody wrote anything: the row waits for the next rotation
        assert conn.execute(sa.select(sa.func.count()).select_from(keys_table)).scalar() == 2
    assert [(i.kid, i.status) for i in a.describe(now=stop + 931)] == [(old.kid, "retired"), (new.kid, "signing")]
    assert a.retire_expired(now=stop + 932, max_token_lifetime=930) == [old.kid]  # what `keys rotate` runs
    assert old.kid not in {i.kid for i in a.describe(now=stop + 932)}


def test_T14_revoke_withdraws_a_compromised_key_for_everyone(url: str, kek: bytes, clock: ManualClock) -> None:
    a, b = repo(url, kek, refresh_interval=1), repo(url, kek, refresh_interval=1)
    t0 = clock.now()
    bad = a.current(t0).signing_key(t0)
    b.current(t0)
    with pytest.raises(ValidationError, match="signs now.*keys rotate"):  # never the key that signs now
        a.revoke(bad.kid, now=t0)
    assert a.current(t0).verification_key(bad.kid) is not None
    replacement = a.rotate(now=t0, activate_after=0)
    revocation = a.revoke(bad.kid, now=t0 + 1)
    assert (revocation.kid, revocation.activates_at, revocation.superseded_at) == (bad.kid, bad.activates_at, t0)
    assert a.current(t0 + 1).signing_key(t0 + 1).kid == replacement.kid
    assert a.current(t0 + 1).verification_key(bad.kid) is None
    assert b.current(t0 + 2).verification_key(bad.kid) is None  # on its next read
    assert bad.kid not in {k["kid"] for k in b.current(t0 + 2).jwks()["keys"]}
    with db.make_engine(url).connect() as conn:  # no key material is kept for a revoked key
        assert conn.execute(sa.select(keys_table).where(keys_table.c.kid == bad.kid)).first() is None
        tomb = conn.execute(sa.select(keys_revoked_table)).one()
    assert "sealed" not in tomb._mapping and tomb.kid == bad.kid
    assert [(i.kid, i.status) for i in a.describe(now=t0 + 2)] == [(replacement.kid, "signing"), (bad.kid, "revoked")]
    with pytest.raises(NotFound):
        a.revoke("nope", now=t0)


def test_T14_revoke_refused_for_a_pending_key_about_to_sign(url: str, kek: bytes, clock: ManualClock) -> None:
    r = repo(url, kek, refresh_interval=5)
    t0 = clock.now()
    r.load(now=t0)
    soon = r.rotate(now=t0)  # signs from t0 + 10
    with pytest.raises(ValidationError, match="starts signing"):
        r.revoke(soon.kid, now=t0 + 6)  # an instance may not re-read the set before it signs
    revocation = r.revoke(soon.kid, now=t0 + 4)  # far enough ahead: every instance hears of it first
    assert revocation.superseded_at is None  # it never signed anything
    assert r.current(t0 + 20).verification_key(soon.kid) is None


def _bootstrap_race(url: str, kek: bytes, now: float) -> None:
    repos = [repo(url, kek) for _ in range(4)]
    barrier = threading.Barrier(len(repos))
    results: list[Any] = [None] * len(repos)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = repos[i].load(now=now)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(repos))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    kids = {tuple(k.kid for k in ks.keys) for ks in results}
    assert len(kids) == 1 and len(next(iter(kids))) == 1  # one first key, the same for all


def test_instances_starting_together_agree_on_one_first_key(url: str, kek: bytes, clock: ManualClock) -> None:
    _bootstrap_race(url, kek, clock.now())


@pytest.mark.postgres
def test_postgres_instances_agree_and_see_rotation(postgres_url: str, kek: bytes, clock: ManualClock) -> None:
    _bootstrap_race(postgres_url, kek, clock.now())
    a, b = repo(postgres_url, kek, refresh_interval=2), repo(postgres_url, kek, refresh_interval=2)
    t0 = clock.now()
    b.current(t0)
    new = a.rotate(now=t0)
    assert b.current(t0 + 2).verification_key(new.kid) is not None


def test_rotation_at_the_same_instant_still_makes_the_new_key_sign(url: str, kek: bytes, clock: ManualClock) -> None:
    # Keys made in the same clock tick are ordered by serial, not by their random kids.
    for _ in range(10):
        ks = KeySet.generate(now=0)
        new = ks.rotate(now=0)
        assert ks.signing_key(0) is new
    r = repo(url, kek)
    t0 = clock.now()
    r.load(now=t0)
    for _ in range(5):
        new = r.rotate(now=t0, activate_after=0)
        assert r.current(t0).signing_key(t0).kid == new.kid
