"""DBSC against the real `sessionward serve` (WSGI and ASGI, the module-wide `flavour`): two instances sharing
PostgreSQL and Redis and the same keys, a protocol client holding a real key (`tests/dbsc_client.py`) that
registers at login through the real /login form and refreshes over HTTPS. A challenge used on A is refused on B
(the replay check is the shared store's `use_once`, not a per-process memory); the short cookie made by A works
on B; the long cookie alone works on neither."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from cluster import add_users, claimed_redis_db, cluster_env, private_database, start_instances
from dbsc_client import DBSCBrowser, parse_challenge
from dpop_client import new_private_key
from serverproc import ServerProcess, login, new_http_session

pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.postgres]

REDIS_DB = 13  # preferred; see cluster.claimed_redis_db
SHORT = "__Host-sw_dbsc"
LONG = "__Host-session"
DBSC_KEYS = {"SESSIONWARD_DBSC_CHALLENGE_KEY": secrets.token_hex(32),
             "SESSIONWARD_DBSC_COOKIE_KEY": secrets.token_hex(32)}


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
    env = cluster_env(database_url=shared_pg, store_url=shared_redis,
                      extra={**DBSC_KEYS, "SESSIONWARD_LOCAL_CACHE": "1"})
    return start_instances(start_server, env)


@pytest.fixture
def user(pair: list[ServerProcess], shared_pg: str) -> tuple[str, str]:
    name, password = "d" + secrets.token_hex(5), "dbsc-" + secrets.token_urlsafe(12)
    add_users(shared_pg, {name: password})
    return name, password


def observe(browser: DBSCBrowser, response: requests.Response) -> None:
    challenge = response.headers.get("Secure-Session-Challenge")
    if challenge is not None:
        browser.observe({"Secure-Session-Challenge": challenge})


def bind(server: ServerProcess, user: tuple[str, str]) -> tuple[requests.Session, DBSCBrowser]:
    """Sign in through the real /login form and register a key, as a DBSC browser does."""
    http = new_http_session(server)
    answer = login(http, server, *user)
    assert answer.status_code == 303, answer.text[:300]
    offer = answer.headers.get("Secure-Session-Registration")
    assert offer, "the login answer offers no DBSC registration"
    browser = DBSCBrowser()
    registered = http.post(server.url("/dbsc/register"), headers=browser.register(offer), timeout=10)
    assert registered.status_code == 200, registered.text[:300]
    browser.accept_instructions(registered.json())
    observe(browser, registered)
    assert http.cookies.get(SHORT)
    return http, browser


def dashboard(server: ServerProcess, cookies: dict[str, str]) -> int:
    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    r = requests.get(server.url("/dashboard"), headers={"Cookie": header}, verify=server.verify, timeout=10,
                     allow_redirects=False)
    return r.status_code


def refresh(server: ServerProcess, long: str, headers: dict[str, str]) -> requests.Response:
    return requests.post(server.url("/dbsc/refresh"), headers={"Cookie": f"{LONG}={long}", **headers},
                         verify=server.verify, timeout=10, allow_redirects=False)


def test_dbsc_session_binds_through_the_real_login_and_refreshes(pair: list[ServerProcess],
                                                                user: tuple[str, str]) -> None:
    a, _ = pair
    http, browser = bind(a, user)
    long, short = http.cookies[LONG], http.cookies[SHORT]
    assert dashboard(a, {LONG: long, SHORT: short}) == 200
    assert dashboard(a, {LONG: long}) == 303  # the long cookie alone is nobody
    answer = refresh(a, long, browser.refresh_headers())
    assert answer.status_code == 200, answer.text[:300]
    assert dashboard(a, {LONG: long, SHORT: answer.cookies[SHORT]}) == 200
    sessions = http.get(a.url("/sessions"), timeout=10, allow_redirects=False)
    assert sessions.status_code == 200 and "device-bound" in sessions.text


def test_dbsc_challenge_used_on_a_is_refused_on_b(pair: list[ServerProcess], user: tuple[str, str]) -> None:
    a, b = pair
    http, browser = bind(a, user)
    long = http.cookies[LONG]
    headers = browser.refresh_headers()
    first = refresh(a, long, headers)
    assert first.status_code == 200, first.text[:300]
    assert dashboard(b, {LONG: long, SHORT: first.cookies[SHORT]}) == 200  # A's short cookie is good on B
    again = refresh(b, long, headers)  # the same proof, over the same challenge, to the other instance
    assert again.status_code == 403, again.text[:300]
    assert SHORT not in again.cookies
    challenge, sid = parse_challenge(again.headers["Secure-Session-Challenge"])
    assert sid == browser.session_id and challenge


def test_dbsc_foreign_key_on_b_ends_the_session_on_a(pair: list[ServerProcess], user: tuple[str, str]) -> None:
    a, b = pair
    http, browser = bind(a, user)
    long, short = http.cookies[LONG], http.cookies[SHORT]
    asked = refresh(b, long, {"Sec-Secure-Session-Id": f'"{browser.session_id}"'})
    assert asked.status_code == 403
    challenge, _ = parse_challenge(asked.headers["Secure-Session-Challenge"])
    forged = browser.forge({"alg": "ES256", "typ": "dbsc+jwt"}, {"jti": challenge}, alg="ES256",
                           key=new_private_key("ES256"))
    refused = refresh(b, long, {"Sec-Secure-Session-Id": f'"{browser.session_id}"',
                                "Secure-Session-Response": f'"{forged}"'})
    assert refused.status_code == 401
    assert dashboard(a, {LONG: long, SHORT: short}) == 303  # ended everywhere, at once


def test_dbsc_unbound_browser_works_as_before(pair: list[ServerProcess], user: tuple[str, str]) -> None:
    a, b = pair
    http = new_http_session(a)
    answer = login(http, a, *user)
    assert answer.status_code == 303 and answer.headers.get("Secure-Session-Registration")
    long: Any = http.cookies[LONG]
    assert SHORT not in http.cookies
    assert dashboard(a, {LONG: long}) == 200 and dashboard(b, {LONG: long}) == 200
