"""The SQL store's tables and how records map to rows (one source for both flavours; see `sql.py`).

`data` is stored as JSON text, never pickled; a secret hash as its 32 raw bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from sessionward.aio import db
from sessionward.aio.hotsql import Compiled
from sessionward.exceptions import StoreUnavailable
from sessionward.stores.base import MAX_IP, UPDATABLE_FIELDS, SessionRecord, ThrottleState

sessions = sa.Table(
    "sw_sessions",
    db.metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False, index=True),
    # SHA-256 as 32 raw bytes, not 64 hex characters: half the size in the row and in its unique index
    sa.Column("secret_hash", sa.LargeBinary(32), nullable=True, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_seen", sa.Double, nullable=False),
    sa.Column("auth_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
    sa.Column("idle_expires_at", sa.Double, nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("generation", sa.Integer, nullable=False, default=0),
    sa.Column("salt", sa.String(128), nullable=False, default=""),
    sa.Column("user_agent", sa.Text, nullable=False, default=""),
    sa.Column("ip", sa.String(MAX_IP), nullable=False, default=""),
    sa.Column("data", sa.Text, nullable=False, default="{}"),
)

denylist = sa.Table(
    "sw_denylist",
    db.metadata,
    sa.Column("jti", sa.String(255), primary_key=True),
    sa.Column("until", sa.Double, nullable=False, index=True),
)

epochs = sa.Table(
    "sw_epochs",
    db.metadata,
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("epoch", sa.Integer, nullable=False),
)

throttle = sa.Table(
    "sw_throttle",
    db.metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_failure_at", sa.Double, nullable=False),
    #: last_failure_at + window: when the counter reads as zero again (for `purge_expired`)
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
)

#: one-time uses (`use_once`): DPoP proof ids, DBSC challenges; a row whose `until` has passed is dead
once = sa.Table(
    "sw_once",
    db.metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("until", sa.Double, nullable=False, index=True),
)

TABLES = [sessions, denylist, epochs, throttle, once]


def _state(row: Any, now: float, window: float) -> ThrottleState:
    """A throttle row as the counter it reads as at `now` (zero if absent, empty or stale)."""
    if row is None or row.failures == 0 or row.last_failure_at <= now - window:
        return ThrottleState()
    return ThrottleState(failures=int(row.failures), last_failure_at=float(row.last_failure_at))


def _live(now: float) -> sa.ColumnElement[bool]:
    return sa.and_(sessions.c.expires_at > now, sessions.c.idle_expires_at > now)


def _row_to_record(row: sa.Row[Any]) -> SessionRecord:
    return SessionRecord(
        id=row.id,
        kind=row.kind,
        user_id=row.user_id,
        created_at=row.created_at,
        last_seen=row.last_seen,
        auth_at=row.auth_at,
        expires_at=row.expires_at,
        idle_expires_at=row.idle_expires_at,
        epoch=row.epoch,
        secret_hash=_hash_text(row.secret_hash),
        generation=row.generation,
        salt=row.salt,
        user_agent=row.user_agent,
        ip=row.ip,
        data=json.loads(row.data),
    )


_COLUMNS = tuple(c.name for c in sessions.c)


def _hash_bytes(secret_hash: str | None) -> bytes | None:
    """The stored form of a hex secret hash; None for None or for text that is no hex (it matches nothing)."""
    if secret_hash is None:
        return None
    try:
        return bytes.fromhex(secret_hash)
    except (ValueError, TypeError):
        return None


def _hash_text(raw: bytes | None) -> str | None:
    return None if raw is None else bytes(raw).hex()


def _tuple_to_record(values: Any) -> SessionRecord:
    """A record from the session columns in table order (the hot path's raw rows)."""
    row = dict(zip(_COLUMNS, values, strict=True))
    return SessionRecord(
        id=row["id"], kind=row["kind"], user_id=row["user_id"], created_at=row["created_at"],
        last_seen=row["last_seen"], auth_at=row["auth_at"], expires_at=row["expires_at"],
        idle_expires_at=row["idle_expires_at"], epoch=row["epoch"], secret_hash=_hash_text(row["secret_hash"]),
        generation=row["generation"], salt=row["salt"], user_agent=row["user_agent"], ip=row["ip"],
        data=json.loads(row["data"]),
    )


def _hot_statements(engine: AsyncEngine) -> tuple[Compiled, Compiled, Compiled]:
    """The per-request reads. They do not depend on the time (expiry is applied to their answers), so
    that their answers can be remembered while the database is unchanged (`HotReads.one_cached`)."""
    by_secret = (
        sa.select(*sessions.c, sa.func.coalesce(epochs.c.epoch, 0))
        .select_from(sessions.outerjoin(epochs, epochs.c.user_id == sessions.c.user_id))
        .where(sessions.c.secret_hash == sa.bindparam("secret_hash"))
    )
    denied_until = (
        sa.select(sa.func.max(denylist.c.until)).where(denylist.c.jti == sa.bindparam("jti")).scalar_subquery()
    )
    epoch = sa.select(epochs.c.epoch).where(epochs.c.user_id == sa.bindparam("user_id")).scalar_subquery()
    one = sa.select(sa.literal(1).label("one")).subquery()
    token = sa.select(denied_until, epoch, *sessions.c).select_from(
        one.outerjoin(sessions, sessions.c.id == sa.bindparam("family_id"))
    )
    denied = sa.select(denied_until.label("until"))  # the jti's part alone: one row, NULL when not denied
    return Compiled(by_secret, engine), Compiled(token, engine), Compiled(denied, engine)


def _by_secret_answer(row: Any) -> tuple[SessionRecord | None, int]:
    return (None, 0) if row is None else (_tuple_to_record(row[:-1]), int(row[-1]))


def _token_answer(row: Any) -> tuple[tuple[int, SessionRecord | None], float | None]:
    """`((epoch, family), denied until)` of the token-state statement: the user's and family's part (shared by
    every token of the family) and the jti's part."""
    if row is None:  # the outer join always yields one row: a database that answers none cannot be trusted
        raise StoreUnavailable("token state query returned no row")
    family = None if row[2] is None else _tuple_to_record(row[2:])
    return (int(row[1] or 0), family), row[0]


def _denied_answer(row: Any) -> float | None:
    """Denied until, from the jti-only statement (a scalar subquery: always one row)."""
    if row is None:
        raise StoreUnavailable("denylist query returned no row")
    until: float | None = row[0]
    return until


def _record_to_row(record: SessionRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "kind": record.kind,
        "user_id": record.user_id,
        "secret_hash": _hash_bytes(record.secret_hash),
        "created_at": record.created_at,
        "last_seen": record.last_seen,
        "auth_at": record.auth_at,
        "expires_at": record.expires_at,
        "idle_expires_at": record.idle_expires_at,
        "epoch": record.epoch,
        "generation": record.generation,
        "salt": record.salt,
        "user_agent": record.user_agent,
        "ip": record.ip,
        "data": json.dumps(dict(record.data), separators=(",", ":"), sort_keys=True),
    }


def _update_values(changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise ValueError(f"fields {sorted(unknown)} cannot be updated; allowed: {sorted(UPDATABLE_FIELDS)}")
    values = dict(changes)
    if "data" in values:
        values["data"] = json.dumps(dict(values["data"]), separators=(",", ":"), sort_keys=True)
    return values
