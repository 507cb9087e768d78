"""DPoP on the Flask adapter's own app: `jwt_required(dpop=True)` accepts key-bound tokens with their proof only,
a bound token is checked on every `jwt_required` route (also the optional and cookie ones), each proof is spent
once per request however often the token is verified, and the refusals are the core's exact answers."""

from __future__ import annotations

from typing import Any

from dpop_client import DPoPClient  # type: ignore[import-not-found]
from flask import jsonify
from test_jwt import BASE, make_app  # type: ignore[import-not-found]

from sessionward.clock import ManualClock
from sessionward.flask import get_jwt_identity, jwt_required, state, token_service, verify_jwt_in_request

BINDING = 'DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256 Ed25519 EdDSA"'
T0 = 1_800_000_000.0


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
