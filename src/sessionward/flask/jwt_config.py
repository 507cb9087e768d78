"""The token service from `SESSIONWARD_*` settings, validated once (a wrong one raises `ConfigError` naming it).

Flask-free (a plain mapping in, a `TokenService` out), so that `sessionward keys ...` builds exactly the service
the server runs: settings from the environment there, from `app.config` here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..clock import Clock
from ..db import make_engine
from ..exceptions import ConfigError
from ..stores import SessionStore
from ..tokens import ALGORITHMS, DEFAULT_ALG, KeySource, SQLKeyRepository, TokenPolicy, TokenService
from ..tokens.service import DEFAULT_CACHE_SIZE, MAX_CACHE_SIZE

__all__ = [
    "DEFAULT_AUDIENCE", "DEFAULT_ISSUER", "build_token_service", "token_algorithm", "token_cache_size", "token_policy",
]

DEFAULT_ISSUER = "sessionward"
DEFAULT_AUDIENCE = "sessionward-api"

#: How TokenPolicy's setting names read in this extension's configuration.
_SETTINGS = {
    "TOKEN_ISSUER": "SESSIONWARD_ISSUER",
    "TOKEN_AUDIENCE": "SESSIONWARD_AUDIENCE",
    "TOKEN_ACCESS_TTL": "SESSIONWARD_ACCESS_TTL",
    "TOKEN_REFRESH_IDLE": "SESSIONWARD_REFRESH_IDLE",
    "TOKEN_REFRESH_ABSOLUTE": "SESSIONWARD_REFRESH_ABSOLUTE",
    "TOKEN_LEEWAY": "SESSIONWARD_TOKEN_LEEWAY",
    "TOKEN_REUSE_GRACE": "SESSIONWARD_REFRESH_REUSE_GRACE",
    "TOKEN_ALGORITHM": "SESSIONWARD_TOKEN_ALG",
    "TOKEN_CACHE_SIZE": "SESSIONWARD_TOKEN_CACHE_SIZE",
    "TOKEN_REFRESH_KEY": "SESSIONWARD_REFRESH_KEY",
    "SESSIONWARD_KEY_ENCRYPTION_KEY": "SESSIONWARD_KEK",
}


def _key(config: Mapping[str, Any], name: str) -> bytes:
    value = config.get(name)
    if value is None or value == "":
        raise ConfigError(name, "is required (32+ random bytes); sessionward never falls back to SECRET_KEY")
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value.strip())
        except ValueError:
            raise ConfigError(name, "must be bytes or hex text of 32+ random bytes") from None
    if not isinstance(value, (bytes, bytearray)):
        raise ConfigError(name, "must be bytes or hex text of 32+ random bytes")
    return bytes(value)


def _seconds(config: Mapping[str, Any], name: str, default: float) -> float:
    value = config.get(name, default)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(name, f"must be a number of seconds, got {value!r}") from None
    return value  # type: ignore[no-any-return]  # range and type are checked by TokenPolicy


def _renamed(exc: ConfigError) -> ConfigError:
    name = _SETTINGS.get(exc.setting)
    if name is None:
        return exc
    message = str(exc).split(": ", 1)[-1]
    for old, new in _SETTINGS.items():
        message = message.replace(old, new)
    return ConfigError(name, message)


def token_policy(config: Mapping[str, Any]) -> TokenPolicy:
    """The `TokenPolicy` from `SESSIONWARD_ISSUER`, `_AUDIENCE`, `_ACCESS_TTL`, `_REFRESH_IDLE`,
    `_REFRESH_ABSOLUTE`, `_TOKEN_LEEWAY`, `_REFRESH_REUSE_GRACE` (numbers may be text, as from the environment).
    Raises `ConfigError` naming the setting."""
    defaults = TokenPolicy(issuer=DEFAULT_ISSUER, audience=DEFAULT_AUDIENCE)
    try:
        return TokenPolicy(
            issuer=config.get("SESSIONWARD_ISSUER", DEFAULT_ISSUER),
            audience=config.get("SESSIONWARD_AUDIENCE", DEFAULT_AUDIENCE),
            access_ttl=_seconds(config, "SESSIONWARD_ACCESS_TTL", defaults.access_ttl),
            refresh_idle=_seconds(config, "SESSIONWARD_REFRESH_IDLE", defaults.refresh_idle),
            refresh_absolute=_seconds(config, "SESSIONWARD_REFRESH_ABSOLUTE", defaults.refresh_absolute),
            leeway=_seconds(config, "SESSIONWARD_TOKEN_LEEWAY", defaults.leeway),
            reuse_grace=_seconds(config, "SESSIONWARD_REFRESH_REUSE_GRACE", defaults.reuse_grace),
        )
    except ConfigError as exc:
        raise _renamed(exc) from None


def token_algorithm(config: Mapping[str, Any]) -> str:
    """`SESSIONWARD_TOKEN_ALG`: the algorithm of the first key and of `keys rotate` without `--alg` (default
    `DEFAULT_ALG`, ES256). Raises `ConfigError` for anything we do not sign with."""
    alg = config.get("SESSIONWARD_TOKEN_ALG", DEFAULT_ALG)
    if alg not in ALGORITHMS:
        raise ConfigError("SESSIONWARD_TOKEN_ALG", f"must be one of {', '.join(sorted(ALGORITHMS))}, got {alg!r}")
    return alg  # type: ignore[no-any-return]


def token_cache_size(config: Mapping[str, Any]) -> int:
    """`SESSIONWARD_TOKEN_CACHE_SIZE`: how many verified access tokens each process remembers (default 4096,
    about 1 KB each; 0 = off). Text from the environment is read as a whole number. Raises `ConfigError`."""
    value = config.get("SESSIONWARD_TOKEN_CACHE_SIZE", DEFAULT_CACHE_SIZE)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError("SESSIONWARD_TOKEN_CACHE_SIZE", f"must be a whole number, got {value!r}") from None
    if type(value) is not int or not 0 <= value <= MAX_CACHE_SIZE:
        raise ConfigError(
            "SESSIONWARD_TOKEN_CACHE_SIZE", f"must be a whole number from 0 to {MAX_CACHE_SIZE}, got {value!r}"
        )
    return value


def build_token_service(
    config: Mapping[str, Any], *, store: SessionStore, clock: Clock, keys: KeySource | None = None
) -> TokenService:
    """A `TokenService` over `store`, with signing keys from `SQLKeyRepository` on `SESSIONWARD_DATABASE_URL`
    sealed under `SESSIONWARD_KEK` (unless `keys` is given) and `SESSIONWARD_REFRESH_KEY`. Flask-free, so the
    CLI builds the very same service. Raises `ConfigError` naming the setting, `StoreUnavailable`."""
    policy = token_policy(config)
    alg = token_algorithm(config)
    cache_size = token_cache_size(config)
    try:
        if keys is None:
            url = config.get("SESSIONWARD_DATABASE_URL")
            if not url:
                raise ConfigError("SESSIONWARD_DATABASE_URL", "is required for the signing keys")
            keys = SQLKeyRepository(
                make_engine(url),
                _key(config, "SESSIONWARD_KEK"),
                refresh_interval=_seconds(config, "SESSIONWARD_KEYS_REFRESH_INTERVAL", 5.0),
                default_alg=alg,
            )
        return TokenService(
            store=store,
            keys=keys,
            refresh_key=_key(config, "SESSIONWARD_REFRESH_KEY"),
            policy=policy,
            clock=clock,
            cache_size=cache_size,
        )
    except ConfigError as exc:
        raise _renamed(exc) from None
