"""The JSON API of the reference service on ASGI: the very routes, statuses, bodies and errors of `api.py`
(described by the same OpenAPI document), built only from the public adapter: bearer tokens through
`RequireToken`, so FastAPI knows each route's security too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from ..asgi import RequireToken, context, csrf_exempt, get_user, state
from ..asgi.errors import JSONResponse
from ..asgi.tokens import dpop_request_url
from ..bearer import FreshTokenRequired
from ..dpop import DPoPError, DPoPProof, check_refresh_binding, token_jkt
from ..exceptions import InvalidCredentials, NotFound, StoreUnavailable, TokenError
from ..ids import looks_like_public_id
from ..tokens import Claims, TokenPair
from ..web.dpop import token_endpoint_proof
from .common import JWKS_MAX_AGE, WrongPassword, api_session_rows, is_json_mimetype, parse_json
from .openapi import openapi_document

__all__ = ["json_body", "router"]

router = APIRouter(include_in_schema=False)
Token = Annotated[Claims, RequireToken()]
FreshToken = Annotated[Claims, RequireToken(fresh=True)]


async def json_body(request: Request, fields: Mapping[str, bool], *, optional_body: bool = False) -> dict[str, str]:
    """The request's JSON object with exactly these string `fields` (name -> required): 415 for another content
    type, 400 `malformed_json`, 422 as in `common.string_fields`; 413 came from the middleware already."""
    headers = request.headers
    if optional_body and headers.get("content-length", "0") in ("", "0") and not headers.get("transfer-encoding"):
        return {}
    mimetype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not is_json_mimetype(mimetype):
        raise HTTPException(415, detail="Send the body as application/json.")
    return parse_json(await request.body(), fields, optional_body=optional_body)


def _client(request: Request) -> tuple[str, str]:
    return request.headers.get("user-agent", ""), request.client.host if request.client else ""


def _pair_response(request: Request, pair: TokenPair) -> Response:
    context(request).authenticated = True  # Cache-Control: no-store (RFC 6749 5.1)
    return JSONResponse(pair.as_dict())


def _no_content(request: Request) -> Response:
    context(request).authenticated = True
    return Response(status_code=204)


def dpop_token_endpoint_error(exc: DPoPError) -> Response:
    """A DPoP refusal at the token endpoint: 400 `{"error", "error_description"}` (RFC 9449 5, 8), as on Flask."""
    return JSONResponse(exc.token_endpoint_body(), status_code=exc.token_endpoint_status,
                        headers=exc.token_endpoint_headers())


async def _dpop_proof(request: Request) -> DPoPProof | None:
    """The checked and spent DPoP proof of a token request, or None (a plain Bearer client)."""
    st = state(request)
    verifier = st.dpop
    now = st.clock.now()
    proof = token_endpoint_proof(verifier, method=request.method, url=dpop_request_url(request),
                                 proofs=request.headers.getlist("dpop"), now=now)
    if proof is not None:
        if not await st.store.use_once(proof.replay_key, until=proof.replay_until, now=now):
            raise verifier.replayed(proof)
        context(request).dpop_nonce = verifier.nonce_to_send(proof, now=now)
    return proof


@router.post("/api/login")
@csrf_exempt
async def login(request: Request) -> Response:
    body = await json_body(request, {"username": True, "password": True})
    user_agent, ip = _client(request)
    st = state(request)
    try:
        proof = await _dpop_proof(request)  # before the password: a refused proof costs no attempt
    except DPoPError as exc:
        # RFC 9449 5 / RFC 6749 5.2: 400 `invalid_dpop_proof` for a missing (DPoP required), invalid or replayed
        # proof, `use_dpop_nonce` (RFC 9449 8); no token issued, no session created, no throttle attempt spent
        return dpop_token_endpoint_error(exc)
    user = await st.authenticator.authenticate(body["username"], body["password"], ip=ip)  # 401 / 429
    pair = await st.token_service().issue(user.id, fresh=True, user_agent=user_agent, ip=ip,
                                          dpop_jkt=None if proof is None else proof.jkt)
    return _pair_response(request, pair)


@router.post("/api/refresh")
@csrf_exempt
async def refresh(request: Request) -> Response:
    body = await json_body(request, {"refresh_token": True})
    user_agent, ip = _client(request)
    st = state(request)
    tokens = st.token_service()
    try:
        proof = await _dpop_proof(request)

        def bind(bound_jkt: str | None) -> str | None:
            check_refresh_binding(st.dpop, bound_jkt=bound_jkt, proof=proof)  # no downgrade to Bearer
            return None if proof is None else proof.jkt

        pair = await tokens.refresh(body["refresh_token"], user_agent=user_agent, ip=ip, bind=bind)  # 401; reuse
    except DPoPError as exc:
        return dpop_token_endpoint_error(exc)
    # The user from the pair itself (T8: the race's winner gets its answer though a concurrent reuse ended the family)
    user = await st.users.get(pair.user_id)
    if user is None or user.disabled:
        await tokens.revoke(pair.family_id)
        raise TokenError("user gone or disabled")
    return _pair_response(request, pair)


@router.get("/api/profile")
async def profile(request: Request, claims: Token) -> Response:
    user = await get_user(request)
    assert user is not None  # RequireToken refuses a token whose user is gone or disabled
    return JSONResponse({"logged_in_as": user.username})


@router.post("/api/logout")
async def logout(request: Request, claims: Token) -> Response:
    body = await json_body(request, {"refresh_token": False}, optional_body=True)
    st = state(request)
    tokens = st.token_service()
    await tokens.revoke(claims)  # the family, and this access token's jti until it would expire
    family_id = body.get("refresh_token", "").split(".", 1)[0]
    if family_id and family_id != claims.sid and looks_like_public_id(family_id):
        record = await st.store.get(family_id, now=st.clock.now())
        if record is not None and record.kind == "token" and record.user_id == claims.sub:
            await tokens.revoke(family_id)  # only ever a family of the same user
    return _no_content(request)


@router.post("/api/logout-all")
async def logout_all(request: Request, claims: Token) -> Response:
    await state(request).token_service().revoke_all(claims.sub)  # every token, family and cookie session
    return _no_content(request)


@router.get("/api/sessions")
async def sessions(request: Request, claims: Token) -> Response:
    records = await state(request).sessions.list_for_user(claims.sub)
    return JSONResponse({"sessions": api_session_rows(records, claims.sid)})


@router.delete("/api/sessions/{session_id}")
async def end_session(request: Request, session_id: str, claims: Token) -> Response:
    st = state(request)
    if session_id == claims.sid:
        await st.token_service().revoke(claims)  # ending one's own family is a logout: deny this jti too
        return _no_content(request)
    if not claims.fresh:  # C14: before the lookup, so a stale token learns nothing about which ids exist
        raise FreshTokenRequired()
    if not looks_like_public_id(session_id) or not await st.sessions.revoke(claims.sub, session_id):
        raise NotFound("No such session.")  # not theirs looks exactly like not there
    return _no_content(request)


@router.post("/api/password")
async def change_password(request: Request, claims: FreshToken) -> Response:
    body = await json_body(request, {"current_password": True, "new_password": True})
    user = await get_user(request)
    assert user is not None
    st = state(request)
    user_agent, ip = _client(request)
    try:
        # throttled and logged like a login (A7)
        await st.authenticator.authenticate(user.username, body["current_password"], ip=ip, purpose="password_change")
    except InvalidCredentials:
        raise WrongPassword() from None
    await st.users.set_password(user.id, body["new_password"])  # 422 weak_password
    tokens = st.token_service()
    await tokens.revoke_all(user.id)  # every other token family and cookie session ends (C6)
    jkt = token_jkt(claims.extra)  # a key-bound client stays bound to its key
    return _pair_response(request, await tokens.issue(user.id, fresh=True, user_agent=user_agent, ip=ip,
                                                      dpop_jkt=jkt))


@router.get("/api/openapi.json")
async def openapi() -> Response:
    return JSONResponse(openapi_document())


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> Response:
    response = JSONResponse(await state(request).token_service().jwks())
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return response


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    """A minimal answer for load balancers (status only); the details are on the management listener."""
    st = state(request)
    healthy = True
    for ping in (st.store.ping, st.users.ping):
        try:
            await ping()
        except StoreUnavailable:
            healthy = False
    response = JSONResponse({"status": "ok" if healthy else "unavailable"}, status_code=200 if healthy else 503)
    if not healthy:
        response.headers["Retry-After"] = "5"
    return response
