"""Proof-of-possession keys: the public JWK a client puts in a self-signed compact JWS (a DPoP proof, RFC 9449;
a DBSC registration proof, W3C WebAppSec DBSC), parsed strictly into a `cryptography` public key, its RFC 7638
thumbprint, and the signature checked by PyJWT's own algorithm objects. No crypto is written here.

Strictness, so that one key has one spelling and one thumbprint:
- base64url members are canonical (no padding, unused bits zero, exact lengths: P-256 coordinates 32 bytes,
  Ed25519 `x` 32 bytes, RSA `n`/`e` without leading zero octets);
- only public keys: a JWK with any private member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`) is refused,
  and so is `kty: oct` (a shared secret is never a proof key);
- the key type and curve must be the ones the JWS `alg` names (ES256 <-> EC P-256, Ed25519/EdDSA <-> OKP
  Ed25519, RS256/PS256 <-> RSA of 2048..8192 bits): no algorithm confusion.

Every refusal raises `ProofFormatError` (a `ValueError`) with a short `reason` for logs; callers turn it into
their protocol's error.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import Algorithm, OKPAlgorithm, get_default_algorithms

from .jsontext import strict_loads

__all__ = [
    "KEY_ALGORITHMS",
    "CompactJWS",
    "ProofFormatError",
    "ProofKey",
    "b64url_decode",
    "b64url_encode",
    "header_object",
    "jwk_thumbprint",
    "parse_public_jwk",
    "split_compact",
    "split_segments",
]


class ProofFormatError(ValueError):
    """A proof or its key is malformed or not acceptable. `reason` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_PYJWT = get_default_algorithms()
#: alg -> (kty, crv or None, PyJWT's algorithm object). Only asymmetric signature algorithms; `none` and HMAC
#: can never be named here.
KEY_ALGORITHMS: dict[str, tuple[str, str | None, Algorithm]] = {
    "ES256": ("EC", "P-256", _PYJWT["ES256"]),
    "Ed25519": ("OKP", "Ed25519", OKPAlgorithm()),  # RFC 9864's fully-specified name
    "EdDSA": ("OKP", "Ed25519", _PYJWT["EdDSA"]),  # the polymorphic name RFC 9864 deprecates; Ed25519 only
    "RS256": ("RSA", None, _PYJWT["RS256"]),
    "PS256": ("RSA", None, _PYJWT["PS256"]),
}
MIN_RSA_BITS, MAX_RSA_BITS = 2048, 8192

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: RFC 7638 3.2: the required members per key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}

#: the base64url alphabet (RFC 4648 5) as bytes: `raw.translate(None, _B64URL_ALPHABET)` deletes every
#: alphabet octet, so what is left is what does not belong (one C pass; a regex over a ~1 KB proof costs more).
_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_LAST_OK = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
_PADDING = {0: b"", 2: b"==", 3: b"="}


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 2)."""
    return binascii.b2a_base64(data, newline=False).translate(bytes.maketrans(b"+/", b"-_")).rstrip(b"=").decode()


def b64url_decode(text: object) -> bytes:
    """The bytes of a canonical unpadded base64url text; `ProofFormatError` for anything else (padding,
    whitespace, other alphabets, non-zero unused bits, a non-string)."""
    if not isinstance(text, str) or not text.isascii():
        raise ProofFormatError("not base64url")
    raw = text.encode("ascii")
    if raw.translate(None, _B64URL_ALPHABET):
        raise ProofFormatError("not base64url")
    return _decode_alphabet_checked(text, raw)


def _decode_alphabet_checked(text: str, raw: bytes) -> bytes:
    """`b64url_decode` of `text` (its ASCII octets `raw`) once the alphabet is known to be base64url's."""
    rest = len(raw) % 4
    if rest == 1 or (rest and text[-1] not in _LAST_OK[rest]):
        raise ProofFormatError("not canonical base64url")
    try:
        return binascii.a2b_base64(raw.translate(_URLSAFE) + _PADDING[rest])
    except binascii.Error:  # pragma: no cover - excluded by the checks above
        raise ProofFormatError("not base64url") from None


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK SHA-256 thumbprint, base64url: the required members of the key's `kty`, sorted, in JSON
    without whitespace. `ProofFormatError` for an unknown `kty` or a missing/non-string member."""
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty"))  # type: ignore[arg-type]
    if members is None:
        raise ProofFormatError("unsupported kty")
    if not all(isinstance(jwk.get(name), str) for name in members):
        raise ProofFormatError("jwk member missing")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True, slots=True)
class ProofKey:
    """A client's public key, checked: the algorithm it signs with, the `cryptography` key, its public members
    only (`jwk`, safe to store and show) and its RFC 7638 `thumbprint`."""

    alg: str
    key: Any
    jwk: Mapping[str, str]
    thumbprint: str

    def verify(self, signing_input: bytes, signature: bytes) -> bool:
        """True if `signature` over `signing_input` verifies with this key under `alg` (PyJWT's verify)."""
        return bool(KEY_ALGORITHMS[self.alg][2].verify(signing_input, self.key, signature))


def _uint(text: object, name: str) -> int:
    raw = b64url_decode(text)
    if not raw or raw[0] == 0:
        raise ProofFormatError(f"jwk {name} is not a minimal unsigned integer")
    return int.from_bytes(raw, "big")


def _ec_key(jwk: Mapping[str, Any]) -> Any:
    x, y = b64url_decode(jwk.get("x")), b64url_decode(jwk.get("y"))
    if len(x) != 32 or len(y) != 32:  # noqa: PLR2004 - P-256 coordinates
        raise ProofFormatError("jwk coordinates are not 32 bytes")
    numbers = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1())
    return numbers.public_key()  # ValueError if the point is not on the curve


def _okp_key(jwk: Mapping[str, Any]) -> Any:
    x = b64url_decode(jwk.get("x"))
    if len(x) != 32:  # noqa: PLR2004 - Ed25519 public keys
        raise ProofFormatError("jwk x is not 32 bytes")
    return ed25519.Ed25519PublicKey.from_public_bytes(x)


def _rsa_key(jwk: Mapping[str, Any]) -> Any:
    n, e = _uint(jwk.get("n"), "n"), _uint(jwk.get("e"), "e")
    if not MIN_RSA_BITS <= n.bit_length() <= MAX_RSA_BITS:
        raise ProofFormatError("jwk RSA modulus size not allowed")
    return rsa.RSAPublicNumbers(e, n).public_key()  # ValueError for an even or too small e


_KEY_BUILDERS = {"EC": _ec_key, "OKP": _okp_key, "RSA": _rsa_key}


def parse_public_jwk(jwk: object, alg: str) -> ProofKey:
    """The `ProofKey` of a public JWK for `alg` (one of `KEY_ALGORITHMS`). Raises `ProofFormatError` for a
    private or symmetric key, a key type or curve other than the one `alg` needs, non-canonical or wrong-length
    members, a point not on the curve, an RSA modulus outside 2048..8192 bits."""
    if alg not in KEY_ALGORITHMS:
        raise ProofFormatError("alg not allowed")
    if not isinstance(jwk, Mapping):
        raise ProofFormatError("jwk is not an object")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise ProofFormatError("jwk contains private key material")
    kty, crv, _ = KEY_ALGORITHMS[alg]
    if jwk.get("kty") != kty:
        raise ProofFormatError("jwk kty does not match alg")
    if crv is not None and jwk.get("crv") != crv:
        raise ProofFormatError("jwk crv does not match alg")
    try:
        key = _KEY_BUILDERS[kty](jwk)
    except ProofFormatError:
        raise
    except ValueError:
        raise ProofFormatError("jwk is not a valid public key") from None
    public = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[kty]}
    return ProofKey(alg=alg, key=key, jwk=public, thumbprint=jwk_thumbprint(public))


@dataclass(frozen=True, slots=True)
class CompactJWS:
    """A compact JWS split and its header parsed; the payload is parsed only on request (after the signature
    has verified)."""

    header: Mapping[str, Any]
    header_segment: str
    payload_segment: str
    signature: bytes

    @property
    def signing_input(self) -> bytes:
        return f"{self.header_segment}.{self.payload_segment}".encode("ascii")

    def payload(self) -> dict[str, Any]:
        """The payload as a JSON object; `ProofFormatError` otherwise."""
        return _json_object(self.payload_segment, "payload")


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        return header_object(segment)
    except ProofFormatError:
        raise ProofFormatError(f"malformed {what}") from None


def header_object(segment: str) -> dict[str, Any]:
    """A JWS header segment as a JSON object (strict: no duplicate members); `ProofFormatError` otherwise."""
    # the parse itself lives here, not in `_json_object`: the DPoP payload (every request) is parsed with this
    try:
        value = strict_loads(b64url_decode(segment))
    except (ValueError, RecursionError):  # ProofFormatError, JSONDecodeError, UnicodeDecodeError, duplicates
        raise ProofFormatError("malformed header") from None
    if not isinstance(value, dict):
        raise ProofFormatError("malformed header")
    return value


def split_segments(token: object, *, max_bytes: int) -> tuple[str, str, bytes]:
    """`(header segment, payload segment, signature bytes)` of one compact JWS: three non-empty base64url
    segments and nothing else, at most `max_bytes` characters. Raises `ProofFormatError`."""
    if not isinstance(token, str):
        raise ProofFormatError("not a string")
    if len(token) > max_bytes:
        raise ProofFormatError("too long")
    # three non-empty segments of the base64url alphabet joined by two dots: ASCII, nothing but the alphabet
    # once the two dots are taken out, and no segment empty
    if not token.isascii() or token.encode("ascii").translate(None, _B64URL_ALPHABET) != b"..":
        raise ProofFormatError("not a compact JWS")
    head, body, signature = token.split(".")
    if not head or not body or not signature:
        raise ProofFormatError("not a compact JWS")
    return head, body, _decode_alphabet_checked(signature, signature.encode("ascii"))


def split_compact(token: object, *, max_bytes: int) -> CompactJWS:
    """`split_segments` and the header parsed. Raises `ProofFormatError`."""
    head, body, signature = split_segments(token, max_bytes=max_bytes)
    return CompactJWS(header_object(head), head, body, signature)
