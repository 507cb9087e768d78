"""CachedStore: the store contract through the cache; invalidation across two instances on one Redis; the
race guard; fail closed when the subscription or Redis goes away; no round trip per request while healthy."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _services import start_redis_server
from contract import ABSOLUTE, T0, StoreContract, make_record, run_concurrently

from sessionward.clock import ManualClock
from sessionward.config import ThrottlePolicy
from sessionward.exceptions import StoreUnavailable, Throttled
from sessionward.ids import hash_secret, new_secret
from sessionward.stores import _redis_record as fmt
from sessionward.stores import open_store
from sessionward.stores.cache import CachedStore
from sessionward.stores.redis import RedisStore
from sessionward.throttle import LoginThrottle

pytestmark = pytest.mark.redis


class Counting:
    """A proxy that counts the calls made to the inner store (the round trips the cache did not save).
    `hold` names a method that, once armed, blocks after its read until `release` is set."""

    def __init__(self, inner: RedisStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.hold: str | None = None
        self.fetched = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            result = attr(*args, **kwargs)
            if name == self.hold:
                self.hold = None
                self.fetched.set()
                assert self.release.wait(10)
            return result

        return call


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def cached(url: str, prefix: str, **options: Any) -> tuple[CachedStore, Counting]:
    inner = Counting(RedisStore.from_url(url, prefix=prefix, socket_timeout=options.pop("socket_timeout", 2.0)))
    store = CachedStore(inner, redis_client=inner.client, channel_prefix=prefix, **options)  # type: ignore[arg-type]
    store.start()
    assert store.wait_healthy(5), "subscription did not come up"
    return store, inner


def eventually(check: Callable[[], bool], timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.005)
    return check()


@pytest.fixture
def pair(redis_url: str, redis_prefix: str) -> Iterator[tuple[CachedStore, Counting, CachedStore, Counting]]:
    a, ia = cached(redis_url, redis_prefix)
    b, ib = cached(redis_url, redis_prefix)
    yield a, ia, b, ib
    a.close()
    b.close()


# -- the contract ----------------------------------------------------------------------------------------
class TestCachedStore(StoreContract):
    @pytest.fixture
    def store(self, redis_url: str, redis_prefix: str) -> Iterator[CachedStore]:
        s, _ = cached(redis_url, redis_prefix)
        yield s
        s.close()

    def _keys(self, store: CachedStore) -> list[bytes]:
        inner = store._inner
        return list(inner.client.scan_iter(match=inner._p + "*", count=1000))

    def stored_count(self, store: CachedStore) -> int:  # type: ignore[override]
        return len(self._keys(store))

    def stored_text(self, store: CachedStore) -> str:  # type: ignore[override]
        client = store._inner.client
        out = []
        for k in self._keys(store):
            kind = client.type(k).decode()
            value = client.get(k) if kind == "string" else client.hgetall(k) if kind == "hash" else kind
            if b":r:" in k and kind == "string":
                value = (value, fmt.unpack("?", value))  # a compact record: its fields too
            out.append(f"{k!r} {value!r}")
        return "\n".join(out)


# -- no round trip while healthy -------------------------------------------------------------------------
def test_repeated_reads_hit_the_store_once(redis_url: str, redis_prefix: str) -> None:
    store, inner = cached(redis_url, redis_prefix)
    try:
        secret = new_secret()
        session = make_record(secret=secret)
        family = make_record(kind="token", secret=None)
        store.create(session, now=T0)
        store.create(family, now=T0)
        for i in range(100):
            assert store.load_by_secret(hash_secret(secret), now=T0 + i) == (session, 0)
            state = store.token_state(jti=f"jti-{i % 3}", user_id="alice", family_id=family.id, now=T0 + i)
            assert (state.denied, state.epoch, state.family) == (False, 0, family)
            assert store.get_epoch("alice") == 0
            assert store.is_denied("other", now=T0 + i) is False
        assert inner.calls["load_by_secret"] == 1
        assert inner.calls["token_state"] == 1  # the session read cached alice's epoch; the family came once
        assert inner.calls["get_epoch"] == 0 and inner.calls["is_denied"] == 0
        # a denial made here is answered from memory too
        store.deny("jti-1", until=T0 + 500, now=T0 + 100)
        assert store.token_state(jti="jti-1", user_id="alice", family_id=family.id, now=T0 + 101).denied
        assert inner.calls["token_state"] == 1
    finally:
        store.close()


def test_no_negative_caching(pair: tuple[CachedStore, Counting, CachedStore, Counting]) -> None:
    a, ia, b, ib = pair
    secret = new_secret()
    record = make_record(secret=secret)
    assert b.load_by_secret(hash_secret(secret), now=T0) == (None, 0)
    assert b.token_state(jti="j", user_id="alice", family_id=record.id, now=T0).family is None
    a.create(record, now=T0)  # created on another instance, no message: b must still find it at once
    assert b.load_by_secret(hash_secret(secret), now=T0) == (record, 0)
    assert b.token_state(jti="j", user_id="alice", family_id=record.id, now=T0).family == record


# -- invalidation across instances ---------------------------------------------------------------------------
def test_deny_on_one_instance_flips_the_others_cached_answer(pair: Any) -> None:
    a, ia, b, ib = pair
    family = make_record(kind="token", secret=None)
    a.create(family, now=T0)
    assert not b.token_state(jti="j1", user_id="alice", family_id=family.id, now=T0).denied
    assert not b.token_state(jti="j1", user_id="alice", family_id=family.id, now=T0).denied
    assert ib.calls["token_state"] == 1  # cached
    a.deny("j1", until=T0 + 60, now=T0)
    assert eventually(lambda: b.token_state(jti="j1", user_id="alice", family_id=family.id, now=T0 + 1).denied)
    assert b.is_denied("j1", now=T0 + 1)
    assert ib.calls["token_state"] == 1 and ib.calls["is_denied"] == 0  # b learnt it from the message
    assert not b.is_denied("j1", now=T0 + 60)  # and it ends at `until`


def test_bump_epoch_on_one_instance_flips_the_others_cached_answer(pair: Any) -> None:
    a, ia, b, ib = pair
    secret = new_secret()
    session = make_record(secret=secret)
    family = make_record(kind="token", secret=None)
    a.create(session, now=T0)
    a.create(family, now=T0)
    assert b.load_by_secret(hash_secret(secret), now=T0) == (session, 0)
    assert b.get_epoch("alice") == 0
    assert a.bump_epoch("alice") == 1
    assert eventually(lambda: b.load_by_secret(hash_secret(secret), now=T0)[1] == 1)
    assert b.get_epoch("alice") == 1
    assert b.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).epoch == 1
    assert ib.calls["get_epoch"] == 0


def test_delete_update_and_delete_for_user_on_one_instance_reach_the_other(pair: Any) -> None:
    a, ia, b, ib = pair
    secrets_ = [new_secret() for _ in range(3)]
    records = [make_record(secret=s) for s in secrets_]
    family = make_record(kind="token", secret=None)
    for r in (*records, family):
        a.create(r, now=T0)

    def loaded(i: int) -> Any:
        return b.load_by_secret(hash_secret(secrets_[i]), now=T0 + 10)[0]

    assert all(loaded(i) == records[i] for i in range(3))
    assert b.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).family == family
    calls = ib.calls["load_by_secret"]
    assert loaded(0) == records[0] and ib.calls["load_by_secret"] == calls  # cached

    assert a.update(records[0].id, {"last_seen": T0 + 5, "idle_expires_at": T0 + 999}, now=T0 + 5)
    assert eventually(lambda: loaded(0) is not None and loaded(0).idle_expires_at == T0 + 999)

    assert a.delete(records[1].id)
    assert eventually(lambda: loaded(1) is None)

    assert a.advance(family.id, expected_generation=0, last_seen=T0 + 6, idle_expires_at=T0 + 900, now=T0 + 6)
    assert eventually(
        lambda: b.token_state(jti="j", user_id="alice", family_id=family.id, now=T0 + 7).family.generation == 1
    )

    assert a.delete_for_user("alice") == 3
    assert eventually(lambda: loaded(0) is None and loaded(2) is None)
    assert eventually(lambda: b.token_state(jti="j", user_id="alice", family_id=family.id, now=T0 + 7).family is None)


def test_replace_on_one_instance_ends_the_old_secret_on_the_other(pair: Any) -> None:
    a, ia, b, ib = pair
    old_secret, new_secret_ = new_secret(), new_secret()
    old = make_record(secret=old_secret)
    a.create(old, now=T0)
    assert b.load_by_secret(hash_secret(old_secret), now=T0)[0] == old
    new = make_record(secret=new_secret_, now=T0 + 1)
    assert a.replace(old.id, new, now=T0 + 1)
    assert eventually(lambda: b.load_by_secret(hash_secret(old_secret), now=T0 + 1) == (None, 0))
    assert b.load_by_secret(hash_secret(new_secret_), now=T0 + 1) == (new, 0)


# -- the race guard ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["same instance", "other instance"])
def test_an_invalidation_during_a_fetch_is_not_overwritten(pair: Any, where: str) -> None:
    a, ia, b, ib = pair
    secret = new_secret()
    record = make_record(secret=secret)
    family = make_record(kind="token", secret=None)
    a.create(record, now=T0)
    a.create(family, now=T0)
    results: list[Any] = []
    ia.hold = "load_by_secret"  # a's next fetch reads the record, then waits
    reader = threading.Thread(target=lambda: results.append(a.load_by_secret(hash_secret(secret), now=T0)))
    reader.start()
    try:
        assert ia.fetched.wait(5)
        writer = a if where == "same instance" else b
        writer.delete(record.id)
        writer.delete(family.id)
        writer.deny("marker", until=T0 + 60, now=T0)  # published after the drops: once a sees it, it saw them
        assert eventually(lambda: a.is_denied("marker", now=T0))
    finally:
        ia.release.set()
        reader.join(5)
    assert results == [(record, 0)]  # the fetch itself returns what it read (before the delete)
    # ... but it did not land in the cache: the next read asks the store and finds nothing
    assert a.load_by_secret(hash_secret(secret), now=T0) == (None, 0)
    assert ia.calls["load_by_secret"] == 2


def test_an_invalidation_during_a_token_state_fetch_is_not_overwritten(pair: Any) -> None:
    a, ia, b, ib = pair
    family = make_record(kind="token", secret=None)
    a.create(family, now=T0)
    results: list[Any] = []
    ia.hold = "token_state"
    reader = threading.Thread(
        target=lambda: results.append(a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0))
    )
    reader.start()
    try:
        assert ia.fetched.wait(5)
        b.bump_epoch("alice")
        b.delete(family.id)
        b.deny("marker", until=T0 + 60, now=T0)
        assert eventually(lambda: a.is_denied("marker", now=T0))
    finally:
        ia.release.set()
        reader.join(5)
    assert results[0].epoch == 0 and results[0].family == family
    state = a.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)
    assert (state.epoch, state.family) == (1, None)


# -- bounds ----------------------------------------------------------------------------------------------------------
def test_entries_are_bounded_and_age_out(redis_url: str, redis_prefix: str) -> None:
    clock = FakeMonotonic()
    store, inner = cached(redis_url, redis_prefix, max_entries=3, max_age=5, clock_for_heartbeat=clock,
                          heartbeat_interval=100, heartbeat_timeout=1000)
    try:
        secrets_ = [new_secret() for _ in range(5)]
        for s in secrets_:
            store.create(make_record(secret=s), now=T0)
            store.load_by_secret(hash_secret(s), now=T0)
        assert len(store._mem.records) == 3 and len(store._mem.by_secret) == 3
        calls = inner.calls["load_by_secret"]
        store.load_by_secret(hash_secret(secrets_[-1]), now=T0)
        assert inner.calls["load_by_secret"] == calls  # the newest is cached
        store.load_by_secret(hash_secret(secrets_[0]), now=T0)
        assert inner.calls["load_by_secret"] == calls + 1  # the oldest was evicted
        clock.t += 6  # past max_age: asked again
        store.load_by_secret(hash_secret(secrets_[0]), now=T0)
        assert inner.calls["load_by_secret"] == calls + 2
    finally:
        store.close()


def test_a_cached_record_still_expires_by_the_callers_clock(redis_url: str, redis_prefix: str) -> None:
    store, inner = cached(redis_url, redis_prefix)
    try:
        secret = new_secret()
        store.create(make_record(secret=secret, idle_expires_at=T0 + 50), now=T0)
        assert store.load_by_secret(hash_secret(secret), now=T0)[0] is not None
        assert store.load_by_secret(hash_secret(secret), now=T0 + 50) == (None, 0)
        assert store.load_by_secret(hash_secret(secret), now=T0 + ABSOLUTE) == (None, 0)
    finally:
        store.close()


# -- fail closed -------------------------------------------------------------------------------------------------------
def test_late_heartbeat_stops_the_cache_at_once(redis_url: str, redis_prefix: str) -> None:
    clock = FakeMonotonic()
    store, inner = cached(redis_url, redis_prefix, clock_for_heartbeat=clock, heartbeat_interval=0.5,
                          heartbeat_timeout=2.0)
    try:
        secret = new_secret()
        record = make_record(secret=secret)
        store.create(record, now=T0)
        assert store.load_by_secret(hash_secret(secret), now=T0) == (record, 0)
        inner.inner.client.delete(inner.inner._rec(record.id))  # behind the cache's back: a lost message
        assert store.load_by_secret(hash_secret(secret), now=T0) == (record, 0)  # (stale, as a lost message makes it)
        clock.t += 2.5  # no pong for longer than heartbeat_timeout
        assert store.load_by_secret(hash_secret(secret), now=T0) == (None, 0)  # straight from the store
        assert store.wait_healthy(5)  # the subscriber starts over ...
        assert len(store._mem.records) == 0  # ... with an empty cache
    finally:
        store.close()


class SlowSubscriber(CachedStore):
    """A subscriber that applies each invalidation slowly (5 ms), as one starved of the GIL by busy request
    threads is: against a steady flood it answers every PING, but later and later."""

    def _apply(self, message: Any) -> None:
        time.sleep(0.005)
        super()._apply(message)


def test_a_subscriber_lagging_behind_a_flood_is_unhealthy_once_its_lag_passes_the_heartbeat_timeout(
    redis_url: str, redis_prefix: str
) -> None:
    """Health counts from when the newest answered PING was *sent*, not when its answer arrived. A subscriber
    that keeps answering PINGs while falling further behind a flood (the full bench's cache_window run served a
    deleted session for over 5 s this way) must not answer from memory once it is more than `heartbeat_timeout`
    behind: otherwise a logout on instance A is served by instance B for as long as the lag grows. Each flood
    message is a denial whose `until` is its publish time + 1000 s, so B's memory tells how far behind it is."""
    a, _ = cached(redis_url, redis_prefix)
    inner_b = Counting(RedisStore.from_url(redis_url, prefix=redis_prefix, socket_timeout=2.0))
    b = SlowSubscriber(inner_b, redis_client=inner_b.client, channel_prefix=redis_prefix,  # type: ignore[arg-type]
                       heartbeat_interval=0.5, heartbeat_timeout=2.0)
    b.start()
    stop = threading.Event()

    def flood() -> None:  # about twice what the slow subscriber applies, until stopped (at most 20 s)
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            for _ in range(8):
                a._client.publish(a.channel, json.dumps(["deny", "lag-probe", time.time() + 1000]))
            time.sleep(0.02)

    flooder = threading.Thread(target=flood, daemon=True)
    worst = 0.0  # the largest lag seen while B said it was healthy
    try:
        assert b.wait_healthy(5)
        flooder.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.1)
            with b._lock:
                healthy, until = b._healthy(b._mono()), b._mem.denied.get("lag-probe")
            if healthy and until is not None:
                worst = max(worst, time.time() + 1000 - until)
        assert worst < 2.0 + 0.75, f"B answered from memory while {worst:.1f} s behind its invalidations"
    finally:
        stop.set()
        flooder.join(timeout=5)
        b.close()
        a.close()


def test_redis_down_means_store_unavailable_not_cached_answers() -> None:
    server = start_redis_server()
    store, inner = cached(server.url, "swcache:", heartbeat_interval=0.2, heartbeat_timeout=1.0, socket_timeout=0.5)
    try:
        secret = new_secret()
        record = make_record(secret=secret)
        family = make_record(kind="token", secret=None)
        store.create(record, now=T0)
        store.create(family, now=T0)
        assert store.load_by_secret(hash_secret(secret), now=T0) == (record, 0)
        assert store.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).family == family
        killed = time.monotonic()
        server.stop()
        assert eventually(lambda: not store.healthy, timeout=1.5)
        assert time.monotonic() - killed <= 1.5
        for read in (
            lambda: store.load_by_secret(hash_secret(secret), now=T0),
            lambda: store.token_state(jti="j", user_id="alice", family_id=family.id, now=T0),
            lambda: store.get_epoch("alice"),
            lambda: store.is_denied("j", now=T0),
        ):
            with pytest.raises(StoreUnavailable):
                read()
        server.start()  # empty: nothing persisted
        assert store.wait_healthy(10)
        calls = inner.calls["load_by_secret"]
        assert store.load_by_secret(hash_secret(secret), now=T0) == (None, 0)  # not the cached record
        assert inner.calls["load_by_secret"] == calls + 1
        assert store.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).family is None
        store.create(record, now=T0)
        assert store.load_by_secret(hash_secret(secret), now=T0) == (record, 0)
        assert store.load_by_secret(hash_secret(secret), now=T0) == (record, 0)
        assert inner.calls["load_by_secret"] == calls + 2  # caching again
    finally:
        store.close()
        server.cleanup()


def test_a_frozen_redis_is_noticed_by_the_heartbeat() -> None:
    server = start_redis_server()
    store, inner = cached(server.url, "swcache:", heartbeat_interval=0.2, heartbeat_timeout=0.8, socket_timeout=0.3)
    try:
        family = make_record(kind="token", secret=None)
        store.create(family, now=T0)
        assert store.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).family == family
        assert server.proc is not None
        server.proc.send_signal(signal.SIGSTOP)  # connections stay open, nothing answers
        try:
            assert eventually(lambda: not store.healthy, timeout=1.5)
            with pytest.raises(StoreUnavailable):
                store.token_state(jti="j", user_id="alice", family_id=family.id, now=T0)
        finally:
            server.proc.send_signal(signal.SIGCONT)
        assert store.wait_healthy(10)
        assert store.token_state(jti="j", user_id="alice", family_id=family.id, now=T0).family == family
    finally:
        store.close()
        server.cleanup()


def test_a_write_whose_message_cannot_be_published_is_store_unavailable(redis_url: str, redis_prefix: str) -> None:
    server = start_redis_server()  # the invalidation channel lives here; the data in the shared Redis
    inner = Counting(RedisStore.from_url(redis_url, prefix=redis_prefix))
    channel_client = RedisStore.from_url(server.url, socket_timeout=0.5).client
    store = CachedStore(inner, redis_client=channel_client, channel_prefix=redis_prefix)  # type: ignore[arg-type]
    store.start()
    try:
        assert store.wait_healthy(5)
        server.stop()
        with pytest.raises(StoreUnavailable):
            store.deny("j", until=T0 + 60, now=T0)
        assert inner.inner.is_denied("j", now=T0)  # the write itself happened
        assert store.is_denied("j", now=T0)
    finally:
        store.close()
        channel_client.close()
        server.cleanup()


# -- wiring -----------------------------------------------------------------------------------------------------------
def test_open_store_with_local_cache(redis_url: str, redis_prefix: str) -> None:
    store = open_store(redis_url, prefix=redis_prefix, local_cache=True)
    try:
        assert isinstance(store, CachedStore)
        assert store.channel == f"{redis_prefix}inval"
        assert store.wait_healthy(5)
    finally:
        store.close()
    plain = open_store(redis_url, prefix=redis_prefix)
    assert isinstance(plain, RedisStore)
    plain.close()


def test_open_store_refuses_local_cache_without_redis(tmp_path: Any) -> None:
    from sessionward.exceptions import ConfigError

    with pytest.raises(ConfigError) as info:
        open_store(f"sqlite:///{tmp_path / 's.db'}", local_cache=True)
    assert info.value.setting == "SESSIONWARD_LOCAL_CACHE"


def test_redis_list_denied(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    try:
        assert store.list_denied(now=T0) == {}
        odd = "jti with spaces/é{x}"
        store.deny("a", until=T0 + 10, now=T0)
        store.deny(odd, until=T0 + 20, now=T0)
        store.deny("gone", until=T0 + 5, now=T0)
        assert store.list_denied(now=T0 + 6) == {"a": T0 + 10, odd: T0 + 20}
        assert store.list_denied(now=T0 + 10) == {odd: T0 + 20}
    finally:
        store.close()


def test_the_denylist_is_loaded_on_start(redis_url: str, redis_prefix: str) -> None:
    plain = RedisStore.from_url(redis_url, prefix=redis_prefix)
    plain.deny("before", until=T0 + 60, now=T0)  # written by a process without the cache: no message
    plain.close()
    store, inner = cached(redis_url, redis_prefix)
    try:
        assert store.denylist_complete
        assert store.is_denied("before", now=T0) and not store.is_denied("other", now=T0)
        assert inner.calls["is_denied"] == 0
    finally:
        store.close()


def test_a_denial_written_without_the_cache_is_picked_up_by_the_resync(redis_url: str, redis_prefix: str) -> None:
    store, inner = cached(redis_url, redis_prefix, resync_interval=0.2)
    plain = RedisStore.from_url(redis_url, prefix=redis_prefix)
    try:
        assert not store.is_denied("quiet", now=T0)
        plain.deny("quiet", until=T0 + 60, now=T0)  # no message: e.g. a tool that opened the store plainly
        assert eventually(lambda: store.is_denied("quiet", now=T0), timeout=2.0)
        assert inner.calls["is_denied"] == 0
    finally:
        plain.close()
        store.close()


def test_a_publishing_only_store_reaches_cached_instances(redis_url: str, redis_prefix: str) -> None:
    store, inner = cached(redis_url, redis_prefix)
    tool = open_store(redis_url, prefix=redis_prefix, publish_invalidations=True)  # e.g. the CLI
    try:
        assert isinstance(tool, CachedStore) and not tool.healthy  # caches nothing
        secret = new_secret()
        record = make_record(secret=secret)
        tool.create(record, now=T0)
        assert store.load_by_secret(hash_secret(secret), now=T0) == (record, 0)
        tool.bump_epoch("alice")
        tool.delete_for_user("alice")
        assert eventually(lambda: store.load_by_secret(hash_secret(secret), now=T0) == (None, 0))
        assert store.get_epoch("alice") == 1
    finally:
        tool.close()
        store.close()


def test_sessions_over_two_cached_instances(pair: Any) -> None:
    from sessionward.clock import ManualClock
    from sessionward.sessions import SessionManager

    a, ia, b, ib = pair
    clock = ManualClock(T0)
    on_a, on_b = SessionManager(store=a, clock=clock), SessionManager(store=b, clock=clock)
    first = on_a.login("alice")
    second = on_a.login("alice")
    assert first.secret and second.secret
    for _ in range(3):
        assert on_b.load(first.secret) is not None and on_b.load(second.secret) is not None
    assert ib.calls["load_by_secret"] == 2  # once per session, then from memory
    on_a.logout(first)
    assert eventually(lambda: on_b.load(first.secret) is None)  # type: ignore[arg-type]
    assert on_b.load(second.secret) is not None
    on_a.revoke_all("alice")
    assert eventually(lambda: on_b.load(second.secret) is None)  # type: ignore[arg-type]


# -- throttling goes straight to Redis -------------------------------------------------------------------
def test_A6_throttle_counts_go_straight_to_redis_from_every_instance(
    pair: tuple[CachedStore, Counting, CachedStore, Counting]
) -> None:
    """Two caching instances share one set of counters: a burst split over both is decided as one sequence,
    and every throttle call reached Redis (nothing of it is answered from memory)."""
    a, ia, b, ib = pair
    policy, clock = ThrottlePolicy(), ManualClock()
    throttles = [LoginThrottle(a, policy, clock), LoginThrottle(b, policy, clock)]

    def one(i: int) -> bool:
        try:
            throttles[i % 2].attempt("victim", "192.0.2.9")
        except Throttled:
            return False
        return True

    n = 4 * (policy.account_free + 1)
    assert sum(run_concurrently(n, one)) == policy.account_free + 1
    assert ia.calls["throttle_update"] + ib.calls["throttle_update"] == n
    assert throttles[0].retry_after("victim", "192.0.2.9") == throttles[1].retry_after("victim", "192.0.2.9") > 0


# -- invalidations published by the write scripts themselves ----------------------------------------------------
def test_a_writer_that_dies_after_its_script_still_invalidates_other_caches(redis_url: str, redis_prefix: str) -> None:
    """The scripts publish in the same atomic step as the write: run only the scripts, with raw EVAL on a
    client of its own (as a writer process that dies right after them would), and the cache drops the record,
    learns the denial and the new epoch."""
    import redis as redis_py

    from sessionward.stores._redis_lua import _BUMP_EPOCH, _DELETE, _DENY

    a, _ = cached(redis_url, redis_prefix)
    raw = redis_py.Redis.from_url(redis_url)
    try:
        secret = new_secret()
        record = make_record(secret=secret)
        a.create(record, now=T0)
        assert a.load_by_secret(hash_secret(secret), now=T0) == (record, 0)
        assert a.is_denied("j1", now=T0) is False and a.get_epoch("alice") == 0
        inner: RedisStore = a._inner.inner  # type: ignore[attr-defined]
        channel = a.channel
        raw.eval(_DELETE, 1, inner._rec(record.id), "", "", channel, inner._drop_msg(record.id), "")
        raw.eval(_DENY, 1, inner._deny_key("j1"), repr(T0 + 60), 60_000, channel, f'["deny","j1",{T0 + 60!r}]')
        raw.eval(_BUMP_EPOCH, 1, inner._epoch_key("alice"), channel, '["epoch","alice",')
        assert eventually(lambda: a.load_by_secret(hash_secret(secret), now=T0) == (None, 0))
        assert eventually(lambda: a.is_denied("j1", now=T0))
        assert eventually(lambda: a.get_epoch("alice") == 1)
    finally:
        a.close()
        raw.close()


def test_a_cached_store_does_not_publish_what_its_scripts_published(redis_url: str, redis_prefix: str) -> None:
    a, inner = cached(redis_url, redis_prefix)
    sub = inner.client.pubsub()
    try:
        sub.subscribe(a.channel)
        assert eventually(lambda: sub.get_message(timeout=0.05) is not None)  # the subscribe confirmation
        record = make_record()
        a.create(record, now=T0)
        assert a.delete(record.id)
        a.deny("j", until=T0 + 60, now=T0)
        messages = []
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            msg = sub.get_message(timeout=0.05)
            if msg and msg["type"] == "message":
                messages.append(msg["data"])
        assert messages == [f'["drop","{record.id}"]'.encode(), f'["deny","j",{T0 + 60!r}]'.encode()]  # once each
    finally:
        sub.close()
        a.close()
