"""Where the token service gets its keys (the sync twin of `sessionward.aio.tokens._source`).

unasync: hand-written. A `KeySet` or a `SQLKeyRepository` is a key source as it is: nothing to wrap, nothing
added to the per-request path.
"""

from __future__ import annotations

from sessionward.tokens.keys import KeySet, KeySource

__all__ = ["KeySource", "initial_keyset", "key_source"]


def key_source(keys: KeySource) -> KeySource:
    """`keys` itself."""
    return keys


def initial_keyset(keys: KeySource, now: float) -> KeySet | None:
    """The key set to check the configuration against at construction (read now if need be)."""
    return keys.current(now)
