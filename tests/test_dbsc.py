"""Device Bound Session Credentials, the framework-free server core (`sessionward.dbsc`), driven by a browser
that holds a real key (tests/dbsc_client.py): the whole exchange, then every refusal the draft and C15 ask
for (wrong key, replayed or stale challenge, another session's refresh, malformed proofs, a stolen short
cookie after its lifetime), and hypothesis fuzzing (a `DBSCError` or success, never another exception)."""

from __future__ import annotations

import contextlib
import json
import secrets
from typing import Any

import pytest
from dbsc_client import DBSCBrowser, parse_challenge, parse_registration
from dpop_client import b64u, new_private_key, private_jwk, public_jwk
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionward.dbsc import (
    DBSCChallengeRequired,
    DBSCError,
    DBSCPolicy,
    DBSCRefused,
    DBSCServer,
    Registration,
)
from sessionward.exceptions import ConfigError

NOW = 1_800_000_000.0
LOGIN = "login-session-public-id"
SID = "dbsc-session-1"
CHALLENGE_KEY, COOKIE_KEY = secrets.token_bytes(32), secrets.token_bytes(32)


class UseOnce:
    """The reference semantics of the store's `use_once` (specified in `sessionward.dpop`), in memory."""

    def __init__(self) -> None:
        self.until: dict[str, float] = {}

    def __call__(self, key: str, until: float, now: float) -> bool:
        if self.until.get(key, -1.0) > now:
            return False
        self.until[key] = until
        return True


@pytest.fixture
def server() -> DBSCServer:
    return DBSCServer(DBSCPolicy(), challenge_keys=[CHALLENGE_KEY], cookie_keys=[COOKIE_KEY])


def register(server: DBSCServer, browser: DBSCBrowser, *, binding: str = LOGIN, now: float = NOW,
             authorization: str | None = None) -> Registration:
    offer = server.registration_header(binding=LOGIN, now=NOW, authorization=authorization)
    headers = browser.register(offer)
    registration = server.verify_registration(responses=[headers["Secure-Session-Response"]], binding=binding,
                                              now=now, authorization=authorization)
    browser.accept_instructions(server.session_instructions(session_identifier=SID))
    return registration


def refresh(server: DBSCServer, reg: Registration, headers: dict[str, str], *, now: float = NOW,
            session_id: str | None = None) -> Any:
    sid = session_id or server.session_identifier([headers["Sec-Secure-Session-Id"]])
    responses = [headers["Secure-Session-Response"]] if "Secure-Session-Response" in headers else []
    return server.verify_refresh(session_identifier=sid, jwk=reg.key.jwk, alg=reg.key.alg, responses=responses, now=now)


def bound(server: DBSCServer, browser: DBSCBrowser) -> Registration:
    """A registered browser that holds a cached refresh challenge."""
    reg = register(server, browser)
    browser.observe({"Secure-Session-Challenge": server.challenge_header(session_identifier=SID, now=NOW)})
    return reg


# -- the whole exchange ------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefer", [("ES256",), ("RS256",)])
def test_C15_register_then_refresh_with_the_registered_key(server: DBSCServer, prefer: tuple[str, ...]) -> None:
    browser = DBSCBrowser(prefer)
    reg = register(server, browser)
    assert reg.key.alg == prefer[0] and reg.key.jwk == browser.public_jwk
    # the first refresh has no challenge yet: 403 with one, for this session
    with pytest.raises(DBSCChallengeRequired) as exc:
        refresh(server, reg, browser.refresh_headers())
    assert exc.value.status == 403
    browser.observe(exc.value.headers)
    assert browser.cached_challenge is not None
    proof = refresh(server, reg, browser.refresh_headers())
    assert proof.session_identifier == SID
    name, value, max_age = server.bound_cookie(session_identifier=SID, now=NOW)
    assert (name, max_age) == ("__Host-sw_dbsc", 600)
    server.check_bound_cookie([value], session_identifier=SID, now=NOW + 599)


def test_C15_registration_header_shape(server: DBSCServer) -> None:
    header = server.registration_header(binding=LOGIN, now=NOW, authorization="code-1")
    assert header.startswith('(ES256 RS256);path="/dbsc/register";challenge="')
    assert header.endswith(';authorization="code-1"')
    offer = parse_registration(header)
    assert offer["algorithms"] == ["ES256", "RS256"] and offer["path"] == "/dbsc/register"
    with pytest.raises(ValueError):
        server.registration_header(binding=LOGIN, now=NOW, authorization='a"b')


def test_C15_session_instructions_shape(server: DBSCServer) -> None:
    assert server.session_instructions(session_identifier=SID) == {
        "session_identifier": SID,
        "refresh_url": "/dbsc/refresh",
        "scope": {"include_site": False, "scope_specification": []},
        "credentials": [{"type": "cookie", "name": "__Host-sw_dbsc",
                         "attributes": "Path=/; Secure; HttpOnly; SameSite=Lax"}],
        "allowed_refresh_initiators": [],
    }
    with pytest.raises(ValueError):
        server.session_instructions(session_identifier="has space")


def test_C15_challenge_header_shape(server: DBSCServer) -> None:
    challenge, session_id = parse_challenge(server.challenge_header(session_identifier=SID, now=NOW))
    assert session_id == SID and challenge.startswith(f"{int(NOW)}.")


# -- registration refusals -----------------------------------------------------------------------------------

def test_C15_registration_challenge_bound_to_its_login_session(server: DBSCServer) -> None:
    with pytest.raises(DBSCError) as exc:
        register(server, DBSCBrowser(), binding="another-login-session")
    assert exc.value.reason == "registration challenge bad mac" and exc.value.status == 400


def test_C15_registration_challenge_stale(server: DBSCServer) -> None:
    with pytest.raises(DBSCError) as exc:
        register(server, DBSCBrowser(), now=NOW + server.policy.challenge_lifetime + 1)
    assert exc.value.reason == "registration challenge expired"


def test_C15_bare_jwt_response_accepted_as_chromium_sends_it(server: DBSCServer) -> None:
    """The draft makes `Secure-Session-Response` an sf-string; Chromium 156 sends the bare JWT (an sf-token)."""
    browser = DBSCBrowser()
    headers = browser.register(server.registration_header(binding=LOGIN, now=NOW))
    bare = headers["Secure-Session-Response"].strip('"')
    assert server.verify_registration(responses=[bare], binding=LOGIN, now=NOW).key.jwk == browser.public_jwk


def test_C15_registration_authorization_must_match(server: DBSCServer) -> None:
    browser = DBSCBrowser()
    headers = browser.register(server.registration_header(binding=LOGIN, now=NOW, authorization="code-1"))
    assert headers["Authorization"] == "code-1"
    with pytest.raises(DBSCError, match=r"Device-bound") as exc:
        server.verify_registration(responses=[headers["Secure-Session-Response"]], binding=LOGIN, now=NOW,
                                   authorization="code-2")
    assert exc.value.reason == "registration authorization does not match"


def forged_registration(server: DBSCServer, header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes,
                        **kw: Any) -> DBSCError:
    browser = DBSCBrowser()
    browser.register(server.registration_header(binding=LOGIN, now=NOW))
    proof = browser.forge(header, payload, **kw)
    with pytest.raises(DBSCError) as exc:
        server.verify_registration(responses=[f'"{proof}"'], binding=LOGIN, now=NOW)
    return exc.value


def _challenge(server: DBSCServer) -> str:
    return parse_registration(server.registration_header(binding=LOGIN, now=NOW))["challenge"]


@pytest.mark.parametrize(("change", "reason"), [
    ({"typ": "JWT"}, "typ is not dbsc+jwt"),
    ({"typ": None}, "typ is not dbsc+jwt"),
    ({"alg": "ES384"}, "alg not allowed"),
    ({"alg": "none"}, "alg not allowed"),
    ({"jwk": None}, "jwk missing"),
    ({"kid": "x"}, "header parameter not allowed"),
    ({"crit": ["exp"]}, "header parameter not allowed"),
])
def test_C15_registration_header_rules(server: DBSCServer, change: dict[str, Any], reason: str) -> None:
    key = new_private_key("ES256")
    header: dict[str, Any] = {"alg": "ES256", "typ": "dbsc+jwt", "jwk": public_jwk(key, "ES256"), **change}
    header = {k: v for k, v in header.items() if v is not None}
    assert forged_registration(server, header, {"jti": _challenge(server)}, alg="ES256", key=key).reason == (
        f"registration: {reason}"
    )


def test_C15_registration_hmac_alg_refused(server: DBSCServer) -> None:
    secret = secrets.token_bytes(32)
    header = {"alg": "HS256", "typ": "dbsc+jwt", "jwk": {"kty": "oct", "k": b64u(secret)}}
    err = forged_registration(server, header, {"jti": _challenge(server)}, alg="HS256", key=secret)
    assert err.reason == "registration: alg not allowed"


def test_C15_registration_signed_by_another_key(server: DBSCServer) -> None:
    shown, signer = new_private_key("ES256"), new_private_key("ES256")
    header = {"alg": "ES256", "typ": "dbsc+jwt", "jwk": public_jwk(shown, "ES256")}
    err = forged_registration(server, header, {"jti": _challenge(server)}, alg="ES256", key=signer)
    assert err.reason == "registration: bad signature"


def test_C15_registration_private_jwk_refused(server: DBSCServer) -> None:
    key = new_private_key("ES256")
    header = {"alg": "ES256", "typ": "dbsc+jwt", "jwk": private_jwk(key, "ES256")}
    err = forged_registration(server, header, {"jti": _challenge(server)}, alg="ES256", key=key)
    assert err.reason == "registration: jwk contains private key material"


def test_C15_registration_jti_missing(server: DBSCServer) -> None:
    key = new_private_key("ES256")
    header = {"alg": "ES256", "typ": "dbsc+jwt", "jwk": public_jwk(key, "ES256")}
    assert forged_registration(server, header, {}, alg="ES256", key=key).reason == "registration challenge malformed"


@pytest.mark.parametrize("responses", [[], ["a", "b"], ["not-a-string-item"], ['"a.b"'], ['"' + "a" * 9000 + '"']])
def test_C15_registration_malformed_responses(server: DBSCServer, responses: list[str]) -> None:
    with pytest.raises(DBSCError):
        server.verify_registration(responses=responses, binding=LOGIN, now=NOW)


# -- refresh refusals ---------------------------------------------------------------------------------------

def test_C15_refresh_by_another_key_refused_and_ends_the_session(server: DBSCServer) -> None:
    """A thief with the cookies but not the key signs the refresh with its own key."""
    browser = DBSCBrowser()
    reg = bound(server, browser)
    thief = DBSCBrowser()
    thief.alg, thief.private_key = "ES256", new_private_key("ES256")
    thief.session_id, thief.cached_challenge = browser.session_id, browser.cached_challenge
    with pytest.raises(DBSCRefused) as exc:
        refresh(server, reg, thief.refresh_headers())
    assert exc.value.status == 401 and exc.value.terminate
    assert exc.value.reason == "refresh not signed by the session's key"
    assert refresh(server, reg, browser.refresh_headers()).session_identifier == SID


def test_C15_refresh_for_another_session_refused(server: DBSCServer) -> None:
    """Session B's holder names session A: A's key does not verify B's signature."""
    a, b = DBSCBrowser(), DBSCBrowser()
    reg_a = bound(server, a)
    bound(server, b)
    with pytest.raises(DBSCRefused):
        refresh(server, reg_a, b.refresh_headers(), session_id=SID)


def test_C15_refresh_with_another_sessions_challenge_refused(server: DBSCServer) -> None:
    """The right key, but a challenge issued to another session: 403 with this session's own challenge."""
    browser = DBSCBrowser()
    reg = bound(server, browser)
    other, _ = parse_challenge(server.challenge_header(session_identifier="dbsc-session-2", now=NOW))
    browser.cached_challenge = other
    with pytest.raises(DBSCChallengeRequired) as exc:
        refresh(server, reg, browser.refresh_headers())
    assert exc.value.reason == "refresh challenge bad mac"
    assert parse_challenge(exc.value.headers["Secure-Session-Challenge"])[1] == SID


def test_C15_registration_challenge_is_not_a_refresh_challenge(server: DBSCServer) -> None:
    browser = DBSCBrowser()
    reg = register(server, browser)
    browser.cached_challenge = parse_registration(server.registration_header(binding=SID, now=NOW))["challenge"]
    with pytest.raises(DBSCChallengeRequired):
        refresh(server, reg, browser.refresh_headers())


def test_C15_stale_refresh_challenge_refused(server: DBSCServer) -> None:
    browser = DBSCBrowser()
    reg = bound(server, browser)
    late = NOW + server.policy.challenge_lifetime + 1
    with pytest.raises(DBSCChallengeRequired) as exc:
        refresh(server, reg, browser.refresh_headers(), now=late)
    assert exc.value.reason == "refresh challenge expired"
    browser.observe(exc.value.headers)  # the browser retries with the new challenge
    assert refresh(server, reg, browser.refresh_headers(), now=late)


def test_C15_replayed_refresh_refused(server: DBSCServer) -> None:
    browser = DBSCBrowser()
    reg = bound(server, browser)
    use_once = UseOnce()
    headers = browser.refresh_headers()
    first = refresh(server, reg, headers)
    assert use_once(first.replay_key, first.replay_until, NOW)
    again = refresh(server, reg, headers, now=NOW + 5)  # the same proof, captured and sent again
    assert again.replay_key == first.replay_key
    assert not use_once(again.replay_key, again.replay_until, NOW + 5)
    err = server.replayed(again, now=NOW + 5)
    assert err.status == 403 and "Secure-Session-Challenge" in err.headers
    # a proof over a new challenge has another key
    browser.observe(err.headers)
    fresh = refresh(server, reg, browser.refresh_headers(), now=NOW + 5)
    assert use_once(fresh.replay_key, fresh.replay_until, NOW + 5)


def test_C15_refresh_jwk_header_refused(server: DBSCServer) -> None:
    browser = DBSCBrowser()
    reg = bound(server, browser)
    header = {"alg": "ES256", "typ": "dbsc+jwt", "jwk": browser.public_jwk}
    proof = browser.forge(header, {"jti": browser.cached_challenge})
    with pytest.raises(DBSCRefused) as exc:
        refresh(server, reg, {"Sec-Secure-Session-Id": f'"{SID}"', "Secure-Session-Response": f'"{proof}"'})
    assert exc.value.reason == "refresh: jwk on refresh"


def test_C15_refresh_alg_must_be_the_registered_one(server: DBSCServer) -> None:
    browser = DBSCBrowser(("ES256",))
    reg = bound(server, browser)
    rsa = new_private_key("RS256")
    proof = browser.forge({"alg": "RS256", "typ": "dbsc+jwt"}, {"jti": browser.cached_challenge}, alg="RS256", key=rsa)
    with pytest.raises(DBSCRefused) as exc:
        refresh(server, reg, {"Sec-Secure-Session-Id": f'"{SID}"', "Secure-Session-Response": f'"{proof}"'})
    assert exc.value.reason == "refresh alg is not the registered key's"


@pytest.mark.parametrize("response", ['"x.y.z"', "eyJ.eyJ.sig", '"a"', '""', '"a.b.c";x=1,"d"'])
def test_C15_refresh_malformed_proof_refused(server: DBSCServer, response: str) -> None:
    browser = DBSCBrowser()
    reg = bound(server, browser)
    with pytest.raises(DBSCRefused):
        refresh(server, reg, {"Sec-Secure-Session-Id": f'"{SID}"', "Secure-Session-Response": response})


def test_C15_refresh_payload_not_json_refused(server: DBSCServer) -> None:
    browser = DBSCBrowser()
    reg = bound(server, browser)
    proof = browser.forge({"alg": "ES256", "typ": "dbsc+jwt"}, b"[1,2")
    with pytest.raises(DBSCRefused) as exc:
        refresh(server, reg, {"Sec-Secure-Session-Id": f'"{SID}"', "Secure-Session-Response": f'"{proof}"'})
    assert exc.value.reason == "refresh payload malformed"


@pytest.mark.parametrize("values", [[], ['"a"', '"b"'], ["a b"], ["tok;x"], ['"has space"'], ['"' + "a" * 65 + '"']])
def test_C15_session_id_header(server: DBSCServer, values: list[str]) -> None:
    assert server.session_identifier([f'"{SID}";x=1']) == SID
    assert server.session_identifier([f" {SID}"]) == SID  # Chromium 156 sends the bare identifier
    with pytest.raises(DBSCError):
        server.session_identifier(values)


# -- the short cookie -----------------------------------------------------------------------------------------

def test_C15_stolen_short_cookie_dies_with_its_lifetime(server: DBSCServer) -> None:
    _, value, max_age = server.bound_cookie(session_identifier=SID, now=NOW)
    server.check_bound_cookie([value], session_identifier=SID, now=NOW + max_age)
    with pytest.raises(DBSCRefused) as exc:
        server.check_bound_cookie([value], session_identifier=SID, now=NOW + max_age + 1)
    assert exc.value.reason == "short cookie expired"


def test_C15_short_cookie_is_per_session_and_ours(server: DBSCServer) -> None:
    _, value, _ = server.bound_cookie(session_identifier=SID, now=NOW)
    for values, sid in (([value], "dbsc-session-2"), ([], SID), ([value, value], SID), (["1800000000.x.y"], SID)):
        with pytest.raises(DBSCRefused):
            server.check_bound_cookie(values, session_identifier=sid, now=NOW)
    other = DBSCServer(DBSCPolicy(), challenge_keys=[CHALLENGE_KEY], cookie_keys=[secrets.token_bytes(32)])
    with pytest.raises(DBSCRefused):
        other.check_bound_cookie([value], session_identifier=SID, now=NOW)
    # a refresh challenge (same format, other key and purpose) is no cookie
    challenge, _ = parse_challenge(server.challenge_header(session_identifier=SID, now=NOW))
    with pytest.raises(DBSCRefused):
        server.check_bound_cookie([challenge], session_identifier=SID, now=NOW)


# -- configuration -----------------------------------------------------------------------------------------

def test_dbsc_policy_validation() -> None:
    for kwargs, setting in [
        ({"algorithms": ("none",)}, "DBSC_ALGS"), ({"algorithms": ()}, "DBSC_ALGS"),
        ({"algorithms": ("ES256", "ES256")}, "DBSC_ALGS"), ({"registration_path": "reg"}, "DBSC_REGISTRATION_PATH"),
        ({"refresh_path": '/a"b'}, "DBSC_REFRESH_PATH"), ({"challenge_lifetime": 0}, "DBSC_CHALLENGE_LIFETIME"),
        ({"cookie_lifetime": 10**9}, "DBSC_COOKIE_LIFETIME"), ({"cookie_name": "sw"}, "DBSC_COOKIE_NAME"),
        ({"cookie_samesite": "None"}, "DBSC_COOKIE_SAMESITE"), ({"enabled": "yes"}, "DBSC"),
        ({"max_proof_bytes": 10}, "DBSC_MAX_PROOF_BYTES"),
    ]:
        with pytest.raises(ConfigError) as exc:
            DBSCPolicy(**kwargs)
        assert exc.value.setting == setting
    with pytest.raises(ConfigError, match="DBSC_COOKIE_KEYS"):
        DBSCServer(DBSCPolicy(), challenge_keys=[CHALLENGE_KEY], cookie_keys=[CHALLENGE_KEY])
    with pytest.raises(ConfigError, match="DBSC_CHALLENGE_KEYS"):
        DBSCServer(DBSCPolicy(), challenge_keys=[b"x" * 8], cookie_keys=[COOKIE_KEY])


# -- fuzzing --------------------------------------------------------------------------------------------------

_TEXT = st.text(max_size=80)
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | _TEXT,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
                     max_leaves=8)
_FUZZ = DBSCBrowser()
_FUZZ.alg, _FUZZ.private_key = "ES256", new_private_key("ES256")
_FUZZ_SERVER = DBSCServer(DBSCPolicy(), challenge_keys=[CHALLENGE_KEY], cookie_keys=[COOKIE_KEY])


@settings(max_examples=200, deadline=None)
@given(responses=st.lists(_TEXT, max_size=2), sid=st.lists(_TEXT, max_size=2), cookie=st.lists(_TEXT, max_size=2))
def test_O4_fuzz_dbsc_headers(responses: list[str], sid: list[str], cookie: list[str]) -> None:
    s = _FUZZ_SERVER
    for call in (
        lambda: s.verify_registration(responses=responses, binding=LOGIN, now=NOW),
        lambda: s.verify_refresh(session_identifier=SID, jwk=_FUZZ.public_jwk, alg="ES256", responses=responses,
                                 now=NOW),
        lambda: s.session_identifier(sid),
        lambda: s.check_bound_cookie(cookie, session_identifier=SID, now=NOW),
    ):
        with contextlib.suppress(DBSCError):
            call()


@settings(max_examples=200, deadline=None)
@given(header=st.dictionaries(st.sampled_from(["alg", "typ", "jwk", "crit"]), _JSON, max_size=4),
       payload=st.dictionaries(st.sampled_from(["jti", "authorization"]), _JSON, max_size=2),
       with_jwk=st.booleans())
def test_O4_fuzz_signed_dbsc_proofs(header: dict[str, Any], payload: dict[str, Any], with_jwk: bool) -> None:
    if with_jwk:
        header["jwk"] = _FUZZ.public_jwk
    proof = _FUZZ.forge(header, json.dumps(payload).encode())
    s = _FUZZ_SERVER
    for registration in (True, False):
        with contextlib.suppress(DBSCError):
            if registration:
                s.verify_registration(responses=[f'"{proof}"'], binding=LOGIN, now=NOW, authorization="a")
            else:
                s.verify_refresh(session_identifier=SID, jwk=_FUZZ.public_jwk, alg="ES256", responses=[f'"{proof}"'],
                                 now=NOW)
