"""The one contract every `SessionStore` passes (see the rules in `sessionward.stores.base`).

Subclass `StoreContract` in a `Test...` class and provide:
- a `store` fixture yielding a fresh, empty store;
- `stored_count(store) -> int`: how many rows/keys the store holds now;
- `stored_text(store) -> str`: everything the store holds (key names and values) as text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from sessionward.exceptions import CreateError
from sessionward.ids import hash_secret, new_public_id, new_secret
from sessionward.stores.base import SessionRecord, ThrottleState
from sessionward.stores.protocol import SessionStore

T0 = 1_800_000_000.0
IDLE = 1800.0
ABSOLUTE = 12 * 3600.0


def make_record(
    *, user_id: str = "alice", now: float = T0, secret: str | None = None, kind: str = "cookie", **changes: Any
) -> SessionRecord:
    if kind == "cookie" and secret is None:
        secret = new_secret()
    record = SessionRecord(
        id=new_public_id(),
        kind=kind,  # type: ignore[arg-type]
        user_id=user_id,
        created_at=now,
        last_seen=now,
        auth_at=now,
        expires_at=now + ABSOLUTE,
        idle_expires_at=now + IDLE,
        epoch=0,
        secret_hash=hash_secret(secret) if secret is not None else None,
        generation=0,
        salt=new_public_id() if kind == "token" else "",
        user_agent="Mozilla/5.0 (X11) Firefox/128.0",
        ip="192.0.2.7",
        data={"csrf": "c" * 10, "n": 1, "nested": {"list": [1, 2.5, "x"], "none": None}},
    )
    return record.replace(**changes)


def run_concurrently(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run fn(0..n-1) in n threads released at the same moment; return their results (re-raise errors)."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    if errors:
        raise errors[0]
    return results


def every_method(store: SessionStore) -> list[Callable[[], Any]]:
    """One call of every Protocol method, for "unreachable store raises StoreUnavailable everywhere" tests."""
    rec = make_record()
    return [
        lambda: store.create(rec, now=T0),
        lambda: store.get(rec.id, now=T0),
        lambda: store.get_by_secret("0" * 64, now=T0),
        lambda: store.load_by_secret("0" * 64, now=T0),
        lambda: store.token_state(jti="j", user_id="u", family_id="f", now=T0),
        lambda: store.update(rec.id, {"last_seen": T0}, now=T0),
        lambda: store.replace(rec.id, make_record(), now=T0),
        lambda: store.advance(rec.id, expected_generation=0, last_seen=T0, idle_expires_at=T0 + 1, now=T0),
        lambda: store.delete(rec.id),
        lambda: store.delete_for_user("alice"),
        lambda: store.list_for_user("alice", now=T0),
        lambda: store.list_all(now=T0),
        lambda: store.deny("j", until=T0 + 1, now=T0),
        lambda: store.is_denied("j", now=T0),
        lambda: store.use_once("u", until=T0 + 1, now=T0),
        lambda: store.get_epoch("alice"),
        lambda: store.bump_epoch("alice"),
        lambda: store.throttle_read(["k"], now=T0, window=1),
        lambda: store.throttle_update(["k"], lambda states: None, now=T0, window=1),
        lambda: store.throttle_reset("k"),
        lambda: store.purge_expired(now=T0),
        store.ping,
    ]


class StoreContract:
    """Shared tests; not collected by itself (no `Test` prefix)."""

    def stored_count(self, store: SessionStore) -> int:
        raise NotImplementedError

    def stored_text(self, store: SessionStore) -> str:
        raise NotImplementedError

    # -- basics ------------------------------------------------------------------------------
    def test_implements_protocol(self, store: SessionStore) -> None:
        assert isinstance(store, SessionStore)
        store.ping()

    def test_create_get_get_by_secret(self, store: SessionStore) -> None:
        secret = new_secret()
        rec = make_record(secret=secret)
        store.create(rec, now=T0)
        assert store.get(rec.id, now=T0) == rec
        assert store.get_by_secret(hash_secret(secret), now=T0) == rec
        token = make_record(kind="token", secret=None)
        store.create(token, now=T0)
        got = store.get(token.id, now=T0)
        assert got == token and got.secret_hash is None and got.salt == token.salt

    def test_duplicate_id_or_secret_is_create_error(self, store: SessionStore) -> None:
        rec = make_record()
        store.create(rec, now=T0)
        with pytest.raises(CreateError):
            store.create(make_record().replace(id=rec.id), now=T0)
        with pytest.raises(CreateError):
            store.create(make_record(user_id="mallory").replace(secret_hash=rec.secret_hash), now=T0)
        assert store.get(rec.id, now=T0) == rec
        assert store.get_by_secret(rec.secret_hash or "", now=T0) == rec
        assert [r.id for r in store.list_for_user("mallory", now=T0)] == []

    def test_unknown_id_or_secret_returns_none_and_creates_nothing(self, store: SessionStore) -> None:
        store.create(make_record(), now=T0)
        before = self.stored_count(store)
        made_up = new_public_id()
        assert store.get(made_up, now=T0) is None
        assert store.get_by_secret(hash_secret(new_secret()), now=T0) is None
        assert store.update(made_up, {"last_seen": T0 + 1}, now=T0) is False
        assert store.advance(made_up, expected_generation=0, last_seen=T0, idle_expires_at=T0 + IDLE, now=T0) is False
        assert store.replace(made_up, make_record(), now=T0) is False
        assert store.delete(made_up) is False
        assert store.list_for_user("nobody", now=T0) == []
        assert store.delete_for_user("nobody") == 0
        assert store.is_denied("no-such-jti", now=T0) is False
        assert store.get_epoch("nobody") == 0
        assert store.throttle_read(["nobody", "ip:192.0.2.1"], now=T0, window=60) == [ThrottleState()] * 2
        assert self.stored_count(store) == before

    # -- expiry ------------------------------------------------------------------------------
    def test_absolute_expiry(self, store: SessionStore) -> None:
        rec = make_record(expires_at=T0 + 100, idle_expires_at=T0 + 1000)
        store.create(rec, now=T0)
        assert store.get(rec.id, now=T0 + 99.9) is not None
        for now in (T0 + 100, T0 + 101):
            assert store.get(rec.id, now=now) is None
            assert store.get_by_secret(rec.secret_hash or "", now=now) is None
            assert store.list_for_user(rec.user_id, now=now) == []
            assert store.list_all(now=now) == []

    def test_idle_expiry(self, store: SessionStore) -> None:
        rec = make_record(idle_expires_at=T0 + 50)
        store.create(rec, now=T0)
        assert store.get_by_secret(rec.secret_hash or "", now=T0 + 49) == rec
        assert store.get(rec.id, now=T0 + 50) is None
        assert store.get_by_secret(rec.secret_hash or "", now=T0 + 50) is None
        assert store.list_for_user(rec.user_id, now=T0 + 51) == []

    # -- update --------------------------------------------------------------------------------
    def test_update_changes_fields_and_moves_idle_timer(self, store: SessionStore) -> None:
        rec = make_record(idle_expires_at=T0 + 50)
        store.create(rec, now=T0)
        changes = {"last_seen": T0 + 40, "idle_expires_at": T0 + 90, "auth_at": T0 + 40, "data": {"k": ["v", 2]}}
        assert store.update(rec.id, changes, now=T0 + 40) is True
        got = store.get(rec.id, now=T0 + 60)
        assert got == rec.replace(**changes)

    def test_update_refuses_other_fields(self, store: SessionStore) -> None:
        rec = make_record()
        store.create(rec, now=T0)
        for field in ("user_id", "expires_at", "generation", "secret_hash", "epoch"):
            with pytest.raises(ValueError):
                store.update(rec.id, {field: "x"}, now=T0)
        assert store.get(rec.id, now=T0) == rec

    def test_update_on_gone_record_is_false_and_never_resurrects(self, store: SessionStore) -> None:
        deleted = make_record()
        idle_dead = make_record(idle_expires_at=T0 + 10)
        store.create(deleted, now=T0)
        store.create(idle_dead, now=T0)
        assert store.delete(deleted.id)
        count = self.stored_count(store)
        assert store.update(deleted.id, {"last_seen": T0 + 1, "idle_expires_at": T0 + 999}, now=T0 + 1) is False
        assert store.get(deleted.id, now=T0 + 1) is None
        # an idle-expired record cannot be revived by pushing its idle timer forward
        assert store.update(idle_dead.id, {"idle_expires_at": T0 + 999}, now=T0 + 20) is False
        assert store.get(idle_dead.id, now=T0 + 20) is None
        assert store.advance(idle_dead.id, expected_generation=0, last_seen=T0 + 20, idle_expires_at=T0 + 999,
                             now=T0 + 20) is False
        assert store.get(idle_dead.id, now=T0 + 20) is None
        assert self.stored_count(store) <= count

    # -- replace -------------------------------------------------------------------------------
    def test_replace_swaps_records(self, store: SessionStore) -> None:
        old = make_record()
        new_secret_ = new_secret()
        new = make_record(secret=new_secret_, now=T0 + 5)
        store.create(old, now=T0)
        assert store.replace(old.id, new, now=T0 + 5) is True
        assert store.get(old.id, now=T0 + 5) is None
        assert store.get_by_secret(old.secret_hash or "", now=T0 + 5) is None
        assert store.get(new.id, now=T0 + 5) == new
        assert store.get_by_secret(hash_secret(new_secret_), now=T0 + 5) == new
        assert [r.id for r in store.list_for_user("alice", now=T0 + 5)] == [new.id]

    def test_replace_of_gone_record_writes_nothing(self, store: SessionStore) -> None:
        old = make_record(idle_expires_at=T0 + 10)
        store.create(old, now=T0)
        count = self.stored_count(store)
        new = make_record()
        assert store.replace(old.id, new, now=T0 + 10) is False  # idle-expired counts as gone
        assert store.replace(new_public_id(), new, now=T0) is False
        assert store.get(new.id, now=T0) is None
        assert store.get_by_secret(new.secret_hash or "", now=T0) is None
        assert self.stored_count(store) == count

    def test_replace_with_colliding_new_record_keeps_old(self, store: SessionStore) -> None:
        old = make_record()
        other = make_record()
        store.create(old, now=T0)
        store.create(other, now=T0)
        with pytest.raises(CreateError):
            store.replace(old.id, make_record().replace(id=other.id), now=T0)
        with pytest.raises(CreateError):
            store.replace(old.id, make_record().replace(secret_hash=other.secret_hash), now=T0)
        assert store.get(old.id, now=T0) == old
        assert store.get(other.id, now=T0) == other

    def test_replace_must_change_id_and_secret(self, store: SessionStore) -> None:
        old = make_record()
        store.create(old, now=T0)
        with pytest.raises(CreateError):
            store.replace(old.id, make_record().replace(id=old.id), now=T0)
        with pytest.raises(CreateError):
            store.replace(old.id, make_record().replace(secret_hash=old.secret_hash), now=T0)
        assert store.get(old.id, now=T0) == old
        assert store.get_by_secret(old.secret_hash or "", now=T0) == old
        assert [r.id for r in store.list_for_user("alice", now=T0)] == [old.id]

    # -- advance (refresh rotation) --------------------------------------------------------------
    def test_advance_is_compare_and_set(self, store: SessionStore) -> None:
        fam = make_record(kind="token", secret=None, idle_expires_at=T0 + 100)
        store.create(fam, now=T0)
        assert store.advance(fam.id, expected_generation=0, last_seen=T0 + 50, idle_expires_at=T0 + 150,
                             now=T0 + 50) is True
        got = store.get(fam.id, now=T0 + 120)
        assert got is not None and got.generation == 1 and got.last_seen == T0 + 50 and got.idle_expires_at == T0 + 150
        assert store.advance(fam.id, expected_generation=0, last_seen=T0 + 60, idle_expires_at=T0 + 160,
                             now=T0 + 60) is False
        assert store.advance(fam.id, expected_generation=2, last_seen=T0 + 60, idle_expires_at=T0 + 160,
                             now=T0 + 60) is False
        got = store.get(fam.id, now=T0 + 60)
        assert got is not None and got.generation == 1 and got.last_seen == T0 + 50
        assert store.advance(fam.id, expected_generation=1, last_seen=T0 + 70, idle_expires_at=T0 + 170,
                             now=T0 + 70) is True
        assert store.get(fam.id, now=T0 + 70).generation == 2  # type: ignore[union-attr]
        # past its absolute end the family cannot be advanced
        assert store.advance(fam.id, expected_generation=2, last_seen=T0 + ABSOLUTE, idle_expires_at=T0 + ABSOLUTE * 2,
                             now=T0 + ABSOLUTE) is False

    def test_advance_race_has_exactly_one_winner(self, store: SessionStore) -> None:
        n = 8
        for _round in range(3):
            fam = make_record(kind="token", secret=None)
            store.create(fam, now=T0)
            results = run_concurrently(
                n,
                lambda i, fam=fam: store.advance(fam.id, expected_generation=0, last_seen=T0 + i,
                                                 idle_expires_at=T0 + 500 + i, now=T0 + 1),
            )
            assert results.count(True) == 1, results
            got = store.get(fam.id, now=T0 + 1)
            assert got is not None and got.generation == 1
            winner = results.index(True)
            assert got.last_seen == T0 + winner and got.idle_expires_at == T0 + 500 + winner

    # -- delete and listing ----------------------------------------------------------------------
    def test_delete(self, store: SessionStore) -> None:
        rec = make_record()
        store.create(rec, now=T0)
        assert store.delete(rec.id) is True
        assert store.get(rec.id, now=T0) is None
        assert store.get_by_secret(rec.secret_hash or "", now=T0) is None
        assert store.delete(rec.id) is False
        assert store.list_for_user("alice", now=T0) == []

    def test_delete_for_user(self, store: SessionStore) -> None:
        mine = [make_record(now=T0 + i) for i in range(3)]
        token = make_record(kind="token", secret=None)
        theirs = make_record(user_id="bob")
        for r in [*mine, token, theirs]:
            store.create(r, now=T0)
        assert store.delete_for_user("alice", except_id=mine[1].id) == 3
        assert [r.id for r in store.list_for_user("alice", now=T0 + 5)] == [mine[1].id]
        assert store.get_by_secret(mine[0].secret_hash or "", now=T0 + 5) is None
        assert store.get(token.id, now=T0 + 5) is None
        assert store.get(theirs.id, now=T0 + 5) == theirs
        assert store.delete_for_user("alice") == 1
        assert store.list_for_user("alice", now=T0 + 5) == []
        assert store.get(theirs.id, now=T0 + 5) == theirs

    def test_list_for_user_newest_first_without_expired(self, store: SessionStore) -> None:
        a = make_record(now=T0)
        b = make_record(now=T0 + 10, kind="token", secret=None)
        c = make_record(now=T0 + 20)
        dead = make_record(now=T0 + 5, idle_expires_at=T0 + 30)
        other = make_record(user_id="bob", now=T0 + 15)
        for r in (b, dead, a, other, c):
            store.create(r, now=T0 + 20)
        assert [r.id for r in store.list_for_user("alice", now=T0 + 25)] == [c.id, b.id, dead.id, a.id]
        assert [r.id for r in store.list_for_user("alice", now=T0 + 30)] == [c.id, b.id, a.id]
        assert store.list_for_user("alice", now=T0 + 30)[0] == c
        assert [r.id for r in store.list_all(now=T0 + 30)] == [c.id, other.id, b.id, a.id]
        assert [r.id for r in store.list_all(now=T0 + 30, limit=2)] == [c.id, other.id]

    # -- denylist, epochs ----------------------------------------------------------------------
    def test_deny_until_expiry(self, store: SessionStore) -> None:
        store.deny("jti-1", until=T0 + 60, now=T0)
        assert store.is_denied("jti-1", now=T0) is True
        assert store.is_denied("jti-1", now=T0 + 59.5) is True
        assert store.is_denied("jti-1", now=T0 + 60) is False
        assert store.is_denied("jti-2", now=T0) is False
        store.deny("jti-1", until=T0 + 30, now=T0 + 1)  # never shortens
        assert store.is_denied("jti-1", now=T0 + 45) is True
        store.deny("jti-old", until=T0 - 1, now=T0)  # already expired: nothing to deny
        assert store.is_denied("jti-old", now=T0) is False

    # -- one-time uses ---------------------------------------------------------------------------
    def test_use_once_first_use_only_until_it_ends(self, store: SessionStore) -> None:
        assert store.use_once("proof-1", until=T0 + 60, now=T0) is True
        assert store.use_once("proof-1", until=T0 + 60, now=T0 + 1) is False
        assert store.use_once("proof-1", until=T0 + 120, now=T0 + 59.5) is False  # a later until changes nothing
        assert store.use_once("proof-2", until=T0 + 60, now=T0) is True  # keys are independent
        # expiry: once the use ended the key may be used again, and is then guarded again
        assert store.use_once("proof-1", until=T0 + 200, now=T0 + 60) is True
        assert store.use_once("proof-1", until=T0 + 200, now=T0 + 150) is False
        assert store.use_once("proof-1", until=T0 + 300, now=T0 + 200) is True
        # keys of any text stay apart (no prefix/brace games)
        odd = ["{t}:x", "once:proof-2", "a b\u00e9", "x" * 100]
        assert [store.use_once(k, until=T0 + 60, now=T0) for k in odd] == [True] * 4
        assert [store.use_once(k, until=T0 + 60, now=T0) for k in odd] == [False] * 4

    def test_use_once_burst_has_exactly_one_winner(self, store: SessionStore) -> None:
        for round_ in range(3):
            results = run_concurrently(16, lambda i, r=round_: store.use_once(f"burst-{r}", until=T0 + 60, now=T0))
            assert sorted(results) == [False] * 15 + [True]
        # after expiry, a burst on a used key again has exactly one winner
        results = run_concurrently(16, lambda i: store.use_once("burst-0", until=T0 + 200, now=T0 + 100))
        assert sorted(results) == [False] * 15 + [True]

    def test_use_once_is_purged_after_it_ends(self, store: SessionStore) -> None:
        store.use_once("gone", until=T0 + 10, now=T0)
        store.use_once("kept", until=T0 + 1000, now=T0)
        before = self.stored_count(store)
        assert store.purge_expired(now=T0 + 20) >= 1
        assert self.stored_count(store) == before - 1
        assert store.use_once("kept", until=T0 + 1000, now=T0 + 20) is False
        assert store.use_once("gone", until=T0 + 1000, now=T0 + 20) is True

    def test_epochs(self, store: SessionStore) -> None:
        assert store.get_epoch("alice") == 0
        assert store.bump_epoch("alice") == 1
        assert store.bump_epoch("alice") == 2
        assert store.get_epoch("alice") == 2
        assert store.get_epoch("bob") == 0

    def test_bump_epoch_is_atomic(self, store: SessionStore) -> None:
        n = 8
        results = run_concurrently(n, lambda i: store.bump_epoch("carol"))
        assert sorted(results) == list(range(1, n + 1))
        assert store.get_epoch("carol") == n

    # -- throttling ------------------------------------------------------------------------------
    def test_throttle_update_writes_what_is_decided(self, store: SessionStore) -> None:
        zero, a1, a2 = ThrottleState(), ThrottleState(1, T0), ThrottleState(2, T0 + 10)
        seen: list[list[ThrottleState]] = []

        def to(*new: ThrottleState) -> Any:
            def decide(states: list[ThrottleState]) -> list[ThrottleState]:
                seen.append(states)
                return list(new)
            return decide

        assert store.throttle_update(["user:alice", "ip:192.0.2.7"], to(a1, a1), now=T0, window=60) == ([zero, zero],
                                                                                                     [a1, a1])
        assert store.throttle_read(["user:alice", "ip:192.0.2.7", "x"], now=T0 + 5, window=60) == [a1, a1, zero]
        # a decision of None writes nothing (and creates nothing)
        before = self.stored_count(store)
        assert store.throttle_update(["user:alice", "new"], lambda states: None, now=T0 + 5, window=60) == (
            [a1, zero], None)
        assert self.stored_count(store) == before
        # a zero state deletes; an unchanged one stays
        store.throttle_update(["ip:192.0.2.7", "user:alice"], to(zero, a2), now=T0 + 10, window=60)
        assert seen[-1] == [a1, a1]
        assert store.throttle_read(["user:alice", "ip:192.0.2.7"], now=T0 + 10, window=60) == [a2, zero]
        assert self.stored_count(store) == before - 1
        store.throttle_reset("user:alice", "ip:192.0.2.7")
        assert store.throttle_read(["user:alice", "ip:192.0.2.7"], now=T0 + 20, window=60) == [zero, zero]

    def test_throttle_window_restarts(self, store: SessionStore) -> None:
        zero, a1, a2 = ThrottleState(), ThrottleState(1, T0), ThrottleState(2, T0 + 30)
        store.throttle_update(["k"], lambda s: [a1], now=T0, window=60)
        store.throttle_update(["k"], lambda s: [a2], now=T0 + 30, window=60)
        assert store.throttle_read(["k"], now=T0 + 89, window=60) == [a2]
        # the window runs from the last failure: 60 s later the counter reads as zero, to updates as well
        assert store.throttle_read(["k"], now=T0 + 90, window=60) == [zero]
        states, _ = store.throttle_update(["k"], lambda s: [ThrottleState(1, T0 + 91)], now=T0 + 91, window=60)
        assert states == [zero]
        assert store.throttle_read(["k"], now=T0 + 92, window=60) == [ThrottleState(1, T0 + 91)]

    def test_A6_throttle_update_is_atomic_under_concurrency(self, store: SessionStore) -> None:
        """Concurrent updates of the same counters (in several key orders) are applied one after the other:
        a capped increment (what the throttle does: decide on the count, then count) lets exactly `cap`
        through and loses no count, and every update saw a distinct count."""
        n, each, cap = 8, 6, 20

        def hammer(i: int) -> list[int]:
            keys = ["hot", "ip", f"own{i}"] if i % 2 else [f"own{i}", "ip", "hot"]
            hot = keys.index("hot")

            def bump(states: list[ThrottleState]) -> list[ThrottleState] | None:
                if states[hot].failures >= cap:
                    return None
                return [ThrottleState(s.failures + 1, T0 + 2) for s in states]

            seen = []
            for _ in range(each):
                states, new = store.throttle_update(keys, bump, now=T0 + 2, window=600)
                if new is not None:
                    seen.append(states[hot].failures)
            return seen

        results = run_concurrently(n, hammer)
        assert store.throttle_read(["hot", "ip"], now=T0 + 3, window=600) == [ThrottleState(cap, T0 + 2)] * 2
        assert sorted(x for r in results for x in r) == list(range(cap))  # each count taken exactly once
        owns = store.throttle_read([f"own{i}" for i in range(n)], now=T0 + 3, window=600)
        assert sum(s.failures for s in owns) == cap  # all keys of an update, or none

    # -- maintenance, secrecy ----------------------------------------------------------------------
    def test_purge_expired(self, store: SessionStore) -> None:
        live = make_record(now=T0)
        dead_idle = make_record(idle_expires_at=T0 + 10)
        dead_abs = make_record(kind="token", secret=None, expires_at=T0 + 10)
        for r in (live, dead_idle, dead_abs):
            store.create(r, now=T0)
        store.deny("old", until=T0 + 10, now=T0)
        store.deny("new", until=T0 + 1000, now=T0)
        store.throttle_update(["old"], lambda s: [ThrottleState(1, T0)], now=T0, window=5)
        store.throttle_update(["new"], lambda s: [ThrottleState(1, T0 + 19)], now=T0 + 19, window=60)
        before = self.stored_count(store)
        purged = store.purge_expired(now=T0 + 20)
        assert purged >= 4
        assert self.stored_count(store) < before
        assert store.get(live.id, now=T0 + 20) == live
        assert store.is_denied("new", now=T0 + 20)
        assert store.throttle_read(["new"], now=T0 + 20, window=60) == [ThrottleState(1, T0 + 19)]
        assert store.purge_expired(now=T0 + 20) == 0
        assert [r.id for r in store.list_for_user("alice", now=T0 + 20)] == [live.id]

    def test_store_holds_no_raw_secret(self, store: SessionStore) -> None:
        secrets_ = [new_secret() for _ in range(5)]
        records = [make_record(secret=s, user_id=f"user{i}") for i, s in enumerate(secrets_)]
        for r in records:
            store.create(r, now=T0)
        text = self.stored_text(store)
        assert records[0].secret_hash in text  # the scan sees the stored data
        for s in secrets_:
            assert s not in text

    def test_data_is_json(self, store: SessionStore) -> None:
        rec = make_record(data={"k": "v\u00e9", "list": [1, 2]})
        store.create(rec, now=T0)
        text = self.stored_text(store)
        assert '"list":[1,2]' in text.replace(" ", "")
        assert store.get(rec.id, now=T0).data == {"k": "v\u00e9", "list": [1, 2]}  # type: ignore[union-attr]

    # -- the per-request reads (one round trip each) ---------------------------------------------
    def test_load_by_secret_returns_the_record_and_its_users_epoch(self, store: SessionStore) -> None:
        secret = new_secret()
        record = make_record(secret=secret)
        store.create(record, now=T0)
        store.create(make_record(user_id="bob"), now=T0)
        assert store.load_by_secret(hash_secret(secret), now=T0) == (record, 0)
        store.bump_epoch("bob")
        assert store.load_by_secret(hash_secret(secret), now=T0)[1] == 0  # another user's epoch is not hers
        store.bump_epoch("alice")
        store.bump_epoch("alice")
        got, epoch = store.load_by_secret(hash_secret(secret), now=T0)
        assert got == record and epoch == 2

    def test_load_by_secret_needs_the_whole_hash_not_a_prefix(self, store: SessionStore) -> None:
        # Redis finds the record through a pointer keyed by the hash's first 16 bytes: the rest must match too
        secret = new_secret()
        record = make_record(secret=secret)
        store.create(record, now=T0)
        whole = hash_secret(secret)
        near = whole[:32] + ("0" if whole[32] != "0" else "1") + whole[33:]
        assert store.load_by_secret(near, now=T0) == (None, 0)
        assert store.load_by_secret(whole[:-1] + ("0" if whole[-1] != "0" else "1"), now=T0) == (None, 0)
        assert store.load_by_secret(whole, now=T0)[0] == record

    def test_load_by_secret_of_unknown_or_expired_is_none_and_creates_nothing(self, store: SessionStore) -> None:
        secret = new_secret()
        store.create(make_record(secret=secret), now=T0)
        before = self.stored_count(store)
        assert store.load_by_secret(hash_secret(new_secret()), now=T0) == (None, 0)
        assert store.load_by_secret(hash_secret(secret), now=T0 + IDLE) == (None, 0)
        assert self.stored_count(store) == before

    def test_token_state_reads_denylist_epoch_and_family_together(self, store: SessionStore) -> None:
        family = make_record(kind="token", secret=None)
        store.create(family, now=T0)
        state = store.token_state(jti="j1", user_id="alice", family_id=family.id, now=T0)
        assert (state.denied, state.epoch, state.family) == (False, 0, family)
        store.deny("j1", until=T0 + 60, now=T0)
        store.bump_epoch("alice")
        state = store.token_state(jti="j1", user_id="alice", family_id=family.id, now=T0 + 1)
        assert (state.denied, state.epoch, state.family) == (True, 1, family)
        assert not store.token_state(jti="j1", user_id="alice", family_id=family.id, now=T0 + 61).denied

    def test_token_state_never_returns_a_family_of_another_user_or_a_dead_one(self, store: SessionStore) -> None:
        family = make_record(kind="token", secret=None)
        store.create(family, now=T0)
        assert store.token_state(jti="j", user_id="mallory", family_id=family.id, now=T0).family is None
        assert store.token_state(jti="j", user_id="alice", family_id="no-such-family", now=T0).family is None
        assert store.token_state(jti="j", user_id="alice", family_id=family.id, now=T0 + IDLE).family is None
        store.delete(family.id)
        assert store.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).family is None
