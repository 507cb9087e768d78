"""DBSC on the cookie sessions at the core level (`sessionward.device_binding`, no web framework), and its
settings: the binding lives in the session record and survives rotation, a burst of refreshes with one proof
renews once, the settings are validated at start-up under their full keys."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest
from dbsc_client import DBSCBrowser, parse_challenge  # type: ignore[import-not-found]

from sessionward.config import SessionPolicy
from sessionward.dbsc import DBSCChallengeRequired, DBSCError, DBSCPolicy, DBSCRefused, DBSCServer
from sessionward.device_binding import DeviceBinding, binding_of, is_device_bound
from sessionward.exceptions import ConfigError
from sessionward.sessions import SessionManager
from sessionward.settings import Settings


@pytest.fixture
def binding(sqlite_store: Any, clock: Any) -> DeviceBinding:
    sessions = SessionManager(store=sqlite_store, policy=SessionPolicy(), clock=clock)
    server = DBSCServer(DBSCPolicy(), challenge_keys=[secrets.token_bytes(32)], cookie_keys=[secrets.token_bytes(32)])
    return DeviceBinding(server=server, sessions=sessions)


def bind(binding: DeviceBinding) -> tuple[Any, DBSCBrowser]:
    session = binding.sessions.login("alice")
    browser = DBSCBrowser()
    answer = binding.register(binding.sessions.load(session.secret), [browser.register(binding.offer(session))[
        "Secure-Session-Response"]])
    assert answer.body is not None
    browser.accept_instructions(answer.body)
    browser.observe({"Secure-Session-Challenge": answer.challenge})
    return session, browser


def test_dbsc_binding_is_kept_with_the_record_and_survives_rotation(binding: DeviceBinding) -> None:
    session, browser = bind(binding)
    loaded = binding.sessions.load(session.secret)
    assert loaded is not None and is_device_bound(loaded.record)
    bound = binding_of(loaded.record)
    assert bound is not None and bound["id"] == browser.session_id and bound["alg"] == "ES256"
    assert bound["jwk"] == browser.public_jwk and "d" not in bound["jwk"]
    rotated = binding.sessions.rotate(loaded)
    assert rotated is not None and binding_of(rotated.record) == bound
    assert not binding.admits(rotated, [])  # still device-bound: the long cookie alone is nobody


def test_dbsc_a_burst_of_refreshes_with_one_proof_renews_once(binding: DeviceBinding) -> None:
    session, browser = bind(binding)
    headers = browser.refresh_headers()
    results: list[str] = []
    barrier = threading.Barrier(8)

    def attempt() -> None:
        loaded = binding.sessions.load(session.secret)
        barrier.wait()
        try:
            binding.refresh(loaded, [headers["Sec-Secure-Session-Id"]], [headers["Secure-Session-Response"]])
            results.append("renewed")
        except DBSCChallengeRequired:
            results.append("challenge")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["challenge"] * 7 + ["renewed"]


def test_dbsc_refused_refresh_ends_the_server_session(binding: DeviceBinding) -> None:
    session, browser = bind(binding)
    thief = DBSCBrowser()
    thief.register(binding.offer(session))  # makes the thief its own key
    loaded = binding.sessions.load(session.secret)
    with pytest.raises(DBSCChallengeRequired) as asked:
        binding.refresh(loaded, [f'"{browser.session_id}"'], [])
    challenge, _ = parse_challenge(asked.value.headers["Secure-Session-Challenge"])
    proof = thief.forge({"alg": thief.alg, "typ": "dbsc+jwt"}, {"jti": challenge})
    with pytest.raises(DBSCRefused):
        binding.refresh(loaded, [f'"{browser.session_id}"'], [f'"{proof}"'])
    assert binding.sessions.load(session.secret) is None


def test_dbsc_registration_is_refused_without_a_session_or_twice(binding: DeviceBinding) -> None:
    session, _ = bind(binding)
    again = DBSCBrowser().register(binding.offer(session))["Secure-Session-Response"]
    with pytest.raises(DBSCError):
        binding.register(binding.sessions.load(session.secret), [again])
    with pytest.raises(DBSCError):
        binding.register(None, [again])


KEY_A, KEY_B = secrets.token_hex(32), secrets.token_hex(32)


def test_dbsc_settings_off_by_default_and_on_with_keys() -> None:
    assert Settings.from_mapping({}).dbsc is None
    on = Settings.from_mapping({"SESSIONWARD_DBSC": "1", "SESSIONWARD_DBSC_CHALLENGE_KEY": KEY_A,
                                "SESSIONWARD_DBSC_COOKIE_KEY": KEY_B, "SESSIONWARD_DBSC_COOKIE_LIFETIME": "300",
                                "SESSIONWARD_DBSC_ALGS": "ES256"})
    assert on.dbsc is not None
    assert on.dbsc.policy.cookie_lifetime == 300 and on.dbsc.policy.algorithms == ("ES256",)
    assert KEY_A not in repr(on) and KEY_B not in repr(on)


@pytest.mark.parametrize(("values", "key"), [
    ({"SESSIONWARD_DBSC": "1", "SESSIONWARD_DBSC_COOKIE_KEY": KEY_B}, "SESSIONWARD_DBSC_CHALLENGE_KEY"),
    ({"SESSIONWARD_DBSC": "1", "SESSIONWARD_DBSC_CHALLENGE_KEY": KEY_A}, "SESSIONWARD_DBSC_COOKIE_KEY"),
    ({"SESSIONWARD_DBSC": "1", "SESSIONWARD_DBSC_CHALLENGE_KEY": KEY_A, "SESSIONWARD_DBSC_COOKIE_KEY": KEY_A},
     "SESSIONWARD_DBSC_COOKIE_KEY"),
    ({"SESSIONWARD_DBSC_CHALLENGE_KEY": "00" * 8}, "SESSIONWARD_DBSC_CHALLENGE_KEY"),
    ({"SESSIONWARD_DBSC_COOKIE_LIFETIME": "5"}, "SESSIONWARD_DBSC_COOKIE_LIFETIME"),
    ({"SESSIONWARD_DBSC_ALGS": "none"}, "SESSIONWARD_DBSC_ALGS"),
    ({"SESSIONWARD_DBSC_ALGS": "ES256 HS256"}, "SESSIONWARD_DBSC_ALGS"),
    ({"SESSIONWARD_DBSC_REFRESH_PATH": "dbsc"}, "SESSIONWARD_DBSC_REFRESH_PATH"),
    ({"SESSIONWARD_DBSC_COOKIE_NAME": "sw_dbsc"}, "SESSIONWARD_DBSC_COOKIE_NAME"),
    ({"SESSIONWARD_DBSC": "maybe"}, "SESSIONWARD_DBSC"),
])
def test_dbsc_a_wrong_setting_stops_start_up_naming_the_full_key(values: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_mapping(values)
    assert err.value.setting == key, str(err.value)
