"""DPoP on the ASGI adapter's own app: `RequireToken(dpop=True)` accepts key-bound tokens with their proof only,
a bound token is checked on every `RequireToken` route, and the refusals are the core's exact answers. Every
refusal's challenge names the scheme the client must use (RFC 9449 7.1, 7.2; RFC 6750 3.1), as on Flask
(tests/flask/test_jwt_dpop.py)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from asgiapp import BASE, add_user, call, client, make_app  # type: ignore[import-not-found]
from dpop_client import DPoPClient  # type: ignore[import-not-found]
from fastapi import Request

from sessionward.asgi import RequireToken
from sessionward.clock import ManualClock
from sessionward.tokens import Claims

ALGS = 'algs="ES256"'
BINDING = f'DPoP error="invalid_token", error_description="Invalid DPoP key binding", {ALGS}'
T0 = 1_800_000_000.0
JSON = {"Accept": "application/json"}


def dpop_app(tmp_path: Any, **extra: Any) -> Any:
    """`make_app` (proof algorithm ES256 only) plus `/bound-only`, a `RequireToken(dpop=True)` route."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    app = make_app(tmp_path, ManualClock(T0), SESSIONWARD_DPOP_ALGS="ES256", **extra)

    @app.get("/bound-only")
    async def bound_only(claims: Annotated[Claims, RequireToken(dpop=True)]) -> dict[str, str]:
        return {"sub": claims.sub}

    return app


def test_require_token_dpop_route_and_the_binding_everywhere(tmp_path) -> None:
    app = make_app(tmp_path, ManualClock(T0), SESSIONWARD_DPOP_ALGS="ES256")

    @app.get("/bound-only")
    async def bound_only(request: Request, claims: Annotated[Claims, RequireToken(dpop=True)]) -> dict[str, str]:
        return {"sub": claims.sub}

    @app.get("/any-token")
    async def any_token(request: Request, claims: Annotated[Claims, RequireToken()]) -> dict[str, str]:
        return {"sub": claims.sub}

    with client(app) as c:
        user = add_user(c)
        tokens = c.app.state.sessionward.token_service()  # type: ignore[attr-defined]
        key = DPoPClient()
        plain = call(c, tokens.issue, user.id, fresh=True).access_token
        bound = call(c, tokens.issue, user.id, fresh=True, dpop_jkt=key.jkt).access_token

        def dpop(path: str, token: str, who: DPoPClient = key) -> dict[str, str]:
            return {"Authorization": f"DPoP {token}",
                    "DPoP": who.proof("GET", BASE + path, access_token=token, now=T0)}

        r = c.get("/bound-only", headers={"Authorization": f"Bearer {plain}"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == BINDING  # unbound refused on dpop=True
        assert c.get("/any-token", headers={"Authorization": f"Bearer {plain}"}).status_code == 200
        assert c.get("/bound-only", headers=dpop("/bound-only", bound)).json() == {"sub": user.id}
        assert c.get("/any-token", headers=dpop("/any-token", bound)).status_code == 200
        for headers in ({"Authorization": f"Bearer {bound}"}, dpop("/any-token", bound, DPoPClient())):
            r = c.get("/any-token", headers=headers)  # the binding holds on a route without dpop=True too
            assert r.status_code == 401 and r.headers["www-authenticate"] == BINDING


@pytest.mark.parametrize(("mode", "plain_route", "dpop_route"), [
    ("allowed", f'Bearer realm="sessionward", DPoP {ALGS}', f"DPoP {ALGS}"),
    ("required", f"DPoP {ALGS}", f"DPoP {ALGS}"),
    ("off", 'Bearer realm="sessionward"', None),
])
def test_require_token_no_credentials_gets_the_accepted_schemes_without_error(
    tmp_path: Any, mode: str, plain_route: str, dpop_route: str | None
) -> None:
    """RFC 9449 7.1 / RFC 6750 3.1, as on Flask: 401 and a challenge with no error code, `DPoP algs="..."` where
    DPoP is required, both challenges where either scheme is accepted (RFC 9449 7.2), Bearer alone with DPoP off."""
    with client(dpop_app(tmp_path / mode, SESSIONWARD_DPOP=mode)) as c:
        for method, path, expected in (("GET", "/api/me", plain_route), ("GET", "/bound-only", dpop_route),
                                       ("POST", "/api/write", plain_route)):
            if expected is None:
                continue
            r = c.request(method, path, headers=JSON)
            assert r.status_code == 401 and r.headers["www-authenticate"] == expected, (path, r.headers)
            assert r.json()["error"]["code"] == "authorization_required"


def test_require_token_refusals_name_the_scheme_the_client_must_use(tmp_path: Any) -> None:
    """RFC 9449 7.1, as on Flask: a `DPoP`-scheme request, or one to a route that requires DPoP, is refused with a
    `DPoP` challenge carrying the RFC 6750 error and `algs`; a Bearer client elsewhere keeps its RFC 6750 answers."""
    with client(dpop_app(tmp_path)) as c:
        user = add_user(c)
        tokens = c.app.state.sessionward.token_service()  # type: ignore[attr-defined]
        key = DPoPClient()
        stale = call(c, tokens.issue, user.id, fresh=False, dpop_jkt=key.jkt).access_token

        def dpop(method: str, path: str, token: str) -> dict[str, str]:
            return {"Authorization": f"DPoP {token}",
                    "DPoP": key.proof(method, BASE + path, access_token=token, now=T0), **JSON}

        r = c.get("/api/me", headers={"Authorization": "DPoP abc.def.ghi", "DPoP": key.proof(
            "GET", BASE + "/api/me", access_token="abc.def.ghi", now=T0)})
        assert r.status_code == 401 and r.headers["www-authenticate"] == f'DPoP error="invalid_token", {ALGS}'
        r = c.get("/bound-only", headers={"Authorization": "Bearer abc.def.ghi"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == f'DPoP error="invalid_token", {ALGS}'
        r = c.get("/api/me", headers={"Authorization": "Bearer abc.def.ghi"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="sessionward", error="invalid_token"'
        r = c.post("/api/admin", headers=dpop("POST", "/api/admin", stale))
        assert r.status_code == 401 and r.headers["www-authenticate"] == (
            f'DPoP error="insufficient_user_authentication", error_description="A fresh login is required", {ALGS}'
        )
        r = c.get("/api/items", headers=dpop("GET", "/api/items", stale))
        assert r.status_code == 403 and r.headers["www-authenticate"] == (
            f'DPoP error="insufficient_scope", scope="items:read", {ALGS}'
        )
        r = c.get("/api/me", headers={"Authorization": "DPoP a b", **JSON})
        assert r.status_code == 400 and r.headers["www-authenticate"] == (
            f'DPoP error="invalid_request", error_description="Malformed DPoP Authorization header", {ALGS}'
        )
        assert r.json()["error"]["code"] == "invalid_request"


def test_require_token_under_dpop_required_refuses_bearer_with_the_dpop_challenge(tmp_path: Any) -> None:
    """`SESSIONWARD_DPOP=required`, as on Flask: a forged Bearer token is told to use DPoP, as a valid unbound one
    is."""
    with client(dpop_app(tmp_path, SESSIONWARD_DPOP="required")) as c:
        user = add_user(c)
        tokens = c.app.state.sessionward.token_service()  # type: ignore[attr-defined]
        plain = call(c, tokens.issue, user.id, fresh=True).access_token
        r = c.get("/api/me", headers={"Authorization": "Bearer abc.def.ghi"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == f'DPoP error="invalid_token", {ALGS}'
        r = c.get("/api/me", headers={"Authorization": f"Bearer {plain}"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == BINDING
