"""Async stores behind one Protocol.

unasync: hand-written (`open_async_store` differs from `sessionward.stores.open_store`).
"""

from __future__ import annotations

from sessionward.aio.stores.protocol import AsyncSessionStore

__all__ = ["AsyncSessionStore"]
