"""The token service: issue access/refresh pairs, verify access tokens, rotate refresh tokens, revoke.

`verify_access` is the one place that verifies an access token, in this order:
type and size (once, before any parsing) -> exact shape -> header allow-list (`claims.check_header`) -> key
by kid (a plain dict lookup) -> header `alg` must equal the key's pinned algorithm -> signature, by PyJWT's
algorithm object for that one algorithm with the key object prepared once per key -> claims
(`claims.validate_claims`) -> denylist, user epoch and family (one store read). The header checks and the
prepared key are remembered per distinct header text (`jws.HeaderCache`); verified tokens are kept in a
bounded cache keyed by the exact token text (`cache_size`, `SESSIONWARD_TOKEN_CACHE_SIZE`). Times, denylist,
epoch and family are checked again on every call, and both caches are dropped whenever the key set changes.

Refresh tokens are opaque: `<family_id>.<generation>.<mac>` with
`mac = HMAC-SHA256(refresh_key, family_id|generation|salt)`. The store never holds a token, only the family
(a `SessionRecord(kind="token")`) and its current generation. Each use advances the generation with one
atomic compare-and-set; a spent generation that comes back revokes the whole family (RFC 9700 4.14.2).

Written once, for asyncio, in src/sessionward/aio/tokens/service.py; src/sessionward/tokens/service.py is
generated from it (scripts/gen_sync.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sessionward import events, metrics
from sessionward.aio.stores.protocol import AsyncSessionStore
from sessionward.aio.tokens._source import AsyncKeySource, initial_keyset, key_source
from sessionward.clock import Clock, SystemClock
from sessionward.config import check_key
from sessionward.exceptions import ConfigError, RefreshTokenReused, TokenError
from sessionward.ids import new_public_id, new_secret
from sessionward.stores.base import MAX_IP, MAX_USER_AGENT, SessionRecord
from sessionward.tokens.claims import (
    ACCESS_TOKEN_TYPE,
    Claims,
    TokenPolicy,
    build_access_claims,
    check_extra_claims,
    check_time,
    validate_claims,
)
from sessionward.tokens.jws import HeaderCache, VerifiedCache, sign_compact, verify_compact
from sessionward.tokens.keyrows import KeyRevocation
from sessionward.tokens.keys import KeySet, SigningKey, revoked_key_marker

__all__ = ["AsyncTokenService", "TokenPair", "family_jkt"]

log = logging.getLogger(__name__)

_REFRESH_RE = re.compile(r"([A-Za-z0-9_-]{22})\.(0|[1-9][0-9]{0,8})\.([A-Za-z0-9_-]{43})")
_MAX_REFRESH_CHARS = 128
DEFAULT_CACHE_SIZE = 4096
MAX_CACHE_SIZE = 1_000_000


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a login or a refresh hands to the client. The tokens are left out of `repr`."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int  #: seconds until the access token expires
    family_id: str  #: the token family (`sid`), e.g. to list or end it later
    refresh_expires_at: float  #: when the family dies unless refreshed (idle) or at the latest (absolute)
    user_id: str = ""  #: whose tokens these are
    token_type: str = "Bearer"

    def as_dict(self) -> dict[str, Any]:
        """The OAuth 2.0 token response body (RFC 6749 5.1)."""
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }


def family_jkt(record: SessionRecord) -> str | None:
    """The DPoP key thumbprint a token family is bound to (kept server-side in its record), or None."""
    claims = record.data.get("claims") if isinstance(record.data, Mapping) else None
    cnf = claims.get("cnf") if isinstance(claims, Mapping) else None
    jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
    return jkt if isinstance(jkt, str) else None


class AsyncTokenService:
    """Access and refresh tokens for one issuer/audience.

    `keys` is a `KeySet` (one process) or the SQL key repository (several instances). `refresh_key` is the HMAC
    key of refresh tokens (>= 256 random bits, used for nothing else). `cache_size` bounds the cache of
    verified tokens (entries of about 1 KB; 0 turns it off, and every request then verifies a signature).
    Raises `ConfigError` at construction for a bad key or cache size; methods raise
    `TokenError`/`RefreshTokenReused` (401) and let `StoreUnavailable` through.
    """

    def __init__(
        self,
        *,
        store: AsyncSessionStore,
        keys: AsyncKeySource | KeySet,
        refresh_key: bytes,
        policy: TokenPolicy,
        clock: Clock | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if type(cache_size) is not int or not 0 <= cache_size <= MAX_CACHE_SIZE:
            raise ConfigError(
                "TOKEN_CACHE_SIZE", f"must be a whole number from 0 to {MAX_CACHE_SIZE}, got {cache_size!r}"
            )
        self._store = store
        self._keys = keys = key_source(keys)
        self._refresh_key = check_key("TOKEN_REFRESH_KEY", refresh_key)
        self.policy = policy
        self._clock: Clock = clock or SystemClock()
        self._cache = VerifiedCache(cache_size)
        keys.bind_token_lifetime(policy.max_token_lifetime)  # superseded keys retire by themselves (T14)
        self._headers = HeaderCache()
        metrics.watch_token_cache(self._cache)
        keyset = initial_keyset(keys, self._clock.now())  # on asyncio: None if the keys were never read
        for key in keyset.keys if keyset is not None else ():
            if isinstance(key.private, bytes) and hmac.compare_digest(key.private, self._refresh_key):
                raise ConfigError("TOKEN_REFRESH_KEY", "must differ from every signing key (one key per purpose)")

    # -- access tokens --------------------------------------------------------------------------
    async def _sign(self, record: SessionRecord, *, epoch: int, fresh: bool, now: float) -> str:
        key: SigningKey = (await self._keys.current(now)).signing_key(now)
        extra = record.data.get("claims") if isinstance(record.data, Mapping) else None
        payload = build_access_claims(
            self.policy,
            user_id=record.user_id,
            family_id=record.id,
            epoch=epoch,
            fresh=fresh,
            now=now,
            jti=new_public_id(),
            extra=extra,
        )
        return sign_compact(payload, key, {"kid": key.kid, "typ": ACCESS_TOKEN_TYPE})

    async def verify_access(self, token: str) -> Claims:
        """The claims of a valid, unrevoked access token. Raises `TokenError` (with a `reason` for logs)."""
        try:
            return await self._verify_access(token)
        except TokenError as exc:
            events.emit("token_rejected", reason=exc.reason)
            raise

    async def _verify_access(self, token: str) -> Claims:
        now = self._clock.now()
        policy = self.policy
        # Type and size once, here at the edge, before anything else looks at the token (Authlib
        # CVE-2025-61920): not even the cache hashes an oversized string.
        if type(token) is not str:
            raise TokenError("not a string")
        if len(token) > policy.max_token_bytes:
            raise TokenError("too large")
        keyset: KeySet = await self._keys.current(now)
        tag = (id(keyset), keyset.version)
        claims = self._cache.get(token, tag)  # exact text of a token verified under this very key set
        if claims is None:
            # shape -> header allow-list -> key by kid -> alg pinned to the key -> signature -> claims
            kid, payload = verify_compact(token, keyset, tag, self._headers)
            claims = validate_claims(payload, kid=kid, policy=policy, now=now)
            self._cache.put(token, claims, tag)
        else:
            check_time(claims, policy, now=now)
        await self._check_not_revoked(claims, keyset, now=now)
        return claims

    async def _check_not_revoked(self, claims: Claims, keyset: KeySet, *, now: float) -> None:
        """Denylist, user epoch and family, in one store round trip. Raises `TokenError`."""
        state = await self._store.token_state(jti=claims.jti, user_id=claims.sub, family_id=claims.sid, now=now)
        if state.denied:
            raise TokenError("revoked")
        if claims.epoch < state.epoch:
            raise TokenError("revoked (user epoch)")
        # Ending a family anywhere (logout, reuse detection, "end this session" on another device, the CLI)
        # ends its access tokens at once, not when they expire.
        family = state.family
        if family is None or family.kind != "token" or family.user_id != claims.sub:
            raise TokenError("token family ended")
        # A revoked key is refused at once on every instance, before each one re-reads the key set (T14). The
        # signing key is never revoked, so only tokens of an older key pay for this one read.
        if claims.kid != keyset.signing_kid(now) and await self._store.is_denied(
            revoked_key_marker(claims.kid), now=now
        ):
            raise TokenError("revoked signing key")

    # -- refresh tokens -------------------------------------------------------------------------
    def _mac(self, family_id: str, generation: int, salt: str) -> str:
        msg = f"sessionward-refresh|{family_id}|{generation}|{salt}".encode()
        digest = hmac.new(self._refresh_key, msg, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def _refresh_token(self, record: SessionRecord, generation: int) -> str:
        return f"{record.id}.{generation}.{self._mac(record.id, generation, record.salt)}"

    async def _pair(
        self, record: SessionRecord, *, generation: int, epoch: int, fresh: bool, now: float, idle_until: float
    ) -> TokenPair:
        return TokenPair(
            token_type="DPoP" if family_jkt(record) else "Bearer",
            access_token=await self._sign(record, epoch=epoch, fresh=fresh, now=now),
            refresh_token=self._refresh_token(record, generation),
            expires_in=int(self.policy.access_ttl),
            family_id=record.id,
            refresh_expires_at=min(record.expires_at, idle_until),
            user_id=record.user_id,
        )

    async def issue(
        self,
        user_id: str,
        *,
        fresh: bool,
        user_agent: str = "",
        ip: str = "",
        extra_claims: Mapping[str, Any] | None = None,
        dpop_jkt: str | None = None,
    ) -> TokenPair:
        """Start a token family for `user_id` (after a login) and return its first pair. `fresh` marks a
        password login. `dpop_jkt` (a checked DPoP proof's key thumbprint) binds the family: every access token
        carries `cnf.jkt` (RFC 9449 6.1), the pair's `token_type` is `DPoP`, and the family remembers the key
        server-side (see `refresh(bind=...)`). Raises ValueError for reserved `extra_claims`; `StoreUnavailable`."""
        now = self._clock.now()
        policy = self.policy
        extra = check_extra_claims(extra_claims)
        if dpop_jkt is not None:
            extra["cnf"] = {"jkt": dpop_jkt}
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string")
        epoch = await self._store.get_epoch(user_id)
        record = SessionRecord(
            id=new_public_id(),
            kind="token",
            user_id=user_id,
            created_at=now,
            last_seen=now,
            auth_at=now if fresh else 0.0,
            expires_at=now + policy.refresh_absolute,
            idle_expires_at=now + policy.refresh_idle,
            epoch=epoch,
            generation=0,
            salt=new_secret(),
            user_agent=user_agent[:MAX_USER_AGENT],
            ip=ip[:MAX_IP],
            data={"claims": extra} if extra else {},
        )
        await self._store.create(record, now=now)
        events.emit("token_issued", user_id=user_id, family=record.id, fresh=bool(fresh))
        return await self._pair(
            record, generation=0, epoch=epoch, fresh=fresh, now=now, idle_until=record.idle_expires_at
        )

    def _parse_refresh(self, refresh_token: object) -> tuple[str, int, str]:
        if not isinstance(refresh_token, str) or len(refresh_token) > _MAX_REFRESH_CHARS:
            raise TokenError("malformed refresh token")
        m = _REFRESH_RE.fullmatch(refresh_token)
        if m is None:
            raise TokenError("malformed refresh token")
        return m.group(1), int(m.group(2)), m.group(3)

    async def refresh(
        self,
        refresh_token: str,
        *,
        user_agent: str = "",
        ip: str = "",
        bind: Callable[[str | None], str | None] | None = None,
    ) -> TokenPair:
        """Spend `refresh_token` and return a new pair (the access token is never `fresh`).

        Raises `TokenError` for a malformed, forged, unknown, expired or revoked token, and
        `RefreshTokenReused` when a spent token comes back: the family is then revoked (also when two
        clients race with the same token: exactly one wins, the loser's attempt counts as reuse).
        With `policy.reuse_grace` > 0, the token spent last may come back within that many seconds of its
        rotation (a client retrying after a lost response): it gets the family's *current* refresh token
        again (the one the first call returned) and a new access token; nothing is rotated or revoked.

        `bind(bound_jkt)` (DPoP) is called with the family's key thumbprint (None if unbound) once the token's
        MAC and epoch have checked, before anything is spent: it raises to refuse (a bound family refreshed
        without its key: nothing changes, so a thief cannot even burn the family) and returns the thumbprint
        the new tokens carry; an unbound family refreshed with a proof becomes bound.
        """
        now = self._clock.now()
        family_id, generation, mac = self._parse_refresh(refresh_token)
        record = await self._store.get(family_id, now=now)
        if record is None or record.kind != "token":
            raise TokenError("unknown or expired token family")
        # The MAC before anything else: a forged token (the family id is public: it is the access token's
        # `sid`) must never be able to revoke a family by posing as a spent generation.
        if not hmac.compare_digest(self._mac(family_id, generation, record.salt), mac):
            raise TokenError("bad refresh token mac")
        epoch = await self._store.get_epoch(record.user_id)
        if record.epoch < epoch:
            await self._store.delete(family_id)
            raise TokenError("revoked (user epoch)")
        if bind is not None:
            record = await self._bind(record, bind(family_jkt(record)), now=now)
        if generation == record.generation:
            idle_until = now + self.policy.refresh_idle
            if await self._store.advance(
                family_id, expected_generation=generation, last_seen=now, idle_expires_at=idle_until, now=now
            ):
                events.emit("token_refreshed", user_id=record.user_id, family=family_id, generation=generation + 1)
                await self._note_client(record, user_agent=user_agent, ip=ip, now=now)
                return await self._pair(
                    record, generation=generation + 1, epoch=epoch, fresh=False, now=now, idle_until=idle_until
                )
            # Lost the compare-and-set: someone spent this generation a moment ago.
            record = await self._store.get(family_id, now=now)
            if record is None:
                raise TokenError("unknown or expired token family")
        if generation > record.generation:
            raise TokenError("refresh token from the future")  # cannot happen with a valid MAC; refuse anyway
        if self._in_grace(record, generation, now):
            events.emit(
                "token_refreshed", user_id=record.user_id, family=family_id, generation=record.generation, grace=True
            )
            return await self._pair(
                record,
                generation=record.generation,
                epoch=epoch,
                fresh=False,
                now=now,
                idle_until=record.idle_expires_at,
            )
        await self._store.delete(family_id)
        events.emit(
            "token_reuse_detected",
            level=logging.WARNING,
            user_id=record.user_id,
            family=family_id,
            generation=generation,
            current_generation=record.generation,
        )
        raise RefreshTokenReused("spent refresh token reused; family revoked")

    async def _bind(self, record: SessionRecord, jkt: str | None, *, now: float) -> SessionRecord:
        """`record` bound to `jkt` (written once, when an unbound family gets bound; a binding is never undone)."""
        if jkt is None or family_jkt(record) == jkt:
            return record
        claims = dict(record.data.get("claims") or {})
        claims["cnf"] = {"jkt": jkt}
        data = {**record.data, "claims": claims}
        if not await self._store.update(record.id, {"data": data}, now=now):
            raise TokenError("unknown or expired token family")
        return record.replace(data=data)

    def _in_grace(self, record: SessionRecord, generation: int, now: float) -> bool:
        grace = self.policy.reuse_grace
        return grace > 0 and generation == record.generation - 1 and 0 <= now - record.last_seen <= grace

    async def _note_client(self, record: SessionRecord, *, user_agent: str, ip: str, now: float) -> None:
        """Remember where the family was last used (for the user's session list); one write, only on change."""
        seen = {"user_agent": user_agent[:MAX_USER_AGENT], "ip": ip[:MAX_IP]}
        if not (user_agent or ip) or record.data.get("last_client") == seen:
            return
        await self._store.update(record.id, {"data": {**record.data, "last_client": seen}}, now=now)

    # -- revocation ------------------------------------------------------------------------------
    async def revoke(self, target: Claims | str, *, jti: str | None = None, exp: float | None = None) -> bool:
        """Logout: end the family (`Claims` of the caller's access token, or a family id) and deny the
        access token's `jti` until it would have expired (`jti`/`exp` come from `target` when it is
        `Claims`). Returns True if the family existed. Raises ValueError for a `jti` without `exp`."""
        if isinstance(target, Claims):
            family_id, jti, exp, user_id = target.sid, target.jti, target.exp, target.sub
        else:
            family_id, user_id = target, None
        now = self._clock.now()
        if jti is not None:
            if exp is None:
                raise ValueError("exp is required with jti")
            # Accepted until exp + leeway, so denied until then too.
            await self._store.deny(jti, until=exp + self.policy.leeway, now=now)
        existed = await self._store.delete(family_id)
        events.emit("token_revoked", user_id=user_id, family=family_id)
        return existed

    async def revoke_all(self, user_id: str) -> int:
        """Log out everywhere (also for account disable and password change): bump the user's epoch, which
        kills every access token, family and cookie session made before, then delete their records.
        Returns how many records were deleted."""
        epoch = await self._store.bump_epoch(user_id)
        count = await self._store.delete_for_user(user_id)
        events.emit("sessions_revoked_all", user_id=user_id, count=count, epoch=epoch)
        return count

    # -- keys --------------------------------------------------------------------------------------
    async def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public signing keys as a JWK Set (no HMAC key, no private member)."""
        return (await self._keys.current(self._clock.now())).jwks()

    async def rotate_keys(self, *, alg: str | None = None, activate_after: float | None = None) -> SigningKey:
        """Make a new signing key and retire keys that no live token can carry. Old keys keep verifying
        until the last token they signed has expired. Raises `ConfigError`, `StoreUnavailable`."""
        now = self._clock.now()
        options: dict[str, Any] = {"alg": alg}
        if activate_after is not None:
            options["activate_after"] = activate_after
        key: SigningKey = await self._keys.rotate(now=now, **options)  # type: ignore[attr-defined]
        await self.retire_keys()
        return key

    async def revoke_key(self, kid: str) -> tuple[KeyRevocation, int]:
        """Revoke a signing key believed leaked (the SQL key repository's `revoke`, which refuses the key that signs
        now): its tokens are refused at once on every instance (a denylist entry in the shared store, checked
        for every token not signed by the current key), and it leaves every key set and JWKS within the key
        refresh interval. Returns the `KeyRevocation` and how many live token families got their latest
        access token from it (counted from the families' last signing time, `last_seen`: their clients get
        a 401 and refresh, since refresh tokens do not depend on signing keys). Raises `NotFound`,
        `ValidationError`, `ConfigError` (a key source that cannot revoke), `StoreUnavailable`."""
        keys: Any = self._keys
        if not hasattr(keys, "revoke"):
            raise ConfigError("TOKEN_SIGNING_KEY", "this key source cannot revoke keys; use the SQL key repository")
        now = self._clock.now()
        await keys.check_revocable(kid, now=now)  # refused (the key that signs now) before anything is written
        # Denied first (fail closed: if the store is down nothing is revoked and the command fails), until no
        # instance can hold the key any more and no token it signed can be valid anyway.
        until = now + self.policy.max_token_lifetime + 2 * float(getattr(keys, "refresh_interval", 0.0))
        await self._store.deny(revoked_key_marker(kid), until=until, now=now)
        revocation = await keys.revoke(kid, now=now)
        families = 0
        if revocation.superseded_at is not None:
            start, end = revocation.activates_at, revocation.superseded_at
            families = sum(
                1 for r in await self._store.list_all(now=now, limit=1_000_000)
                if r.kind == "token" and start <= r.last_seen < end
            )
        return revocation, families

    async def retire_keys(self) -> list[str]:
        """Drop keys superseded longer than the longest token lifetime ago. Returns their kids."""
        now = self._clock.now()
        retired: list[str] = await self._keys.retire_expired(  # type: ignore[attr-defined]
            now=now, max_token_lifetime=self.policy.max_token_lifetime
        )
        return retired
