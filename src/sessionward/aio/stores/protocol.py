"""The storage Protocol every store implements, async (this module) and sync (generated from it).

The rules every store keeps are in `sessionward.stores.base`'s docstring; one contract test class proves them
(`tests/stores/contract.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from sessionward.stores.base import SessionRecord, ThrottleDecision, ThrottleState, TokenState

__all__ = ["AsyncSessionStore"]


@runtime_checkable
class AsyncSessionStore(Protocol):
    """Storage for sessions, token families, denylist, epochs and throttling counters."""

    # -- the session registry ---------------------------------------------------------------
    async def create(self, record: SessionRecord, *, now: float) -> None:
        """Store a new record. Raises `CreateError` if its id or secret_hash exists already."""
        ...

    async def get(self, session_id: str, *, now: float) -> SessionRecord | None:
        """The live record with this public id, or None (unknown or expired)."""
        ...

    async def get_by_secret(self, secret_hash: str, *, now: float) -> SessionRecord | None:
        """The live record whose `secret_hash` matches, or None (unknown or expired)."""
        ...

    async def load_by_secret(self, secret_hash: str, *, now: float) -> tuple[SessionRecord | None, int]:
        """The per-request read of a cookie session, in one round trip: `get_by_secret(secret_hash)` and the
        epoch of its user (0 when there is no record)."""
        ...

    async def token_state(self, *, jti: str, user_id: str, family_id: str, now: float) -> TokenState:
        """The per-request read of an access token, in one round trip: `is_denied(jti)`,
        `get_epoch(user_id)` and `get(family_id)`."""
        ...

    async def update(self, session_id: str, changes: Mapping[str, Any], *, now: float) -> bool:
        """Change fields in `UPDATABLE_FIELDS` of a live record. False if it is gone (never resurrected)."""
        ...

    async def replace(self, old_id: str, new: SessionRecord, *, now: float) -> bool:
        """Atomically delete `old_id` and create `new` (session rotation). False, and nothing written,
        if `old_id` is gone."""
        ...

    async def advance(
        self,
        session_id: str,
        *,
        expected_generation: int,
        last_seen: float,
        idle_expires_at: float,
        now: float,
    ) -> bool:
        """Compare-and-set for refresh rotation: if the live record's generation is `expected_generation`,
        set it to +1 and move last_seen/idle_expires_at; return True. Otherwise change nothing, return False.
        Exactly one of many concurrent callers with the same expectation wins."""
        ...

    async def delete(self, session_id: str) -> bool:
        """Remove a record. True if it existed."""
        ...

    async def delete_for_user(self, user_id: str, *, except_id: str | None = None) -> int:
        """Remove every record of a user (but `except_id`). Returns how many."""
        ...

    async def list_for_user(self, user_id: str, *, now: float) -> list[SessionRecord]:
        """The user's live records, newest first."""
        ...

    async def list_all(self, *, now: float, limit: int = 1000) -> list[SessionRecord]:
        """Live records of every user, newest first (for the admin CLI)."""
        ...

    # -- access-token denylist --------------------------------------------------------------
    async def deny(self, jti: str, *, until: float, now: float) -> None:
        """Deny an access token id until `until` (its expiry); forgotten afterwards."""
        ...

    async def is_denied(self, jti: str, *, now: float) -> bool:
        ...

    # -- one-time uses (DPoP proof ids, DBSC challenges) ------------------------------------
    async def use_once(self, key: str, *, until: float, now: float) -> bool:
        """Record the single use of `key` until `until`: True for the first use, False while an earlier use
        is still in force (its `until` later than `now`). Atomic across every instance sharing the store:
        of many concurrent callers with one key exactly one gets True. A key whose use ended (`until <= now`)
        may be used again. `until <= now` stores nothing and returns True (nothing left to guard).
        Raises `StoreUnavailable` when the backend cannot be reached (callers refuse: fail closed)."""
        ...

    # -- per-user revocation epoch ----------------------------------------------------------
    async def get_epoch(self, user_id: str) -> int:
        """The user's current epoch (0 if never bumped). Sessions and tokens from an older epoch are dead."""
        ...

    async def bump_epoch(self, user_id: str) -> int:
        """Atomically add one to the user's epoch; returns the new value."""
        ...

    # -- throttling counters ----------------------------------------------------------------
    # A counter is (failures, last_failure_at); one whose last failure is `window` or more before `now` reads
    # as zero (`ThrottleState()`), and so does one that was never written.
    async def throttle_read(self, keys: Sequence[str], *, now: float, window: float) -> list[ThrottleState]:
        """The counters for `keys`, in order, in one round trip."""
        ...

    async def throttle_update(
        self, keys: Sequence[str], decide: ThrottleDecision, *, now: float, window: float
    ) -> tuple[list[ThrottleState], list[ThrottleState] | None]:
        """Atomically read the counters of `keys` (distinct), call `decide(states)` and, unless it returns
        None, write the states it returns (one per key; a zero state deletes the counter). Returns the states
        `decide` was given and its answer. `decide` must be a pure function of the states: a store may run it
        more than once (optimistic stores retry when a concurrent update got there first); only the answer
        to the states that were current when the write happened is applied."""
        ...

    async def throttle_reset(self, *keys: str) -> None:
        """Delete these counters (unconditionally)."""
        ...

    # -- maintenance ------------------------------------------------------------------------
    async def purge_expired(self, *, now: float) -> int:
        """Delete expired records, denylist entries, one-time uses and counters. Returns how many rows/keys went."""
        ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` if the backend cannot be reached."""
        ...

    async def close(self) -> None:
        ...
