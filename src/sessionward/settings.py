"""Every `SESSIONWARD_*` setting, declared once and parsed once, from any mapping.

`Settings.from_mapping(mapping)` is the one entry point: Flask's `app.config`, the environment, a dict. It
returns a frozen `Settings` holding the validated policies; a wrong value raises `ConfigError` naming the full
key (`SESSIONWARD_SESSION_IDLE_TIMEOUT`), a whole-number setting refuses `"2.5"`, and an unknown
`SESSIONWARD_*` key is an error (a typo must not silently leave a default in force). The environment is shared
with other tools, so `Settings.from_environ()` only warns (`UnknownSettingWarning`) about unknown keys there.

Framework-free and cheap to import: the token policy is built lazily (the token modules load prometheus_client,
which `sessionward serve` must configure first). `python -m sessionward.settings --markdown` prints the README's
configuration table, generated from `TABLE` (tests/test_settings.py keeps the two equal).
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ._settings_table import BY_NAME, PREFIX, TABLE, Reader, Setting, markdown_table, with_table
from .config import CookiePolicy, SessionPolicy, ThrottlePolicy
from .exceptions import ConfigError

if TYPE_CHECKING:
    from .dbsc import DBSCPolicy, DBSCServer
    from .dpop import DPoPPolicy, DPoPVerifier
    from .passwords import HashGate
    from .tokens.claims import TokenPolicy

__all__ = [
    "PREFIX", "TABLE", "DBSCSettings", "DPoPSettings", "HashingSettings", "ManagementSettings", "ServiceSettings",
    "Setting",
    "Settings", "StoreSettings", "TokenSettings", "UnknownSettingWarning", "environment_settings", "full_key_errors",
    "is_redis_url", "markdown_table",
]

#: The names the core's policies use in their `ConfigError`s, and the full keys they stand for.
ALIASES: dict[str, str] = {alias: s.name for s in TABLE for alias in s.aliases}
#: Names under this prefix belong to sessionward's own test suite (`SESSIONWARD_TEST_PG_URL`), never a setting.
RESERVED = PREFIX + "TEST_"
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster")


class UnknownSettingWarning(UserWarning):
    """A `SESSIONWARD_*` name in the environment that no setting has (a typo leaves the default in force)."""


# -- the parsed groups ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where sessions live. `options()` gives `open_store`'s keyword arguments."""

    url: str | None
    local_cache: bool = False
    redis_prefix: str | None = None

    def options(self, url: str | None = None) -> dict[str, Any]:
        """`open_store(url, **options)` for `url` (default `self.url`). On Redis every writer publishes
        invalidations, so instances with a local cache hear of every revocation, whoever made it."""
        url = url if url is not None else self.url
        if not is_redis_url(url):
            if self.local_cache:
                raise ConfigError("SESSIONWARD_LOCAL_CACHE", "needs a Redis store URL (it is kept current by pub/sub)")
            return {}
        options: dict[str, Any] = {"local_cache": self.local_cache, "publish_invalidations": True}
        if self.redis_prefix:
            options["prefix"] = self.redis_prefix
        return options


@dataclass(frozen=True, slots=True)
class HashingSettings:
    """The per-process bound on password hashing (SECURITY.md O7)."""

    concurrency: int
    queue: int
    wait: float

    def gate(self) -> HashGate:
        from .passwords import HashGate

        return HashGate(self.concurrency, max_waiting=self.queue, max_wait=self.wait)


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """Access and refresh tokens. `enabled` when a refresh key is set."""

    policy: TokenPolicy
    algorithm: str
    cache_size: int
    keys_refresh_interval: float
    refresh_key: bytes | None = field(default=None, repr=False)
    kek: bytes | None = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        return self.refresh_key is not None


@dataclass(frozen=True, slots=True)
class DPoPSettings:
    """DPoP-bound tokens (RFC 9449). `policy` is None when built without settings (then the default policy);
    `verifier()` builds the checker the adapters use."""

    policy: DPoPPolicy | None = None
    nonce_key: bytes | None = field(default=None, repr=False)

    def verifier(self) -> DPoPVerifier:
        from .dpop import DPoPPolicy, DPoPVerifier

        policy = self.policy or DPoPPolicy()
        with full_key_errors():
            return DPoPVerifier(policy, nonce_keys=[self.nonce_key] if self.nonce_key else None)


@dataclass(frozen=True, slots=True)
class ManagementSettings:
    """The loopback listener for /metrics and the detailed /healthz (`sessionward serve`)."""

    port: int
    host: str


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Settings of the reference service and the CLI only."""

    instance: str | None
    kek_file: str | None
    trusted_proxies: int


@dataclass(frozen=True, slots=True)
class DBSCSettings:
    """Device Bound Session Credentials (`SESSIONWARD_DBSC` on): the policy and its two keys, one per purpose."""

    policy: DBSCPolicy
    challenge_key: bytes = field(repr=False)
    cookie_key: bytes = field(repr=False)

    def server(self) -> DBSCServer:
        """The protocol object (`sessionward.dbsc.DBSCServer`). Raises `ConfigError` naming the full key."""
        from .dbsc import DBSCServer

        with full_key_errors():
            return DBSCServer(self.policy, challenge_keys=[self.challenge_key], cookie_keys=[self.cookie_key])


@dataclass(frozen=True, slots=True)
class Settings:
    """Every `SESSIONWARD_*` setting, validated. Build with `Settings.from_mapping(...)`."""

    store: StoreSettings
    database_url: str | None
    session: SessionPolicy
    cookie: CookiePolicy
    throttle: ThrottlePolicy
    hashing: HashingSettings
    tokens: TokenSettings
    trusted_origins: tuple[str, ...]
    purge_interval: float
    management: ManagementSettings
    service: ServiceSettings
    csrf_key: bytes | None = field(default=None, repr=False)
    dpop: DPoPSettings = field(default_factory=DPoPSettings)
    dbsc: DBSCSettings | None = None  #: None: DBSC is off (`SESSIONWARD_DBSC`)

    @property
    def store_url(self) -> str | None:
        return self.store.url

    @classmethod
    def from_mapping(
        cls, mapping: Mapping[str, Any], *, unknown: Literal["error", "warn", "ignore"] = "error"
    ) -> Settings:
        """Parse the `SESSIONWARD_*` keys of `mapping` (other keys are left alone). Raises `ConfigError` naming
        the full key of the first wrong value, or of an unknown `SESSIONWARD_*` key (`unknown="warn"` warns
        instead, `"ignore"` says nothing)."""
        _check_unknown(mapping, unknown)
        return _build(Reader(mapping))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """`from_mapping(os.environ)`, warning (not failing) about unknown `SESSIONWARD_*` names."""
        return cls.from_mapping(os.environ if environ is None else environ, unknown="warn")


def is_redis_url(url: str | None) -> bool:
    return bool(url) and str(url).split(":", 1)[0].lower() in REDIS_SCHEMES


def environment_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The known `SESSIONWARD_*` entries of the environment (unknown ones warned about, then left out)."""
    environ = os.environ if environ is None else environ
    _check_unknown(environ, "warn")
    return {k: v for k, v in environ.items() if k in BY_NAME}


def _check_unknown(mapping: Mapping[str, Any], unknown: str) -> None:
    if unknown == "ignore":
        return
    for key in mapping:
        if isinstance(key, str) and key.startswith(PREFIX) and key not in BY_NAME and not key.startswith(RESERVED):
            message = f"is not a sessionward setting{_suggestion(key)}"
            if unknown == "error":
                raise ConfigError(key, message)
            warnings.warn(f"{key}: {message}", UnknownSettingWarning, stacklevel=4)


def _suggestion(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, BY_NAME, n=1, cutoff=0.8)
    return f" (did you mean {close[0]}?)" if close else ""


# -- building the policies -----------------------------------------------------------------------

def _renamed(exc: ConfigError) -> ConfigError:
    """A core policy's `ConfigError` (`SESSION_IDLE_TIMEOUT: ...`) as the setting's full key."""
    if exc.setting not in ALIASES:
        return exc  # already a full key (or not a setting at all, like MissingExtra)
    name = ALIASES[exc.setting]
    message = str(exc).split(": ", 1)[-1]
    for alias in sorted(ALIASES, key=len, reverse=True):
        message = re.sub(rf"(?<![A-Z_]){alias}\b", ALIASES[alias], message)
    return ConfigError(name, message)


def _policy(make: Callable[[], Any]) -> Any:
    with full_key_errors():
        return make()


@contextmanager
def full_key_errors() -> Iterator[None]:
    """Re-raise a core `ConfigError` under the setting's full key (`TOKEN_REFRESH_KEY` ->
    `SESSIONWARD_REFRESH_KEY`): for code that builds core objects from `Settings`."""
    try:
        yield
    except ConfigError as exc:
        raise _renamed(exc) from None


def _token_settings(r: Reader) -> TokenSettings:
    from .tokens.claims import TokenPolicy
    from .tokens.keys import ALGORITHMS
    from .tokens.service import MAX_CACHE_SIZE

    policy = _policy(lambda: TokenPolicy(
        issuer=r.text("SESSIONWARD_ISSUER"),  # type: ignore[arg-type]
        audience=r.text("SESSIONWARD_AUDIENCE"),  # type: ignore[arg-type]
        access_ttl=r.seconds("SESSIONWARD_ACCESS_TTL"),
        refresh_idle=r.seconds("SESSIONWARD_REFRESH_IDLE"),
        refresh_absolute=r.seconds("SESSIONWARD_REFRESH_ABSOLUTE"),
        leeway=r.seconds("SESSIONWARD_TOKEN_LEEWAY"),
        reuse_grace=r.seconds("SESSIONWARD_REFRESH_REUSE_GRACE"),
    ))
    alg = r.text("SESSIONWARD_TOKEN_ALG")
    if alg not in ALGORITHMS:
        raise ConfigError("SESSIONWARD_TOKEN_ALG", f"must be one of {', '.join(sorted(ALGORITHMS))}, got {alg!r}")
    cache_size = r.whole("SESSIONWARD_TOKEN_CACHE_SIZE")
    if not 0 <= cache_size <= MAX_CACHE_SIZE:
        raise ConfigError("SESSIONWARD_TOKEN_CACHE_SIZE",
                          f"must be a whole number from 0 to {MAX_CACHE_SIZE}, got {cache_size!r}")
    interval = r.seconds("SESSIONWARD_KEYS_REFRESH_INTERVAL")
    if not 0 < interval <= 3600:  # noqa: PLR2004 - an hour: past it, a rotation would take too long to spread
        raise ConfigError("SESSIONWARD_KEYS_REFRESH_INTERVAL", f"must be seconds in (0, 3600], got {interval!r}")
    refresh_key, kek = r.key("SESSIONWARD_REFRESH_KEY"), r.key("SESSIONWARD_KEK")
    if kek is not None and refresh_key is None:
        raise ConfigError("SESSIONWARD_REFRESH_KEY", "is required for tokens (32+ random bytes)")
    return TokenSettings(policy=policy, algorithm=alg, cache_size=cache_size, keys_refresh_interval=interval,
                         refresh_key=refresh_key, kek=kek)


def _hashing(r: Reader) -> HashingSettings:
    from .passwords import DEFAULT_HASH_CONCURRENCY, MAX_HASH_WAIT

    concurrency = r.whole("SESSIONWARD_HASH_CONCURRENCY", DEFAULT_HASH_CONCURRENCY)
    if concurrency < 1:
        raise ConfigError("SESSIONWARD_HASH_CONCURRENCY", f"must be a whole number >= 1, got {concurrency!r}")
    queue = r.whole("SESSIONWARD_HASH_QUEUE", 4 * concurrency)
    if queue < 0:
        raise ConfigError("SESSIONWARD_HASH_QUEUE", f"must be a whole number >= 0, got {queue!r}")
    wait = r.seconds("SESSIONWARD_HASH_WAIT")
    if not 0 < wait <= MAX_HASH_WAIT:
        raise ConfigError("SESSIONWARD_HASH_WAIT", f"must be a number of seconds in (0, {MAX_HASH_WAIT}], got {wait!r}")
    return HashingSettings(concurrency=concurrency, queue=queue, wait=wait)


def _dbsc(r: Reader) -> DBSCSettings | None:
    """`SESSIONWARD_DBSC*`, validated even when off (a typo must not wait until DBSC is turned on)."""
    from .dbsc import DBSCPolicy

    algs = r.text("SESSIONWARD_DBSC_ALGS") or ""
    policy = _policy(lambda: DBSCPolicy(
        enabled=r.flag("SESSIONWARD_DBSC"),
        algorithms=tuple(a for a in re.split(r"[\s,]+", algs) if a),
        registration_path=r.text("SESSIONWARD_DBSC_REGISTRATION_PATH"),  # type: ignore[arg-type]
        refresh_path=r.text("SESSIONWARD_DBSC_REFRESH_PATH"),  # type: ignore[arg-type]
        challenge_lifetime=r.seconds("SESSIONWARD_DBSC_CHALLENGE_LIFETIME"),
        cookie_name=r.text("SESSIONWARD_DBSC_COOKIE_NAME"),  # type: ignore[arg-type]
        cookie_lifetime=r.seconds("SESSIONWARD_DBSC_COOKIE_LIFETIME"),
    ))
    challenge_key, cookie_key = r.key("SESSIONWARD_DBSC_CHALLENGE_KEY"), r.key("SESSIONWARD_DBSC_COOKIE_KEY")
    if not policy.enabled:
        return None
    needed = "is required when SESSIONWARD_DBSC is on (32+ random bytes)"
    if challenge_key is None:
        raise ConfigError("SESSIONWARD_DBSC_CHALLENGE_KEY", needed)
    if cookie_key is None:
        raise ConfigError("SESSIONWARD_DBSC_COOKIE_KEY", needed)
    if challenge_key == cookie_key:
        raise ConfigError("SESSIONWARD_DBSC_COOKIE_KEY", "must differ from SESSIONWARD_DBSC_CHALLENGE_KEY "
                          "(one key per purpose)")
    settings = DBSCSettings(policy=policy, challenge_key=challenge_key, cookie_key=cookie_key)
    settings.server()  # the keys' own checks, now
    return settings


def _dpop(r: Reader) -> DPoPSettings:
    from .dpop import DPoPPolicy

    algs = tuple(a for a in re.split(r"[\s,]+", (r.text("SESSIONWARD_DPOP_ALGS") or "").strip()) if a)
    policy = _policy(lambda: DPoPPolicy(
        mode=r.choice("SESSIONWARD_DPOP"),  # type: ignore[arg-type]
        algorithms=algs,
        max_age=r.seconds("SESSIONWARD_DPOP_MAX_AGE"),
        nonce=r.flag("SESSIONWARD_DPOP_NONCE"),
        nonce_lifetime=r.seconds("SESSIONWARD_DPOP_NONCE_LIFETIME"),
    ))
    key = r.key("SESSIONWARD_DPOP_NONCE_KEY")
    if policy.nonce and policy.enabled and key is None:
        raise ConfigError("SESSIONWARD_DPOP_NONCE_KEY", "is required when SESSIONWARD_DPOP_NONCE is on (32+ random "
                          "bytes)")
    settings = DPoPSettings(policy=policy, nonce_key=key)
    if policy.enabled:
        settings.verifier()  # a bad key stops start-up now
    return settings


def _positive(name: str, value: float) -> float:
    if value <= 0:
        raise ConfigError(name, f"must be a positive number of seconds, got {value!r}")
    return value


def _build(r: Reader) -> Settings:
    session = _policy(lambda: SessionPolicy(
        idle_timeout=r.seconds("SESSIONWARD_SESSION_IDLE_TIMEOUT"),
        absolute_lifetime=r.seconds("SESSIONWARD_SESSION_ABSOLUTE_LIFETIME"),
        touch_interval=r.seconds("SESSIONWARD_SESSION_TOUCH_INTERVAL"),
        reauth_window=r.seconds("SESSIONWARD_SESSION_REAUTH_WINDOW"),
    ))
    cookie = _policy(lambda: CookiePolicy(name=r.text("SESSIONWARD_COOKIE_NAME"),  # type: ignore[arg-type]
                                          samesite=r.choice("SESSIONWARD_COOKIE_SAMESITE")))  # type: ignore[arg-type]
    throttle = _policy(lambda: ThrottlePolicy(
        account_free=r.whole("SESSIONWARD_THROTTLE_ACCOUNT_FREE"),
        address_free=r.whole("SESSIONWARD_THROTTLE_ADDRESS_FREE"),
        base_backoff=r.seconds("SESSIONWARD_THROTTLE_BASE_BACKOFF"),
        max_backoff=r.seconds("SESSIONWARD_THROTTLE_MAX_BACKOFF"),
    ))
    store_url = r.text("SESSIONWARD_STORE_URL")
    prefix = r.text("SESSIONWARD_REDIS_PREFIX")
    if prefix is not None and ("{" in prefix or "}" in prefix or not prefix):
        raise ConfigError("SESSIONWARD_REDIS_PREFIX", "must be non-empty, without '{' or '}' (they are hash tags)")
    store = StoreSettings(url=store_url, local_cache=r.flag("SESSIONWARD_LOCAL_CACHE"), redis_prefix=prefix)
    if store_url is not None:
        store.options()  # LOCAL_CACHE on a SQL URL stops start-up now
    port = r.whole("SESSIONWARD_MANAGEMENT_PORT")
    if not 0 <= port <= 65535:  # noqa: PLR2004 - the largest port number
        raise ConfigError("SESSIONWARD_MANAGEMENT_PORT", f"must be 0 (off) or a port number, got {port!r}")
    proxies = r.whole("SESSIONWARD_TRUSTED_PROXIES")
    if proxies < 0:
        raise ConfigError("SESSIONWARD_TRUSTED_PROXIES", "must be the number of proxies in front (0 = none)")
    return Settings(
        store=store,
        database_url=r.text("SESSIONWARD_DATABASE_URL"),
        session=session,
        cookie=cookie,
        throttle=throttle,
        hashing=_hashing(r),
        tokens=_token_settings(r),
        trusted_origins=r.origins("SESSIONWARD_TRUSTED_ORIGINS"),
        purge_interval=_positive("SESSIONWARD_PURGE_INTERVAL", r.seconds("SESSIONWARD_PURGE_INTERVAL")),
        management=ManagementSettings(port=port, host=r.text("SESSIONWARD_MANAGEMENT_HOST")),  # type: ignore[arg-type]
        service=ServiceSettings(instance=r.text("SESSIONWARD_INSTANCE"), kek_file=r.text("SESSIONWARD_KEK_FILE"),
                                trusted_proxies=proxies),
        csrf_key=r.key("SESSIONWARD_CSRF_KEY"),
        dpop=_dpop(r),
        dbsc=_dbsc(r),
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m sessionward.settings --markdown` prints the README's configuration table;
    `--readme README.md` rewrites it in place."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--markdown"]:
        print(markdown_table(), end="")
        return 0
    if len(args) == 2 and args[0] == "--readme":  # noqa: PLR2004 - the option and its file
        from pathlib import Path

        path = Path(args[1])
        path.write_text(with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    print("usage: python -m sessionward.settings --markdown | --readme README.md", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
