"""The users table on SQLite and PostgreSQL: normalized unique usernames, policy on create and change,
disable, hash updates that never overwrite a newer password, StoreUnavailable when the database is down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from _services import free_port

from sessionward import db
from sessionward.clock import ManualClock
from sessionward.exceptions import NotFound, PasswordPolicyError, StoreUnavailable, ValidationError
from sessionward.ids import looks_like_public_id
from sessionward.passwords import Argon2idHasher, PasswordPolicy
from sessionward.users import User, UserStore, normalize_username

PW = "violet-otter-canoe-42"
HASHER = Argon2idHasher.insecure_for_tests()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        eng = db.make_engine(f"sqlite:///{tmp_path / 'users.db'}")
    else:
        eng = db.make_engine(request.getfixturevalue("postgres_url"))
        db.ensure_schema(eng, "users", [sa.Table("sw_users", db.metadata)])
        with eng.begin() as conn:
            conn.execute(sa.text("DELETE FROM sw_users"))
    yield eng
    eng.dispose()


@pytest.fixture
def users(engine: sa.Engine, clock: ManualClock) -> UserStore:
    return UserStore(engine, hasher=HASHER, policy=PasswordPolicy(), clock=clock)


def test_create_and_read_back(users: UserStore, clock: ManualClock) -> None:
    assert users.count() == 0
    u = users.create("Alice", PW)
    assert looks_like_public_id(u.id)
    assert u.username == "Alice" and not u.disabled
    assert u.created_at == u.password_changed_at == clock.now()
    assert u.password_hash.startswith("$argon2id$") and PW not in u.password_hash
    assert HASHER.verify(u.password_hash, PW)
    assert users.get(u.id) == u
    assert users.get_by_username("Alice") == u
    assert users.count() == 1
    assert users.list() == [u]


def test_ids_are_random_not_derived_from_username(users: UserStore) -> None:
    a, b = users.create("bob", PW), users.create("bobby", PW)
    assert a.id != b.id and "bob" not in a.id.lower()


def test_lookup_is_normalized_display_is_as_given(users: UserStore) -> None:
    u = users.create("Ren\u00e9e", PW)
    assert users.get_by_username("REN\u00c9E") == u
    assert users.get_by_username("Rene\u0301e") == u  # decomposed é
    v = users.create("Stra\u00dfe", PW)
    assert users.get_by_username("STRASSE") == v
    w = users.create("\uff2b\uff4f\uff4a\uff49", PW)  # fullwidth "Koji"
    assert users.get_by_username("koji") == w
    assert w.username == "\uff2b\uff4f\uff4a\uff49"
    assert normalize_username("\uff2b\uff4f\uff4a\uff49") == "koji"


@pytest.mark.parametrize("variant", ["alice", "ALICE", "Alice", "\uff21lice"])
def test_duplicate_username_in_any_case_or_width_is_taken(users: UserStore, variant: str) -> None:
    users.create("Alice", PW)
    with pytest.raises(ValidationError, match="username taken") as exc:
        users.create(variant, PW)
    assert exc.value.field == "username"
    assert users.count() == 1


@pytest.mark.parametrize(
    "bad",
    ["", "x" * 65, "a\nb", "a\x00b", "a\tb", "tab\x1b[31m", "zero\u200bwidth", " alice", "alice ", "a\u2028b"],
)
def test_bad_usernames_are_refused(users: UserStore, bad: str) -> None:
    with pytest.raises(ValidationError) as exc:
        users.create(bad, PW)
    assert exc.value.field == "username"
    assert users.count() == 0


def test_username_limits_accept_1_and_64(users: UserStore) -> None:
    users.create("q", PW)
    users.create("y" * 64, PW)
    assert users.count() == 2


def test_lookups_of_unknown_or_impossible_names_are_none(users: UserStore) -> None:
    assert users.get_by_username("nobody") is None
    assert users.get_by_username("x" * 10_000) is None
    assert users.get_by_username("") is None
    assert users.get("no-such-id") is None
    assert users.get("x" * 10_000) is None


def test_policy_applies_on_create(users: UserStore) -> None:
    with pytest.raises(PasswordPolicyError, match="at least 8"):
        users.create("carol", "short")
    with pytest.raises(PasswordPolicyError, match="commonly used"):
        users.create("carol", "Password1")
    with pytest.raises(PasswordPolicyError, match="username"):
        users.create("carol-the-great", "CAROL-the-great")
    with pytest.raises(PasswordPolicyError, match="at most 128"):
        users.create("carol", "k" * 200)
    assert users.count() == 0


def test_set_password(users: UserStore, clock: ManualClock) -> None:
    u = users.create("dave", PW)
    clock.advance(100)
    new = "second-Secret-horse-77"
    changed = users.set_password(u.id, new)
    stored = users.get(u.id)
    assert stored == changed
    assert stored is not None and stored.password_changed_at == clock.now() and stored.created_at == u.created_at
    assert HASHER.verify(stored.password_hash, new) and not HASHER.verify(stored.password_hash, PW)
    with pytest.raises(PasswordPolicyError):
        users.set_password(u.id, "password")
    with pytest.raises(NotFound):
        users.set_password("missing", new)


def test_set_disabled_and_back(users: UserStore) -> None:
    u = users.create("erin", PW)
    assert users.set_disabled(u.id).disabled
    assert users.get(u.id).disabled  # type: ignore[union-attr]
    assert not users.set_disabled(u.id, False).disabled
    assert not users.get(u.id).disabled  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        users.set_disabled("missing")


def test_update_hash_never_overwrites_a_newer_password(users: UserStore) -> None:
    u = users.create("frank", PW)
    rehashed = HASHER.hash(PW)
    # a password change happened between a login's verify and its rehash
    users.set_password(u.id, "brand-new-Pass-99")
    assert not users.update_hash(u.id, rehashed, expected_hash=u.password_hash)
    assert HASHER.verify(users.get(u.id).password_hash, "brand-new-Pass-99")  # type: ignore[union-attr]
    current = users.get(u.id).password_hash  # type: ignore[union-attr]
    assert users.update_hash(u.id, HASHER.hash("brand-new-Pass-99"), expected_hash=current)
    with pytest.raises(ValueError):
        users.update_hash(u.id, "plaintext")


def test_repr_never_shows_the_hash(users: UserStore) -> None:
    u = users.create("gina", PW)
    assert u.password_hash not in repr(u)
    assert isinstance(u, User)


def test_schema_is_idempotent(engine: sa.Engine, clock: ManualClock) -> None:
    a = UserStore(engine, hasher=HASHER, policy=PasswordPolicy(), clock=clock)
    a.create("hal", PW)
    b = UserStore(engine, hasher=HASHER, policy=PasswordPolicy(), clock=clock)
    assert b.get_by_username("hal") is not None


def test_database_down_is_store_unavailable(tmp_path: Path, clock: ManualClock) -> None:
    eng = db.make_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/none", connect_timeout=1)
    with pytest.raises(StoreUnavailable):
        UserStore(eng, hasher=HASHER, policy=PasswordPolicy(), clock=clock)
    eng.dispose()


def test_database_lost_after_start_is_store_unavailable(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "gone.db"
    eng = db.make_engine(f"sqlite:///{path}")
    users = UserStore(eng, hasher=HASHER, policy=PasswordPolicy(), clock=clock)
    users.create("ivan", PW)
    eng.dispose()
    # replace the database with a directory: SQLite can no longer open it
    for p in tmp_path.glob("gone.db*"):
        p.unlink()
    path.mkdir()
    for call in (
        lambda: users.get_by_username("ivan"),
        lambda: users.create("judy", PW),
        users.count,
        users.list,
    ):
        with pytest.raises(StoreUnavailable):
            call()


def test_ping_reports_an_unreachable_database(tmp_path: Path, clock: ManualClock) -> None:
    from sessionward.db import make_engine
    from sessionward.exceptions import StoreUnavailable
    from sessionward.passwords import Argon2idHasher, PasswordPolicy

    ok = UserStore(make_engine(f"sqlite:///{tmp_path / 'u.db'}"), hasher=Argon2idHasher.insecure_for_tests(),
                   policy=PasswordPolicy(), clock=clock)
    ok.ping()
    down = make_engine("postgresql://postgres@127.0.0.1:1/none", connect_timeout=1)
    with pytest.raises(StoreUnavailable):
        UserStore(down, hasher=Argon2idHasher.insecure_for_tests(), policy=PasswordPolicy(), clock=clock).ping()


def test_recent_users_cache_never_outlives_a_revocation_or_a_local_change(tmp_path: Path, clock: ManualClock) -> None:
    from sessionward.db import make_engine
    from sessionward.passwords import Argon2idHasher, PasswordPolicy
    from sessionward.users import RecentUsers

    engine = make_engine(f"sqlite:///{tmp_path / 'u.db'}")
    here = UserStore(engine, hasher=Argon2idHasher.insecure_for_tests(), policy=PasswordPolicy(), clock=clock)
    elsewhere = UserStore(engine, hasher=Argon2idHasher.insecure_for_tests(), policy=PasswordPolicy(), clock=clock)
    alice = here.create("alice", "correct horse battery staple")
    cache = RecentUsers(here, clock=clock, ttl=5)
    assert cache.get(alice.id, epoch=0) == alice
    here.set_disabled(alice.id, True)  # through the same store: seen at once
    assert cache.get(alice.id, epoch=0).disabled  # type: ignore[union-attr]
    here.set_disabled(alice.id, False)
    assert not cache.get(alice.id, epoch=0).disabled  # type: ignore[union-attr]
    elsewhere.set_disabled(alice.id, True)  # another process, no revocation: within ttl
    assert cache.get(alice.id, epoch=1).disabled  # type: ignore[union-attr]  # a bumped epoch misses the cache
    clock.advance(5.1)
    assert cache.get(alice.id, epoch=0).disabled  # type: ignore[union-attr]
