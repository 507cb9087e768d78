"""The Redis store: the contract on a real server (and on a real Cluster and Sentinel), URL parsing,
TTLs (nothing accumulates), failure mapping and recovery."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from _services import free_port, missing_service, start_redis_server
from contract import T0, StoreContract, every_method, make_record, run_concurrently
from redis.crc import key_slot

from sessionward.exceptions import ConfigError, StoreUnavailable
from sessionward.ids import hash_secret, new_secret
from sessionward.stores import _redis_record as fmt
from sessionward.stores import open_store
from sessionward.stores._redis_legacy import hash_fields
from sessionward.stores.base import ThrottleState
from sessionward.stores.redis import PRUNE_LIMIT, RedisStore, RedisURL, _enc, make_client, parse_redis_url

pytestmark = pytest.mark.redis


def _keys(store: RedisStore) -> list[bytes]:
    """Every key of the store (bytes: secret pointers hold 16 raw bytes of the hash)."""
    return list(store.client.scan_iter(match=store._p + "*", count=1000))


def _dump(client: Any, key: bytes) -> str:
    kind = client.type(key).decode()
    if kind == "string":
        value: Any = client.get(key)
        if b":r:" in key and value[:1] in (b"\x02", b"\x03"):  # a record: its decoded fields too
            value = (value, fmt.unpack("?", value))
    elif kind == "hash":
        value = client.hgetall(key)
    elif kind == "zset":
        value = client.zrange(key, 0, -1, withscores=True)
    else:
        value = kind
    return f"{key} {value!r}"


class RedisContract(StoreContract):
    def stored_count(self, store: RedisStore) -> int:  # type: ignore[override]
        return len(_keys(store))

    def stored_text(self, store: RedisStore) -> str:  # type: ignore[override]
        return "\n".join(_dump(store.client, k) for k in _keys(store))


def write_v1(store: RedisStore, record: Any, now: float) -> None:
    """Write `record` exactly as version 1 (before the compact format) did, with raw commands."""
    c, p = store.client, store._p
    u, m = store._user(record.user_id), _enc(record.id)
    end = max(1, int((record.expires_at - now) * 1000))
    c.set(f"{p}id:{m}", u, px=end)
    if record.secret_hash is not None:
        c.set(f"{p}h:{_enc(record.secret_hash)}", f"{u} {m}", px=end)
    rec = f"{p}{{u:{u}}}:s:{m}"
    c.hset(rec, mapping=hash_fields(record))
    c.pexpire(rec, max(1, int((record.live_until() - now) * 1000)))
    c.zadd(f"{p}{{u:{u}}}:idx", {m: record.created_at})
    c.pexpire(f"{p}{{u:{u}}}:idx", end)


class LegacyLayout:
    """Records written by version 1 (a hash each, two pointers) are still served, and converted on first use."""

    def test_v1_record_is_served_by_secret_and_converted(self, store: RedisStore) -> None:
        now = time.time()
        secret = new_secret()
        old = make_record(secret=secret, now=now, expires_at=now + 100, idle_expires_at=now + 50)
        write_v1(store, old, now)
        assert store.client.type(f"{store._p}{{u:alice}}:s:{old.id}") == b"hash"
        record, epoch = store.load_by_secret(hash_secret(secret), now=now)
        assert record == old and epoch == 0
        assert store.client.type(store._rec(old.id)) == b"string"  # converted ...
        assert store.client.exists(f"{store._p}{{u:alice}}:s:{old.id}", f"{store._p}id:{old.id}",
                                   f"{store._p}h:{old.secret_hash}", f"{store._p}{{u:alice}}:idx") == 0  # ... old gone
        assert 49_000 < store.client.pttl(store._rec(old.id)) <= 50_000  # with the time it had left
        assert store.get_by_secret(hash_secret(secret), now=now) == old
        assert [r.id for r in store.list_for_user("alice", now=now)] == [old.id]

    def test_v1_records_are_found_by_id_by_user_and_by_the_purge(self, store: RedisStore) -> None:
        now = time.time()
        family = make_record(kind="token", secret=None, now=now, expires_at=now + 100, idle_expires_at=now + 100)
        cookie = make_record(now=now + 1, expires_at=now + 100, idle_expires_at=now + 100)
        other = make_record(user_id="bob", now=now, expires_at=now + 100, idle_expires_at=now + 100)
        gone = make_record(user_id="carol", now=now, expires_at=now + 100, idle_expires_at=now + 100)
        for r in (family, cookie, other, gone):
            write_v1(store, r, now)
        state = store.token_state(jti="j", user_id="alice", family_id=family.id, now=now)
        assert state.family == family
        assert store.advance(family.id, expected_generation=0, last_seen=now, idle_expires_at=now + 90, now=now)
        assert [r.id for r in store.list_for_user("alice", now=now)] == [cookie.id, family.id]
        assert store.update(other.id, {"data": {"k": 1}}, now=now)
        assert store.get(other.id, now=now).data == {"k": 1}  # type: ignore[union-attr]
        assert store.delete_for_user("carol") == 1
        assert store.get(gone.id, now=now) is None
        leftover = make_record(user_id="dave", now=now, expires_at=now + 100, idle_expires_at=now + 100)
        write_v1(store, leftover, now)
        store.purge_expired(now=now)  # the periodic purge converts what nobody asked for
        assert store.client.type(store._rec(leftover.id)) == b"string"
        old = [k for k in _keys(store) if k.endswith(b"}:idx") or b"}:s:" in k or b":id:" in k or b":h:" in k]
        assert old == []


class TestRedisStore(RedisContract, LegacyLayout):
    @pytest.fixture
    def store(self, redis_url: str, redis_prefix: str) -> Iterator[RedisStore]:
        s = RedisStore.from_url(redis_url, prefix=redis_prefix)
        yield s
        s.close()

    def test_records_and_lookups_have_ttls(self, store: RedisStore) -> None:
        now = time.time()
        rec = make_record(now=now, expires_at=now + 100, idle_expires_at=now + 30)
        store.create(rec, now=now)
        store.deny("jti", until=now + 50, now=now)
        store.throttle_update(["k"], lambda s: [ThrottleState(1, now)], now=now, window=60)
        keys = _keys(store)
        assert len(keys) == 5  # record, index, secret pointer, denylist, throttle
        ttls = {k: store.client.pttl(k) for k in keys}
        assert all(0 < t <= 100_000 for t in ttls.values()), ttls
        record_key = store._rec(rec.id).encode()
        assert 29_000 < ttls[record_key] <= 30_000  # live_until, not the absolute end
        store.update(rec.id, {"idle_expires_at": now + 60}, now=now)
        assert 59_000 < store.client.pttl(record_key) <= 60_000
        idx = store._idx("alice")
        assert 99_000 < store.client.pttl(idx) <= 100_000  # the absolute end of its longest record

    def test_nothing_remains_after_the_lifetime(self, store: RedisStore) -> None:
        now = time.time()
        for i in range(3):
            store.create(make_record(now=now, expires_at=now + 0.4, idle_expires_at=now + 0.2 + i * 0.05), now=now)
        store.create(make_record(kind="token", secret=None, now=now, expires_at=now + 0.3, idle_expires_at=now + 0.3),
                     now=now)
        store.deny("jti", until=now + 0.3, now=now)
        store.throttle_update(["k"], lambda s: [ThrottleState(1, now)], now=now, window=0.3)
        assert len(_keys(store)) > 0
        time.sleep(0.6)
        assert _keys(store) == []

    def test_epoch_keys_do_not_expire(self, store: RedisStore) -> None:
        store.bump_epoch("alice")
        (key,) = _keys(store)
        assert store.client.pttl(key) == -1  # an expiring epoch would revive revoked sessions

    def test_user_index_stays_bounded(self, store: RedisStore) -> None:
        now = time.time()
        keeper = make_record(now=now - 1)  # keeps the index alive
        store.create(keeper, now=now)
        for _ in range(30):
            store.create(make_record(now=now, expires_at=now + 0.3, idle_expires_at=now + 0.3), now=now)
        idle_dead = make_record(now=now, idle_expires_at=now + 0.3)  # idle-dead, but not past its absolute end
        store.create(idle_dead, now=now)
        idx = store._idx("alice")
        assert store.client.zcard(idx) == 32
        time.sleep(0.35)
        assert store.client.zcard(idx) == 32
        live = make_record(now=time.time())
        store.create(live, now=time.time())
        assert store.client.zcard(idx) == 3  # members past their absolute end pruned on create
        assert [r.id for r in store.list_for_user("alice", now=time.time())] == [live.id, keeper.id]
        assert store.purge_expired(now=time.time()) == 0  # the idle-dead record expired in Redis already ...
        assert store.client.zcard(idx) == 2  # ... and the purge drops its member
        # the index's TTL follows its longest record, so it goes when the last record goes
        assert store.delete_for_user("alice") == 2
        assert store.client.exists(idx) == 0

    def test_login_prunes_a_bounded_number_of_members(self, store: RedisStore) -> None:
        now = time.time()
        n = PRUNE_LIMIT * 2 + 5
        store.create(make_record(now=now), now=now)  # keeps the index alive
        for _ in range(n):
            store.create(make_record(now=now, expires_at=now + 0.2, idle_expires_at=now + 0.2), now=now)
        time.sleep(0.25)
        idx = store._idx("alice")
        later = time.time()
        store.create(make_record(now=later), now=later)
        assert store.client.zcard(idx) == n + 2 - PRUNE_LIMIT  # one login removes at most PRUNE_LIMIT
        store.create(make_record(now=later), now=later)
        store.create(make_record(now=later), now=later)
        assert store.client.zcard(idx) == 4  # and the next logins finish the job
        assert len(store.list_for_user("alice", now=later)) == 4

    def test_hash_tag_and_separator_injection_in_ids(self, store: RedisStore) -> None:
        users = ["a}:s:x", "{evil}", "b c", "ü", "alice"]
        recs = [make_record(user_id=u) for u in users]
        for r in recs:
            store.create(r, now=T0)
        for u, r in zip(users, recs, strict=True):
            assert [x.id for x in store.list_for_user(u, now=T0)] == [r.id]
        # raw braces of ids never reach a key (secret pointers end in 16 raw hash bytes, which may hold any byte)
        keys = [k for k in _keys(store) if not k.startswith(f"{store._p}s:".encode())]
        assert all(k.count(b"{") <= 1 and k.count(b"}") <= 1 for k in keys)
        for r in recs:  # every key of one user's index is in one hash slot, whatever the user id
            u = store._user(r.user_id)
            assert key_slot(store._idx(u).encode()) == key_slot(f"{{u:{u}}}".encode())
        assert store.delete_for_user("a}:s:x") == 1
        assert store.get(recs[-1].id, now=T0) == recs[-1]

    def test_throttle_keys_share_one_slot(self, store: RedisStore) -> None:
        """One login attempt's counters (address, account, pair) change in one script: one Cluster slot."""
        keys = ["ip:192.0.2.1", "acct:" + "a" * 64, "pair:{evil}", "ip:#x}y"]
        store.throttle_update(keys, lambda s: [ThrottleState(1, T0)] * len(keys), now=T0, window=60)
        stored = _keys(store)
        assert len(stored) == 4 and all(k.count(b"{") == 1 and k.count(b"}") == 1 for k in stored)
        assert len({key_slot(k) for k in stored}) == 1

    def test_refresh_race_across_two_instances_has_one_winner(
        self, store: RedisStore, redis_url: str, redis_prefix: str
    ) -> None:
        other = RedisStore.from_url(redis_url, prefix=redis_prefix)
        try:
            fam = make_record(kind="token", secret=None)
            store.create(fam, now=T0)
            stores = [store, other]
            results = run_concurrently(
                8,
                lambda i: stores[i % 2].advance(fam.id, expected_generation=0, last_seen=T0 + 1,
                                                idle_expires_at=T0 + 100, now=T0 + 1),
            )
            assert results.count(True) == 1
            assert other.get(fam.id, now=T0 + 1).generation == 1  # type: ignore[union-attr]
            assert other.delete(fam.id) and store.get(fam.id, now=T0 + 1) is None
        finally:
            other.close()

    def test_open_store_picks_redis(self, redis_url: str, redis_prefix: str) -> None:
        s = open_store(redis_url, prefix=redis_prefix)
        try:
            assert isinstance(s, RedisStore)
            s.ping()
        finally:
            s.close()


# -- URLs ----------------------------------------------------------------------------------------


def test_parse_standalone_urls() -> None:
    for url in ("redis://localhost:6379/0", "rediss://h:6380/1", "unix:///run/redis.sock?db=2"):
        assert parse_redis_url(url) == RedisURL(mode="standalone", url=url)


def test_redis_and_rediss_and_unix_clients() -> None:
    c = make_client("redis://:pw@example.invalid:6390/3", socket_timeout=1.5)
    kw = c.connection_pool.connection_kwargs
    assert (kw["host"], kw["port"], kw["db"], kw["password"], kw["socket_timeout"]) == ("example.invalid", 6390, 3,
                                                                                         "pw", 1.5)
    assert c.get_retry().get_retries() == 0  # no hidden retries of writes
    tls = make_client("rediss://example.invalid:6380/0")
    assert tls.connection_pool.connection_class is redis.SSLConnection
    unix = make_client("unix:///run/redis/redis.sock?db=4")
    assert unix.connection_pool.connection_class is redis.UnixDomainSocketConnection
    assert unix.connection_pool.connection_kwargs["path"] == "/run/redis/redis.sock"
    assert unix.connection_pool.connection_kwargs["db"] == 4


def test_parse_sentinel_urls() -> None:
    p = parse_redis_url("redis+sentinel://:secret@s1:26379,s2,[::1]:26380/mymaster/2")
    assert p.mode == "sentinel" and p.service_name == "mymaster" and p.db == 2 and p.password == "secret"
    assert p.hosts == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert parse_redis_url("redis+sentinel://s1/m").db == 0
    c = make_client("redis+sentinel://s1:26379,s2:26379/mymaster/1")
    assert c.connection_pool.service_name == "mymaster"
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
            for s in c.connection_pool.sentinel_manager.sentinels] == [("s1", 26379), ("s2", 26379)]
    for bad in ("redis+sentinel://s1:26379", "redis+sentinel://s1/m/x", "redis+sentinel:///m"):
        with pytest.raises(ConfigError):
            parse_redis_url(bad)


def test_parse_cluster_urls() -> None:
    p = parse_redis_url("redis+cluster://u:p@n1:7000,n2:7001,n3")
    assert p.mode == "cluster" and p.hosts == (("n1", 7000), ("n2", 7001), ("n3", 6379))
    assert (p.username, p.password) == ("u", "p")
    with pytest.raises(ConfigError):
        parse_redis_url("redis+cluster://n1:7000/1")


def test_bad_urls_are_config_errors() -> None:
    for bad in ("memcached://x", "redis+cluster://", "nonsense"):
        with pytest.raises(ConfigError):
            parse_redis_url(bad)
    with pytest.raises(ConfigError):
        RedisStore(make_client("redis://localhost"), prefix="sw:{x}:")


# -- failures --------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_redis_raises_store_unavailable_quickly() -> None:
    started = time.monotonic()
    store = RedisStore.from_url(f"redis://127.0.0.1:{_closed_port()}/0", socket_connect_timeout=0.5)
    for call in every_method(store):
        with pytest.raises(StoreUnavailable):
            call()
    with pytest.raises(StoreUnavailable):
        RedisStore.from_url(f"redis+cluster://127.0.0.1:{_closed_port()}", socket_connect_timeout=0.5)
    sentinel = RedisStore.from_url(f"redis+sentinel://127.0.0.1:{_closed_port()}/m", socket_connect_timeout=0.5)
    with pytest.raises(StoreUnavailable):
        sentinel.get("x", now=T0)
    assert time.monotonic() - started < 5


def test_store_recovers_when_redis_comes_back() -> None:
    server = start_redis_server()
    try:
        store = RedisStore.from_url(server.url, socket_connect_timeout=0.5, socket_timeout=0.5)
        rec = make_record()
        store.create(rec, now=T0)
        server.stop()
        for call in every_method(store):
            with pytest.raises(StoreUnavailable):
                call()
        server.start()  # empty: nothing was persisted
        assert store.get(rec.id, now=T0) is None
        store.create(rec, now=T0)
        assert store.get(rec.id, now=T0) == rec
        store.close()
    finally:
        server.cleanup()


def _write_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sessionward test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_rediss_with_tls_and_certificate_verification(tmp_path: Path) -> None:
    ca, cert, key = _write_tls_files(tmp_path)
    tls_port = free_port()
    try:
        server = start_redis_server(extra_args=["--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                                                "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                                                "--tls-auth-clients", "no"])
    except RuntimeError as exc:
        missing_service(f"redis-server without TLS support: {exc}")
    try:
        store = RedisStore.from_url(f"rediss://localhost:{tls_port}/0", ssl_ca_certs=str(ca))
        rec = make_record()
        store.create(rec, now=T0)
        assert store.get(rec.id, now=T0) == rec
        store.close()
        # without our CA the server's certificate is refused: fail closed, not "connect anyway"
        untrusted = RedisStore.from_url(f"rediss://localhost:{tls_port}/0", socket_connect_timeout=1)
        with pytest.raises(StoreUnavailable):
            untrusted.ping()
    finally:
        server.cleanup()


def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    server = start_redis_server(extra_args=["--unixsocket", str(path), "--unixsocketperm", "700"])
    try:
        store = RedisStore.from_url(f"unix://{path}?db=1")
        rec = make_record()
        store.create(rec, now=T0)
        assert store.get(rec.id, now=T0) == rec
        assert redis.Redis(unix_socket_path=str(path), db=1).dbsize() > 0
        store.close()
    finally:
        server.cleanup()


# -- real topologies (the `cluster_url` and `sentinel_url` fixtures are in conftest.py, shared by both flavours) -


class TestRedisClusterStore(RedisContract, LegacyLayout):
    @pytest.fixture
    def store(self, cluster_url: str) -> Iterator[RedisStore]:
        s = RedisStore.from_url(cluster_url, prefix=f"swtest:{secrets.token_hex(4)}:")
        yield s
        s.close()

    def test_is_cluster_and_replace_across_users(self, store: RedisStore) -> None:
        assert store._cluster
        assert store.client.retry.get_retries() == 0  # redis-py must not replay writes on its own
        old = make_record(user_id="alice")
        new = make_record(user_id="bob")
        store.create(old, now=T0)
        assert store.replace(old.id, new, now=T0) is True  # records in two slots
        assert store.get(old.id, now=T0) is None
        assert store.get_by_secret(new.secret_hash or "", now=T0) == new


class TestRedisSentinelStore(RedisContract):
    @pytest.fixture
    def store(self, sentinel_url: str) -> Iterator[RedisStore]:
        s = RedisStore.from_url(sentinel_url, prefix=f"swtest:{secrets.token_hex(4)}:")
        yield s
        s.close()

    def test_goes_through_sentinel(self, store: RedisStore) -> None:
        secret = new_secret()
        rec = make_record(secret=secret)
        store.create(rec, now=T0)
        assert store.get_by_secret(hash_secret(secret), now=T0) == rec
        assert type(store.client.connection_pool).__name__ == "SentinelConnectionPool"
        assert store.client.connection_pool.connection_kwargs["retry"].get_retries() == 0


def test_the_hiredis_parser_is_used(redis_url: str) -> None:
    """`redis[hiredis]` is a dependency: redis-py picks the C parser by itself when it is installed."""
    import redis.utils

    assert redis.utils.HIREDIS_AVAILABLE
    store = RedisStore.from_url(redis_url)
    try:
        store.ping()
        pool = store.client.connection_pool
        try:
            conn = pool.get_connection()
        except TypeError:  # redis-py 5.x wants a command name
            conn = pool.get_connection("PING")
        try:
            assert type(conn._parser).__name__ == "_HiredisParser"
        finally:
            pool.release(conn)
    finally:
        store.close()
