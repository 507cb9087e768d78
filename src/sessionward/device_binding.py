# GENERATED from src/sessionward/aio/device_binding.py by scripts/gen_sync.py: edit that file, not this one.
"""Device Bound Session Credentials on the cookie sessions: what the web adapters call (they stay thin).

A session is device-bound once its browser registered a key: `SessionRecord.data["dbsc"]` then holds the DBSC
session identifier, the public JWK, its `alg` and its RFC 7638 thumbprint (small JSON, kept by `rotate`, gone
with the record on logout or revocation). From then on the long session cookie alone authenticates nothing:
each request also needs the short cookie (`admits`), which only `refresh` renews, against a signature by the
stored key over a fresh challenge of this session that was never used before (`store.use_once`, shared by
every instance). A refresh whose proof is not by the session's key (`DBSCRefused`) ends the server session.
Sessions of browsers without DBSC never register and stay exactly as before.

Written once, for asyncio, in src/sessionward/aio/device_binding.py; src/sessionward/device_binding.py is
generated from it (scripts/gen_sync.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sessionward import events
from sessionward.dbsc import DBSCError, DBSCRefused, DBSCServer
from sessionward.sessions import Session, SessionManager
from sessionward.stores.base import SessionRecord

__all__ = ["DATA_KEY", "DeviceBinding", "BoundCookie", "DeviceAnswer", "binding_of", "is_device_bound"]

DATA_KEY = "dbsc"  #: the entry of `SessionRecord.data` holding a session's device binding


def binding_of(record: SessionRecord) -> Mapping[str, Any] | None:
    """The record's device binding (`id`, `jwk`, `alg`, `jkt`), or None for an unbound session."""
    data = record.data
    bound = data.get(DATA_KEY) if isinstance(data, Mapping) else None
    return bound if isinstance(bound, Mapping) and isinstance(bound.get("id"), str) else None


def is_device_bound(record: SessionRecord) -> bool:
    return binding_of(record) is not None


@dataclass(frozen=True, slots=True)
class BoundCookie:
    """The short cookie to set: `name=value; Max-Age=max_age; <attributes>`."""

    name: str
    value: str
    max_age: int
    attributes: str


@dataclass(frozen=True, slots=True)
class DeviceAnswer:
    """A successful registration or refresh: the JSON body (instructions; None on a refresh), the short cookie
    and the next `Secure-Session-Challenge` to cache."""

    body: dict[str, Any] | None
    cookie: BoundCookie
    challenge: str


class DeviceBinding:
    """DBSC for one app's cookie sessions. Every method may raise `StoreUnavailable` (fail closed)."""

    def __init__(self, *, server: DBSCServer, sessions: SessionManager) -> None:
        self.server = server
        self.sessions = sessions
        self.store = sessions.store
        self.clock = sessions.clock

    @property
    def policy(self) -> Any:
        return self.server.policy

    def offer(self, session: Session) -> str:
        """The `Secure-Session-Registration` value for the response that signed `session` in."""
        return self.server.registration_header(binding=session.id, now=self.clock.now())

    def admits(self, session: Session, short_cookies: Sequence[str]) -> bool:
        """Whether this request may use `session`: always for an unbound session; for a device-bound one only
        with one valid, unexpired short cookie of its DBSC session."""
        bound = binding_of(session.record)
        if bound is None:
            return True
        try:
            self.server.check_bound_cookie(short_cookies, session_identifier=bound["id"], now=self.clock.now())
        except DBSCRefused:
            return False  # routine when the short cookie expired: the browser refreshes it
        return True

    def register(self, session: Session | None, responses: Sequence[str]) -> DeviceAnswer:
        """The registration request of the browser holding `session` (its long cookie): verify the proof over a
        challenge offered to this session, never used before, then store the key with the session. Raises
        `DBSCError` (400: no session, already bound, bad proof, replayed challenge)."""
        if session is None:
            raise DBSCError("registration without a live session")
        if is_device_bound(session.record):
            raise DBSCError("session already device-bound")
        now = self.clock.now()
        registration = self.server.verify_registration(responses=responses, binding=session.id, now=now)
        if not self.store.use_once(registration.replay_key, until=registration.replay_until, now=now):
            raise DBSCError("registration challenge replayed")
        key = registration.key
        identifier = secrets.token_urlsafe(16)
        data = {**session.record.data, DATA_KEY: {"id": identifier, "jwk": dict(key.jwk), "alg": key.alg,
                                                  "jkt": key.thumbprint}}
        if not self.store.update(session.id, {"data": data}, now=now):
            raise DBSCError("session ended during registration")
        events.emit("dbsc_registered", user_id=session.user_id, session_id=session.id, alg=key.alg)
        body = self.server.session_instructions(session_identifier=identifier)
        return DeviceAnswer(body, self._cookie(identifier, now), self._challenge(identifier, now))

    def refresh(
        self, session: Session | None, identifiers: Sequence[str], responses: Sequence[str]
    ) -> DeviceAnswer:
        """A refresh of the browser holding `session` (its long cookie, loaded without the short one). Raises
        `DBSCChallengeRequired` (403 + challenge: no proof yet, or over a stale, foreign or replayed challenge),
        `DBSCRefused` (401: no such live bound session, or a proof not by its key; the server session is ended
        then), `DBSCError` (400: malformed, or the identifier of another session)."""
        identifier = self.server.session_identifier(identifiers)
        bound = binding_of(session.record) if session is not None else None
        if session is None or bound is None:
            raise DBSCRefused("refresh without a live device-bound session")
        if not secrets.compare_digest(identifier, bound["id"]):
            raise DBSCError("refresh for another session")
        now = self.clock.now()
        try:
            proof = self.server.verify_refresh(session_identifier=identifier, jwk=bound["jwk"], alg=bound["alg"],
                                               responses=responses, now=now)
        except DBSCRefused as err:
            self.sessions.logout(session)
            events.emit("dbsc_refresh_refused", user_id=session.user_id, session_id=session.id, reason=err.reason)
            raise
        if not self.store.use_once(proof.replay_key, until=proof.replay_until, now=now):
            raise self.server.replayed(proof, now=now)
        return DeviceAnswer(None, self._cookie(identifier, now), self._challenge(identifier, now))

    def _cookie(self, identifier: str, now: float) -> BoundCookie:
        name, value, max_age = self.server.bound_cookie(session_identifier=identifier, now=now)
        return BoundCookie(name, value, max_age, self.server.policy.cookie_attributes)

    def _challenge(self, identifier: str, now: float) -> str:
        return self.server.challenge_header(session_identifier=identifier, now=now)
