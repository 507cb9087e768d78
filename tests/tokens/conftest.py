"""Fixtures for the token tests: the real SQL store on a temporary SQLite file, a policy, keys, a service."""

from __future__ import annotations

import secrets
from typing import Any, Iterator

import pytest

from sessionward.clock import ManualClock
from sessionward.stores.sql import SQLStore
from sessionward.tokens import KeySet, TokenPolicy

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
