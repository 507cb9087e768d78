"""The in-memory tables behind `CachedStore` (see `sessionward.stores.cache` for how they stay current).

Not thread-safe on its own: `CachedStore` holds its lock around every call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from .base import SessionRecord

__all__ = ["DENY_GRACE", "Memory"]

DENY_GRACE = 300.0  #: seconds a denylist entry outlives its `until` in memory (callers' clocks differ a little)


class Memory:
    """Records (by id, secret hash and user), epochs and the denylist; bounded by `max_entries` (least
    recently used first) and `max_age` seconds of the monotonic clock `t` the caller passes."""

    def __init__(self, *, max_entries: int, max_age: float) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self.records: OrderedDict[str, tuple[SessionRecord, float]] = OrderedDict()
        self.by_secret: dict[str, str] = {}
        self.by_user: dict[str, set[str]] = {}
        self.epochs: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self.denied: dict[str, float] = {}
        self.deny_complete = False  #: every denial in force is in `denied`
        self.last_now = 0.0  #: the newest `now` a caller passed (stores never read a clock)

    def saw(self, now: float) -> None:
        self.last_now = max(self.last_now, now)

    def clear(self) -> None:
        self.records.clear()
        self.by_secret.clear()
        self.by_user.clear()
        self.epochs.clear()
        self.denied.clear()
        self.deny_complete = False

    # -- lookups: None means "not known here, ask the store" ----------------------------------------
    def record(self, session_id: str, now: float, t: float) -> SessionRecord | None:
        entry = self.records.get(session_id)
        if entry is None:
            return None
        record, at = entry
        if t - at > self.max_age or not record.is_live(now):
            self.drop(session_id)  # too old, or expired by this clock: the store decides, not memory
            return None
        self.records.move_to_end(session_id)
        return record

    def record_by_secret(self, secret_hash: str, now: float, t: float) -> SessionRecord | None:
        session_id = self.by_secret.get(secret_hash)
        record = None if session_id is None else self.record(session_id, now, t)
        return record if record is not None and record.secret_hash == secret_hash else None

    def epoch(self, user_id: str, t: float) -> int | None:
        entry = self.epochs.get(user_id)
        if entry is None:
            return None
        if t - entry[1] > self.max_age:
            del self.epochs[user_id]
            return None
        self.epochs.move_to_end(user_id)
        return entry[0]

    def is_denied(self, jti: str, now: float) -> bool | None:
        until = self.denied.get(jti)
        if until is not None and until > now:
            return True
        return False if self.deny_complete else None

    # -- filling ---------------------------------------------------------------------------------
    def put_record(self, record: SessionRecord, t: float) -> None:
        self.drop(record.id)
        self.records[record.id] = (record, t)
        if record.secret_hash is not None:
            self.by_secret[record.secret_hash] = record.id
        self.by_user.setdefault(record.user_id, set()).add(record.id)
        while len(self.records) > self.max_entries:
            self.drop(next(iter(self.records)))

    def put_epoch(self, user_id: str, epoch: int, t: float) -> None:
        self.epochs[user_id] = (epoch, t)
        self.epochs.move_to_end(user_id)
        while len(self.epochs) > self.max_entries:
            self.epochs.popitem(last=False)

    def merge_denied(self, snapshot: Mapping[str, float]) -> None:
        """Add a loaded denylist. Union with what is here: denials only ever end by time."""
        self._prune_denied()
        complete = True
        for jti, until in snapshot.items():
            if not self._add_denied(jti, until):
                complete = False
                break
        self.deny_complete = complete

    # -- invalidation ---------------------------------------------------------------------------
    def drop(self, session_id: str) -> None:
        entry = self.records.pop(session_id, None)
        if entry is None:
            return
        record = entry[0]
        if record.secret_hash is not None and self.by_secret.get(record.secret_hash) == session_id:
            del self.by_secret[record.secret_hash]
        ids = self.by_user.get(record.user_id)
        if ids is not None:
            ids.discard(session_id)
            if not ids:
                del self.by_user[record.user_id]

    def apply(self, message: Any) -> None:
        """Apply one invalidation message (see `cache`). Raises `ValueError` for one it cannot read."""
        try:
            kind = message[0]
            if kind == "drop":
                self.drop(str(message[1]))
            elif kind == "user":
                for session_id in list(self.by_user.get(str(message[1]), ())):
                    self.drop(session_id)
            elif kind == "epoch":
                user, value = str(message[1]), int(message[2])
                entry = self.epochs.get(user)
                if entry is not None and entry[0] < value:  # epochs only grow; messages may cross
                    self.epochs[user] = (value, entry[1])
            elif kind == "deny":
                if not self._add_denied(str(message[1]), float(message[2])):
                    self.deny_complete = False  # too many to know them all: misses ask the store
            else:
                raise ValueError(f"unknown invalidation {kind!r}")
        except (IndexError, KeyError, TypeError) as exc:
            raise ValueError("malformed invalidation") from exc

    def _forgettable(self, until: float) -> bool:
        return until <= self.last_now - DENY_GRACE

    def _add_denied(self, jti: str, until: float) -> bool:
        """False if there is no room for it."""
        if self._forgettable(until):
            return True
        if jti not in self.denied and len(self.denied) >= self.max_entries:
            self._prune_denied()
            if len(self.denied) >= self.max_entries:
                return False
        self.denied[jti] = max(until, self.denied.get(jti, until))
        return True

    def _prune_denied(self) -> None:
        for jti in [j for j, until in self.denied.items() if self._forgettable(until)]:
            del self.denied[jti]
