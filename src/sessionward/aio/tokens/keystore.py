"""The shared key set: signing keys in SQL, private parts sealed with AES-GCM under a key-encryption key.

Every instance reads the same table, so a key rotated on one host is verified by all of them within
`refresh_interval` seconds, and no instance signs with a key the others have not had time to read.

Retired keys (superseded longer than the token lifetime ago) leave every instance's key set by themselves: each
instance works the retirement out from the rows and its clock (`bind_token_lifetime`); the rows are deleted at
the next rotation. A revoked key (`revoke`) is deleted at once and leaves a tombstone in `sw_signing_keys_revoked`
(no key material), for `describe` and the count of families it signed.

Written once, for asyncio, in src/sessionward/aio/tokens/keystore.py (`AsyncSQLKeyRepository`);
src/sessionward/tokens/keystore.py (`SQLKeyRepository`) is generated from it (scripts/gen_sync.py). The sealing
and the report types are shared (`sessionward.tokens.keyrows`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sessionward import events
from sessionward.aio import db
from sessionward.aio._sqlflavour import construct_now
from sessionward.exceptions import ConfigError, NotFound, ValidationError
from sessionward.tokens.keyrows import KEK_SETTING, KeyInfo, KeyRevocation, KeySealer
from sessionward.tokens.keys import ALGORITHM_CHOICES, ALGORITHMS, DEFAULT_ALG, KeySet, SigningKey, superseded_at

__all__ = ["KEK_SETTING", "KeyInfo", "KeyRevocation", "AsyncSQLKeyRepository", "keys_revoked_table", "keys_table",
           "keys_version_table"]

_WHAT = "key store"
_COMPONENT = "keys"


keys_table = sa.Table(
    "sw_signing_keys",
    db.metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("alg", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("activates_at", sa.Double, nullable=False),
    sa.Column("serial", sa.Integer, nullable=False),  #: the version that added the key: orders same-instant keys
    sa.Column("sealed", sa.LargeBinary, nullable=False),  #: nonce (12 bytes) || AES-GCM ciphertext and tag
)

#: One row (id=1) whose `version` grows with every change of `sw_signing_keys`: the cheap poll.
keys_version_table = sa.Table(
    "sw_signing_keys_version",
    db.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
)

#: Tombstones of revoked keys: what `keys list` shows and what the family count needs; never key material.
keys_revoked_table = sa.Table(
    "sw_signing_keys_revoked",
    db.metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("alg", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("activates_at", sa.Double, nullable=False),
    sa.Column("superseded_at", sa.Double, nullable=True),  #: when it stopped signing (None: it never signed)
    sa.Column("revoked_at", sa.Double, nullable=False),
)

_TABLES = [keys_table, keys_version_table, keys_revoked_table]


class AsyncSQLKeyRepository:
    """The key set in the shared database, so every instance signs and verifies with the same keys.

    Private parts are sealed with AES-256-GCM (random nonce, kid and alg as associated data) under `kek`,
    the key-encryption key (32 random bytes from the environment or a file, never stored here).
    `current(now)` re-reads the set when the version row changed, at most every `refresh_interval` seconds.
    A rotated key signs only `activate_after` seconds later (default: twice the interval), so every instance
    can verify it before any instance signs with it; the returned `KeySet`s are read-only and hold only keys
    read back from the database.

    Raises `ConfigError` for a bad `kek` (or one that cannot open the stored keys), `StoreUnavailable` when
    the database cannot be reached. The constructor creates the tables; on asyncio, where a constructor cannot
    await, `open`, `from_url` or `ensure_schema` do.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        kek: bytes,
        *,
        refresh_interval: float = 5.0,
        default_alg: str = DEFAULT_ALG,
    ) -> None:
        sealer = KeySealer(kek)
        if not isinstance(refresh_interval, (int, float)) or refresh_interval <= 0:
            raise ConfigError("TOKEN_KEYS_REFRESH_INTERVAL", "must be a positive number of seconds")
        if default_alg not in ALGORITHMS:
            raise ConfigError("TOKEN_ALGORITHM", f"unsupported algorithm {default_alg!r}; use {ALGORITHM_CHOICES}")
        self._engine = engine
        self._sealer = sealer
        self.refresh_interval = float(refresh_interval)
        self.default_alg = default_alg
        self._lock = threading.RLock()
        self._full: KeySet | None = None  # every key in the table, as last read
        self._set: KeySet | None = None  # the same without retired keys: what `current` hands out
        self._retire_at = math.inf  # after this instant `_set` must lose one more key
        self._handed_out = 0  # the version of the last set `current` handed out
        self._checked_at = 0.0
        self.token_lifetime: float | None = None
        self._schema_pending = not construct_now(db.ensure_schema, engine, _COMPONENT, _TABLES)

    @classmethod
    async def open(cls, engine: AsyncEngine, kek: bytes, **options: Any) -> AsyncSQLKeyRepository:
        """The key set on `engine`, its tables created. Raises `ConfigError`, `StoreUnavailable`."""
        keys = cls(engine, kek, **options)
        await keys.ensure_schema()
        return keys

    @classmethod
    async def from_url(cls, url: str, kek: bytes, **options: Any) -> AsyncSQLKeyRepository:
        return await cls.open(db.make_engine(url), kek, **options)

    async def ensure_schema(self) -> None:
        """Create the tables if they are missing and the constructor did not (idempotent)."""
        if self._schema_pending:
            await db.ensure_schema(self._engine, _COMPONENT, _TABLES)
            self._schema_pending = False

    def cached_keyset(self, now: float) -> KeySet | None:
        """The key set as last read (no I/O), or None if it was never read."""
        del now
        return self._set

    # -- reading -------------------------------------------------------------------------------------
    async def _read_version(self, conn: AsyncConnection) -> int | None:
        return (
            await conn.execute(sa.select(keys_version_table.c.version).where(keys_version_table.c.id == 1))
        ).scalar()

    async def _read(self) -> KeySet | None:
        async with db.begin(self._engine, _WHAT) as conn:
            version = await self._read_version(conn)
            rows = (await conn.execute(sa.select(keys_table))).all()
        if version is None or not rows:
            return None
        return KeySet([self._sealer.open(r) for r in rows], version=version, read_only=True)

    async def _bootstrap(self, now: float) -> None:
        """First start: one key, active at once (nobody can have signed anything yet). Two instances
        starting together: the version row's primary key lets exactly one of them win."""
        key = SigningKey.generate(self.default_alg, now=now, serial=1)
        try:
            async with db.begin(self._engine, _WHAT) as conn:
                await conn.execute(keys_version_table.insert().values(id=1, version=1))
                await conn.execute(keys_table.insert().values(**self._sealer.row(key)))
        except sa.exc.IntegrityError:
            return  # another instance made the first key; read theirs
        events.emit("key_rotated", new_kid=key.kid, alg=key.alg)

    def bind_token_lifetime(self, seconds: float) -> None:
        """Leave keys superseded more than `seconds` ago out of `current` (the longest lifetime bound wins)."""
        with self._lock:
            self.token_lifetime = max(seconds, self.token_lifetime or 0.0)
            self._retire_at = -math.inf  # work the view out again on the next `current`

    def _install(self, full: KeySet, now: float) -> KeySet:
        """Keep `full` and hand out its keys that are not retired at `now`, as a new set whose version is
        higher than that of any set handed out before (caches keyed by a set's id and version never mistake
        it for an older one). A set read before the one installed (two loads at once) is not installed."""
        with self._lock:
            if self._full is not None and self._set is not None and full.version < self._full.version:
                return self._set  # a read that overtook this one installed a newer set: keep that one
            lifetime = self.token_lifetime
            self._handed_out += 1
            if lifetime is None:
                view, retire_at = full.without((), version=self._handed_out), math.inf
            else:
                gone = full.expired_kids(now=now, max_token_lifetime=lifetime)
                view = full.without(gone, version=self._handed_out)
                retire_at = view.next_retirement(max_token_lifetime=lifetime)
            self._full, self._set, self._retire_at = full, view, retire_at
            return view

    async def load(self, *, now: float) -> KeySet:
        """Read the key set (making the first key if there is none). Raises `ConfigError`, `StoreUnavailable`."""
        keyset = await self._read()
        if keyset is None:
            await self._bootstrap(now)
            keyset = await self._read()
            if keyset is None:
                raise ConfigError("TOKEN_SIGNING_KEY", "the key store holds no keys")
        with self._lock:  # held only between two reads, never across one (see `_install`)
            self._checked_at = now
            return self._install(keyset, now)

    async def current(self, now: float) -> KeySet:
        """The key set without retired keys, re-read if another instance changed it (checked at most every
        `refresh_interval`)."""
        keyset, full = self._set, self._full
        if keyset is None or full is None:
            return await self.load(now=now)
        if 0 <= now - self._checked_at < self.refresh_interval:
            if now <= self._retire_at:
                return keyset
            return self._install(full, now)  # a key's last token has just expired: no read needed
        async with db.begin(self._engine, _WHAT) as conn:
            version = await self._read_version(conn)
        if version != full.version:
            return await self.load(now=now)
        self._checked_at = now
        return keyset if now <= self._retire_at else self._install(full, now)

    # -- changing --------------------------------------------------------------------------------------
    @staticmethod
    async def _bump_version(conn: AsyncConnection) -> None:
        """Move the version on; the row lock it takes serialises concurrent changes."""
        updated = (
            await conn.execute(
                keys_version_table.update()
                .where(keys_version_table.c.id == 1)
                .values(version=keys_version_table.c.version + 1)
            )
        ).rowcount
        if updated != 1:
            await conn.execute(keys_version_table.insert().values(id=1, version=1))

    async def _commit(self, *, add: SigningKey | None = None, delete: Iterable[str] = ()) -> SigningKey | None:
        """One transaction: bump the version (the row lock serialises concurrent changes), add and delete.
        An added key's `serial` becomes the new version, so keys made at the same instant still have one
        order that every instance agrees on."""
        async with db.begin(self._engine, _WHAT) as conn:
            await self._bump_version(conn)
            if add is not None:
                add = dataclasses.replace(add, serial=await self._read_version(conn) or 1)
                await conn.execute(keys_table.insert().values(**self._sealer.row(add)))
            kids = list(delete)
            if kids:
                await conn.execute(keys_table.delete().where(keys_table.c.kid.in_(kids)))
        return add

    async def rotate(self, *, now: float, alg: str | None = None, activate_after: float | None = None) -> SigningKey:
        """Persist a new key that signs from `now + activate_after` (default `2 * refresh_interval`) on, so
        that every instance has read it before anyone signs with it. Old keys keep verifying."""
        if activate_after is None:
            activate_after = 2 * self.refresh_interval
        if alg is None:
            alg = (await self.current(now)).signing_key(now).alg
        key = SigningKey.generate(alg, now=now, activates_at=now + activate_after)
        key = await self._commit(add=key) or key
        await self.load(now=now)
        events.emit("key_rotated", new_kid=key.kid, alg=key.alg)
        return key

    async def retire_expired(self, *, now: float, max_token_lifetime: float) -> list[str]:
        """Delete the rows of keys that no live token can have been signed with (they already left `current`
        on every instance that knows the lifetime), and tombstones as old; returns the deleted kids."""
        await self.current(now)
        full = self._full
        assert full is not None
        gone = full.expired_kids(now=now, max_token_lifetime=max_token_lifetime)
        if gone:
            await self._commit(delete=gone)
            await self.load(now=now)
        async with db.begin(self._engine, _WHAT) as conn:
            await conn.execute(
                keys_revoked_table.delete().where(keys_revoked_table.c.revoked_at + max_token_lifetime < now)
            )
        return gone

    # -- revocation ------------------------------------------------------------------------------------
    async def _revocation(self, conn: AsyncConnection, kid: str, now: float) -> tuple[KeyRevocation, Any]:
        """What revoking `kid` now would record, after the checks (see `revoke`)."""
        rows = (
            await conn.execute(
                sa.select(keys_table.c.kid, keys_table.c.alg, keys_table.c.created_at, keys_table.c.activates_at,
                          keys_table.c.serial)
            )
        ).all()
        ordered = sorted(rows, key=lambda r: (r.activates_at, r.serial, r.kid))
        row = next((r for r in ordered if r.kid == kid), None)
        if row is None:
            raise NotFound(f"no signing key {kid!r}")
        active = [r for r in ordered if r.activates_at <= now]
        if active and active[-1].kid == kid:
            raise ValidationError(
                f"{kid} is the key that signs now: run `sessionward keys rotate` first, then revoke it once "
                f"the new key signs (from {2 * self.refresh_interval:g} s after the rotation)"
            )
        if now < row.activates_at <= now + self.refresh_interval:
            raise ValidationError(
                f"{kid} starts signing in {row.activates_at - now:.0f} s, too soon for every instance to hear "
                f"of a revocation: wait until it signs, rotate, then revoke it"
            )
        stopped = superseded_at(ordered).get(kid)  # type: ignore[arg-type]
        revocation = KeyRevocation(
            kid=kid,
            alg=row.alg,
            activates_at=row.activates_at,
            superseded_at=stopped if row.activates_at <= now else None,
            revoked_at=now,
        )
        return revocation, row

    async def check_revocable(self, kid: str, *, now: float) -> KeyRevocation:
        """What `revoke(kid, now=now)` would do, changing nothing. Raises as `revoke` does."""
        async with db.begin(self._engine, _WHAT) as conn:
            return (await self._revocation(conn, kid, now))[0]

    async def revoke(self, kid: str, *, now: float) -> KeyRevocation:
        """Withdraw a (compromised) key: delete it and keep a tombstone (no key material), in one transaction;
        every instance drops it within `refresh_interval` (`TokenService.revoke_key` makes its tokens fail at
        once).

        Refused with `ValidationError` for the key that signs now and for a pending key that starts signing
        within `refresh_interval` (an instance that has not re-read the set would sign with it): rotate first,
        and revoke it once the new key signs. Raises `NotFound` for an unknown kid, `StoreUnavailable`."""
        async with db.begin(self._engine, _WHAT) as conn:
            await self._bump_version(conn)
            revocation, row = await self._revocation(conn, kid, now)
            await conn.execute(keys_table.delete().where(keys_table.c.kid == kid))
            await conn.execute(keys_revoked_table.insert().values(
                kid=kid, alg=row.alg, created_at=row.created_at, activates_at=row.activates_at,
                superseded_at=revocation.superseded_at, revoked_at=now,
            ))
        await self.load(now=now)
        events.emit("key_revoked", level=logging.WARNING, kid=kid, alg=row.alg)
        return revocation

    async def describe(self, *, now: float) -> list[KeyInfo]:
        """Every key with its status at `now` (oldest first), then the revoked ones. Reads the table."""
        await self.load(now=now)
        full = self._full
        assert full is not None
        lifetime = self.token_lifetime
        signing = full.signing_kid(now)
        stops = superseded_at(full.keys)
        out: list[KeyInfo] = []
        for key in full.keys:
            retires = stops[key.kid] + lifetime if key.kid in stops and lifetime is not None else None
            if key.kid == signing:
                status = "signing"
            elif key.activates_at > now:
                status = "pending"
            elif retires is not None and now > retires:
                status = "retired"
            else:
                status = "verifying"
            out.append(KeyInfo(key.kid, key.alg, status, key.created_at, key.activates_at, retires))
        async with db.begin(self._engine, _WHAT) as conn:
            tombstones = (
                await conn.execute(sa.select(keys_revoked_table).order_by(keys_revoked_table.c.revoked_at))
            ).all()
        out += [KeyInfo(t.kid, t.alg, "revoked", t.created_at, t.activates_at, t.revoked_at) for t in tombstones]
        return out
