"""`sessionward.settings`: every `SESSIONWARD_*` setting parsed once, from any mapping, naming the full key."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from sessionward._settings_table import markdown_table, with_table
from sessionward.config import CookiePolicy, SessionPolicy, ThrottlePolicy
from sessionward.exceptions import ConfigError
from sessionward.settings import ALIASES, BY_NAME, TABLE, Settings, UnknownSettingWarning, environment_settings

ROOT = Path(__file__).resolve().parent.parent
KEY = bytes(range(32))


def parse(**values: Any) -> Settings:
    return Settings.from_mapping(values)


def test_defaults_build_the_core_policies() -> None:
    s = Settings.from_mapping({})
    assert s.session == SessionPolicy() and s.cookie == CookiePolicy() and s.throttle == ThrottlePolicy()
    assert s.store.url is None and s.store.options("sqlite:///x.db") == {}
    assert not s.tokens.enabled and s.tokens.algorithm == "ES256" and s.tokens.cache_size == 4096
    assert s.csrf_key is None and s.trusted_origins == () and s.purge_interval == 600
    assert (s.management.port, s.management.host, s.service.trusted_proxies) == (9000, "127.0.0.1", 0)


def test_dpop_nonces_need_their_own_key_and_the_defaults_are_the_cores() -> None:
    from sessionward.dpop import DPoPPolicy

    assert Settings.from_mapping({}).dpop.policy == DPoPPolicy()  # allowed, ES256 Ed25519 EdDSA, 60 s, no nonces
    with pytest.raises(ConfigError) as info:
        parse(SESSIONWARD_DPOP_NONCE="1")
    assert info.value.setting == "SESSIONWARD_DPOP_NONCE_KEY"
    verifier = parse(SESSIONWARD_DPOP_NONCE="1", SESSIONWARD_DPOP_NONCE_KEY=KEY).dpop.verifier()
    assert verifier.policy.nonce and verifier.new_nonce(now=0.0)


def test_the_table_defaults_are_the_core_defaults() -> None:
    """The README shows the table's defaults; they must be what the core really uses."""
    from sessionward.tokens import DEFAULT_ALG, TokenPolicy
    from sessionward.tokens.service import DEFAULT_CACHE_SIZE

    s = Settings.from_mapping({})
    core = TokenPolicy(issuer="sessionward", audience="sessionward-api")
    assert s.tokens.policy == core
    assert BY_NAME["SESSIONWARD_TOKEN_ALG"].default == DEFAULT_ALG
    assert BY_NAME["SESSIONWARD_TOKEN_CACHE_SIZE"].default == DEFAULT_CACHE_SIZE


def test_text_from_the_environment_and_typed_values_from_app_config_parse_alike() -> None:
    text = parse(SESSIONWARD_SESSION_IDLE_TIMEOUT="600", SESSIONWARD_THROTTLE_ACCOUNT_FREE=" 3 ",
                 SESSIONWARD_LOCAL_CACHE="yes", SESSIONWARD_STORE_URL="redis://127.0.0.1/0",
                 SESSIONWARD_CSRF_KEY=KEY.hex(), SESSIONWARD_TRUSTED_ORIGINS="https://a.example, https://b.example")
    typed = parse(SESSIONWARD_SESSION_IDLE_TIMEOUT=600, SESSIONWARD_THROTTLE_ACCOUNT_FREE=3,
                  SESSIONWARD_LOCAL_CACHE=True, SESSIONWARD_STORE_URL="redis://127.0.0.1/0",
                  SESSIONWARD_CSRF_KEY=KEY, SESSIONWARD_TRUSTED_ORIGINS=["https://a.example", "https://b.example"])
    assert text == typed
    assert text.session.idle_timeout == 600 and text.throttle.account_free == 3 and text.csrf_key == KEY
    assert text.store.options() == {"local_cache": True, "publish_invalidations": True}


@pytest.mark.parametrize(("key", "value"), [
    ("SESSIONWARD_SESSION_IDLE_TIMEOUT", "-5"),  # the core policy says SESSION_IDLE_TIMEOUT; renamed
    ("SESSIONWARD_SESSION_IDLE_TIMEOUT", "half an hour"),
    ("SESSIONWARD_SESSION_IDLE_TIMEOUT", "nan"),
    ("SESSIONWARD_SESSION_IDLE_TIMEOUT", 10**6),  # longer than the absolute lifetime
    ("SESSIONWARD_SESSION_TOUCH_INTERVAL", 1800),  # not shorter than the idle timeout
    ("SESSIONWARD_THROTTLE_ACCOUNT_FREE", "2.5"),  # no silent truncation
    ("SESSIONWARD_THROTTLE_ACCOUNT_FREE", 2.5),
    ("SESSIONWARD_THROTTLE_ACCOUNT_FREE", True),
    ("SESSIONWARD_THROTTLE_ADDRESS_FREE", "0"),
    ("SESSIONWARD_THROTTLE_MAX_BACKOFF", "0"),
    ("SESSIONWARD_HASH_CONCURRENCY", "1.5"),
    ("SESSIONWARD_HASH_QUEUE", "-1"),
    ("SESSIONWARD_HASH_WAIT", "61"),
    ("SESSIONWARD_TOKEN_CACHE_SIZE", "2.5"),
    ("SESSIONWARD_TOKEN_ALG", "none"),
    ("SESSIONWARD_ACCESS_TTL", "5"),
    ("SESSIONWARD_REFRESH_IDLE", "31536000"),  # past REFRESH_ABSOLUTE (message names both full keys)
    ("SESSIONWARD_COOKIE_NAME", "a b"),
    ("SESSIONWARD_COOKIE_SAMESITE", "lax-ish"),
    ("SESSIONWARD_LOCAL_CACHE", "maybe"),
    ("SESSIONWARD_CSRF_KEY", b"short"),
    ("SESSIONWARD_CSRF_KEY", "not hex"),
    ("SESSIONWARD_REFRESH_KEY", b"a" * 32),
    ("SESSIONWARD_KEK", KEY),  # a KEK without a refresh key: tokens half-configured
    ("SESSIONWARD_REDIS_PREFIX", "{sw}:"),
    ("SESSIONWARD_TRUSTED_ORIGINS", "app.example"),
    ("SESSIONWARD_TRUSTED_PROXIES", "-1"),
    ("SESSIONWARD_MANAGEMENT_PORT", "70000"),
    ("SESSIONWARD_PURGE_INTERVAL", "0"),
    ("SESSIONWARD_KEYS_REFRESH_INTERVAL", "0"),
    ("SESSIONWARD_DPOP", "sometimes"),
    ("SESSIONWARD_DPOP_ALGS", "HS256"),  # never HMAC
    ("SESSIONWARD_DPOP_ALGS", "none"),
    ("SESSIONWARD_DPOP_ALGS", ""),
    ("SESSIONWARD_DPOP_MAX_AGE", "3600"),
    ("SESSIONWARD_DPOP_NONCE", "perhaps"),
    ("SESSIONWARD_DPOP_NONCE_LIFETIME", "1"),
    ("SESSIONWARD_DPOP_NONCE_KEY", b"short"),
])
def test_a_wrong_value_names_the_full_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        parse(**{key: value})
    expected = "SESSIONWARD_REFRESH_KEY" if key == "SESSIONWARD_KEK" else key
    assert info.value.setting == expected
    assert str(info.value).startswith(expected + ": ")
    message = str(info.value).removeprefix(expected + ": ")
    for alias in ALIASES:  # no short name of a core policy is left in the message
        assert f" {alias} " not in f" {message} " or alias.startswith("SESSIONWARD_")


def test_a_sql_store_with_a_local_cache_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse(SESSIONWARD_STORE_URL="sqlite:///x.db", SESSIONWARD_LOCAL_CACHE="1")
    assert info.value.setting == "SESSIONWARD_LOCAL_CACHE"


def test_an_unknown_key_is_an_error_naming_it_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        parse(SESSIONWARD_SESION_IDLE_TIMEOUT="60")
    assert info.value.setting == "SESSIONWARD_SESION_IDLE_TIMEOUT"
    assert "did you mean SESSIONWARD_SESSION_IDLE_TIMEOUT" in str(info.value)
    parse(SECRET_KEY="x", DEBUG=False)  # other keys of app.config are not ours
    parse(SESSIONWARD_TEST_PG_URL="postgresql://...")  # reserved for the test suite's own services


def test_an_unknown_key_in_the_environment_warns_and_is_left_out() -> None:
    environ = {"SESSIONWARD_SESION_IDLE_TIMEOUT": "60", "SESSIONWARD_ACCESS_TTL": "120", "HOME": "/root"}
    with pytest.warns(UnknownSettingWarning, match="SESSIONWARD_SESION_IDLE_TIMEOUT"):
        settings = Settings.from_environ(environ)
    assert settings.tokens.policy.access_ttl == 120
    with pytest.warns(UnknownSettingWarning):
        assert environment_settings(environ) == {"SESSIONWARD_ACCESS_TTL": "120"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Settings.from_mapping(environ, unknown="ignore")


def test_secrets_stay_out_of_the_repr() -> None:
    s = parse(SESSIONWARD_CSRF_KEY=KEY, SESSIONWARD_REFRESH_KEY=KEY[::-1], SESSIONWARD_KEK=bytes(range(1, 33)))
    assert s.tokens.enabled
    for secret in (KEY, KEY[::-1], bytes(range(1, 33))):
        assert repr(secret) not in repr(s) and secret.hex() not in repr(s)


def test_settings_are_frozen() -> None:
    s = Settings.from_mapping({})
    with pytest.raises(AttributeError):
        s.purge_interval = 1  # type: ignore[misc]


def test_every_table_row_has_a_full_key_a_description_and_a_component() -> None:
    names = [s.name for s in TABLE]
    assert len(names) == len(set(names))
    for s in TABLE:
        assert s.name.startswith("SESSIONWARD_") and s.description and s.component, s


def test_readme_configuration_table_is_generated_from_the_table() -> None:
    """Regenerate with `python -m sessionward.settings --readme README.md`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme
    assert with_table(readme) == readme


def test_markdown_command_prints_the_table() -> None:
    out = subprocess.run([sys.executable, "-m", "sessionward.settings", "--markdown"], capture_output=True,
                         text=True, check=True).stdout
    assert out == markdown_table()


def test_settings_import_no_web_framework_nor_metrics() -> None:
    code = ("import sys, sessionward.settings as s; s.Settings.from_mapping({'SESSIONWARD_TOKEN_ALG': 'ES256'}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'starlette')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
