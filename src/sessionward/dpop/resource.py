"""The token side of DPoP: which scheme a request used, and whether its token and its proof belong together
(RFC 9449 7, 5). I/O-free; every refusal is a `DPoPError` carrying the HTTP answer.

Rules (`check_token_binding`, at a protected resource, after the access token itself has verified):
- a token with `cnf.jkt` (DPoP-bound) needs the `DPoP` scheme, a valid proof that carries the token's `ath`,
  and a proof key whose thumbprint equals `cnf.jkt`: presented as `Bearer`, without a proof, or with another
  key's proof, it is refused (no downgrade, a stolen token is useless without its key);
- a token without `cnf` sent with the `DPoP` scheme is refused (it is not bound), and so is any unbound token
  when the policy is `required`;
- policy `off`: a bound token is refused (its binding cannot be checked), proofs are ignored.

`check_refresh_binding` applies the same rule to a refresh token family bound at login (`/api/refresh`):
a bound family refreshes only with a proof from its key (no downgrade to Bearer on refresh).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence

from .errors import DPoPBindingError, InvalidDPoPAuthorization, MissingDPoPProof
from .proof import DPoPProof, DPoPVerifier

__all__ = ["Authorization", "check_refresh_binding", "check_token_binding", "parse_authorization", "token_jkt"]

MAX_AUTHORIZATION_CHARS = 16384
#: `scheme 1*SP token68` (RFC 9110 11.4, 11.2), checked in parts by `parse_authorization`: the scheme (no space
#: in it, so the first space ends it) with this pattern, the token68 (a ~600-character token) by deleting its
#: alphabet in one C pass (`bytes.translate`) rather than a regex walk
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*")
_TOKEN68_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+/-"
_CANONICAL_SCHEMES = {"bearer": "Bearer", "dpop": "DPoP"}
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")
Authorization = tuple[str, str]


def parse_authorization(values: Sequence[str], *, algs: tuple[str, ...]) -> Authorization | None:
    """`(scheme, token)` from the request's `Authorization` header values: None without one; the scheme in
    its canonical spelling (`Bearer`, `DPoP`; compared case-insensitively, RFC 9110 11.1), other schemes as
    sent. Raises `InvalidDPoPAuthorization` (400 `invalid_request`) for several headers or a value that is not
    `scheme SP token68`."""
    if isinstance(values, str):
        values = [values]
    if not values:
        return None
    if len(values) != 1 or len(values[0]) > MAX_AUTHORIZATION_CHARS:
        raise InvalidDPoPAuthorization("more than one or an oversized Authorization header", algs=algs)
    scheme, space, rest = values[0].partition(" ")
    token = rest.lstrip(" ")  # 1*SP
    token68 = token.rstrip("=")  # 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    if (
        not space
        or not token68
        or not token68.isascii()
        or token68.encode("ascii").translate(None, _TOKEN68_ALPHABET)
        or _SCHEME.fullmatch(scheme) is None
    ):
        raise InvalidDPoPAuthorization("malformed Authorization header", algs=algs)
    return _CANONICAL_SCHEMES.get(scheme.lower(), scheme), token


def token_jkt(claims_extra: object, *, algs: tuple[str, ...] = ()) -> str | None:
    """The `cnf.jkt` of a verified token's claims (`Claims.extra`), or None when the token is not DPoP-bound.
    Raises `DPoPBindingError` (its challenge naming `algs`) for a `cnf` that is present but malformed (never
    treated as unbound)."""
    if not hasattr(claims_extra, "get"):
        return None
    cnf = claims_extra.get("cnf")
    if cnf is None:
        return None
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if not isinstance(jkt, str) or _JKT.fullmatch(jkt) is None:
        raise DPoPBindingError("malformed cnf claim", algs=algs)
    return jkt


def check_token_binding(
    verifier: DPoPVerifier,
    *,
    scheme: str,
    access_token: str,
    jkt: str | None,
    method: str,
    url: str,
    proofs: Sequence[str],
    now: float,
) -> DPoPProof | None:
    """Decide a request to a protected resource whose access token has verified (`jkt`: its `cnf.jkt`, from
    `token_jkt`). Returns the checked proof for a bound token (the caller then calls `use_once` with its
    `replay_key`), None for an acceptable unbound Bearer token. Raises `DPoPBindingError`,
    `InvalidDPoPProof` or `UseDPoPNonce`."""
    policy = verifier.policy
    algs = policy.algorithms
    if jkt is None:
        if scheme == "DPoP":
            raise DPoPBindingError("DPoP scheme with an unbound token", algs=algs)
        if policy.mode == "required":
            raise DPoPBindingError("DPoP required, Bearer token presented", algs=algs)
        return None
    if policy.mode == "off":
        raise DPoPBindingError("DPoP-bound token while DPoP is off", algs=algs)
    if scheme != "DPoP":
        raise DPoPBindingError("DPoP-bound token presented as Bearer", algs=algs)
    if not proofs:
        raise DPoPBindingError("DPoP-bound token without a proof", algs=algs)
    proof = verifier.verify(method=method, url=url, proofs=proofs, now=now, access_token=access_token)
    if not hmac.compare_digest(proof.jkt, jkt):
        raise DPoPBindingError("proof key does not match cnf.jkt", algs=algs)
    return proof


def check_refresh_binding(verifier: DPoPVerifier, *, bound_jkt: str | None, proof: DPoPProof | None) -> None:
    """At the token endpoint, with the refresh family's key thumbprint (`bound_jkt`, None if unbound) and the
    request's checked proof (None if it had no `DPoP` header): a bound family needs a proof from its key.
    An unbound family with a proof is fine (the new tokens get bound). Raises `DPoPBindingError`
    (`invalid_grant` at the token endpoint), or `MissingDPoPProof` (`invalid_dpop_proof`, RFC 9449 5) for no
    proof at all where DPoP is required."""
    algs = verifier.policy.algorithms
    if bound_jkt is None:
        if proof is None and verifier.policy.mode == "required":
            raise MissingDPoPProof("DPoP required, refresh without a proof", algs=algs)
        return
    if proof is None:
        raise DPoPBindingError("bound refresh token without a proof (downgrade)", algs=algs)
    if not hmac.compare_digest(proof.jkt, bound_jkt):
        raise DPoPBindingError("refresh proof from another key", algs=algs)
