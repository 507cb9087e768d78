"""The JSON API of the reference service: the lab's Part 2 (Flask-JWT-Extended) done right.

JSON in, JSON out, described by the OpenAPI 3.1 document at `/api/openapi.json` (see `openapi.py`). Every
error has one shape, `{"error": {"code", "message"}}`: 400 malformed JSON or Authorization header, 401 no or
bad token (`WWW-Authenticate: Bearer ...`, RFC 6750), 403 valid token but not allowed, 404, 413 body over
`MAX_CONTENT_LENGTH`, 415 not JSON, 422 wrong types, missing or unknown fields, 429 throttled (+ Retry-After),
503 store down (+ Retry-After). Never a 500 for anything a client sends.

Views authenticate with bearer tokens only (never a cookie), so they are exempt from the cookie-session CSRF
check: a browser never attaches an Authorization header on its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import UnsupportedMediaType

from ..dpop import DPoPError, DPoPProof, check_refresh_binding, token_jkt
from ..exceptions import InvalidCredentials, NotFound, TokenError
from ..flask import csrf_exempt, get_jwt_claims, get_user, jwt_required, request_state, state, token_service
from ..flask.jwt import FreshTokenRequired, dpop_request_url, dpop_token_endpoint_error
from ..ids import looks_like_public_id
from ..tokens import TokenPair
from ..web.dpop import token_endpoint_proof
from .common import (
    JWKS_MAX_AGE,
    MalformedJSON,
    WrongPassword,
    api_session_rows,
    is_json_mimetype,
    parse_json,
)
from .openapi import openapi_document

__all__ = ["MalformedJSON", "WrongPassword", "bp", "init_app", "json_body"]

bp = Blueprint("api", __name__, url_prefix="/api")
wellknown = Blueprint("wellknown", __name__)

# -- request parsing ---------------------------------------------------------------------------

def _is_json() -> bool:
    return is_json_mimetype(request.mimetype)


def json_body(fields: Mapping[str, bool], *, optional_body: bool = False) -> dict[str, str]:
    """The request's JSON object with exactly these string `fields` (name -> required). Raises 415
    (`UnsupportedMediaType`) for a non-JSON content type, 413 from `MAX_CONTENT_LENGTH`, `MalformedJSON` (400)
    and `ValidationError` (422: not an object, missing, unknown or non-string fields, text refused by
    `text.check_text`). With `optional_body`,
    an empty body counts as `{}`."""
    if optional_body and not request.content_length and not request.headers.get("Transfer-Encoding"):
        return {}
    if not _is_json():
        raise UnsupportedMediaType(description="Send the body as application/json.")
    raw = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH, before anything is parsed
    return parse_json(raw, fields, optional_body=optional_body)


def _client() -> tuple[str, str]:
    return request.headers.get("User-Agent", ""), request.remote_addr or ""  # the token service cuts them


def _pair_response(pair: TokenPair) -> Response:
    request_state().authenticated = True  # Cache-Control: no-store (RFC 6749 5.1)
    return jsonify(pair.as_dict())


def _no_content() -> Response:
    request_state().authenticated = True
    return Response(status=204)


def _dpop_proof() -> DPoPProof | None:
    """The checked and spent DPoP proof of a token request (RFC 9449 5), or None (a plain Bearer client)."""
    st = state()
    verifier = st.dpop
    if verifier is None:
        return None
    now = st.clock.now()
    proof = token_endpoint_proof(verifier, method=request.method, url=dpop_request_url(),
                                 proofs=request.headers.getlist("DPoP"), now=now)
    if proof is not None:
        if not st.store.use_once(proof.replay_key, until=proof.replay_until, now=now):
            raise verifier.replayed(proof)
        request_state().dpop_nonce = verifier.nonce_to_send(proof, now=now)
    return proof


# -- endpoints ----------------------------------------------------------------------------------

@bp.post("/login")
@csrf_exempt
def login() -> Response:
    body = json_body({"username": True, "password": True})
    user_agent, ip = _client()
    try:
        proof = _dpop_proof()  # before the password: a refused proof costs no attempt
    except DPoPError as exc:
        # RFC 9449 5 / RFC 6749 5.2: 400 `invalid_dpop_proof` for a missing (DPoP required), invalid or replayed
        # proof, `use_dpop_nonce` (RFC 9449 8); no token issued, no session created, no throttle attempt spent
        return dpop_token_endpoint_error(exc)
    user = state().authenticator.authenticate(body["username"], body["password"], ip=ip)  # 401 / 429
    pair = token_service().issue(user.id, fresh=True, user_agent=user_agent, ip=ip,
                                 dpop_jkt=None if proof is None else proof.jkt)
    return _pair_response(pair)


@bp.post("/refresh")
@csrf_exempt
def refresh() -> Response:
    body = json_body({"refresh_token": True})
    user_agent, ip = _client()
    tokens = token_service()
    try:
        proof = _dpop_proof()
        verifier = state().dpop

        def bind(bound_jkt: str | None) -> str | None:
            if verifier is not None:
                check_refresh_binding(verifier, bound_jkt=bound_jkt, proof=proof)  # no downgrade to Bearer
            return None if proof is None else proof.jkt

        pair = tokens.refresh(body["refresh_token"], user_agent=user_agent, ip=ip, bind=bind)  # 401; reuse revokes
    except DPoPError as exc:
        return dpop_token_endpoint_error(exc)
    # The user from the pair itself, not by verifying the new access token or reading the family again: a
    # concurrent reuse (the race's loser) may already have ended the family, and the winner must still get
    # its answer (T8: exactly one 200), though the tokens in it die with the family.
    user = state().users.get(pair.user_id)
    if user is None or user.disabled:
        tokens.revoke(pair.family_id)
        raise TokenError("user gone or disabled")
    return _pair_response(pair)


@bp.get("/profile")
@jwt_required()
def profile() -> Response:
    user = get_user()
    assert user is not None  # jwt_required refuses a token whose user is gone or disabled
    request_state().authenticated = True
    return jsonify({"logged_in_as": user.username})


@bp.post("/logout")
@jwt_required()
def logout() -> Response:
    body = json_body({"refresh_token": False}, optional_body=True)
    claims = get_jwt_claims()
    assert claims is not None
    tokens = token_service()
    tokens.revoke(claims)  # the family, and this access token's jti until it would expire
    family_id = body.get("refresh_token", "").split(".", 1)[0]
    if family_id and family_id != claims.sid and looks_like_public_id(family_id):
        st = state()
        record = st.store.get(family_id, now=st.clock.now())
        if record is not None and record.kind == "token" and record.user_id == claims.sub:
            tokens.revoke(family_id)  # only ever a family of the same user
    return _no_content()


@bp.post("/logout-all")
@jwt_required()
def logout_all() -> Response:
    claims = get_jwt_claims()
    assert claims is not None
    token_service().revoke_all(claims.sub)  # epoch bump: every token, family and cookie session of the user
    return _no_content()


@bp.get("/sessions")
@jwt_required()
def sessions() -> Response:
    claims = get_jwt_claims()
    assert claims is not None
    rows = api_session_rows(state().sessions.list_for_user(claims.sub), claims.sid)
    request_state().authenticated = True
    return jsonify({"sessions": rows})


@bp.delete("/sessions/<session_id>")
@jwt_required()
def end_session(session_id: str) -> Response:
    claims = get_jwt_claims()
    assert claims is not None
    if session_id == claims.sid:
        token_service().revoke(claims)  # ending one's own family is a logout: deny this jti too
        return _no_content()
    if not claims.fresh:  # C14: before the lookup, so a stale token learns nothing about which ids exist
        raise FreshTokenRequired()
    if not looks_like_public_id(session_id) or not state().sessions.revoke(claims.sub, session_id):
        raise NotFound("No such session.")  # not theirs looks exactly like not there
    return _no_content()


@bp.post("/password")
@jwt_required(fresh=True)
def change_password() -> Response:
    body = json_body({"current_password": True, "new_password": True})
    user = get_user()
    assert user is not None
    st = state()
    user_agent, ip = _client()
    try:
        # throttled and logged like a login (A7)
        st.authenticator.authenticate(user.username, body["current_password"], ip=ip, purpose="password_change")
    except InvalidCredentials:
        raise WrongPassword() from None
    st.users.set_password(user.id, body["new_password"])  # 422 weak_password
    tokens = token_service()
    tokens.revoke_all(user.id)  # every other token family and cookie session ends (C6)
    claims = get_jwt_claims()
    jkt = None if claims is None else token_jkt(claims.extra)  # a key-bound client stays bound to its key
    return _pair_response(tokens.issue(user.id, fresh=True, user_agent=user_agent, ip=ip, dpop_jkt=jkt))


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())


@wellknown.get("/.well-known/jwks.json")
def jwks() -> Response:
    response = jsonify(token_service().jwks())
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return response


def init_app(app: Flask) -> None:
    """Register `/api/*` and `/.well-known/jwks.json`."""
    app.register_blueprint(bp)
    app.register_blueprint(wellknown)
