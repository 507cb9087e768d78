"""The Redis store's compact record, version 3 (times as 48-bit milliseconds) beside version 2 (times as doubles):
exact round trips of every field in both, version-2 records (as written before version 3) read and rewritten as
version 3, the Lua scripts keeping times exact, and the goal it serves: at most 400 bytes of Redis memory per
session."""

from __future__ import annotations

import secrets
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from contract import T0, make_record

from sessionward.clock import SystemClock
from sessionward.ids import hash_secret, new_public_id, new_secret
from sessionward.stores import _redis_record as fmt
from sessionward.stores.base import SessionRecord
from sessionward.stores.redis import RedisStore, _enc

pytestmark = pytest.mark.redis

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"  # 70 characters, as the bench

# Written by `_redis_record` version 2 (at 6a7ad68) for `_V2_RECORD`: must stay readable.
_V2_BLOB = bytes.fromhex(
    "02000000088074d2da410000209974d2da410000908c74d2da41000008b09ed2da410000205b76d2da41030000000700000073000500616c"
    "69636501abababababababababababababababababababababababababababababababab0473346c740f00a3a2a94606c620330d8df5cc95"
    "62017b226b223a5b312c225c7530306663225d7d"
)
_V2_RECORD = SessionRecord(
    id="sid", kind="cookie", user_id="alice", created_at=1_800_000_000.125, last_seen=1_800_000_100.5,
    auth_at=1_800_000_050.25, expires_at=1_800_043_200.125, idle_expires_at=1_800_001_900.5, epoch=3,
    secret_hash="ab" * 32, generation=7, salt="s4lt", user_agent=UA, ip="203.0.113.7", data={"k": [1, "ü"]},
)


def _times(r: SessionRecord) -> tuple[float, ...]:
    return r.created_at, r.last_seen, r.auth_at, r.expires_at, r.idle_expires_at


def _as_v2(record: SessionRecord) -> bytes:
    """`record` as version 2 wrote it (the header of doubles, the same body)."""
    v3 = fmt.pack(record)
    if v3[0] == 2:  # times that are not whole milliseconds: version 2 already
        return v3
    (offset,) = struct.unpack_from("<H", v3, fmt.HEADER.size - 2)
    header = fmt.HEADER_V2.pack(2, 0 if record.kind == "cookie" else 1, *_times(record), record.epoch,
                                record.generation, offset + fmt.HEADER_V2.size - fmt.HEADER.size)
    return header + v3[fmt.HEADER.size :]


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Iterator[RedisStore]:
    s = RedisStore.from_url(redis_url, prefix=redis_prefix)
    yield s
    s.close()


# -- the format --------------------------------------------------------------------------------------------
def test_millis_accepts_only_exact_whole_milliseconds() -> None:
    assert fmt.millis(1_800_000_000.125) == 1_800_000_000_125
    assert fmt.millis(0.0) == 0 and fmt.millis((2**48 - 1) / 1000) == 2**48 - 1
    for t in (1_800_000_000.0001, 0.0005, -0.001, 2**48 / 1000, float("nan"), float("inf"), T0 + 0.1 + 0.2):
        m = fmt.millis(t)
        assert m is None or m / 1000 == t, t


def test_v3_round_trip_of_every_field() -> None:
    records = [
        make_record(),  # at T0: whole milliseconds
        SessionRecord(
            id="x", kind="token", user_id="ü\udc80 {x}", created_at=1_800_000_000.001, last_seen=1_800_000_000.999,
            auth_at=0.0, expires_at=(2**48 - 1) / 1000, idle_expires_at=1_234_567.5, epoch=2**32 - 1,
            secret_hash="not hex", generation=2**32 - 1, salt="s" * 255, user_agent="ua\udc80" * 30, ip="::1",
            data={"a": {"b": [1.5, None, True]}, "ü": "x"},
        ),
        _V2_RECORD.replace(secret_hash=None, user_agent="", ip="", salt="", data={}),
    ]
    for record in records:
        blob = fmt.pack(record)
        assert blob[0] == fmt.VERSION == 3
        assert fmt.unpack(record.id, blob) == record
        assert _times(fmt.unpack(record.id, blob)) == _times(record)  # bit for bit, not only close
        assert fmt.user_of(blob) == record.user_id
    assert len(fmt.pack(_V2_RECORD)) == len(_V2_BLOB) - 10  # five times in 6 bytes each instead of 8


def test_times_that_are_not_whole_milliseconds_stay_exact_as_version_2() -> None:
    record = make_record(now=1_800_000_000.0001234)
    blob = fmt.pack(record)
    assert blob[0] == 2
    assert fmt.unpack(record.id, blob) == record
    for t in (time.time(), 1e-300, 2.0**60, -1.5):  # any double
        assert fmt.unpack(record.id, fmt.pack(record.replace(last_seen=t))).last_seen == t


def test_version_2_as_written_before_is_read() -> None:
    assert fmt.unpack("sid", _V2_BLOB) == _V2_RECORD
    assert fmt.user_of(_V2_BLOB) == "alice"
    assert _as_v2(_V2_RECORD) == _V2_BLOB  # the helper the store tests use writes what version 2 wrote


def test_other_versions_are_refused() -> None:
    blob = fmt.pack(make_record())
    for bad in (b"", b"\x01" + blob[1:], b"\x04" + blob[1:]):
        with pytest.raises(ValueError):
            fmt.unpack("x", bad)


def test_the_system_clock_gives_whole_milliseconds() -> None:
    clock = SystemClock()
    for _ in range(100):
        now = clock.now()
        assert fmt.millis(now) is not None and abs(now - time.time()) < 1
        assert fmt.pack(make_record(now=now))[0] == 3


# -- the store: version 2 in Redis ---------------------------------------------------------------------------
def _put_v2(store: RedisStore, record: SessionRecord, now: float) -> None:
    """`record` created by the store, then its value replaced by version 2's bytes (same key, same TTL)."""
    store.create(record, now=now)
    assert store.client.set(store._rec(record.id), _as_v2(record), xx=True, keepttl=True)


def _raw(store: RedisStore, record: SessionRecord) -> bytes:
    return store.client.get(store._rec(record.id))  # type: ignore[no-any-return]


def test_a_version_2_record_is_served_and_rewritten_as_version_3(store: RedisStore) -> None:
    secret = new_secret()
    record = make_record(secret=secret, data={"k": "v"})
    _put_v2(store, record, T0)
    assert _raw(store, record)[0] == 2
    assert store.get(record.id, now=T0) == record
    assert store.load_by_secret(hash_secret(secret), now=T0) == (record, 0)
    assert [r.id for r in store.list_for_user("alice", now=T0)] == [record.id]
    assert _raw(store, record)[0] == 2  # reads leave it as it is
    assert store.update(record.id, {"last_seen": T0 + 60, "idle_expires_at": T0 + 1860}, now=T0 + 60)
    touched = record.replace(last_seen=T0 + 60, idle_expires_at=T0 + 1860)
    assert _raw(store, record) == fmt.pack(touched) and _raw(store, record)[0] == 3  # its first rewrite
    assert store.get(record.id, now=T0 + 60) == touched
    assert store.load_by_secret(hash_secret(secret), now=T0 + 60) == (touched, 0)


def test_every_script_reads_version_2(store: RedisStore) -> None:
    family = make_record(kind="token", secret=None)
    _put_v2(store, family, T0)
    assert store.advance(family.id, expected_generation=0, last_seen=T0 + 5, idle_expires_at=T0 + 100, now=T0 + 5)
    advanced = family.replace(generation=1, last_seen=T0 + 5, idle_expires_at=T0 + 100)
    assert _raw(store, family) == fmt.pack(advanced)
    data_only = make_record()
    _put_v2(store, data_only, T0)
    assert store.update(data_only.id, {"data": {"n": 1}}, now=T0)
    assert _raw(store, data_only) == fmt.pack(data_only.replace(data={"n": 1}))
    # delete (by id, by user: the script reads the user of a version-2 record), replace, purge
    for kill in ("delete", "user", "replace", "purge"):
        secret = new_secret()
        r = make_record(user_id=f"u-{kill}", secret=secret, idle_expires_at=T0 + 10)
        _put_v2(store, r, T0)
        if kill == "delete":
            assert store.delete(r.id)
        elif kill == "user":
            assert store.delete_for_user(f"u-{kill}") == 1
        elif kill == "replace":
            new = make_record(user_id=f"u-{kill}")
            assert store.replace(r.id, new, now=T0)
            assert store.get(new.id, now=T0) == new
        else:
            assert store.purge_expired(now=T0 + 11) >= 1
        assert store.get(r.id, now=T0) is None
        assert store.client.exists(store._secret_ptr(hash_secret(secret))) == 0  # its pointer went with it


def test_a_version_2_record_with_finer_times_stays_exact(store: RedisStore) -> None:
    now = 1_800_000_000.0001234  # what `time.time()` gave before the clock was whole milliseconds
    record = make_record(now=now)
    _put_v2(store, record, now)
    assert store.update(record.id, {"last_seen": T0 + 60, "idle_expires_at": T0 + 1860}, now=T0 + 60)
    touched = record.replace(last_seen=T0 + 60, idle_expires_at=T0 + 1860)
    assert _raw(store, record)[0] == 2  # created_at and expires_at are not whole milliseconds: kept as doubles
    assert store.get(record.id, now=T0 + 60) == touched


# -- the scripts keep times exact ----------------------------------------------------------------------------
@pytest.mark.parametrize("start", [T0, 1_800_000_000.0001234])
def test_scripts_write_exactly_what_python_packs(store: RedisStore, start: float) -> None:
    """Every rewrite by Lua gives the very bytes `pack` gives for the changed record: same version chosen,
    same times bit for bit, whichever version the record and the new times are in."""
    record = make_record(now=start)
    store.create(record, now=start)
    steps: list[dict[str, Any]] = [
        {"last_seen": start + 1.5, "idle_expires_at": start + 1801.5},
        {"last_seen": start + 2.0001234},  # not whole milliseconds: version 2
        {"auth_at": start + 3},
        {"last_seen": start + 4, "data": {"x": [1, 2]}},  # whole again (when `start` is): version 3
        {"idle_expires_at": start + 0.1 + 0.2 + 1800},
        {"idle_expires_at": start + 1800.3},
    ]
    for changes in steps:
        assert store.update(record.id, changes, now=start + 5)
        record = record.replace(**changes)
        assert _raw(store, record) == fmt.pack(record), changes
        assert store.get(record.id, now=start + 5) == record
    for last_seen in (start + 6.25, start + 6.0000001):
        assert store.advance(record.id, expected_generation=record.generation, last_seen=last_seen,
                             idle_expires_at=start + 1806.25, now=start + 6)
        record = record.replace(generation=record.generation + 1, last_seen=last_seen, idle_expires_at=start + 1806.25)
        assert _raw(store, record) == fmt.pack(record)


def test_scripts_see_the_exact_end_of_a_version_3_record(store: RedisStore) -> None:
    record = make_record(idle_expires_at=T0 + 10.001)
    store.create(record, now=T0)
    assert _raw(store, record)[0] == 3
    assert store.update(record.id, {"data": {"a": 1}}, now=T0 + 10.000999)  # live until its last millisecond
    assert not store.update(record.id, {"data": {"a": 2}}, now=T0 + 10.001)  # and no longer at its end
    assert not store.advance(record.id, expected_generation=0, last_seen=T0, idle_expires_at=T0 + 20, now=T0 + 10.001)
    assert store.get(record.id, now=T0 + 10.000999).data == {"a": 1}  # type: ignore[union-attr]


# -- the goal: at most 400 bytes per session -----------------------------------------------------------------
def test_a_typical_session_takes_at_most_400_bytes_of_redis_memory(redis_url: str) -> None:
    """As the bench measures it (`bench/scale.py`): MEMORY USAGE of the record, the secret pointer and the share
    of the user index, sessions 10 to a user, a 3-character prefix like the default `sw:`, a 70-character user
    agent, user ids as long as the bench's at a million sessions, times from the system clock."""
    client = redis.Redis.from_url(redis_url)
    store = RedisStore(client, prefix=f"{secrets.token_hex(1)}:")
    now = SystemClock().now()
    tag = secrets.token_hex(4)
    records = [
        SessionRecord(
            id=new_public_id(), kind="cookie", user_id=f"user-{tag}-{50_000 + i // 10}", created_at=now,
            last_seen=now, auth_at=now, expires_at=now + 12 * 3600, idle_expires_at=now + 1800, epoch=0,
            secret_hash=hash_secret(new_secret()), user_agent=UA, ip="203.0.113.7", data={},
        )
        for i in range(200)
    ]
    written: list[Any] = []
    try:
        for r in records:
            written += [store._rec(r.id), store._secret_ptr(r.secret_hash or ""), store._idx(_enc(r.user_id))]
            store.create(r, now=now)
        record = sum(client.memory_usage(store._rec(r.id), samples=0) for r in records) / len(records)
        pointer = sum(client.memory_usage(store._secret_ptr(r.secret_hash or ""), samples=0) for r in records)
        index = sum(client.memory_usage(k, samples=0) for k in {store._idx(_enc(r.user_id)) for r in records})
        per_session = record + (pointer + index) / len(records)
        assert per_session <= 400, (record, pointer / len(records), index / len(records))
    finally:
        client.delete(*set(written))
        client.close()
