"""The compact-JWS layer (`tokens/jws.py`): what the cold path remembers (header checks and prepared keys per
header text, verified tokens per token text) must never let a token through that a fresh check would refuse;
the fully-specified `Ed25519` name (RFC 9864) next to `EdDSA`; the cache-size setting and its metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from sessionward import metrics
from sessionward.clock import ManualClock
from sessionward.exceptions import ConfigError, TokenError
from sessionward.stores.sql import SQLStore
from sessionward.tokens import KeySet, TokenService
from sessionward.tokens.jws import HeaderCache

from .forge import b64u, parts, unb64u


def reason_of(svc: TokenService, token: Any) -> str:
    with pytest.raises(TokenError) as exc:
        svc.verify_access(token)
    return exc.value.reason


def _other_spelling(segment: str) -> str:
    """The same bytes in a non-canonical base64url text: the last character with its unused bits set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    rest = len(segment) % 4
    assert rest in (2, 3), "a 64- or 32-byte signature leaves unused bits"
    value = alphabet.index(segment[-1]) | (1 if rest == 3 else 0b1000)
    return segment[:-1] + alphabet[value]


@pytest.mark.parametrize("alg", ["ES256", "Ed25519", "HS256"])
def test_T1_signature_has_one_spelling(make_service: Callable[..., TokenService], clock: ManualClock, alg: str) -> None:
    svc = make_service(KeySet.generate(alg, now=clock.now()))
    token = svc.issue("alice", fresh=True).access_token
    h, p, s = token.split(".")
    other = _other_spelling(s)
    assert unb64u(other) == unb64u(s)  # the same signature bytes...
    assert reason_of(svc, f"{h}.{p}.{other}") == "malformed"  # ...in a second text is refused
    assert svc.verify_access(token).sub == "alice"


@pytest.mark.parametrize("nested", [b"[" * 5000, b'{"a":' * 1100])
def test_T6_deeply_nested_header_is_a_token_error_not_a_crash(service: TokenService, nested: bytes) -> None:
    """Before any signature check, an attacker's header nested thousands deep must be a 401 reason, not a
    RecursionError escaping as a 500."""
    token = service.issue("alice", fresh=True).access_token
    _, p, s = token.split(".")
    assert reason_of(service, f"{b64u(nested)}.{p}.{s}") == "malformed header"


def test_T11_remembered_header_does_not_outlive_its_key(make_service: Callable[..., TokenService],
                                                        clock: ManualClock) -> None:
    keys = KeySet.generate("ES256", now=clock.now())
    svc = make_service(keys)
    old = svc.issue("alice", fresh=True).access_token
    svc.verify_access(old)  # header and prepared key remembered, token cached
    keys.rotate(now=clock.now())
    clock.advance(svc.policy.max_token_lifetime + 1)
    assert keys.retire_expired(now=clock.now(), max_token_lifetime=svc.policy.max_token_lifetime)
    assert reason_of(svc, old) == "unknown kid"


def test_T2_T6_header_checked_for_every_distinct_header_text(service: TokenService, keyset: KeySet,
                                                             clock: ManualClock) -> None:
    """Priming the header cache with our own header lets no other header text skip `check_header`."""
    token = service.issue("alice", fresh=True).access_token
    service.verify_access(token)
    key = keyset.signing_key(clock.now())
    header, payload, _ = parts(token)
    import jwt

    def signed(hdr: dict[str, Any]) -> str:
        return jwt.PyJWS().encode(json.dumps(payload).encode(), key.private, algorithm=key.alg,
                                  headers={k: v for k, v in hdr.items() if k != "alg"})

    assert reason_of(service, signed({**header, "crit": ["x"], "x": 1})) == "crit header refused"
    assert reason_of(service, signed({**header, "typ": "JWT"})) == "typ is not at+jwt"
    assert reason_of(service, signed({**header, "zip": "DEF"})) == "unknown header parameter"


def test_header_cache_is_bounded(service: TokenService, keyset: KeySet, clock: ManualClock) -> None:
    """Valid tokens with 100 spellings of one header (JSON whitespace) all verify; at most 64 are remembered."""
    import jwt

    key = keyset.signing_key(clock.now())
    _, payload, _ = parts(service.issue("alice", fresh=True).access_token)
    for n in range(100):
        head = b64u(("{" + " " * n + f'"alg":"{key.alg}","kid":"{key.kid}","typ":"at+jwt"}}').encode())
        body = b64u(json.dumps(payload).encode())
        sig = jwt.algorithms.get_default_algorithms()[key.alg].sign(f"{head}.{body}".encode(), key.private)
        assert service.verify_access(f"{head}.{body}.{b64u(sig)}").sub == "alice"
    cache: HeaderCache = service._headers  # type: ignore[attr-defined]
    assert 1 <= len(cache._state[1]) <= 64
    assert len(cache._state[2]) == 1  # one prepared key per kid


# -- Ed25519 (RFC 9864) next to EdDSA ----------------------------------------------------------------------------------


def test_ed25519_is_the_fully_specified_name_and_eddsa_keys_keep_verifying(make_service: Callable[..., TokenService],
                                                                           clock: ManualClock) -> None:
    keys = KeySet.generate("EdDSA", now=clock.now())  # an existing deployment's key
    svc = make_service(keys)
    legacy = svc.issue("alice", fresh=True).access_token
    new = keys.rotate(now=clock.now(), alg="Ed25519")
    current = svc.issue("alice", fresh=True).access_token
    assert parts(legacy)[0]["alg"] == "EdDSA"
    assert parts(current)[0] == {"alg": "Ed25519", "kid": new.kid, "typ": "at+jwt"}
    assert svc.verify_access(legacy).sub == svc.verify_access(current).sub == "alice"
    jwks = {k["kid"]: k for k in svc.jwks()["keys"]}
    assert jwks[new.kid]["alg"] == "Ed25519" and jwks[new.kid]["kty"] == "OKP" and jwks[new.kid]["crv"] == "Ed25519"


def test_T2_one_name_per_key_even_for_the_same_primitive(make_service: Callable[..., TokenService],
                                                         clock: ManualClock) -> None:
    """A key pinned to `Ed25519` does not verify a header saying `EdDSA` (and the other way round): the
    header's `alg` must equal the key's, whatever the two names share."""
    import jwt

    keys = KeySet.generate("Ed25519", now=clock.now())
    svc = make_service(keys)
    key = keys.signing_key(clock.now())
    token = svc.issue("alice", fresh=True).access_token
    header, payload, _ = parts(token)
    as_eddsa = jwt.PyJWS().encode(json.dumps(payload).encode(), key.private, algorithm="EdDSA",
                                  headers={"kid": key.kid, "typ": "at+jwt"})
    assert reason_of(svc, as_eddsa) == "alg does not match the key"


# -- cache size and metrics --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [-1, 2.0, "10", True, 10**7])
def test_cache_size_checked_at_construction(store: SQLStore, keyset: KeySet, policy: Any, refresh_key: bytes,
                                            size: Any) -> None:
    with pytest.raises(ConfigError) as info:
        TokenService(store=store, keys=keyset, refresh_key=refresh_key, policy=policy, cache_size=size)
    assert info.value.setting == "TOKEN_CACHE_SIZE"


def test_cache_size_zero_verifies_every_time(store: SQLStore, keyset: KeySet, policy: Any, refresh_key: bytes,
                                             clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionward.tokens import service as service_module

    svc = TokenService(store=store, keys=keyset, refresh_key=refresh_key, policy=policy, clock=clock, cache_size=0)
    token = svc.issue("alice", fresh=True).access_token
    calls: list[int] = []
    real = service_module.verify_compact
    monkeypatch.setattr(service_module, "verify_compact", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3):
        svc.verify_access(token)
    assert len(calls) == 3 and len(svc._cache) == 0  # type: ignore[attr-defined]


def _lookups(result: str) -> float:
    return REGISTRY.get_sample_value("sessionward_token_cache_lookups_total", {"result": result}) or 0.0


def test_cache_hits_and_misses_in_metrics(service: TokenService) -> None:
    metrics.flush_token_caches()
    hits, misses = _lookups("hit"), _lookups("miss")
    token = service.issue("alice", fresh=True).access_token
    for _ in range(4):
        service.verify_access(token)  # one miss, then three hits
    text, _ = metrics.render()  # a scrape adds what this process counted since the last flush
    assert (_lookups("hit") - hits, _lookups("miss") - misses) == (3, 1)
    assert b'sessionward_token_cache_lookups_total{result="hit"}' in text
