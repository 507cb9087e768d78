"""The shared key set: signing keys in SQL, private parts sealed with AES-GCM under a key-encryption key.

Every instance reads the same table, so a key rotated on one host is verified by all of them within
`refresh_interval` seconds, and no instance signs with a key the others have not had time to read.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any, Iterable

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Connection, Engine

from .. import db, events
from ..config import check_key
from ..exceptions import ConfigError, NotFound
from .keys import ALGORITHM_CHOICES, ALGORITHMS, DEFAULT_ALG, KeySet, PrivateKey, SigningKey

__all__ = ["KEK_SETTING", "SQLKeyRepository", "keys_table", "keys_version_table"]


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

KEK_SETTING = "SESSIONWARD_KEY_ENCRYPTION_KEY"
_NONCE_BYTES = 12


def _aad(kid: str, alg: str) -> bytes:
    # The kid and the algorithm are bound to the ciphertext: a row whose kid or alg was edited fails to open.
    return f"sessionward-signing-key|{kid}|{alg}".encode("ascii")


class SQLKeyRepository:
    """The key set in the shared database, so every instance signs and verifies with the same keys.

    Private parts are sealed with AES-256-GCM (random nonce, kid and alg as associated data) under `kek`,
    the key-encryption key (32 random bytes from the environment or a file, never stored here).
    `current(now)` re-reads the set when the version row changed, at most every `refresh_interval` seconds.
    A rotated key signs only `activate_after` seconds later (default: twice the interval), so every instance
    can verify it before any instance signs with it; the returned `KeySet`s are read-only and hold only keys
    read back from the database.

    Raises `ConfigError` for a bad `kek` (or one that cannot open the stored keys), `StoreUnavailable` when
    the database cannot be reached.
    """

    def __init__(
        self,
        engine: Engine,
        kek: bytes,
        *,
        refresh_interval: float = 5.0,
        default_alg: str = DEFAULT_ALG,
    ) -> None:
        check_key(KEK_SETTING, kek)
        if len(kek) != 32:
            raise ConfigError(KEK_SETTING, "must be exactly 32 random bytes (AES-256)")
        if not isinstance(refresh_interval, (int, float)) or refresh_interval <= 0:
            raise ConfigError("TOKEN_KEYS_REFRESH_INTERVAL", "must be a positive number of seconds")
        if default_alg not in ALGORITHMS:
            raise ConfigError("TOKEN_ALGORITHM", f"unsupported algorithm {default_alg!r}; use {ALGORITHM_CHOICES}")
        self._engine = engine
        self._aead = AESGCM(bytes(kek))
        self.refresh_interval = float(refresh_interval)
        self.default_alg = default_alg
        self._lock = threading.Lock()
        self._set: KeySet | None = None
        self._checked_at = 0.0
        db.ensure_schema(engine, "keys", [keys_table, keys_version_table])

    @classmethod
    def from_url(cls, url: str, kek: bytes, **options: Any) -> SQLKeyRepository:
        return cls(db.make_engine(url), kek, **options)

    # -- sealing -------------------------------------------------------------------------------------
    def _seal(self, key: SigningKey) -> bytes:
        if isinstance(key.private, bytes):
            plain = key.private
        else:
            plain = key.private.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plain, _aad(key.kid, key.alg))

    def _open(self, row: Any) -> SigningKey:
        sealed = bytes(row.sealed)
        try:
            plain = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _aad(row.kid, row.alg))
        except (InvalidTag, ValueError):
            raise ConfigError(
                KEK_SETTING, f"cannot open signing key {row.kid!r}: wrong key-encryption key or altered row"
            ) from None
        private: PrivateKey = plain if row.alg == "HS256" else serialization.load_der_private_key(plain, None)  # type: ignore[assignment]
        return SigningKey(
            kid=row.kid,
            alg=row.alg,
            private=private,
            created_at=row.created_at,
            activates_at=row.activates_at,
            serial=row.serial,
        )

    # -- reading -------------------------------------------------------------------------------------
    def _read_version(self, conn: Connection) -> int | None:
        return conn.execute(sa.select(keys_version_table.c.version).where(keys_version_table.c.id == 1)).scalar()

    def _read(self) -> KeySet | None:
        with db.begin(self._engine, "key store") as conn:
            version = self._read_version(conn)
            rows = conn.execute(sa.select(keys_table)).all()
        if version is None or not rows:
            return None
        return KeySet([self._open(r) for r in rows], version=version, read_only=True)

    def _bootstrap(self, now: float) -> None:
        """First start: one key, active at once (nobody can have signed anything yet). Two instances
        starting together: the version row's primary key lets exactly one of them win."""
        key = SigningKey.generate(self.default_alg, now=now, serial=1)
        try:
            with db.begin(self._engine, "key store") as conn:
                conn.execute(keys_version_table.insert().values(id=1, version=1))
                conn.execute(keys_table.insert().values(**self._row(key)))
        except sa.exc.IntegrityError:
            return  # another instance made the first key; read theirs
        events.emit("key_rotated", new_kid=key.kid, alg=key.alg)

    def _row(self, key: SigningKey) -> dict[str, Any]:
        return {
            "kid": key.kid,
            "alg": key.alg,
            "created_at": key.created_at,
            "activates_at": key.activates_at,
            "serial": key.serial,
            "sealed": self._seal(key),
        }

    def load(self, *, now: float) -> KeySet:
        """Read the key set (making the first key if there is none). Raises `ConfigError`, `StoreUnavailable`."""
        with self._lock:
            keyset = self._read()
            if keyset is None:
                self._bootstrap(now)
                keyset = self._read()
                if keyset is None:
                    raise ConfigError("TOKEN_SIGNING_KEY", "the key store holds no keys")
            self._set, self._checked_at = keyset, now
            return keyset

    def current(self, now: float) -> KeySet:
        """The key set, re-read if another instance changed it (checked at most every `refresh_interval`)."""
        keyset = self._set
        if keyset is None:
            return self.load(now=now)
        if 0 <= now - self._checked_at < self.refresh_interval:
            return keyset
        with db.begin(self._engine, "key store") as conn:
            version = self._read_version(conn)
        if version != keyset.version:
            return self.load(now=now)
        self._checked_at = now
        return keyset

    # -- changing --------------------------------------------------------------------------------------
    def _commit(self, *, add: SigningKey | None = None, delete: Iterable[str] = ()) -> SigningKey | None:
        """One transaction: bump the version (the row lock serialises concurrent changes), add and delete.
        An added key's `serial` becomes the new version, so keys made at the same instant still have one
        order that every instance agrees on."""
        with db.begin(self._engine, "key store") as conn:
            updated = conn.execute(
                keys_version_table.update()
                .where(keys_version_table.c.id == 1)
                .values(version=keys_version_table.c.version + 1)
            ).rowcount
            if updated != 1:
                conn.execute(keys_version_table.insert().values(id=1, version=1))
            if add is not None:
                add = dataclasses.replace(add, serial=self._read_version(conn) or 1)
                conn.execute(keys_table.insert().values(**self._row(add)))
            kids = list(delete)
            if kids:
                conn.execute(keys_table.delete().where(keys_table.c.kid.in_(kids)))
        return add

    def rotate(self, *, now: float, alg: str | None = None, activate_after: float | None = None) -> SigningKey:
        """Persist a new key that signs from `now + activate_after` (default `2 * refresh_interval`) on, so
        that every instance has read it before anyone signs with it. Old keys keep verifying."""
        if activate_after is None:
            activate_after = 2 * self.refresh_interval
        if alg is None:
            alg = self.current(now).signing_key(now).alg
        key = SigningKey.generate(alg, now=now, activates_at=now + activate_after)
        key = self._commit(add=key) or key
        self.load(now=now)
        events.emit("key_rotated", new_kid=key.kid, alg=key.alg)
        return key

    def retire_expired(self, *, now: float, max_token_lifetime: float) -> list[str]:
        """Delete keys that no live token can have been signed with; returns their kids."""
        gone = self.current(now).expired_kids(now=now, max_token_lifetime=max_token_lifetime)
        if gone:
            self._commit(delete=gone)
            self.load(now=now)
        return gone

    def remove(self, kid: str, *, now: float) -> None:
        """Withdraw a (compromised) key at once: its tokens stop verifying on every instance within
        `refresh_interval`. If it was signing, a replacement that signs at once is made first.
        Raises `NotFound` for an unknown kid."""
        keyset = self.load(now=now)
        key = keyset.verification_key(kid)
        if key is None:
            raise NotFound(f"no signing key {kid!r}")
        replacement = None
        remaining = [k for k in keyset.keys if k.kid != kid and k.activates_at <= now]
        if not remaining:
            replacement = SigningKey.generate(key.alg, now=now)
        self._commit(add=replacement, delete=[kid])
        self.load(now=now)
        if replacement is not None:
            events.emit("key_rotated", new_kid=replacement.kid, alg=replacement.alg)
