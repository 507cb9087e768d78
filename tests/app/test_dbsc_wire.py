"""DBSC on the cookie sessions, through both adapters (the reference service's Flask app and its ASGI app): a
protocol client holding a real key (`tests/dbsc_client.py`) registers at login and refreshes the short cookie;
every refusal of the draft's refresh flow; browsers without DBSC unchanged.

Each test runs against the Flask app (sessionward.flask) and the ASGI app (sessionward.asgi) alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from asgiweb import PASSWORD, Answer, AsgiDriver, FlaskDriver, both, form_token  # type: ignore[import-not-found]
from dbsc_client import DBSCBrowser, parse_challenge  # type: ignore[import-not-found]
from dpop_client import new_private_key  # type: ignore[import-not-found]

from sessionward.flask import state

SHORT = "__Host-sw_dbsc"
LONG = "__Host-session"
Driver = FlaskDriver | AsgiDriver


@pytest.fixture(params=["flask", "asgi"])
def d(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Driver]:
    flask, asgi = both(tmp_path)
    driver: Driver = flask if request.param == "flask" else asgi
    driver.add_user("alice")
    driver.add_user("bob")
    yield driver
    asgi.close()


def clock(d: Driver) -> Any:
    if isinstance(d, FlaskDriver):
        with d.app.app_context():
            return state().clock
    return d.app.state.sessionward.clock


def set_cookies(answer: Answer) -> dict[str, str]:
    """name -> value of the answer's Set-Cookie headers."""
    out = {}
    for name, value in answer.headers:
        if name == "set-cookie":
            pair = value.split(";", 1)[0]
            key, _, val = pair.partition("=")
            out[key.strip()] = val.strip().strip('"')
    return out


def login(d: Driver, user: str = "alice") -> Answer:
    token = form_token(d.send("GET", "/login"))
    answer = d.send("POST", "/login", form={"username": user, "password": PASSWORD, "csrf_token": token})
    assert answer.status in (302, 303), answer.status
    return answer


def signed_in(d: Driver, headers: dict[str, str] | None = None) -> bool:
    answer = d.send("GET", "/dashboard", headers=headers)
    return answer.status == 200  # noqa: PLR2004 - signed out: a redirect to /login


def observe(browser: DBSCBrowser, answer: Answer) -> None:
    challenge = answer.header("secure-session-challenge")
    if challenge is not None:
        browser.observe({"Secure-Session-Challenge": challenge})


class Bound:
    """A signed-in DBSC browser: the driver's cookie jar plus the protocol client, and the cookies it got."""

    def __init__(self, d: Driver, user: str = "alice") -> None:
        self.d = d
        offer = login(d, user).header("secure-session-registration")
        assert offer is not None, "no Secure-Session-Registration at login"
        self.long = self._cookie_from_jar(LONG)
        self.browser = DBSCBrowser()
        answer = d.send("POST", "/dbsc/register", headers=self.browser.register(offer))
        assert answer.status == 200, answer.body  # noqa: PLR2004
        self.browser.accept_instructions(answer.json())
        observe(self.browser, answer)
        self.short = set_cookies(answer)[SHORT]
        self.registration = answer

    def _cookie_from_jar(self, name: str) -> str:
        d = self.d
        if isinstance(d, FlaskDriver):
            cookie = d.client.get_cookie(name, domain="localhost")
            assert cookie is not None
            return cookie.value
        return d.client.cookies[name]

    def refresh(self, headers: dict[str, str] | None = None) -> Answer:
        answer = self.d.send("POST", "/dbsc/refresh", headers=headers or self.browser.refresh_headers())
        observe(self.browser, answer)
        if answer.status == 200:  # noqa: PLR2004
            self.short = set_cookies(answer)[SHORT]
        return answer

    def renew(self) -> Answer:
        """As the draft's browser: refresh; on 403 sign the new challenge and retry once."""
        answer = self.refresh()
        return self.refresh() if answer.status == 403 else answer  # noqa: PLR2004


def cookie_header(long: str, short: str | None = None) -> dict[str, str]:
    return {"Cookie": f"{LONG}={long}" + (f"; {SHORT}={short}" if short else "")}


# -- the flow ------------------------------------------------------------------------------------------------

def test_dbsc_full_flow_registers_binds_and_refreshes(d: Driver) -> None:
    b = Bound(d)
    instructions = b.registration.json()
    assert instructions["refresh_url"] == "/dbsc/refresh"
    assert instructions["credentials"] == [{"type": "cookie", "name": SHORT,
                                            "attributes": "Path=/; Secure; HttpOnly; SameSite=Lax"}]
    short_attrs = next(v for k, v in b.registration.headers if k == "set-cookie" and v.startswith(SHORT))
    assert "Secure" in short_attrs and "HttpOnly" in short_attrs and "Max-Age=600" in short_attrs
    assert signed_in(d)
    clock(d).advance(601)  # the short cookie died; the long session lives on
    assert not signed_in(d)
    first = b.refresh()  # the cached challenge of the registration answer is stale by now: a new one
    assert first.status == 403, first.body  # noqa: PLR2004
    assert b.refresh().status == 200  # noqa: PLR2004 - signed over the new challenge
    assert signed_in(d)
    for _ in range(3):  # and again, as a browser does when the short cookie is about to end
        clock(d).advance(570)
        assert signed_in(d)
        assert b.renew().status == 200  # noqa: PLR2004
        clock(d).advance(20)
        assert signed_in(d)  # the renewed cookie
    clock(d).advance(601)
    assert not signed_in(d)
    assert b.renew().status == 200  # noqa: PLR2004
    assert signed_in(d)


def test_dbsc_refresh_without_proof_gets_a_challenge_then_succeeds(d: Driver) -> None:
    b = Bound(d)
    b.browser.cached_challenge = None
    answer = b.refresh()
    assert answer.status == 403  # noqa: PLR2004
    challenge, sid = parse_challenge(answer.header("secure-session-challenge") or "")
    assert sid == b.browser.session_id and challenge
    assert SHORT not in set_cookies(answer)
    assert b.refresh().status == 200  # noqa: PLR2004


def test_dbsc_sessions_list_shows_device_bound(d: Driver) -> None:
    Bound(d)
    page = d.send("GET", "/sessions")
    assert page.status == 200 and "device-bound" in page.text  # noqa: PLR2004
    token = d.send("POST", "/api/login", json={"username": "alice", "password": PASSWORD}).json()["access_token"]
    rows = d.send("GET", "/api/sessions", headers={"Authorization": f"Bearer {token}"}).json()["sessions"]
    assert sorted((r["kind"], r["device_bound"]) for r in rows) == [("cookie", True), ("token", False)]


# -- refusals --------------------------------------------------------------------------------------------------

def test_dbsc_refresh_signed_by_another_key_is_refused_and_ends_the_session(d: Driver) -> None:
    b = Bound(d)
    thief = DBSCBrowser()
    thief.alg, thief.private_key = b.browser.alg, new_private_key(b.browser.alg or "ES256")
    proof = thief.forge({"alg": b.browser.alg, "typ": "dbsc+jwt"}, {"jti": b.browser.cached_challenge})
    answer = b.refresh({"Sec-Secure-Session-Id": f'"{b.browser.session_id}"', "Secure-Session-Response": f'"{proof}"'})
    assert answer.status == 401  # noqa: PLR2004
    assert SHORT not in set_cookies(answer) or set_cookies(answer)[SHORT] == ""
    # the server session is over: even the still-valid short cookie with the long cookie is nobody now
    assert not signed_in(d, cookie_header(b.long, b.short))
    assert b.refresh().status == 401  # noqa: PLR2004


def test_dbsc_replayed_refresh_is_refused(d: Driver) -> None:
    b = Bound(d)
    headers = b.browser.refresh_headers()
    assert b.refresh(headers).status == 200  # noqa: PLR2004
    again = d.send("POST", "/dbsc/refresh", headers=headers)
    assert again.status == 403  # noqa: PLR2004
    assert again.header("secure-session-challenge")
    assert SHORT not in set_cookies(again)


def test_dbsc_stale_challenge_is_refused(d: Driver) -> None:
    b = Bound(d)
    clock(d).advance(121)  # past the challenge lifetime (120 s); the long session lives
    answer = b.refresh()
    assert answer.status == 403  # noqa: PLR2004
    assert SHORT not in set_cookies(answer)
    assert b.refresh().status == 200  # noqa: PLR2004 - over the fresh challenge it just got


def test_dbsc_refresh_for_another_session_is_refused(d: Driver) -> None:
    alice = Bound(d)
    d.forget_cookies()
    bob = Bound(d, "bob")
    # bob's key signs a challenge issued for alice's session: the MAC binds it to her session identifier
    foreign = bob.browser.forge({"alg": bob.browser.alg, "typ": "dbsc+jwt"}, {"jti": alice.browser.cached_challenge})
    answer = bob.refresh({"Sec-Secure-Session-Id": f'"{bob.browser.session_id}"',
                          "Secure-Session-Response": f'"{foreign}"'})
    assert answer.status == 403 and SHORT not in set_cookies(answer)  # noqa: PLR2004
    # bob's long cookie naming alice's DBSC session: refused, nothing renewed
    answer = bob.refresh({"Sec-Secure-Session-Id": f'"{alice.browser.session_id}"',
                          "Secure-Session-Response": f'"{foreign}"'})
    assert answer.status == 400 and SHORT not in set_cookies(answer)  # noqa: PLR2004
    # alice's short cookie does not make bob's long cookie work, nor bob's hers
    assert not signed_in(d, cookie_header(bob.long, alice.short))
    assert not signed_in(d, cookie_header(alice.long, bob.short))
    assert signed_in(d, cookie_header(alice.long, alice.short))


def test_dbsc_stolen_short_cookie_is_useless_after_it_expires(d: Driver) -> None:
    b = Bound(d)
    stolen = cookie_header(b.long, b.short)  # malware copies the whole cookie jar
    assert signed_in(d, stolen)  # for at most the short cookie's lifetime
    clock(d).advance(601)
    assert not signed_in(d, stolen)
    # and the thief cannot refresh without the key: a challenge, then its own key's proof ends the session
    attempt = d.send("POST", "/dbsc/refresh", headers={**stolen, "Sec-Secure-Session-Id": f'"{b.browser.session_id}"'})
    assert attempt.status == 403  # noqa: PLR2004
    challenge, _ = parse_challenge(attempt.header("secure-session-challenge") or "")
    proof = b.browser.forge({"alg": "ES256", "typ": "dbsc+jwt"}, {"jti": challenge}, alg="ES256",
                            key=new_private_key("ES256"))
    forged = d.send("POST", "/dbsc/refresh", headers={**stolen, "Sec-Secure-Session-Id": f'"{b.browser.session_id}"',
                                                     "Secure-Session-Response": f'"{proof}"'})
    assert forged.status == 401  # noqa: PLR2004
    assert b.refresh().status == 401  # noqa: PLR2004 - the session is ended for everyone


def test_dbsc_stolen_long_cookie_alone_is_useless(d: Driver) -> None:
    b = Bound(d)
    assert signed_in(d)
    assert not signed_in(d, cookie_header(b.long))
    answer = d.send("POST", "/dbsc/register", headers={**cookie_header(b.long), **DBSCBrowser().register(
        b.registration.header("secure-session-registration") or "(ES256);path=\"/dbsc/register\";challenge=\"x\"")})
    assert answer.status == 400  # noqa: PLR2004 - no re-registration with another key


def test_dbsc_registration_needs_the_offered_challenge(d: Driver) -> None:
    offer = login(d).header("secure-session-registration") or ""
    browser = DBSCBrowser()
    headers = browser.register(offer.replace('challenge="', 'challenge="x'))
    assert d.send("POST", "/dbsc/register", headers=headers).status == 400  # noqa: PLR2004
    assert d.send("POST", "/dbsc/register", headers={}).status == 400  # noqa: PLR2004
    assert signed_in(d)  # still an unbound session, working as before


def test_dbsc_logout_ends_the_device_bound_session(d: Driver) -> None:
    b = Bound(d)
    token = form_token(d.send("GET", "/dashboard"))
    out = d.send("POST", "/logout", form={"csrf_token": token})
    assert SHORT in set_cookies(out) and set_cookies(out)[SHORT] == ""
    assert b.refresh().status == 401  # noqa: PLR2004
    assert not signed_in(d, cookie_header(b.long, b.short))


# -- browsers without DBSC -------------------------------------------------------------------------------------

def test_dbsc_unbound_browser_works_as_before(d: Driver) -> None:
    answer = login(d)
    assert answer.header("secure-session-registration")  # offered; this browser does not answer
    assert SHORT not in set_cookies(answer)
    assert signed_in(d)
    clock(d).advance(700)  # past the short cookie's lifetime: irrelevant to an unbound session
    assert signed_in(d)
    page = d.send("GET", "/sessions")
    assert "device-bound" not in page.text


def test_dbsc_refresh_of_an_unbound_session_leaves_it_alone(d: Driver) -> None:
    """A stray (or cross-site) POST to the refresh endpoint cannot sign an unbound browser out."""
    login(d)
    answer = d.send("POST", "/dbsc/refresh", headers={"Sec-Secure-Session-Id": '"abc"'})
    assert answer.status == 401  # noqa: PLR2004
    assert answer.header("clear-site-data") is None and LONG not in set_cookies(answer)
    assert signed_in(d)


def test_dbsc_off_offers_nothing(tmp_path: Any) -> None:
    flask, asgi = both(tmp_path, SESSIONWARD_DBSC=False)
    try:
        for driver in (flask, asgi):
            driver.add_user("alice")
            assert login(driver).header("secure-session-registration") is None
            answer = driver.send("POST", "/dbsc/refresh", headers={"Sec-Secure-Session-Id": '"x"'})
            assert answer.status != 200 and answer.header("secure-session-challenge") is None  # noqa: PLR2004
    finally:
        asgi.close()


def test_dbsc_answers_are_json_and_never_cached(d: Driver) -> None:
    b = Bound(d)
    assert b.registration.header("cache-control") == "no-store"
    assert json.loads(b.registration.body)["session_identifier"] == b.browser.session_id
