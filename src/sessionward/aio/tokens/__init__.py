"""Access and refresh tokens for asyncio: the token service and the shared key set, as coroutines.

unasync: hand-written (the sync package `sessionward.tokens` has its own `__init__.py`). Claims, JWS and the
in-memory `KeySet` are shared with the sync flavour (`sessionward.tokens.claims`, `.jws`, `.keys`).
"""

from __future__ import annotations

from sessionward.aio.tokens._source import AsyncKeySetSource, AsyncKeySource
from sessionward.aio.tokens.keystore import AsyncSQLKeyRepository
from sessionward.aio.tokens.service import AsyncTokenService, TokenPair
from sessionward.tokens.keyrows import KeyInfo, KeyRevocation

__all__ = ["AsyncKeySetSource", "AsyncKeySource", "AsyncSQLKeyRepository", "AsyncTokenService", "KeyInfo",
           "KeyRevocation", "TokenPair"]
