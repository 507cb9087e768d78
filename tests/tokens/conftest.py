"""Fixtures for the token tests: the real SQL store on a temporary SQLite file, a policy, keys, a service."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sessionward.clock import ManualClock
from sessionward.stores.sql import SQLStore
from sessionward.tokens import KeySet, TokenPolicy, TokenService

ISSUER = "https://auth.example.test"
AUDIENCE = "example-api"


@pytest.fixture
def store(tmp_path: Any) -> Iterator[SQLStore]:
    s = SQLStore.from_url(f"sqlite:///{tmp_path}/store.db")
    yield s
    s.close()


@pytest.fixture
def policy() -> TokenPolicy:
    return TokenPolicy(issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def refresh_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def keyset(clock: ManualClock) -> KeySet:
    return KeySet.generate("EdDSA", now=clock.now())


@pytest.fixture
def make_service(store: SQLStore, clock: ManualClock, refresh_key: bytes) -> Callable[..., TokenService]:
    def make(keys: Any, *, store_: Any = None, **policy_changes: Any) -> TokenService:
        policy = TokenPolicy(**{"issuer": ISSUER, "audience": AUDIENCE, **policy_changes})
        return TokenService(store=store_ or store, keys=keys, refresh_key=refresh_key, policy=policy, clock=clock)

    return make


@pytest.fixture
def service(make_service: Callable[..., TokenService], keyset: KeySet) -> TokenService:
    return make_service(keyset)
