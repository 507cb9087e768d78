"""The Flask service and the ASGI service as two instances of one deployment at the same time: one PostgreSQL
(users, signing keys) and one store (Redis, or the same PostgreSQL), the same keys. Whatever one of them does,
the other honours at once: a cookie session made through one opens the other's pages, an access token issued
by one verifies on the other and its refresh token rotates there, and a logout or a revocation on one is
refused by the other on the very next request, in both directions."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import (
    add_users,
    claimed_redis_db,
    cluster_env,
    dashboard_status,
    logged_in_session,
    page_csrf,
    post_form,
    private_database,
    session_cookie,
)
from serverproc import ServerProcess, require_asgi
from test_multi_instance import _api, api_login, profile_status, refresh

pytestmark = [pytest.mark.server, pytest.mark.redis, pytest.mark.postgres]

REDIS_DB = 14  # preferred Redis database number of this module (see cluster.claimed_redis_db)
DIRECTIONS = [pytest.param(("wsgi", "asgi"), id="wsgi-to-asgi"), pytest.param(("asgi", "wsgi"), id="asgi-to-wsgi")]


@pytest.fixture(scope="module", params=["redis", "postgres"])
def mixed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_url: str
          ) -> Iterator[tuple[dict[str, ServerProcess], str]]:
    """{"wsgi": server, "asgi": server} on one PostgreSQL and one store; and the database URL."""
    require_asgi()
    with private_database(postgres_url) as pg:
        if request.param == "redis":
            redis_url = request.getfixturevalue("redis_url")
            with claimed_redis_db(redis_url, REDIS_DB) as store:
                yield from _start(tmp_path_factory, pg, store)
        else:
            yield from _start(tmp_path_factory, pg, pg)


def _start(tmp_path_factory: pytest.TempPathFactory, pg: str, store: str
           ) -> Iterator[tuple[dict[str, ServerProcess], str]]:
    env = cluster_env(database_url=pg, store_url=store)
    servers: dict[str, ServerProcess] = {}
    try:
        for flavour in ("wsgi", "asgi"):
            servers[flavour] = ServerProcess(instance=tmp_path_factory.mktemp(f"mixed-{flavour}"), env=env,
                                             flavour=flavour).start()
        yield servers, pg
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def user(mixed: tuple[dict[str, ServerProcess], str]) -> tuple[str, str]:
    name, password = "m" + secrets.token_hex(5), "mixed-" + secrets.token_urlsafe(12)
    add_users(mixed[1], {name: password})
    return name, password


def _pair(mixed: tuple[dict[str, ServerProcess], str], direction: tuple[str, str]) -> tuple[ServerProcess, ...]:
    return tuple(mixed[0][flavour] for flavour in direction)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_cookie_session_made_on_one_is_honoured_and_ended_by_the_other(
    mixed: Any, user: tuple[str, str], direction: tuple[str, str]
) -> None:
    one, other = _pair(mixed, direction)
    cookie = session_cookie(logged_in_session(one, *user))
    assert dashboard_status(other, cookie) == 200
    r = post_form(other, "/logout", cookie, {"csrf_token": page_csrf(one, cookie)})  # one's page, other's logout
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    assert dashboard_status(one, cookie) == 303  # the very next request, no waiting
    assert dashboard_status(other, cookie) == 303


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_token_issued_by_one_verifies_and_refreshes_on_the_other(
    mixed: Any, user: tuple[str, str], direction: tuple[str, str]
) -> None:
    one, other = _pair(mixed, direction)
    tokens = api_login(one, *user)
    assert profile_status(other, tokens["access_token"]) == 200
    rotated = refresh(other, tokens["refresh_token"])
    assert rotated.status_code == 200
    assert profile_status(one, rotated.json()["access_token"]) == 200
    assert refresh(one, tokens["refresh_token"]).status_code == 401  # spent on the other: reuse, family ended
    assert profile_status(other, rotated.json()["access_token"]) == 401


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_token_logout_on_one_is_refused_by_the_other_at_once(
    mixed: Any, user: tuple[str, str], direction: tuple[str, str]
) -> None:
    one, other = _pair(mixed, direction)
    tokens = api_login(other, *user)
    assert profile_status(one, tokens["access_token"]) == 200
    r = _api(one, "POST", "/api/logout", json={"refresh_token": tokens["refresh_token"]}, token=tokens["access_token"])
    assert r.status_code == 204
    assert profile_status(other, tokens["access_token"]) == 401
    assert refresh(other, tokens["refresh_token"]).status_code == 401


def test_cli_revocation_reaches_both(mixed: Any, user: tuple[str, str]) -> None:
    servers = mixed[0]
    cookies = {f: session_cookie(logged_in_session(s, *user)) for f, s in servers.items()}
    tokens = api_login(servers["asgi"], *user)
    result = servers["wsgi"].cli("sessions", "revoke", "--user", user[0])
    assert result.returncode == 0, result.stderr
    for server in servers.values():
        for cookie in cookies.values():
            assert dashboard_status(server, cookie) == 303
        assert profile_status(server, tokens["access_token"]) == 401


def test_every_server_of_the_pair_is_the_flavour_it_claims(mixed: Any) -> None:
    """The pair really is one Flask and one ASGI service (not two of a kind): each says so at start-up."""
    servers: dict[str, ServerProcess] = mixed[0]
    assert "(WSGI;" in servers["wsgi"].output_text()
    assert "(ASGI, gunicorn + uvicorn workers;" in servers["asgi"].output_text()

