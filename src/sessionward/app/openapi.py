"""The OpenAPI 3.1 document of the JSON API (`GET /api/openapi.json`), as plain data.

It lists every status a view can answer, so that a client (or schemathesis) can hold the service to it.
"""

from __future__ import annotations

import copy
import functools
from http import HTTPStatus
from typing import Any

__all__ = ["openapi_document"]

_ERRORS = {
    400: "Malformed JSON body or Authorization header.",
    401: "No token (`WWW-Authenticate: Bearer realm=..., DPoP algs=...`, no error code; `DPoP algs=...` alone "
         "where DPoP is required), or a bad, expired or revoked one (`Bearer ... error=\"invalid_token\"`, RFC 6750; "
         "the `DPoP` scheme with `algs` for a DPoP request); a DPoP-bound token without a valid, unspent proof from "
         "its key (`WWW-Authenticate: DPoP error=..., algs=...`, RFC 9449 7.1).",
    403: "A valid token that does not allow this (`insufficient_scope`), or a failed check.",
    404: "Not found (or not yours).",
    413: "The body is larger than the service accepts (64 KiB).",
    415: "The body is not `application/json`.",
    422: "Valid JSON, but not an object with the expected string fields (missing, unknown or wrong type).",
    429: "Too many failed attempts; see `Retry-After`.",
    503: "The session store is unavailable; see `Retry-After`.",
}


def _error(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _ERRORS[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
    if status == HTTPStatus.UNAUTHORIZED:
        response["headers"] = {"WWW-Authenticate": {"$ref": "#/components/headers/WWWAuthenticate"},
                               "DPoP-Nonce": {"$ref": "#/components/headers/DPoPNonce"}}
    return response


def _token_endpoint_400() -> dict[str, Any]:
    """At /api/login and /api/refresh a 400 is also a DPoP refusal in the OAuth shape (RFC 9449 5, 8)."""
    return {
        "description": _ERRORS[400] + " Or a DPoP refusal (`invalid_dpop_proof`, also for no proof where DPoP "
                       "is required; `use_dpop_nonce` with a `DPoP-Nonce` header; `invalid_grant` for a key-bound "
                       "family without its key), RFC 9449 5, 8.",
        "content": {"application/json": {"schema": {"oneOf": [
            {"$ref": "#/components/schemas/Error"}, {"$ref": "#/components/schemas/DPoPTokenError"}]}}},
        "headers": {"DPoP-Nonce": {"$ref": "#/components/headers/DPoPNonce"}},
    }


def _body(schema_ref: str, *, required: bool = True) -> dict[str, Any]:
    return {
        "required": required,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def _ok(description: str, schema_ref: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


def _op(
    summary: str,
    responses: dict[int, Any],
    *,
    errors: tuple[int, ...],
    secured: bool,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    token_endpoint: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary}
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    all_errors = set(errors) | {503}
    if secured:
        all_errors |= {400, 401}  # a malformed Authorization header is 400 invalid_request
    op["responses"] = {str(k): v for k, v in sorted({**responses, **{e: _error(e) for e in all_errors}}.items())}
    op["security"] = [{"bearerAuth": []}, {"dpopAuth": []}] if secured else []
    if secured or token_endpoint:
        op["parameters"] = [*op.get("parameters", []), {"$ref": "#/components/parameters/DPoP"}]
    if token_endpoint:
        op["responses"]["400"] = _token_endpoint_400()
    return op


def _string_object(*names: str, required: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {n: {"type": "string"} for n in names},
        "required": list(required),
        "additionalProperties": False,
    }


@functools.lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    no_content = {"description": "Done."}
    json_errors = (400, 413, 415, 422)
    session_id = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sessionward reference service API",
            "version": "1.0.0",
            "description": (
                "Bearer-token API of the sessionward reference service. Access tokens are short-lived JWTs "
                "(`typ: at+jwt`); refresh tokens are opaque, rotate on every use, and a reused one revokes its "
                "whole family. Errors: `{\"error\": {\"code\", \"message\"}}`. DPoP (RFC 9449): a client that "
                "sends a `DPoP` proof with /api/login or /api/refresh gets `token_type: DPoP` and tokens bound to "
                "its key (`cnf.jkt`); every later use is `Authorization: DPoP <token>` with a fresh `DPoP` proof "
                "(`ath` included) from that key, and a bound refresh token is refused without it."
            ),
        },
        "paths": {
            "/api/login": {"post": _op(
                "Log in with a password: a fresh access token and a refresh token.",
                {200: _ok("A new token pair.", "TokenPair")},
                errors=(*json_errors, 401, 429), secured=False, body=_body("LoginRequest"), token_endpoint=True,
            )},
            "/api/refresh": {"post": _op(
                "Spend a refresh token for a new pair (rotation; reuse of a spent token revokes the family).",
                {200: _ok("A new token pair.", "TokenPair")},
                errors=(*json_errors, 401), secured=False, body=_body("RefreshRequest"), token_endpoint=True,
            )},
            "/api/profile": {"get": _op(
                "Who the token belongs to (the lab's shape).",
                {200: _ok("The token's user.", "Profile")},
                errors=(), secured=True,
            )},
            "/api/logout": {"post": _op(
                "End this token's family and deny this access token until it expires; optionally also the "
                "family of the given refresh token (only one of the same user).",
                {204: no_content},
                errors=json_errors, secured=True, body=_body("LogoutRequest", required=False),
            )},
            "/api/logout-all": {"post": _op(
                "Log out everywhere: every token family and cookie session of the user ends, the caller's "
                "own included (so no fresh token is needed: a thief who calls it loses its access too).",
                {204: no_content},
                errors=(), secured=True,
            )},
            "/api/sessions": {"get": _op(
                "The user's cookie sessions and token families, newest first.",
                {200: _ok("The sessions.", "SessionList")},
                errors=(), secured=True,
            )},
            "/api/sessions/{session_id}": {"delete": _op(
                "End one of the user's sessions or token families. Ending the current one is a logout and "
                "always allowed; ending any other needs a fresh access token (from a password login within the "
                "access token's lifetime; otherwise 401 `insufficient_user_authentication`, RFC 9470), so that "
                "a stolen, refreshed token cannot lock the owner out.",
                {204: no_content},
                errors=(404,), secured=True, parameters=[session_id],
            )},
            "/api/password": {"post": _op(
                "Change the password. Needs a fresh access token (from a password login within the access "
                "token's lifetime; otherwise 401 `insufficient_user_authentication`, RFC 9470) and the current "
                "password (403 `wrong_password`). Every session and token family ends; a new pair is returned.",
                {200: _ok("A new token pair.", "TokenPair")},
                errors=(*json_errors, 403, 429), secured=True, body=_body("PasswordChange"),
            )},
            "/api/openapi.json": {"get": _op(
                "This document.",
                {200: {"description": "The OpenAPI document.",
                       "content": {"application/json": {"schema": {"type": "object"}}}}},
                errors=(), secured=False,
            )},
            "/.well-known/jwks.json": {"get": _op(
                "The public keys that verify access tokens (RFC 7517 JWK Set).",
                {200: _ok("The key set.", "JWKS")},
                errors=(), secured=False,
            )},
        },
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "dpopAuth": {"type": "http", "scheme": "DPoP", "bearerFormat": "JWT",
                             "description": "A DPoP-bound access token (RFC 9449): `Authorization: DPoP <token>` "
                                            "with a `DPoP` proof header signed by the token's key."},
            },
            "parameters": {"DPoP": {
                "name": "DPoP", "in": "header", "required": False, "schema": {"type": "string"},
                "description": "A DPoP proof JWT (RFC 9449 4): `typ: dpop+jwt`, the public `jwk`, `jti`, `htm`, "
                               "`htu`, `iat`, `ath` with a token, `nonce` when the server sent a `DPoP-Nonce`.",
            }},
            "headers": {
                "DPoPNonce": {"description": "A server nonce to put in the next DPoP proof (RFC 9449 8, 9).",
                              "schema": {"type": "string"}},
                "RetryAfter": {"description": "Seconds to wait.", "schema": {"type": "string", "pattern": "^[0-9]+$"}},
                "WWWAuthenticate": {"description": "RFC 6750 (Bearer) or RFC 9449 (DPoP) challenge.",
                                    "schema": {"type": "string"}},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "additionalProperties": False,
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "additionalProperties": False,
                        "properties": {
                            "code": {"type": "string", "description": "machine-readable, e.g. invalid_token"},
                            "message": {"type": "string", "description": "for humans"},
                        },
                    }},
                },
                "DPoPTokenError": {
                    "type": "object",
                    "required": ["error", "error_description"],
                    "additionalProperties": False,
                    "properties": {
                        "error": {"enum": ["invalid_dpop_proof", "use_dpop_nonce", "invalid_grant"]},
                        "error_description": {"type": "string"},
                    },
                },
                "LoginRequest": _string_object("username", "password", required=("username", "password")),
                "RefreshRequest": _string_object("refresh_token", required=("refresh_token",)),
                "LogoutRequest": _string_object("refresh_token", required=()),
                "PasswordChange": _string_object(
                    "current_password", "new_password", required=("current_password", "new_password")
                ),
                "TokenPair": {
                    "type": "object",
                    "required": ["access_token", "token_type", "expires_in", "refresh_token"],
                    "additionalProperties": False,
                    "properties": {
                        "access_token": {"type": "string"},
                        "token_type": {"enum": ["Bearer", "DPoP"], "description": "DPoP: bound to the client's "
                                       "key (RFC 9449 5)"},
                        "expires_in": {"type": "integer", "minimum": 1},
                        "refresh_token": {"type": "string"},
                    },
                },
                "Profile": {
                    "type": "object",
                    "required": ["logged_in_as"],
                    "additionalProperties": False,
                    "properties": {"logged_in_as": {"type": "string"}},
                },
                "Session": {
                    "type": "object",
                    "required": ["id", "kind", "device", "address", "created_at", "last_seen", "current"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string"},
                        "kind": {"enum": ["cookie", "token"]},
                        "device": {"type": "string"},
                        "address": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "last_seen": {"type": "string", "format": "date-time"},
                        "current": {"type": "boolean"},
                        "device_bound": {"type": "boolean", "description": "a cookie session whose browser holds "
                                         "its key (DBSC): its cookies are useless off that device"},
                        "dpop_bound": {"type": "boolean", "description": "a token family bound to a client key "
                                       "(DPoP, RFC 9449)"},
                    },
                },
                "SessionList": {
                    "type": "object",
                    "required": ["sessions"],
                    "additionalProperties": False,
                    "properties": {"sessions": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}}},
                },
                "JWKS": {
                    "type": "object",
                    "required": ["keys"],
                    "properties": {"keys": {"type": "array", "items": {
                        "type": "object",
                        "required": ["kty", "kid", "alg", "use"],
                        "properties": {"kty": {"type": "string"}, "kid": {"type": "string"},
                                       "alg": {"type": "string"}, "use": {"const": "sig"}},
                        "not": {"anyOf": [{"required": [m]} for m in ("d", "p", "q", "dp", "dq", "qi", "k")]},
                    }}},
                },
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    """A fresh copy of the document (callers may change theirs)."""
    return copy.deepcopy(_document())
