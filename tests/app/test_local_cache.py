"""SESSIONWARD_LOCAL_CACHE: per-request reads from memory kept current by Redis pub/sub, across app instances
and the CLI (which publishes its revocations too). Real Redis; a revocation must reach a cached instance."""

from __future__ import annotations

import secrets
import time

import pytest
from webtest import BASE, PASSWORD, login  # type: ignore[import-not-found]

from sessionward.app import create_app
from sessionward.clock import SystemClock
from sessionward.exceptions import ConfigError
from sessionward.flask import state

COOKIE = "__Host-session"


def _eventually(check, timeout: float = 2.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.fixture
def pair(tmp_path, redis_url, monkeypatch):
    """Two app instances on one Redis and one users database, both with the local cache on."""
    prefix = f"swtest:{secrets.token_hex(4)}:"
    shared = {f"SESSIONWARD_{n}": secrets.token_bytes(32).hex() for n in ("CSRF_KEY", "REFRESH_KEY", "KEK")}
    for name, value in shared.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SESSIONWARD_DATABASE_URL", f"sqlite:///{tmp_path / 'users.db'}")
    monkeypatch.setenv("SESSIONWARD_STORE_URL", redis_url)
    monkeypatch.setenv("SESSIONWARD_REDIS_PREFIX", prefix)
    monkeypatch.setenv("SESSIONWARD_LOCAL_CACHE", "1")
    apps = [create_app(tmp_path / f"inst{i}", clock=SystemClock()) for i in range(2)]
    with apps[0].app_context():
        state().users.create("alice", PASSWORD)
    yield apps
    for app in apps:
        with app.app_context():
            state().store.close()
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


def test_cache_is_on_and_healthy(pair):
    from sessionward.stores.cache import CachedStore

    for app in pair:
        with app.app_context():
            store = state().store
            assert isinstance(store, CachedStore) and store.wait_healthy(5)


def test_logout_on_one_instance_is_refused_on_the_other(pair):
    a, b = pair
    ca = a.test_client()
    assert login(ca, "alice").status_code == 303
    cookie = ca.get_cookie(COOKIE).value
    cb = b.test_client(use_cookies=False)
    headers = {"Cookie": f"{COOKIE}={cookie}"}
    assert cb.get("/dashboard", base_url=BASE, headers=headers).status_code == 200  # now cached on b
    assert cb.get("/dashboard", base_url=BASE, headers=headers).status_code == 200
    from webtest import page_token  # type: ignore[import-not-found]

    assert ca.post("/logout", base_url=BASE, data={"csrf_token": page_token(ca)}).status_code == 303
    assert _eventually(lambda: cb.get("/dashboard", base_url=BASE, headers=headers).status_code == 303)


def test_cli_revocation_reaches_cached_instances(pair, monkeypatch, tmp_path):
    from sessionward.cli import main

    a, _ = pair
    c = a.test_client()
    assert login(c, "alice").status_code == 303
    assert c.get("/dashboard", base_url=BASE).status_code == 200
    monkeypatch.delenv("SESSIONWARD_LOCAL_CACHE")  # the CLI keeps no cache, but must still publish
    assert main(["sessions", "revoke", "--user", "alice", "--instance", str(tmp_path / "inst0")]) == 0
    assert _eventually(lambda: c.get("/dashboard", base_url=BASE).status_code == 303)


def test_api_tokens_revoked_elsewhere_are_refused(pair):
    a, b = pair
    pair_json = a.test_client().post("/api/login", base_url=BASE,
                                     json={"username": "alice", "password": PASSWORD}).get_json()
    auth = {"Authorization": f"Bearer {pair_json['access_token']}"}
    cb = b.test_client()
    assert cb.get("/api/profile", base_url=BASE, headers=auth).status_code == 200
    assert a.test_client().post("/api/logout-all", base_url=BASE, headers=auth).status_code == 204
    assert _eventually(lambda: cb.get("/api/profile", base_url=BASE, headers=auth).status_code == 401)


@pytest.mark.parametrize("value,store", [("1", "sqlite"), ("maybe", "redis")])
def test_local_cache_setting_is_validated(tmp_path, redis_url, value, store):
    url = f"sqlite:///{tmp_path / 's.db'}" if store == "sqlite" else redis_url
    with pytest.raises(ConfigError) as info:
        create_app(tmp_path / "x", config={"SESSIONWARD_STORE_URL": url, "SESSIONWARD_LOCAL_CACHE": value})
    assert info.value.setting == "SESSIONWARD_LOCAL_CACHE"


def test_T14_cli_key_revocation_reaches_cached_instances(pair, monkeypatch, tmp_path):
    """`keys revoke` from the CLI (no cache, but it publishes): a cached instance refuses the key's tokens
    before it re-reads its key set."""
    import jwt

    from sessionward.cli import main
    from sessionward.flask import token_service

    a, b = pair
    with a.app_context():
        repo = token_service()._keys
        now = time.time()
        old_key = repo.current(now).signing_key(now)
        repo.rotate(now=now, activate_after=0)  # as if the publication delay had passed ...
    for app in pair:
        with app.app_context():
            keys = token_service()._keys
            keys.load(now=time.time())  # ... and both had re-read their keys,
            keys.refresh_interval = 60.0  # which they will not do again during this test
    tokens = a.test_client().post("/api/login", base_url=BASE,
                                  json={"username": "alice", "password": PASSWORD}).get_json()
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    old_token = jwt.encode(claims, old_key.private, algorithm=old_key.alg,
                           headers={"kid": old_key.kid, "typ": "at+jwt"})
    cb = b.test_client()
    auth = {"Authorization": f"Bearer {old_token}"}
    assert cb.get("/api/profile", base_url=BASE, headers=auth).status_code == 200  # now cached on b
    monkeypatch.delenv("SESSIONWARD_LOCAL_CACHE")
    assert main(["keys", "revoke", "--instance", str(tmp_path / "inst0"), "--", old_key.kid]) == 0
    assert _eventually(lambda: cb.get("/api/profile", base_url=BASE, headers=auth).status_code == 401)
    with b.app_context():
        assert old_key.kid in {k["kid"] for k in token_service().jwks()["keys"]}  # b has not re-read its keys
