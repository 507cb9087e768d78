"""DPoP refusals, each carrying the exact HTTP answer for both places a proof is checked.

At a protected resource (RFC 9449 7.1, 9): 401 with `WWW-Authenticate: DPoP error="...",
error_description="...", algs="..."` (and `DPoP-Nonce` for `use_dpop_nonce`); a malformed `Authorization: DPoP`
header is a 400 `invalid_request` (RFC 6750 3.1). At the token endpoint (`/api/login`, `/api/refresh`;
RFC 9449 5, 8): 400 with a JSON body `{"error": ..., "error_description": ...}` (and `DPoP-Nonce`). The adapters
only copy `resource_headers()` / `token_endpoint_body()` into a response. `challenge(algs, ...)` is the one
spelling of a DPoP challenge (RFC 9449 7.1: the `error` parameters first, `algs` last; no `error` at all when the
request carried no credentials, RFC 6750 3.1).

The descriptions are fixed texts (no quote or backslash, so no escaping in the header); `reason` says which
check failed, for logs only.
"""

from __future__ import annotations

from ..exceptions import AuthenticationError

__all__ = [
    "DPoPBindingError", "DPoPError", "InvalidDPoPAuthorization", "InvalidDPoPProof", "MissingDPoPProof",
    "UseDPoPNonce", "challenge",
]


def challenge(algs: tuple[str, ...], **params: str) -> str:
    """A `WWW-Authenticate: DPoP ...` challenge: `params` (`error`, `error_description`, `scope` ...) and
    `algs`, the accepted proof algorithms, space-separated (RFC 9449 7.1). The values are our own fixed texts
    (no quote or backslash)."""
    return "DPoP " + ", ".join(f'{k}="{v}"' for k, v in {**params, "algs": " ".join(algs)}.items())


class DPoPError(AuthenticationError):
    """Root of the DPoP refusals. `error` is the RFC 9449 code at a resource (401), `grant_error` the code
    at the token endpoint (400); `algs` the algorithms the server accepts; `nonce` a fresh `DPoP-Nonce` to
    send, or None."""

    error = code = "invalid_dpop_proof"
    grant_error = "invalid_dpop_proof"
    description = "Invalid DPoP proof"
    status = 401
    token_endpoint_status = 400

    def __init__(self, reason: str, *, algs: tuple[str, ...], nonce: str | None = None) -> None:
        super().__init__(self.description)
        self.reason = reason
        self.algs = algs
        self.nonce = nonce

    @property
    def www_authenticate(self) -> str:
        """The `WWW-Authenticate` value at a protected resource."""
        return challenge(self.algs, error=self.error, error_description=self.description)

    def resource_headers(self) -> dict[str, str]:
        """Headers of the 401 answer at a protected resource."""
        headers = {"WWW-Authenticate": self.www_authenticate, "Cache-Control": "no-store"}
        if self.nonce is not None:
            headers["DPoP-Nonce"] = self.nonce
        return headers

    def token_endpoint_body(self) -> dict[str, str]:
        """The JSON body of the 400 answer at the token endpoint (RFC 6749 5.2 shape)."""
        return {"error": self.grant_error, "error_description": self.description}

    def token_endpoint_headers(self) -> dict[str, str]:
        headers = {"Cache-Control": "no-store"}
        if self.nonce is not None:
            headers["DPoP-Nonce"] = self.nonce
        return headers


class InvalidDPoPProof(DPoPError):
    """The `DPoP` header is missing, repeated, malformed, or fails one of the checks of RFC 9449 4.3."""


class MissingDPoPProof(InvalidDPoPProof):
    """A token request without a `DPoP` header where DPoP is required (`SESSIONWARD_DPOP=required`). RFC 9449 5:
    the token request's `DPoP` header "MUST contain a valid DPoP proof JWT", and an invalid one is answered per
    RFC 6749 5.2 with `invalid_dpop_proof`; an absent proof is the degenerate invalid one (RFC 9449 5.4: a client
    bound to DPoP has its token requests without a `DPoP` header rejected), and `invalid_dpop_proof` names the
    cure (send a proof) where `invalid_request` or `invalid_grant` would not."""

    description = "DPoP proof required"


class InvalidDPoPAuthorization(DPoPError):
    """An `Authorization: DPoP ...` header that is repeated, oversized or not `DPoP SP token68`: a malformed
    request, 400 `invalid_request` (RFC 6750 3.1, which RFC 9449 7.1 applies to the DPoP scheme), not a proof
    error (`invalid_dpop_proof` is for the `DPoP` header, RFC 9449 4.3)."""

    error = code = "invalid_request"
    grant_error = "invalid_request"
    description = "Malformed DPoP Authorization header"
    status = 400


class UseDPoPNonce(DPoPError):
    """The server requires a nonce it issued, and the proof has none, or an expired or foreign one
    (RFC 9449 8, 9). `nonce` is the one to use."""

    error = code = "use_dpop_nonce"
    grant_error = "use_dpop_nonce"
    description = "Server requires nonce in DPoP proof"


class DPoPBindingError(DPoPError):
    """The token and the proof do not belong together: a DPoP-bound token sent as `Bearer` or without a proof,
    a proof from another key than the token's `cnf.jkt`, an unbound token sent with the `DPoP` scheme, a
    Bearer token where DPoP is required, a refresh without the key its family is bound to (downgrade)."""

    error = code = "invalid_token"
    grant_error = "invalid_grant"
    description = "Invalid DPoP key binding"
