"""Access and refresh tokens for asyncio: the token service and the shared key set, as coroutines.

unasync: hand-written (the sync package `sessionward.tokens` has its own `__init__.py`).
"""

from __future__ import annotations

from sessionward.aio.tokens._source import AsyncKeySetSource, AsyncKeySource
from sessionward.aio.tokens.service import AsyncTokenService, TokenPair

__all__ = ["AsyncKeySetSource", "AsyncKeySource", "AsyncTokenService", "TokenPair"]
