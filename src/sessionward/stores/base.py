"""The storage contract's data: the records and states every store (SQL, Redis) keeps and returns. The Protocol
itself is in `sessionward.aio.stores.protocol` (async) and the generated `sessionward.stores.protocol` (sync).

Stores hold the hot, per-request state: session records (cookie sessions and refresh-token families
share one registry), the access-token denylist, per-user revocation epochs and throttling counters.
Users and signing keys live in SQL (see `sessionward.users`, `sessionward.tokens.keys`).

Rules every store keeps, proven by one contract test class (`tests/stores/contract.py`):
- stores never read a clock: callers pass `now`, so one injectable clock rules expiry everywhere;
- a record past `expires_at` or `idle_expires_at` is never returned (and may be purged);
- loading an unknown id or secret hash never creates anything;
- `update`/`advance`/`replace` on a record that is gone return False and never resurrect it;
- `advance` is compare-and-set (of concurrent callers with the same expectation exactly one wins) and
  `throttle_update` is atomic (concurrent updates of the same counters are applied one after the other,
  each deciding on what the previous one wrote), so no count is ever lost or taken twice;
- every method raises `StoreUnavailable` (and only that) when the backend cannot be reached.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SessionKind = Literal["cookie", "token"]

#: Fields that `SessionStore.update` may change.
UPDATABLE_FIELDS = frozenset({"last_seen", "idle_expires_at", "auth_at", "data"})

#: The longest User-Agent and client address a record keeps: longer ones are cut, never refused.
MAX_USER_AGENT = 256
MAX_IP = 64


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One entry of the session registry: a cookie session or a refresh-token family."""

    id: str  #: public id (128-bit, URL-safe): shown to the user, used in URLs and as a token's `sid`
    kind: SessionKind
    user_id: str
    created_at: float
    last_seen: float
    auth_at: float  #: when the user last proved their password in this session (re-authentication)
    expires_at: float  #: absolute lifetime end
    idle_expires_at: float  #: last_seen + idle timeout; moved forward by `update`
    epoch: int  #: the user's revocation epoch when the session was made (see `bump_epoch`)
    secret_hash: str | None = None  #: sha256 of the cookie secret (cookie sessions only)
    generation: int = 0  #: refresh-token generation (token families only)
    salt: str = ""  #: per-family random salt bound into refresh tokens (token families only)
    user_agent: str = ""
    ip: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)  #: small JSON-able dict

    def live_until(self) -> float:
        return min(self.expires_at, self.idle_expires_at)

    def is_live(self, now: float) -> bool:
        return now < self.live_until()

    def replace(self, **changes: Any) -> SessionRecord:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ThrottleState:
    failures: int = 0
    last_failure_at: float = 0.0


#: What `SessionStore.throttle_update` calls: the current states -> the new states, or None to write nothing.
ThrottleDecision = Callable[[list[ThrottleState]], "list[ThrottleState] | None"]


@dataclass(frozen=True, slots=True)
class TokenState:
    """Everything `verify_access` needs to know about one access token, read in one round trip."""

    denied: bool  #: the token's jti is on the denylist
    epoch: int  #: the user's current revocation epoch
    family: SessionRecord | None  #: the live record of the token's family (sid), or None
