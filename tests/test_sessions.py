"""Server-side sessions: C1-C4, C6, C7 at the core level (no web framework)."""

from __future__ import annotations

import re
import sqlite3

import pytest

from sessionward.config import SessionPolicy
from sessionward.exceptions import ReauthenticationRequired
from sessionward.ids import hash_secret
from sessionward.sessions import SessionManager


@pytest.fixture
def manager(sqlite_store, clock) -> SessionManager:
    return SessionManager(store=sqlite_store, policy=SessionPolicy(), clock=clock)


def _rows(tmp_path) -> list[tuple]:
    con = sqlite3.connect(tmp_path / "store.db")
    try:
        return con.execute("select * from sw_sessions").fetchall()
    finally:
        con.close()


def test_C1_ids_are_long_random_unique_and_stored_only_hashed(manager, tmp_path):
    secrets_seen = set()
    for i in range(300):
        s = manager.login(f"user{i % 7}")
        assert s.secret is not None
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", s.secret)  # 256 bits of URL-safe base64
        secrets_seen.add(s.secret)
    assert len(secrets_seen) == 300
    dump = repr([[v.hex() if isinstance(v, bytes) else v for v in row] for row in _rows(tmp_path)])
    assert all(secret not in dump for secret in secrets_seen)
    assert hash_secret(next(iter(secrets_seen))) in dump


def test_C1_ten_thousand_ids_no_duplicates():
    from sessionward.ids import new_secret

    ids = [new_secret() for _ in range(10_000)]
    assert len(set(ids)) == 10_000
    assert all(len(i) == 43 and re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids)


def test_C2_unknown_id_is_not_adopted_and_creates_nothing(manager, tmp_path):
    manager.login("alice")
    before = len(_rows(tmp_path))
    for made_up in ["A" * 43, "x", "", "../../etc/passwd", "A" * 5000, "é" * 43]:
        assert manager.load(made_up) is None
    assert len(_rows(tmp_path)) == before


def test_C3_login_deletes_the_previous_session(manager):
    first = manager.login("alice")
    second = manager.login("bob", previous_secret=first.secret)
    assert second.secret != first.secret
    assert manager.load(first.secret) is None
    assert manager.load(second.secret).user_id == "bob"


def test_C3_rotation_issues_new_id_and_kills_the_old(manager, clock):
    s = manager.login("alice")
    clock.advance(5)
    rotated = manager.rotate(manager.load(s.secret), reauthenticated=True)
    assert rotated is not None and rotated.secret != s.secret and rotated.id != s.id
    assert manager.load(s.secret) is None
    assert manager.load(rotated.secret).record.auth_at == clock.now()


def test_C4_idle_timeout(manager, clock):
    s = manager.login("alice")
    clock.advance(29 * 60)
    assert manager.load(s.secret) is not None  # activity moves the idle timer
    clock.advance(29 * 60)
    assert manager.load(s.secret) is not None
    clock.advance(30 * 60 + 1)
    assert manager.load(s.secret) is None


def test_C4_absolute_lifetime_even_with_activity(manager, clock):
    s = manager.login("alice")
    for _ in range(int(12 * 60 / 20)):
        clock.advance(20 * 60)
        if manager.load(s.secret) is None:
            break
    assert clock.now() - s.record.created_at <= 12 * 3600
    clock.advance(60)
    assert manager.load(s.secret) is None


def test_C4_touch_writes_at_most_once_per_interval(manager, clock, tmp_path):
    s = manager.login("alice")
    clock.advance(10)
    assert manager.load(s.secret).record.last_seen == s.record.created_at  # not written yet
    clock.advance(60)
    assert manager.load(s.secret).record.last_seen == clock.now()


def test_C6_revoke_all_ends_every_session_and_bumps_the_epoch(manager, sqlite_store):
    a, b = manager.login("alice"), manager.login("alice")
    other = manager.login("bob")
    epoch = sqlite_store.get_epoch("alice")
    assert manager.revoke_all("alice") == 2
    assert manager.load(a.secret) is None and manager.load(b.secret) is None
    assert manager.load(other.secret) is not None
    assert sqlite_store.get_epoch("alice") == epoch + 1


def test_C6_session_from_an_older_epoch_is_dead_even_if_its_record_survived(manager, sqlite_store):
    s = manager.login("alice")
    sqlite_store.bump_epoch("alice")  # e.g. a token-side "log out everywhere" on another instance
    assert manager.load(s.secret) is None


def test_C7_list_and_end_own_sessions_only(manager):
    mine, other_mine = manager.login("alice", user_agent="Firefox", ip="10.0.0.1"), manager.login("alice")
    bobs = manager.login("bob")
    listed = manager.list_for_user("alice")
    assert {r.id for r in listed} == {mine.id, other_mine.id}
    assert {r.ip for r in listed} >= {"10.0.0.1"}
    assert manager.revoke("alice", bobs.id) is False  # not hers
    assert manager.load(bobs.secret) is not None
    assert manager.revoke("alice", other_mine.id) is True
    assert manager.load(other_mine.secret) is None


def test_C7_end_all_others_keeps_this_one(manager):
    keep, drop1, drop2 = manager.login("alice"), manager.login("alice"), manager.login("alice")
    assert manager.revoke_others(manager.load(keep.secret)) == 2
    assert manager.load(keep.secret) is not None
    assert manager.load(drop1.secret) is None and manager.load(drop2.secret) is None


def test_C13_recent_auth_window(manager, clock):
    s = manager.login("alice")
    manager.require_recent_auth(manager.load(s.secret))
    clock.advance(11 * 60)
    with pytest.raises(ReauthenticationRequired):
        manager.require_recent_auth(manager.load(s.secret))
    rotated = manager.rotate(manager.load(s.secret), reauthenticated=True)
    manager.require_recent_auth(rotated)


def test_logout_is_final(manager):
    s = manager.login("alice")
    manager.logout(manager.load(s.secret))
    assert manager.load(s.secret) is None


def test_rotate_of_revoked_session_does_not_resurrect(manager):
    s = manager.login("alice")
    loaded = manager.load(s.secret)
    manager.logout(loaded)
    assert manager.rotate(loaded) is None
    assert manager.list_for_user("alice") == []


def test_events_carry_no_secret(manager, caplog):
    caplog.set_level("INFO", logger="sessionward.security")
    s = manager.login("alice")
    manager.logout(manager.load(s.secret))
    text = " ".join(r.getMessage() + repr(getattr(r, "fields", {})) for r in caplog.records)
    assert "session_created" in text and "logout" in text
    assert s.secret not in text and hash_secret(s.secret) not in text


def test_long_user_agent_and_address_are_cut_not_refused(manager):
    from sessionward.stores.base import MAX_IP, MAX_USER_AGENT

    session = manager.login("alice", user_agent="U" * 5000, ip="1" * 500)
    stored = manager.store.get(session.id, now=manager.clock.now())
    assert stored.user_agent == "U" * MAX_USER_AGENT and stored.ip == "1" * MAX_IP
