"""DPoP (RFC 9449) against the real `sessionward serve`, WSGI and ASGI (the `flavour` fixture): the README's
Python walkthrough run as written, the refusals over HTTPS with the protocol client's real key, and two
instances sharing Redis: a proof spent on instance A is a replay on instance B, a stolen token or refresh
token is useless on both."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from cluster import add_users, claimed_redis_db, cluster_env, private_database, start_instances
from dpop_client import DPoPClient  # type: ignore[import-not-found]
from serverproc import ServerProcess, new_http_session

pytestmark = pytest.mark.server

README = Path(__file__).resolve().parents[2] / "README.md"
REDIS_DB = 12  # preferred (see cluster.claimed_redis_db); test_load prefers it too, any free one is taken
BINDING = 'DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256 Ed25519 EdDSA"'
REPLAY = 'DPoP error="invalid_dpop_proof", error_description="Invalid DPoP proof", algs="ES256 Ed25519 EdDSA"'


def dpop_walkthrough() -> str:
    match = re.search(r"<!-- dpop walkthrough -->\s*```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README.md has no DPoP walkthrough block"
    return match.group(1)


def test_readme_dpop_walkthrough(server: ServerProcess) -> None:
    script = dpop_walkthrough()
    for name, value in {"BASE": server.base_url, "CA": str(server.certfile), "PASSWORD": server.admin_password}.items():
        script, count = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", script, count=1, flags=re.M)
        assert count == 1, f"the DPoP walkthrough no longer sets {name}"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == ["DPoP", "{'logged_in_as': 'admin'}", f"401 {BINDING}", "200", "401", "400 invalid_grant",
                     "DPoP"], result.stdout


def login(http: requests.Session, server: ServerProcess, client: DPoPClient, user: str, password: str) -> dict:
    r = http.post(server.url("/api/login"), json={"username": user, "password": password}, timeout=10,
                  headers={"DPoP": client.proof("POST", server.url("/api/login"))})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_dpop_refusals_on_the_real_server(server: ServerProcess) -> None:
    http = new_http_session(server)
    client = DPoPClient()
    pair = login(http, server, client, "admin", server.admin_password or "")
    token, profile = pair["access_token"], server.url("/api/profile")
    assert pair["token_type"] == "DPoP"
    assert http.get(profile, headers=client.headers("GET", profile, access_token=token), timeout=10).status_code == 200
    for headers in ({"Authorization": f"Bearer {token}"}, {"Authorization": f"DPoP {token}"},
                    DPoPClient().headers("GET", profile, access_token=token)):
        r = http.get(profile, headers=headers, timeout=10)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == BINDING
    r = http.post(server.url("/api/refresh"), json={"refresh_token": pair["refresh_token"]}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


# -- two instances sharing Redis --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared_redis(redis_url: str) -> Iterator[str]:
    with claimed_redis_db(redis_url, REDIS_DB) as url:
        yield url


@pytest.fixture(scope="module")
def shared_pg(postgres_url: str) -> Iterator[str]:
    with private_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="module")
def pair(start_server: Callable[..., ServerProcess], shared_pg: str, shared_redis: str) -> list[ServerProcess]:
    return start_instances(start_server, cluster_env(database_url=shared_pg, store_url=shared_redis))


@pytest.fixture(scope="module")
def user(pair: list[ServerProcess], shared_pg: str) -> tuple[str, str]:
    name, password = "d" + secrets.token_hex(5), "dpop-" + secrets.token_urlsafe(12)
    add_users(shared_pg, {name: password})
    return name, password


SHARED_HOST = "api.example"  # both instances behind one name, as behind a load balancer: one htu for both


def shared_url(path: str) -> str:
    return f"https://{SHARED_HOST}{path}"


def send(http: requests.Session, server: ServerProcess, method: str, path: str, **kwargs: object) -> requests.Response:
    headers = {"Host": SHARED_HOST, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return http.request(method, server.url(path), headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


@pytest.mark.redis
@pytest.mark.postgres
def test_dpop_proof_used_on_one_instance_is_a_replay_on_the_other(pair: list[ServerProcess],
                                                                  user: tuple[str, str]) -> None:
    a, b = pair
    http_a, http_b = new_http_session(a), new_http_session(b)
    client = DPoPClient()
    r = send(http_a, a, "POST", "/api/login", json={"username": user[0], "password": user[1]},
             headers={"DPoP": client.proof("POST", shared_url("/api/login"))})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    proof = client.proof("GET", shared_url("/api/profile"), access_token=token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    assert send(http_a, a, "GET", "/api/profile", headers=headers).status_code == 200
    r = send(http_b, b, "GET", "/api/profile", headers=headers)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == REPLAY
    fresh = {"Authorization": f"DPoP {token}",
             "DPoP": client.proof("GET", shared_url("/api/profile"), access_token=token)}
    assert send(http_b, b, "GET", "/api/profile", headers=fresh).status_code == 200  # the key holder goes on


@pytest.mark.redis
@pytest.mark.postgres
def test_dpop_stolen_tokens_are_useless_on_both_instances(pair: list[ServerProcess], user: tuple[str, str]) -> None:
    a, b = pair
    client = DPoPClient()
    http_a = new_http_session(a)
    pair_ = send(http_a, a, "POST", "/api/login", json={"username": user[0], "password": user[1]},
                 headers={"DPoP": client.proof("POST", shared_url("/api/login"))}).json()
    thief = DPoPClient()
    for server in (a, b):
        http = new_http_session(server)
        for headers in ({"Authorization": f"Bearer {pair_['access_token']}"},
                        {"Authorization": f"DPoP {pair_['access_token']}",
                         "DPoP": thief.proof("GET", shared_url("/api/profile"), access_token=pair_["access_token"])}):
            r = send(http, server, "GET", "/api/profile", headers=headers)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == BINDING
        for extra in ({}, {"DPoP": thief.proof("POST", shared_url("/api/refresh"))}):
            r = send(http, server, "POST", "/api/refresh", json={"refresh_token": pair_["refresh_token"]},
                     headers=extra)
            assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = send(new_http_session(b), b, "POST", "/api/refresh", json={"refresh_token": pair_["refresh_token"]},
             headers={"DPoP": client.proof("POST", shared_url("/api/refresh"))})
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP"  # the owner, on the other instance
