"""`sessionward.popkeys`: one public key, one spelling, one thumbprint; private, symmetric and mismatched keys
refused; the signature checked by PyJWT under the key's own algorithm."""

from __future__ import annotations

import itertools
import re

import pytest
from dpop_client import DPoPClient, b64u, new_private_key, private_jwk, public_jwk

from sessionward.popkeys import (
    ProofFormatError,
    b64url_decode,
    b64url_encode,
    jwk_thumbprint,
    parse_public_jwk,
    split_compact,
    split_segments,
)


@pytest.mark.parametrize("alg", ["ES256", "Ed25519", "EdDSA", "RS256", "PS256"])
def test_public_key_round_trip(alg: str) -> None:
    key = new_private_key(alg)
    parsed = parse_public_jwk({**public_jwk(key, alg), "kid": "ignored", "use": "sig"}, alg)
    assert parsed.jwk == public_jwk(key, alg)  # public members only, nothing else kept
    assert parsed.thumbprint == jwk_thumbprint(public_jwk(key, alg))
    c = DPoPClient(alg, private_key=key)
    head, body, sig = c.forge({"a": 1}, {"b": 2}).split(".")
    assert parsed.verify(f"{head}.{body}".encode(), b64url_decode(sig))
    assert not parsed.verify(f"{head}.{body}x".encode(), b64url_decode(sig))


@pytest.mark.parametrize("alg", ["ES256", "Ed25519", "RS256"])
def test_private_members_refused(alg: str) -> None:
    with pytest.raises(ProofFormatError, match="private"):
        parse_public_jwk(private_jwk(new_private_key(alg), alg), alg)
    with pytest.raises(ProofFormatError, match="private"):
        parse_public_jwk({"kty": "oct", "k": "AAAA"}, alg)


def test_key_type_must_match_alg() -> None:
    ec_jwk, ed_jwk = public_jwk(new_private_key("ES256"), "ES256"), public_jwk(new_private_key("Ed25519"), "Ed25519")
    for jwk, alg in ((ec_jwk, "Ed25519"), (ed_jwk, "ES256"), (ec_jwk, "RS256"), ({**ec_jwk, "crv": "P-384"}, "ES256")):
        with pytest.raises(ProofFormatError):
            parse_public_jwk(jwk, alg)
    for alg in ("HS256", "none", "ES384"):
        with pytest.raises(ProofFormatError, match="alg not allowed"):
            parse_public_jwk(ec_jwk, alg)


def test_one_spelling_per_key() -> None:
    jwk = public_jwk(new_private_key("ES256"), "ES256")
    x = b64url_decode(jwk["x"])
    for bad in (jwk["x"] + "=", b64u(b"\x00" + x), jwk["x"][:-1], None, 5):
        with pytest.raises(ProofFormatError):
            parse_public_jwk({**jwk, "x": bad}, "ES256")
    rsa = public_jwk(new_private_key("RS256"), "RS256")
    with pytest.raises(ProofFormatError, match="minimal"):
        parse_public_jwk({**rsa, "n": b64u(b"\x00" + b64url_decode(rsa["n"]))}, "RS256")
    small = b64u((1 << 1023 | 1).to_bytes(128, "big"))
    with pytest.raises(ProofFormatError, match="modulus"):
        parse_public_jwk({**rsa, "n": small}, "RS256")


def test_base64url_is_strict() -> None:
    assert b64url_decode(b64url_encode(b"\xff\xfe")) == b"\xff\xfe"
    for bad in ("a", "ab=", "a b", "+/", "AB", 3):  # "AB": unused bits set
        with pytest.raises(ProofFormatError):
            b64url_decode(bad)


def test_split_compact() -> None:
    token = DPoPClient().forge({"typ": "x"}, {"a": 1})
    jws = split_compact(token, max_bytes=4096)
    assert jws.header == {"typ": "x"} and jws.payload() == {"a": 1}
    for bad in (token + ".", token[:-200], "a.b", 5, token.replace(".", " ", 1)):
        with pytest.raises(ProofFormatError):
            split_compact(bad, max_bytes=4096)
    with pytest.raises(ProofFormatError, match="too long"):
        split_compact(token, max_bytes=10)
    for header in (b"[1]", b'{"a":1,"a":2}', b"{", b"\xff", b"[" * 5000):
        with pytest.raises(ProofFormatError):
            split_compact(f"{b64u(header)}.{token.split('.', 1)[1]}", max_bytes=1 << 20)


def test_alphabet_checks_agree_with_the_grammar() -> None:
    # b64url_decode and split_segments check their alphabet with bytes.translate, not a regex: every short text
    # over an alphabet of edge characters gets the verdict (and the reason) of the grammar they implement
    segment = re.compile(r"[A-Za-z0-9_-]*")
    compact = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
    chars = ["A", "Q", "g", "z", "0", "-", "_", "+", "/", "=", ".", " ", "\n", "\x00", "\u00e9", "\uff21"]
    for length in range(6):
        for text in map("".join, itertools.product(chars, repeat=length)):
            try:
                b64url_decode(text)
            except ProofFormatError as err:
                assert segment.fullmatch(text) is None or err.reason == "not canonical base64url", text
            else:
                assert segment.fullmatch(text) is not None, text
            try:
                split_segments(text, max_bytes=64)
            except ProofFormatError as err:
                assert compact.fullmatch(text) is None or err.reason == "not canonical base64url", text
                assert compact.fullmatch(text) is not None or err.reason == "not a compact JWS", text
            else:
                assert compact.fullmatch(text) is not None, text
