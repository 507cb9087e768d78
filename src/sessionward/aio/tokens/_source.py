"""Where the async token service gets its keys: a key source whose reads are coroutines.

unasync: hand-written. Its sync twin is `sessionward.tokens._source` (the same names without `Async`): there a
`KeySet` is itself a key source, here it is wrapped in an `AsyncKeySetSource`, since keys shared through the
database (`AsyncSQLKeyRepository`) are read with `await`.
"""

from __future__ import annotations

from typing import Protocol

from sessionward.tokens.keys import DEFAULT_ALG, KeySet, SigningKey

__all__ = ["AsyncKeySetSource", "AsyncKeySource", "initial_keyset", "key_source"]


class AsyncKeySource(Protocol):
    """Anything that yields the current key set: an `AsyncKeySetSource` (one process) or an
    `AsyncSQLKeyRepository` (several instances)."""

    async def current(self, now: float) -> KeySet: ...

    def bind_token_lifetime(self, seconds: float) -> None:
        """From now on leave out keys superseded more than `seconds` ago (the longest any token lives)."""
        ...

    def cached_keyset(self, now: float) -> KeySet | None:
        """The key set as last read (without any I/O), or None if it was never read."""
        ...


class AsyncKeySetSource:
    """An in-memory `KeySet` (one process) as an async key source: nothing here waits for anything."""

    def __init__(self, keyset: KeySet) -> None:
        self.keyset = keyset

    async def current(self, now: float) -> KeySet:
        return self.keyset.current(now)

    def cached_keyset(self, now: float) -> KeySet:
        return self.keyset.current(now)

    def bind_token_lifetime(self, seconds: float) -> None:
        self.keyset.bind_token_lifetime(seconds)

    async def rotate(self, *, now: float, alg: str | None = None, activate_after: float = 0.0) -> SigningKey:
        """See `KeySet.rotate`."""
        return self.keyset.rotate(now=now, alg=alg, activate_after=activate_after)

    async def retire_expired(self, *, now: float, max_token_lifetime: float) -> list[str]:
        """See `KeySet.retire_expired`."""
        return self.keyset.retire_expired(now=now, max_token_lifetime=max_token_lifetime)

    @classmethod
    def generate(cls, alg: str = DEFAULT_ALG, *, now: float) -> AsyncKeySetSource:
        """A source over a key set with one fresh, immediately active key."""
        return cls(KeySet.generate(alg, now=now))


def key_source(keys: AsyncKeySource | KeySet) -> AsyncKeySource:
    """`keys` as an async key source (a bare `KeySet` is wrapped)."""
    return AsyncKeySetSource(keys) if isinstance(keys, KeySet) else keys


def initial_keyset(keys: AsyncKeySource, now: float) -> KeySet | None:
    """The key set to check the configuration against at construction, without I/O: None when the source has
    not read its keys yet (an `AsyncSQLKeyRepository` before `load`)."""
    return keys.cached_keyset(now)
