"""DPoP in a web adapter, framework-free: the shared steps of the Flask and the ASGI wiring of `sessionward.dpop`.

An adapter passes request facts (the `Authorization` value, the `DPoP` header values, the method, the URL it
reconstructs with `request_url`) and gets decisions; it keeps only the store call (`use_once`, sync or async)
and the copying of a `DPoPError`'s answer into a response.

- `authorization(value, verifier)`: `(scheme, token)` of an `Authorization` header: `Bearer` keeps its strict
  shape check (`InvalidAuthorizationHeader`), `DPoP` is parsed by `dpop.parse_authorization`; None for no header
  or another scheme.
- `check_resource(...)`: `dpop.check_token_binding` plus the per-route requirement (`dpop=True`: a Bearer token
  is refused with `invalid_token`, whatever the deployment's policy). A bound token is checked on EVERY route
  (with or without `dpop=True`): a stolen bound token is never accepted as a Bearer token anywhere.
- `token_endpoint_proof(...)`: the proof of a login or refresh request (None when it sent none and DPoP is
  not required; `MissingDPoPProof`, 400 `invalid_dpop_proof`, when it is).
- `challenge_kind(...)` / `www_authenticate(...)`: the challenge of a token refusal that is not a `DPoPError`
  (no credentials, a malformed `Bearer` header, a bad or expired token, not fresh, a missing scope), so that a
  client is told the scheme it must use (RFC 9449 7.1, 7.2): `DPoP ... algs="..."` when the request used the
  `DPoP` scheme or DPoP is required (`SESSIONWARD_DPOP=required`, or the route's `dpop=True`); with no
  credentials under `allowed`, both challenges in one header (`Bearer realm="...", DPoP algs="..."`); else the
  `Bearer` challenge of RFC 6750 as before. No `error` parameter when the request had no credentials.
- `request_url(scheme, host, raw_path)`: the `htu` the server compares: scheme and host as the app already
  decided them (behind `SESSIONWARD_TRUSTED_PROXIES` only from the forwarded headers), the raw request path
  as the client sent it, no query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal
from urllib.parse import quote

from ..bearer import header_token
from ..dpop import (
    DPoPBindingError,
    DPoPProof,
    DPoPVerifier,
    MissingDPoPProof,
    challenge,
    check_token_binding,
    parse_authorization,
    token_jkt,
)
from ..httpshape import bearer_challenge
from ..tokens import Claims

__all__ = [
    "ChallengeKind", "authorization", "challenge_kind", "check_resource", "path_from_wsgi", "request_url",
    "token_endpoint_proof", "www_authenticate",
]

#: Which challenge a token refusal carries: `bearer` (RFC 6750), `dpop` (RFC 9449 7.1), `both` (no credentials
#: where either scheme is accepted, RFC 9449 7.2).
ChallengeKind = Literal["bearer", "both", "dpop"]

_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def authorization(value: str | None, verifier: DPoPVerifier) -> tuple[str, str] | None:
    """`(scheme, token)` from one `Authorization` value (repeated headers already joined with ", ")."""
    if value is None:
        return None
    if value[:5].lower() == "dpop ":
        parsed = parse_authorization([value], algs=verifier.policy.algorithms)
        return parsed if parsed is not None and parsed[0] == "DPoP" else None
    token = header_token(value)
    return None if token is None else ("Bearer", token)


def request_url(scheme: str, host: str, raw_path: str) -> str:
    """The URL the proof's `htu` must name (query dropped; `normalize_htu` compares the rest)."""
    return f"{scheme}://{host}{raw_path.split('?', 1)[0] or '/'}"


def path_from_wsgi(environ: dict[str, object]) -> str:
    """The request path as sent: the server's raw request target (gunicorn `RAW_URI`, werkzeug `REQUEST_URI`)
    when it is a path, else SCRIPT_NAME + PATH_INFO percent-encoded again (WSGI decodes them as latin-1)."""
    for name in ("RAW_URI", "REQUEST_URI"):
        raw = environ.get(name)
        if isinstance(raw, str) and raw.startswith("/"):
            return raw.split("?", 1)[0]
    path = f"{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}"
    return quote(path.encode("latin-1", "replace"), safe=_PATH_SAFE) or "/"


def check_resource(
    verifier: DPoPVerifier,
    *,
    scheme: str,
    token: str,
    claims: Claims,
    method: str,
    url: Callable[[], str],
    proofs: Callable[[], Sequence[str]],
    now: float,
    require: bool = False,
) -> DPoPProof | None:
    """Decide a verified token at a protected resource. Returns the proof to spend with `use_once` (bound
    token), or None (an acceptable Bearer token). `url` and `proofs` are asked for only when a proof is
    checked (the plain Bearer path stays free of them). Raises `DPoPError` (401 with its `WWW-Authenticate`)."""
    jkt = token_jkt(claims.extra, algs=verifier.policy.algorithms)
    if jkt is None and require:
        raise DPoPBindingError("route requires a DPoP-bound token", algs=verifier.policy.algorithms)
    if jkt is None and scheme != "DPoP" and verifier.policy.mode != "required":
        return None  # the plain Bearer path: two dictionary reads, nothing else
    return check_token_binding(
        verifier, scheme=scheme, access_token=token, jkt=jkt, method=method, url=url(), proofs=proofs(), now=now
    )


def token_endpoint_proof(
    verifier: DPoPVerifier, *, method: str, url: str, proofs: Sequence[str], now: float
) -> DPoPProof | None:
    """The checked proof of a login/refresh request; None without a `DPoP` header (or with DPoP off, where
    proofs are ignored). Raises `InvalidDPoPProof`/`UseDPoPNonce` (a 400 at the token endpoint), and
    `MissingDPoPProof` when DPoP is required and no proof came. Call it before anything is spent (the
    password check and its throttle, the refresh token): a refused request must cost nothing."""
    policy = verifier.policy
    if not policy.enabled:
        return None
    if not proofs:
        if policy.mode == "required":
            # RFC 9449 5: the token request's DPoP header MUST contain a valid proof, and an invalid one is
            # answered per RFC 6749 5.2 with `invalid_dpop_proof`; no proof is the degenerate invalid one (RFC
            # 9449 5.4: a DPoP-bound client's token request without the header is rejected). 400, JSON body.
            raise MissingDPoPProof("DPoP required, token request without a proof", algs=policy.algorithms)
        return None
    return verifier.verify(method=method, url=url, proofs=proofs, now=now)


def challenge_kind(verifier: DPoPVerifier | None, *, scheme: str | None, require: bool = False) -> ChallengeKind:
    """The challenge for a token refusal of a request that used `scheme` (`Bearer`, `DPoP`; None: no
    credentials found) on a route that requires DPoP (`require`) or not (module docstring)."""
    if verifier is None:
        return "bearer"
    mode = verifier.policy.mode
    if require or mode == "required" or (scheme == "DPoP" and mode != "off"):
        return "dpop"
    return "both" if scheme is None and mode == "allowed" else "bearer"


def www_authenticate(verifier: DPoPVerifier | None, kind: ChallengeKind | None, **params: str) -> str:
    """The `WWW-Authenticate` value of a token refusal with the auth-params `params` (`error`, `scope` ...; none
    for a request without credentials). `kind` None (no token route was involved) is `bearer`."""
    if verifier is None or kind is None or kind == "bearer":
        return bearer_challenge(**params)
    if kind == "dpop":
        return challenge(verifier.policy.algorithms, **params)
    if params:  # `both` is for a request without credentials; an error concerns the Bearer attempt
        return bearer_challenge(**params)
    return f"{bearer_challenge()}, {verifier.challenge()}"
