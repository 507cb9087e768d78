"""Users in SQL (table `sw_users`): argon2id password hashes, a unique normalized username, account disable.

Usernames are shown as given but looked up by `normalize_username` (NFKC + casefold), so "Alice",
"ALICE" and "Ａｌｉｃｅ" are one account (`User` and the username rules are in `sessionward.accounts`). Every
method raises `StoreUnavailable` when the database cannot be reached, never a raw driver error.

Written once, for asyncio, in src/sessionward/aio/users.py (`AsyncUserStore`, on SQLAlchemy's async engine,
password hashing in worker threads); src/sessionward/users.py (`UserStore`) is generated from it
(scripts/gen_sync.py).
"""

from __future__ import annotations

import builtins
from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessionward import events
from sessionward.accounts import MAX_USERNAME_LENGTH, User, normalize_username, validate_username
from sessionward.aio import db
from sessionward.aio._sqlflavour import construct_now
from sessionward.aio.hotsql import AsyncHotReads, Compiled
from sessionward.aio.passwords import AsyncArgon2idHasher
from sessionward.clock import Clock
from sessionward.exceptions import NotFound, ValidationError
from sessionward.ids import new_public_id
from sessionward.passwords import PasswordPolicy

__all__ = ["MAX_USERNAME_LENGTH", "AsyncRecentUsers", "User", "AsyncUserStore", "normalize_username",
           "validate_username", "users_table"]

_MAX_ID_LENGTH = 64  # longer input is no user id: answered without a query
_WHAT = "users database"
_COMPONENT = "users"

users_table = sa.Table(
    "sw_users",
    db.metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("username", sa.String(255), nullable=False),
    # NFKC + casefold can lengthen a name (e.g. "ß" -> "ss"), hence the wider column.
    sa.Column("username_key", sa.String(512), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(512), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("password_changed_at", sa.Float, nullable=False),
)


def _row_to_user(row: sa.Row) -> User:  # type: ignore[type-arg]
    return User(
        id=row.id,
        username=row.username,
        password_hash=row.password_hash,
        disabled=bool(row.disabled),
        created_at=float(row.created_at),
        password_changed_at=float(row.password_changed_at),
    )


class AsyncUserStore:
    """The users table. Creates it (component "users") on construction; on asyncio, where a constructor cannot
    await, in `open` (or `ensure_schema`) instead."""

    def __init__(
        self, engine: AsyncEngine, *, hasher: AsyncArgon2idHasher, policy: PasswordPolicy, clock: Clock
    ) -> None:
        self._engine = engine
        self._hasher = hasher
        self._policy = policy
        self._clock = clock
        self._schema_pending = not construct_now(db.ensure_schema, engine, _COMPONENT, [users_table])
        self.writes = 0  #: changes made through this object (see the recent-users cache below)
        # The per-request read (the signed-in user's row) skips SQLAlchemy's per-call work; see hotsql.
        self._hot = AsyncHotReads(engine, what=_WHAT)
        self._get_sql = Compiled(sa.select(*users_table.c).where(users_table.c.id == sa.bindparam("id")), engine)

    @classmethod
    async def open(
        cls, engine: AsyncEngine, *, hasher: AsyncArgon2idHasher, policy: PasswordPolicy, clock: Clock
    ) -> AsyncUserStore:
        """The users table on `engine`, created if missing. Raises `StoreUnavailable`, `ConfigError`."""
        users = cls(engine, hasher=hasher, policy=policy, clock=clock)
        await users.ensure_schema()
        return users

    async def ensure_schema(self) -> None:
        """Create the table if it is missing and the constructor did not (idempotent)."""
        if self._schema_pending:
            await db.ensure_schema(self._engine, _COMPONENT, [users_table])
            self._schema_pending = False

    async def close(self) -> None:
        """Close the per-request reader's connections (the engine is the caller's)."""
        await self._hot.close()

    @property
    def hasher(self) -> AsyncArgon2idHasher:
        return self._hasher

    @property
    def policy(self) -> PasswordPolicy:
        return self._policy

    async def create(self, username: str, password: str) -> User:
        """Add a user. Raises `ValidationError` for a bad or taken username, `PasswordPolicyError` for a
        password that breaks the policy."""
        validate_username(username)
        self._policy.check(password, username=username)
        now = self._clock.now()
        user = User(
            id=new_public_id(),
            username=username,
            password_hash=await self._hasher.hash(password),
            disabled=False,
            created_at=now,
            password_changed_at=now,
        )
        try:
            async with db.begin(self._engine, _WHAT) as conn:
                await conn.execute(
                    users_table.insert().values(
                        id=user.id,
                        username=user.username,
                        username_key=normalize_username(username),
                        password_hash=user.password_hash,
                        disabled=False,
                        created_at=now,
                        password_changed_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            raise ValidationError("username taken", field="username") from None
        events.emit("account_created", user_id=user.id, username=user.username)
        return user

    async def get(self, user_id: str) -> User | None:
        """The user with this id, or None."""
        if not isinstance(user_id, str) or len(user_id) > _MAX_ID_LENGTH:
            return None
        row = await self._hot.one(self._get_sql, {"id": user_id})
        if row is None:
            return None
        values = dict(zip((c.name for c in users_table.c), row, strict=True))
        return User(
            id=values["id"],
            username=values["username"],
            password_hash=values["password_hash"],
            disabled=bool(values["disabled"]),
            created_at=float(values["created_at"]),
            password_changed_at=float(values["password_changed_at"]),
        )

    async def get_by_username(self, username: str) -> User | None:
        """The user whose normalized username matches, or None (also for a name that could never be valid)."""
        if not isinstance(username, str) or not 1 <= len(username) <= MAX_USERNAME_LENGTH:
            return None
        key = normalize_username(username)
        async with db.begin(self._engine, _WHAT) as conn:
            row = (await conn.execute(sa.select(users_table).where(users_table.c.username_key == key))).first()
        return None if row is None else _row_to_user(row)

    async def list(self) -> builtins.list[User]:
        """Every user, oldest first."""
        async with db.begin(self._engine, _WHAT) as conn:
            rows = (
                await conn.execute(sa.select(users_table).order_by(users_table.c.created_at, users_table.c.id))
            ).all()
        return [_row_to_user(r) for r in rows]

    async def ping(self) -> None:
        """Raise `StoreUnavailable` if the users database cannot be reached."""
        async with db.begin(self._engine, _WHAT) as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def count(self) -> int:
        async with db.begin(self._engine, _WHAT) as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(users_table))).scalar_one())

    async def set_password(self, user_id: str, new_password: str) -> User:
        """Check `new_password` against the policy and store its hash. Raises `NotFound`,
        `PasswordPolicyError`. Ending the user's sessions is the caller's job (C6)."""
        user = await self._require(user_id)
        self._policy.check(new_password, username=user.username)
        new_hash = await self._hasher.hash(new_password)
        now = self._clock.now()
        await self._update(user_id, password_hash=new_hash, password_changed_at=now)
        events.emit("password_changed", user_id=user_id)
        return User(user.id, user.username, new_hash, user.disabled, user.created_at, now)

    async def set_disabled(self, user_id: str, disabled: bool = True) -> User:
        """Disable (or re-enable) an account. Raises `NotFound`. Ending its sessions is the caller's job (C6)."""
        user = await self._require(user_id)
        await self._update(user_id, disabled=bool(disabled))
        if disabled:
            events.emit("account_disabled", user_id=user_id)
        return replace(user, disabled=bool(disabled))

    async def update_hash(self, user_id: str, new_hash: str, *, expected_hash: str | None = None) -> bool:
        """Replace the stored hash without changing the password (rehash on login). With `expected_hash`,
        only if the stored hash is still that one, so a password changed meanwhile is never overwritten.
        True if a row changed."""
        if not new_hash.startswith("$argon2id$"):
            raise ValueError("new_hash must be an argon2id hash")
        stmt = users_table.update().where(users_table.c.id == user_id).values(password_hash=new_hash)
        if expected_hash is not None:
            stmt = stmt.where(users_table.c.password_hash == expected_hash)
        async with db.begin(self._engine, _WHAT) as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def _require(self, user_id: str) -> User:
        user = await self.get(user_id)
        if user is None:
            raise NotFound("no such user")
        return user

    async def _update(self, user_id: str, **values: object) -> None:
        self.writes += 1  # the recent-users cache drops its rows: a change made in this process is seen at once
        async with db.begin(self._engine, _WHAT) as conn:
            changed = (
                await conn.execute(users_table.update().where(users_table.c.id == user_id).values(**values))
            ).rowcount
        if changed != 1:
            raise NotFound("no such user")


class AsyncRecentUsers:
    """A small per-process cache of user rows for the per-request `current_user`, keyed by (user id, the user's
    revocation epoch). Disabling an account or "log out everywhere" bumps the epoch, which both kills the
    session/token and misses this cache, so a cached row never outlives a revocation. A change made through
    the same user store empties the cache at once; a change made by another process without a revocation
    (e.g. a bare `set_disabled`) is seen within `ttl` seconds."""

    def __init__(self, users: AsyncUserStore, *, clock: Clock, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._users = users
        self._clock = clock
        self._ttl = ttl
        self._max = max_entries
        self._rows: dict[tuple[str, int], tuple[float, User]] = {}
        self._seen_writes = users.writes

    async def get(self, user_id: str, *, epoch: int) -> User | None:
        """The user row, from the cache when fresh. Raises `StoreUnavailable`."""
        now = self._clock.now()
        if self._users.writes != self._seen_writes:
            self._rows.clear()
            self._seen_writes = self._users.writes
        key = (user_id, epoch)
        hit = self._rows.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        user = await self._users.get(user_id)
        if user is not None:
            if len(self._rows) >= self._max:
                self._rows.clear()  # crude but bounded; a refill costs one read per active user
            self._rows[key] = (now + self._ttl, user)
        return user
