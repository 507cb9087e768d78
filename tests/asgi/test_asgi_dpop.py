"""DPoP on the ASGI adapter's own app: `RequireToken(dpop=True)` accepts key-bound tokens with their proof only,
a bound token is checked on every `RequireToken` route, and the refusals are the core's exact answers."""

from __future__ import annotations

from typing import Annotated

from asgiapp import BASE, add_user, call, client, make_app  # type: ignore[import-not-found]
from dpop_client import DPoPClient  # type: ignore[import-not-found]
from fastapi import Request

from sessionward.asgi import RequireToken
from sessionward.clock import ManualClock
from sessionward.tokens import Claims

BINDING = 'DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256"'
T0 = 1_800_000_000.0


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
