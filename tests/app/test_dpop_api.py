"""DPoP (RFC 9449) on the reference service, through both adapters (Flask test client, Starlette TestClient) and
the protocol client of tests/dpop_client.py, which holds a real key. Every refusal is checked byte for byte
(the `WWW-Authenticate: DPoP ...` challenge with `algs=`), the Flask and the ASGI answers are compared, and the
plain Bearer client keeps working under the reference service's `allowed` policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from asgiweb import BASE, PASSWORD, AsgiDriver, FlaskDriver, both, summary  # type: ignore[import-not-found]
from dpop_client import DPoPClient  # type: ignore[import-not-found]

T0 = 1_800_000_000.0  # the drivers' ManualClock start
ALGS = 'algs="ES256 Ed25519 EdDSA"'
BOTH = f'Bearer realm="sessionward", DPoP {ALGS}'
DPOP_ONLY = f"DPoP {ALGS}"
BAD_TOKEN = f'DPoP error="invalid_token", {ALGS}'
MALFORMED = f'DPoP error="invalid_request", error_description="Malformed DPoP Authorization header", {ALGS}'
NO_PROOF = {"error": "invalid_dpop_proof", "error_description": "DPoP proof required"}
BINDING = f'DPoP error="invalid_token", error_description="Invalid DPoP key binding", {ALGS}'
BAD_PROOF = f'DPoP error="invalid_dpop_proof", error_description="Invalid DPoP proof", {ALGS}'
NONCE = f'DPoP error="use_dpop_nonce", error_description="Server requires nonce in DPoP proof", {ALGS}'
Driver = FlaskDriver | AsgiDriver


@pytest.fixture(scope="module")
def pair_of_drivers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlaskDriver, AsgiDriver]]:
    flask, asgi = both(tmp_path_factory.mktemp("dpop"))
    for d in (flask, asgi):
        d.add_user("alice")
    yield flask, asgi
    asgi.close()


@pytest.fixture(params=["flask", "asgi"])
def d(request: pytest.FixtureRequest, pair_of_drivers: tuple[FlaskDriver, AsgiDriver]) -> Driver:
    driver = pair_of_drivers[0] if request.param == "flask" else pair_of_drivers[1]
    driver.forget_cookies()
    return driver


def url(path: str) -> str:
    return BASE + path


def dpop_login(d: Driver, client: DPoPClient, **proof_args: Any) -> Any:
    return d.send("POST", "/api/login", json={"username": "alice", "password": PASSWORD},
                  headers={"DPoP": client.proof("POST", url("/api/login"), now=T0, **proof_args)})


def get(d: Driver, path: str, client: DPoPClient | None, token: str, *, scheme: str = "DPoP",
        proof: str | None = None) -> Any:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is None and client is not None:
        proof = client.proof("GET", url(path), access_token=token, now=T0)
    if proof is not None:
        headers["DPoP"] = proof
    return d.send("GET", path, headers=headers)


def tokens(d: Driver, client: DPoPClient) -> dict[str, Any]:
    r = dpop_login(d, client)
    assert r.status == 200, r.body
    return r.json()  # type: ignore[no-any-return]


# -- binding at login and on use ---------------------------------------------------------------------------

def test_dpop_login_binds_the_tokens_to_the_clients_key(d: Driver) -> None:
    client = DPoPClient()
    body = tokens(d, client)
    assert body["token_type"] == "DPoP"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": client.jkt}
    r = get(d, "/api/profile", client, body["access_token"])
    assert r.status == 200 and r.json() == {"logged_in_as": "alice"}


def test_plain_bearer_client_unchanged_under_allowed(d: Driver) -> None:
    r = d.send("POST", "/api/login", json={"username": "alice", "password": PASSWORD})
    body = r.json()
    assert r.status == 200 and body["token_type"] == "Bearer"
    assert "cnf" not in jwt.decode(body["access_token"], options={"verify_signature": False})
    assert get(d, "/api/profile", None, body["access_token"], scheme="Bearer").status == 200
    r = d.send("POST", "/api/refresh", json={"refresh_token": body["refresh_token"]})
    assert r.status == 200 and r.json()["token_type"] == "Bearer"


def test_dpop_stolen_access_token_as_bearer_is_refused(d: Driver) -> None:
    body = tokens(d, DPoPClient())
    r = get(d, "/api/profile", None, body["access_token"], scheme="Bearer")
    assert r.status == 401 and r.header("www-authenticate") == BINDING


def test_dpop_stolen_access_token_without_proof_is_refused(d: Driver) -> None:
    body = tokens(d, DPoPClient())
    r = get(d, "/api/profile", None, body["access_token"])
    assert r.status == 401 and r.header("www-authenticate") == BINDING


def test_dpop_proof_from_another_key_is_refused(d: Driver) -> None:
    body = tokens(d, DPoPClient())
    r = get(d, "/api/profile", DPoPClient(), body["access_token"])
    assert r.status == 401 and r.header("www-authenticate") == BINDING


def test_dpop_unbound_token_with_dpop_scheme_is_refused(d: Driver) -> None:
    body = d.send("POST", "/api/login", json={"username": "alice", "password": PASSWORD}).json()
    r = get(d, "/api/profile", DPoPClient(), body["access_token"])
    assert r.status == 401 and r.header("www-authenticate") == BINDING


def test_dpop_replayed_proof_is_refused(d: Driver) -> None:
    client = DPoPClient()
    token = tokens(d, client)["access_token"]
    proof = client.proof("GET", url("/api/profile"), access_token=token, now=T0)
    assert get(d, "/api/profile", client, token, proof=proof).status == 200
    r = get(d, "/api/profile", client, token, proof=proof)
    assert r.status == 401 and r.header("www-authenticate") == BAD_PROOF


@pytest.mark.parametrize("override", [
    {"htm": "POST"}, {"htu": url("/api/sessions")}, {"htu": "https://evil.example/api/profile"},
    {"iat": int(T0 - 120)}, {"iat": int(T0 + 120)}, {"ath": "A" * 43}, {"ath": ...}, {"jti": ...},
], ids=["htm", "htu-path", "htu-host", "stale-iat", "future-iat", "wrong-ath", "no-ath", "no-jti"])
def test_dpop_proof_with_wrong_claims_is_refused(d: Driver, override: dict[str, Any]) -> None:
    client = DPoPClient()
    token = tokens(d, client)["access_token"]
    r = get(d, "/api/profile", client, token,
            proof=client.proof("GET", url("/api/profile"), access_token=token, now=T0, **override))
    assert r.status == 401 and r.header("www-authenticate") == BAD_PROOF


def test_dpop_htu_compared_after_normalisation(d: Driver) -> None:
    client = DPoPClient()
    token = tokens(d, client)["access_token"]
    proof = client.proof("GET", url("/api/profile"), access_token=token, now=T0,
                         htu="HTTPS://LOCALHOST:443/api/%70rofile?q=1")
    assert get(d, "/api/profile", client, token, proof=proof).status == 200


def test_dpop_no_credentials_gets_both_challenges_without_error(d: Driver) -> None:
    """RFC 9449 7.1, 7.2 / RFC 6750 3.1: under `allowed` either scheme is accepted, so a request without
    credentials is told both (one header), and no error code (it is no failed authentication)."""
    r = d.send("GET", "/api/profile")
    assert r.status == 401 and r.header("www-authenticate") == BOTH
    assert r.json()["error"]["code"] == "authorization_required"


def test_dpop_scheme_refusals_name_the_dpop_scheme(d: Driver) -> None:
    """A forged or expired token sent with the `DPoP` scheme: 401 `DPoP error="invalid_token", algs=...` (RFC 9449
    7.1), not a Bearer challenge; a malformed `Authorization: DPoP` header: 400 `invalid_request` (RFC 6750 3.1)."""
    r = get(d, "/api/profile", DPoPClient(), "abc.def.ghi")
    assert r.status == 401 and r.header("www-authenticate") == BAD_TOKEN
    assert r.json()["error"]["code"] == "invalid_token"
    r = d.send("GET", "/api/profile", headers={"Authorization": "DPoP a b"})
    assert r.status == 400 and r.header("www-authenticate") == MALFORMED
    r = get(d, "/api/profile", None, "abc.def.ghi", scheme="Bearer")  # a Bearer client: RFC 6750 as before
    assert r.status == 401 and r.header("www-authenticate") == 'Bearer realm="sessionward", error="invalid_token"'


def test_dpop_login_with_a_bad_proof_is_refused_before_the_password(d: Driver) -> None:
    r = dpop_login(d, DPoPClient(), htu=url("/api/refresh"))
    assert r.status == 400
    assert r.json() == {"error": "invalid_dpop_proof", "error_description": "Invalid DPoP proof"}


# -- refresh -----------------------------------------------------------------------------------------------

def refresh(d: Driver, refresh_token: str, client: DPoPClient | None) -> Any:
    headers = {} if client is None else {"DPoP": client.proof("POST", url("/api/refresh"), now=T0)}
    return d.send("POST", "/api/refresh", json={"refresh_token": refresh_token}, headers=headers)


def test_dpop_stolen_refresh_token_without_key_is_refused_and_the_family_lives(d: Driver) -> None:
    client = DPoPClient()
    body = tokens(d, client)
    for thief in (None, DPoPClient()):  # the Bearer downgrade, another key
        r = refresh(d, body["refresh_token"], thief)
        assert r.status == 400
        assert r.json() == {"error": "invalid_grant", "error_description": "Invalid DPoP key binding"}
    r = refresh(d, body["refresh_token"], client)  # nothing was spent: the owner refreshes as usual
    assert r.status == 200 and r.json()["token_type"] == "DPoP"
    new = r.json()["access_token"]
    assert jwt.decode(new, options={"verify_signature": False})["cnf"] == {"jkt": client.jkt}
    assert get(d, "/api/profile", None, new, scheme="Bearer").header("www-authenticate") == BINDING
    assert get(d, "/api/profile", client, new).status == 200


def test_dpop_refresh_of_a_bearer_family_with_a_proof_binds_it(d: Driver) -> None:
    body = d.send("POST", "/api/login", json={"username": "alice", "password": PASSWORD}).json()
    client = DPoPClient()
    r = refresh(d, body["refresh_token"], client)
    assert r.status == 200 and r.json()["token_type"] == "DPoP"
    assert refresh(d, r.json()["refresh_token"], None).status == 400  # no way back to Bearer


def test_dpop_sessions_list_shows_key_bound_families(d: Driver) -> None:
    client = DPoPClient()
    token = tokens(d, client)["access_token"]
    r = get(d, "/api/sessions", client, token)
    assert r.status == 200
    current = next(row for row in r.json()["sessions"] if row["current"])
    assert current["dpop_bound"] is True
    assert any(row["dpop_bound"] is False for row in r.json()["sessions"])


def test_dpop_answers_are_equal_on_flask_and_asgi(pair_of_drivers: tuple[FlaskDriver, AsgiDriver]) -> None:
    out = []
    for drv in pair_of_drivers:
        client = DPoPClient()
        token = tokens(drv, client)["access_token"]
        proof = client.proof("GET", url("/api/profile"), access_token=token, now=T0)
        seq = [get(drv, "/api/profile", client, token, proof=proof),
               get(drv, "/api/profile", client, token, proof=proof),
               get(drv, "/api/profile", None, token, scheme="Bearer"), get(drv, "/api/profile", DPoPClient(), token),
               dpop_login(drv, client, htm="GET"), drv.send("GET", "/api/profile"),
               get(drv, "/api/profile", client, "abc.def.ghi"),
               drv.send("GET", "/api/profile", headers={"Authorization": "DPoP a b"})]
        out.append([summary(a) for a in seq])
    assert out[0] == out[1]


# -- SESSIONWARD_DPOP=required ---------------------------------------------------------------------------------

@pytest.fixture(params=["flask", "asgi"])
def rd(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[Driver, Any]]:
    """A driver of the service under `SESSIONWARD_DPOP=required`, and alice."""
    flask, asgi = both(tmp_path, SESSIONWARD_DPOP="required")
    users = {"flask": flask.add_user("alice"), "asgi": asgi.add_user("alice")}
    yield (flask if request.param == "flask" else asgi), users[request.param]
    asgi.close()


def families(d: Driver, user_id: str) -> int:
    """How many live sessions and token families the store holds for the user."""
    if isinstance(d, FlaskDriver):
        with d.app.app_context():
            from sessionward.flask import state

            return len(state().sessions.list_for_user(user_id))
    sessions = d.app.state.sessionward.sessions
    return len(d.client.portal.call(lambda: sessions.list_for_user(user_id)))  # type: ignore[union-attr]


def test_dpop_required_no_credentials_gets_the_dpop_challenge_only(rd: tuple[Driver, Any]) -> None:
    """RFC 9449 7.1 (Figure: 401 to a request without authentication): `DPoP algs="..."`, no error code; a Bearer
    token is no scheme this service accepts, so a forged one is told to use DPoP too."""
    d, _ = rd
    r = d.send("GET", "/api/profile")
    assert r.status == 401 and r.header("www-authenticate") == DPOP_ONLY
    r = get(d, "/api/profile", None, "abc.def.ghi", scheme="Bearer")
    assert r.status == 401 and r.header("www-authenticate") == BAD_TOKEN


def test_dpop_required_login_without_proof_is_refused_and_costs_nothing(rd: tuple[Driver, Any]) -> None:
    """RFC 9449 5 / RFC 6749 5.2: a token request without the `DPoP` proof DPoP requires is a 400
    `invalid_dpop_proof` (OAuth JSON shape), checked before the password: no token, no session or family in the
    store, no throttle attempt (more refusals than the account's free failures, and the owner still logs in)."""
    d, alice = rd
    r = d.send("POST", "/api/login", json={"username": "alice", "password": PASSWORD})
    assert r.status == 400 and r.json() == NO_PROOF
    assert r.header("cache-control") == "no-store" and r.header("www-authenticate") is None
    assert families(d, alice.id) == 0
    for _ in range(8):  # SESSIONWARD_THROTTLE_ACCOUNT_FREE is 5: counted, these would start a backoff
        r = d.send("POST", "/api/login", json={"username": "alice", "password": "wrong password"})
        assert r.status == 400 and r.json() == NO_PROOF
    assert families(d, alice.id) == 0
    r = dpop_login(d, DPoPClient())
    assert r.status == 200 and r.json()["token_type"] == "DPoP"
    assert families(d, alice.id) == 1


def test_dpop_required_refresh_without_proof_is_refused_and_spends_nothing(rd: tuple[Driver, Any]) -> None:
    """RFC 9449 5: the same 400 `invalid_dpop_proof` at /api/refresh, before the refresh token is looked at: the
    family lives on and refreshes with its key."""
    d, alice = rd
    client = DPoPClient()
    body = tokens(d, client)
    r = refresh(d, body["refresh_token"], None)
    assert r.status == 400 and r.json() == NO_PROOF
    assert families(d, alice.id) == 1
    r = refresh(d, body["refresh_token"], client)
    assert r.status == 200 and r.json()["token_type"] == "DPoP"


def test_dpop_required_answers_are_equal_on_flask_and_asgi(tmp_path: Any) -> None:
    flask, asgi = both(tmp_path, SESSIONWARD_DPOP="required")
    try:
        out = []
        for drv in (flask, asgi):
            drv.add_user("alice")
            client = DPoPClient()
            token = tokens(drv, client)["access_token"]
            seq = [drv.send("GET", "/api/profile"), get(drv, "/api/profile", None, "abc.def.ghi", scheme="Bearer"),
                   get(drv, "/api/profile", None, token, scheme="Bearer"),
                   drv.send("GET", "/api/profile", headers={"Authorization": "DPoP a b"}),
                   drv.send("POST", "/api/login", json={"username": "alice", "password": PASSWORD}),
                   drv.send("POST", "/api/refresh", json={"refresh_token": "x.y"})]
            out.append([summary(a) for a in seq])
        assert out[0] == out[1]
    finally:
        asgi.close()


# -- server nonces ------------------------------------------------------------------------------------------

@pytest.fixture(params=["flask", "asgi"])
def nd(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[Driver, Any]]:
    flask, asgi = both(tmp_path, SESSIONWARD_DPOP_NONCE="1")
    for drv in (flask, asgi):
        drv.add_user("alice")
    if request.param == "flask":
        with flask.app.app_context():
            from sessionward.flask import state

            clock = state().clock
        yield flask, clock
    else:
        yield asgi, asgi.app.state.sessionward.clock
    asgi.close()


def test_dpop_nonce_missing_or_expired_is_refused_with_a_fresh_one(nd: tuple[Driver, Any]) -> None:
    d, clock = nd
    client = DPoPClient()
    r = dpop_login(d, client)
    assert r.status == 400 and r.json()["error"] == "use_dpop_nonce" and r.header("dpop-nonce")
    assert client.observe({"DPoP-Nonce": r.header("dpop-nonce")})
    r = dpop_login(d, client)
    assert r.status == 200, r.body
    token = r.json()["access_token"]
    assert get(d, "/api/profile", client, token).status == 200
    clock.advance(301)  # past SESSIONWARD_DPOP_NONCE_LIFETIME
    r = d.send("GET", "/api/profile", headers={"Authorization": f"DPoP {token}", "DPoP": client.proof(
        "GET", url("/api/profile"), access_token=token, now=T0 + 301)})
    assert r.status == 401 and r.header("www-authenticate") == NONCE
    assert client.observe({"DPoP-Nonce": r.header("dpop-nonce")})
    r = d.send("GET", "/api/profile", headers={"Authorization": f"DPoP {token}", "DPoP": client.proof(
        "GET", url("/api/profile"), access_token=token, now=T0 + 301)})
    assert r.status == 200


# -- fail closed ---------------------------------------------------------------------------------------------

@pytest.fixture
def private_redis() -> Iterator[Any]:
    from _services import missing_service, start_redis_server  # type: ignore[import-not-found]

    try:
        server = start_redis_server()
    except RuntimeError as exc:
        missing_service(str(exc))
    yield server
    server.cleanup()


def test_dpop_store_down_means_503_never_an_unchecked_proof(tmp_path: Any, private_redis: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The replay check is a store write: with the store down a proof cannot be spent, so nothing passes."""
    import time

    from sessionward.app import create_app
    from sessionward.clock import SystemClock
    from sessionward.flask import state

    monkeypatch.setenv("SESSIONWARD_STORE_URL", private_redis.url)
    app = create_app(tmp_path / "inst", clock=SystemClock())
    with app.app_context():
        state().users.create("alice", PASSWORD)
    http = app.test_client()
    client = DPoPClient()
    login_url = url("/api/login")
    r = http.post("/api/login", base_url=BASE, json={"username": "alice", "password": PASSWORD},
                  headers={"DPoP": client.proof("POST", login_url)})
    assert r.status_code == 200
    token = r.get_json()["access_token"]
    private_redis.stop()
    r = http.post("/api/login", base_url=BASE, json={"username": "alice", "password": PASSWORD},
                  headers={"DPoP": client.proof("POST", login_url)})  # use_once comes before the password
    assert r.status_code == 503 and r.headers["Retry-After"].isdigit()
    r = http.get("/api/profile", base_url=BASE, headers={
        "Authorization": f"DPoP {token}", "DPoP": client.proof("GET", url("/api/profile"), access_token=token,
                                                              now=time.time())})
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "store_unavailable"


@pytest.mark.parametrize("trusted", [1, 0])
def test_dpop_htu_scheme_and_host_behind_trusted_proxies_only(tmp_path: Any, trusted: int) -> None:
    """Behind `SESSIONWARD_TRUSTED_PROXIES` the htu's scheme and host are the forwarded ones (the URL the client
    used at the proxy); without it, forwarded headers are ignored and a proof for that URL is refused."""
    flask, asgi = both(tmp_path, SESSIONWARD_TRUSTED_PROXIES=trusted)
    try:
        for drv in (flask, asgi):
            drv.add_user("alice")
            client = DPoPClient()
            forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example",
                         "X-Forwarded-For": "192.0.2.9"}
            r = drv.send("POST", "/api/login", json={"username": "alice", "password": PASSWORD}, headers={
                **forwarded, "DPoP": client.proof("POST", "https://api.example/api/login", now=T0)})
            if not trusted:
                assert r.status == 400 and r.json()["error"] == "invalid_dpop_proof"
                continue
            assert r.status == 200, r.body
            token = r.json()["access_token"]
            r = drv.send("GET", "/api/profile", headers={
                **forwarded, "Authorization": f"DPoP {token}",
                "DPoP": client.proof("GET", "https://api.example/api/profile", access_token=token, now=T0)})
            assert r.status == 200
            # the backend's own URL is not the htu
            r = drv.send("GET", "/api/profile", headers={
                **forwarded, "Authorization": f"DPoP {token}",
                "DPoP": client.proof("GET", url("/api/profile"), access_token=token, now=T0)})
            assert r.status == 401 and r.header("www-authenticate") == BAD_PROOF
    finally:
        asgi.close()
