"""DPoP on the Flask adapter's own app: `jwt_required(dpop=True)` accepts key-bound tokens with their proof only,
a bound token is checked on every `jwt_required` route (also the optional and cookie ones), each proof is spent
once per request however often the token is verified, and the refusals are the core's exact answers. Every
refusal's challenge names the scheme the client must use (RFC 9449 7.1, 7.2; RFC 6750 3.1); the ASGI twins are in
tests/asgi/test_asgi_dpop.py."""

from __future__ import annotations

from typing import Any

import pytest
from dpop_client import DPoPClient  # type: ignore[import-not-found]
from flask import jsonify
from test_jwt import BASE, make_app  # type: ignore[import-not-found]

from sessionward.clock import ManualClock
from sessionward.flask import get_jwt_identity, jwt_required, state, token_service, verify_jwt_in_request

ALGS = 'algs="ES256 Ed25519 EdDSA"'
BINDING = f'DPoP error="invalid_token", error_description="Invalid DPoP key binding", {ALGS}'
T0 = 1_800_000_000.0


def dpop_app(tmp_path: Any, **config: Any) -> Any:
    """`make_app` plus `/bound-only`, a `jwt_required(dpop=True)` route."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    app = make_app(tmp_path, ManualClock(T0), **config)

    @app.get("/bound-only")
    @jwt_required(dpop=True)
    def bound_only() -> Any:
        return jsonify(sub=get_jwt_identity())

    return app


def test_jwt_required_dpop_route_and_the_binding_everywhere(tmp_path: Any) -> None:
    app = make_app(tmp_path, ManualClock(T0))

    @app.get("/bound-only")
    @jwt_required(dpop=True)
    def bound_only() -> Any:
        verify_jwt_in_request(dpop=True)  # a second check in the same request does not spend the proof again
        return jsonify(sub=get_jwt_identity())

    with app.app_context():
        user = state().users.create("alice", "correct horse battery staple")
        key = DPoPClient()
        plain = token_service().issue(user.id, fresh=True).access_token
        bound = token_service().issue(user.id, fresh=True, dpop_jkt=key.jkt).access_token
    c = app.test_client()

    def dpop(path: str, token: str, who: DPoPClient = key) -> dict[str, str]:
        return {"Authorization": f"DPoP {token}", "DPoP": who.proof("GET", BASE + path, access_token=token, now=T0)}

    r = c.get("/bound-only", base_url=BASE, headers={"Authorization": f"Bearer {plain}"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == BINDING
    assert c.get("/me", base_url=BASE, headers={"Authorization": f"Bearer {plain}"}).status_code == 200
    r = c.get("/bound-only", base_url=BASE, headers=dpop("/bound-only", bound))
    assert r.status_code == 200 and r.get_json() == {"sub": user.id}
    for path in ("/me", "/maybe"):
        assert c.get(path, base_url=BASE, headers=dpop(path, bound)).status_code == 200
        for headers in ({"Authorization": f"Bearer {bound}"}, dpop(path, bound, DPoPClient())):
            r = c.get(path, base_url=BASE, headers=headers)
            assert r.status_code == 401 and r.headers["WWW-Authenticate"] == BINDING


@pytest.mark.parametrize(("mode", "plain_route", "dpop_route"), [
    ("allowed", f'Bearer realm="sessionward", DPoP {ALGS}', f"DPoP {ALGS}"),
    ("required", f"DPoP {ALGS}", f"DPoP {ALGS}"),
    ("off", 'Bearer realm="sessionward"', None),
])
def test_jwt_required_no_credentials_gets_the_accepted_schemes_without_error(
    tmp_path: Any, mode: str, plain_route: str, dpop_route: str | None
) -> None:
    """RFC 9449 7.1 / RFC 6750 3.1: a request without credentials gets 401 and a challenge with no error code:
    `DPoP algs="..."` where DPoP is required (the deployment's `required`, the route's `dpop=True`), both
    challenges in one header where either scheme is accepted (RFC 9449 7.2), Bearer alone with DPoP off."""
    c = dpop_app(tmp_path / mode, SESSIONWARD_DPOP=mode).test_client()
    for path, expected in (("/me", plain_route), ("/bound-only", dpop_route), ("/spa", plain_route)):
        if expected is None:
            continue
        r = c.get(path, base_url=BASE, headers={"Accept": "application/json"})
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == expected, (path, r.headers)
        assert r.get_json()["error"]["code"] == "authorization_required"


def test_jwt_required_refusals_name_the_scheme_the_client_must_use(tmp_path: Any) -> None:
    """RFC 9449 7.1: a request made with the `DPoP` scheme, or to a route that requires DPoP, is refused with a
    `DPoP` challenge carrying the RFC 6750 error and `algs` (an expired or forged token, not fresh, a missing
    scope, a malformed header: 400 `invalid_request`); a Bearer client elsewhere keeps its RFC 6750 answers."""
    app = dpop_app(tmp_path)
    with app.app_context():
        user = state().users.create("alice", "correct horse battery staple")
        key = DPoPClient()
        stale = token_service().issue(user.id, fresh=False, dpop_jkt=key.jkt).access_token
    c = app.test_client()

    def dpop(method: str, path: str, token: str) -> dict[str, str]:
        return {"Authorization": f"DPoP {token}", "DPoP": key.proof(method, BASE + path, access_token=token, now=T0)}

    r = c.get("/me", base_url=BASE, headers={"Authorization": "DPoP abc.def.ghi", "DPoP": key.proof(
        "GET", BASE + "/me", access_token="abc.def.ghi", now=T0)})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == f'DPoP error="invalid_token", {ALGS}'
    r = c.get("/bound-only", base_url=BASE, headers={"Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == f'DPoP error="invalid_token", {ALGS}'
    r = c.get("/me", base_url=BASE, headers={"Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Bearer realm="sessionward", error="invalid_token"'
    r = c.post("/fresh", base_url=BASE, headers=dpop("POST", "/fresh", stale))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == (
        f'DPoP error="insufficient_user_authentication", error_description="A fresh login is required", {ALGS}'
    )
    r = c.get("/admin", base_url=BASE, headers=dpop("GET", "/admin", stale))
    assert r.status_code == 403
    assert r.headers["WWW-Authenticate"] == f'DPoP error="insufficient_scope", scope="admin", {ALGS}'
    r = c.get("/me", base_url=BASE, headers={"Authorization": "DPoP a b", "Accept": "application/json"})
    assert r.status_code == 400 and r.headers["WWW-Authenticate"] == (
        f'DPoP error="invalid_request", error_description="Malformed DPoP Authorization header", {ALGS}'
    )
    assert r.get_json()["error"]["code"] == "invalid_request"


def test_jwt_required_under_dpop_required_refuses_bearer_with_the_dpop_challenge(tmp_path: Any) -> None:
    """`SESSIONWARD_DPOP=required`: Bearer is no scheme this app accepts, so even a forged Bearer token is told to
    use DPoP (`DPoP error="invalid_token", algs=...`), as a valid unbound one is."""
    app = dpop_app(tmp_path, SESSIONWARD_DPOP="required")
    with app.app_context():
        user = state().users.create("alice", "correct horse battery staple")
        plain = token_service().issue(user.id, fresh=True).access_token
    c = app.test_client()
    r = c.get("/me", base_url=BASE, headers={"Authorization": "Bearer abc.def.ghi"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == f'DPoP error="invalid_token", {ALGS}'
    r = c.get("/me", base_url=BASE, headers={"Authorization": f"Bearer {plain}"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == BINDING


def test_two_dpop_headers_are_refused_even_when_each_is_a_valid_proof(tmp_path: Any) -> None:
    """RFC 9449 4.3 (1): not more than one DPoP header. A WSGI server joins repeated headers with commas
    (gunicorn, Werkzeug's test client), which no compact JWS contains: the joined value is no proof."""
    app = dpop_app(tmp_path)
    with app.app_context():
        user = state().users.create("alice", "correct horse battery staple")
        key = DPoPClient()
        bound = token_service().issue(user.id, fresh=True, dpop_jkt=key.jkt).access_token
    proofs = [key.proof("GET", BASE + "/bound-only", access_token=bound, now=T0) for _ in range(2)]
    c = app.test_client()
    headers = [("Authorization", f"DPoP {bound}"), ("DPoP", proofs[0]), ("DPoP", proofs[1])]
    r = c.get("/bound-only", base_url=BASE, headers=headers)
    assert r.status_code == 401 and 'error="invalid_dpop_proof"' in r.headers["WWW-Authenticate"]
    single = [("Authorization", f"DPoP {bound}"), ("DPoP", proofs[1])]
    assert c.get("/bound-only", base_url=BASE, headers=single).status_code == 200  # each one alone passes
