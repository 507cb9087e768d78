"""Server-side sessions: create, load, rotate, touch, revoke; idle and absolute expiry on the server.

The cookie carries only a 256-bit secret from `secrets`; the store keeps its SHA-256 (C1). A secret the server
did not issue is never adopted and loading it writes nothing (C2). Login and every privilege change issue a new
secret and delete the old record (C3). Expiry is decided here and in the store from the injected clock (C4).
A user's revocation epoch (shared with access tokens) is checked on every load, so "log out everywhere",
password change and account disable end every session at once (C6).

Written once, for asyncio, in src/sessionward/aio/sessions.py; src/sessionward/sessions.py is generated from
it (scripts/gen_sync.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sessionward import events
from sessionward.aio.stores.protocol import AsyncSessionStore
from sessionward.clock import Clock, SystemClock
from sessionward.config import SessionPolicy
from sessionward.exceptions import CreateError, ReauthenticationRequired
from sessionward.ids import hash_secret, looks_like_secret, new_public_id, new_secret
from sessionward.stores.base import MAX_IP, MAX_USER_AGENT, SessionRecord

__all__ = ["Session", "AsyncSessionManager"]


@dataclass(frozen=True, slots=True)
class Session:
    """A live cookie session: the record plus, when just issued, the raw secret to put in the cookie."""

    record: SessionRecord
    secret: str | None = None  #: set only when the cookie must be (re)sent

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def user_id(self) -> str:
        return self.record.user_id


class AsyncSessionManager:
    """Cookie sessions over a session store. Every method may raise `StoreUnavailable` (fail closed)."""

    def __init__(
        self, *, store: AsyncSessionStore, policy: SessionPolicy | None = None, clock: Clock | None = None
    ) -> None:
        self.store = store
        self.policy = policy or SessionPolicy()
        self.clock = clock or SystemClock()

    # -- issuing ------------------------------------------------------------------------------
    async def login(
        self,
        user_id: str,
        *,
        previous_secret: str | None = None,
        user_agent: str = "",
        ip: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> Session:
        """Start a session for `user_id` after a password login. Any session the browser had before is
        deleted (fixation: the pre-login id stops working). Returns the session with its new secret."""
        if previous_secret:
            await self._drop_secret(previous_secret)
        now = self.clock.now()
        session = await self._create(user_id, now=now, auth_at=now, user_agent=user_agent, ip=ip, data=data or {})
        events.emit("session_created", user_id=user_id, session_id=session.id, kind="cookie")
        return session

    async def _create(
        self, user_id: str, *, now: float, auth_at: float, user_agent: str, ip: str, data: Mapping[str, Any]
    ) -> Session:
        epoch = await self.store.get_epoch(user_id)
        for _ in range(3):  # a collision of 256-bit secrets means a broken RNG; retry, then give up loudly
            secret = new_secret()
            record = SessionRecord(
                id=new_public_id(),
                kind="cookie",
                user_id=user_id,
                created_at=now,
                last_seen=now,
                auth_at=auth_at,
                expires_at=now + self.policy.absolute_lifetime,
                idle_expires_at=now + self.policy.idle_timeout,
                epoch=epoch,
                secret_hash=hash_secret(secret),
                user_agent=user_agent[:MAX_USER_AGENT],
                ip=ip[:MAX_IP],
                data=dict(data),
            )
            try:
                await self.store.create(record, now=now)
            except CreateError:
                continue
            return Session(record, secret)
        raise CreateError("could not create a unique session id")

    # -- loading ------------------------------------------------------------------------------
    async def load(self, secret: str | None) -> Session | None:
        """The live session for a cookie value, or None. Never creates anything; an unknown, malformed,
        expired or revoked secret is simply not a session. Moves the idle timer (at most once per
        `touch_interval`)."""
        if not secret or not looks_like_secret(secret):
            return None
        now = self.clock.now()
        record, epoch = await self.store.load_by_secret(hash_secret(secret), now=now)  # one round trip
        if record is None or record.kind != "cookie" or not record.is_live(now):
            return None
        if record.epoch < epoch:
            await self.store.delete(record.id)
            return None
        if now - record.last_seen >= self.policy.touch_interval:
            idle = min(now + self.policy.idle_timeout, record.expires_at)
            if not await self.store.update(record.id, {"last_seen": now, "idle_expires_at": idle}, now=now):
                return None  # revoked between read and write: never resurrect
            record = record.replace(last_seen=now, idle_expires_at=idle)
        return Session(record)

    # -- changing -----------------------------------------------------------------------------
    async def rotate(self, session: Session, *, reauthenticated: bool = False) -> Session | None:
        """Issue a new secret for the same login (privilege change, re-authentication). The old secret stops
        working at once. Returns None if the session was revoked meanwhile."""
        now = self.clock.now()
        old = session.record
        secret = new_secret()
        new = old.replace(
            id=new_public_id(),
            secret_hash=hash_secret(secret),
            last_seen=now,
            idle_expires_at=min(now + self.policy.idle_timeout, old.expires_at),
            auth_at=now if reauthenticated else old.auth_at,
        )
        if not await self.store.replace(old.id, new, now=now):
            return None
        events.emit("session_rotated", user_id=old.user_id, session_id=new.id, previous_session_id=old.id)
        return Session(new, secret)

    def require_recent_auth(self, session: Session) -> None:
        """Raise `ReauthenticationRequired` unless the password was entered within `reauth_window` (C13)."""
        if self.clock.now() - session.record.auth_at > self.policy.reauth_window:
            raise ReauthenticationRequired()

    def is_recent_auth(self, session: Session) -> bool:
        return self.clock.now() - session.record.auth_at <= self.policy.reauth_window

    # -- ending -------------------------------------------------------------------------------
    async def logout(self, session: Session) -> None:
        """Delete the server record: the cookie is worthless from now on, wherever it was copied."""
        await self.store.delete(session.id)
        events.emit("logout", user_id=session.user_id, session_id=session.id)

    async def revoke(self, user_id: str, session_id: str) -> bool:
        """End one of `user_id`'s sessions (cookie or token family) by public id. False if it is not theirs."""
        record = await self.store.get(session_id, now=self.clock.now())
        if record is None or record.user_id != user_id:
            return False
        await self.store.delete(session_id)
        events.emit("session_revoked", user_id=user_id, session_id=session_id, kind=record.kind)
        return True

    async def revoke_others(self, session: Session) -> int:
        """End every other session and token family of this user; this one stays (C7)."""
        count = await self.store.delete_for_user(session.user_id, except_id=session.id)
        events.emit("sessions_revoked_all", user_id=session.user_id, count=count, kept_session_id=session.id)
        return count

    async def revoke_all(self, user_id: str) -> int:
        """End everything of a user at once: bump the epoch (kills access tokens too) and delete every record (C6)."""
        await self.store.bump_epoch(user_id)
        count = await self.store.delete_for_user(user_id)
        events.emit("sessions_revoked_all", user_id=user_id, count=count)
        return count

    async def list_for_user(self, user_id: str) -> list[SessionRecord]:
        """The user's live cookie sessions and token families, newest first."""
        return await self.store.list_for_user(user_id, now=self.clock.now())

    async def _drop_secret(self, secret: str) -> None:
        if looks_like_secret(secret):
            record = await self.store.get_by_secret(hash_secret(secret), now=self.clock.now())
            if record is not None:
                await self.store.delete(record.id)
