"""The one table of `SESSIONWARD_*` settings and how each kind of value is read (used by `sessionward.settings`)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import check_key
from .exceptions import ConfigError

PREFIX = "SESSIONWARD_"

Kind = str  # "seconds", "whole", "text", "choice", "flag", "key", "url", "path", "origins"

_TYPE_NAMES = {
    "seconds": "seconds", "whole": "whole number", "text": "text", "choice": "one of", "flag": "true/false",
    "key": "hex key", "url": "URL", "path": "path", "origins": "origins",
}


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: its full key, type, default (None: unset), meaning and the part of sessionward that reads it.
    `aliases` are the short names the core's policies use in their errors (renamed to `name`)."""

    name: str
    kind: Kind
    default: object
    description: str
    component: str
    shown_default: str | None = None  #: the README's default column, when `default` alone says too little
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    @property
    def empty_is_unset(self) -> bool:
        """An empty value (e.g. `SESSIONWARD_KEK=` in a shell) means "not set" for keys, URLs and paths."""
        return self.kind in ("key", "url", "path", "origins")

    @property
    def type_name(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(f"`{c}`" for c in self.choices)
        return _TYPE_NAMES[self.kind]

    @property
    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None:
            return "—"
        value = self.default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"`{value}`"


def _s(name: str, kind: Kind, default: object, component: str, description: str, **more: object) -> Setting:
    return Setting(PREFIX + name, kind, default, description, component, **more)  # type: ignore[arg-type]


TABLE: tuple[Setting, ...] = (
    # -- where things live
    _s("INSTANCE", "path", None, "service", "instance folder of the reference service and the CLI",
       shown_default="`./instance`"),
    _s("DATABASE_URL", "url", None, "users, tokens", "users and signing keys (`sqlite:///…`, `postgresql://…`)",
       shown_default="`sqlite:///<instance>/sessionward.db`"),
    _s("STORE_URL", "url", None, "store", "sessions, token families, denylist, throttling (`sqlite`, `postgresql`, "
       "`redis://`, `rediss://`, `unix://`, `redis+sentinel://`, `redis+cluster://`)",
       shown_default="the database URL"),
    _s("REDIS_PREFIX", "text", None, "store", "key prefix in Redis (several deployments in one Redis); no `{`/`}`",
       shown_default="`sw:`"),
    _s("LOCAL_CACHE", "flag", False, "store", "Redis only: answer the per-request reads (session, denylist, "
       "epoch, token family) from memory, kept current by pub/sub; see Deployment", shown_default="`0`"),
    _s("PURGE_INTERVAL", "seconds", 600.0, "store", "seconds between background purges of expired records "
       "(SQL stores; Redis expires keys by itself)"),
    # -- keys
    _s("CSRF_KEY", "key", None, "csrf", "hex (or bytes in `app.config`), 32+ random bytes: CSRF tokens; one key "
       "per purpose, never `SECRET_KEY`", shown_default="generated into `secrets.json`"),
    _s("REFRESH_KEY", "key", None, "tokens", "hex, 32+ random bytes: refresh tokens; setting it turns tokens on",
       shown_default="generated into `secrets.json`", aliases=("TOKEN_REFRESH_KEY",)),
    _s("KEK", "key", None, "tokens", "hex, 32+ random bytes: encrypts the signing keys stored in the database",
       shown_default="generated into `secrets.json`", aliases=("SESSIONWARD_KEY_ENCRYPTION_KEY",)),
    _s("KEK_FILE", "path", None, "service", "file holding the key-encryption key (hex)"),
    # -- sessions and cookies
    _s("SESSION_IDLE_TIMEOUT", "seconds", 1800.0, "sessions",
       "seconds without activity before a session ends (the lab's 30 minutes)", aliases=("SESSION_IDLE_TIMEOUT",)),
    _s("SESSION_ABSOLUTE_LIFETIME", "seconds", 43200.0, "sessions",
       "seconds after login when a session ends regardless", aliases=("SESSION_ABSOLUTE_LIFETIME",)),
    _s("SESSION_TOUCH_INTERVAL", "seconds", 60.0, "sessions", "a session's last-seen time is written at most this "
       "often (bounds the idle timer's staleness); shorter than the idle timeout",
       aliases=("SESSION_TOUCH_INTERVAL",)),
    _s("SESSION_REAUTH_WINDOW", "seconds", 600.0, "sessions", "how recent a login must be for sensitive actions "
       "(password change, ending other sessions)", aliases=("SESSION_REAUTH_WINDOW",)),
    _s("COOKIE_NAME", "text", "__Host-session", "cookie", "name of the session cookie (letters, digits, `-`, `_`)",
       aliases=("SESSION_COOKIE_NAME",)),
    _s("COOKIE_SAMESITE", "choice", "Lax", "cookie", "`Strict` or `None` possible (CSRF tokens protect either way)",
       choices=("Lax", "Strict", "None"), aliases=("SESSION_COOKIE_SAMESITE",)),
    _s("TRUSTED_ORIGINS", "origins", None, "csrf", "other origins allowed to send unsafe requests "
       "(comma-separated, e.g. `https://app.example`)"),
    # -- throttling and hashing
    _s("THROTTLE_ACCOUNT_FREE", "whole", 5, "throttle", "failed logins allowed per account before backoff starts",
       aliases=("THROTTLE_ACCOUNT_FREE",)),
    _s("THROTTLE_ADDRESS_FREE", "whole", 20, "throttle",
       "failed logins allowed per client address before backoff starts", aliases=("THROTTLE_ADDRESS_FREE",)),
    _s("THROTTLE_BASE_BACKOFF", "seconds", 2.0, "throttle", "the wait after the first throttled failure, doubled "
       "with each further one", aliases=("THROTTLE_BASE_BACKOFF",)),
    _s("THROTTLE_MAX_BACKOFF", "seconds", 900.0, "throttle",
       "the longest any client waits after its last failure (no permanent lockout)", aliases=("THROTTLE_MAX_BACKOFF",)),
    _s("HASH_CONCURRENCY", "whole", None, "hashing", "password hashes (argon2id, 64 MiB each) running at once per "
       "process; a login storm takes at most this many × 64 MiB", shown_default="cores, at most 4"),
    _s("HASH_QUEUE", "whole", None, "hashing", "logins that may wait for a hashing slot; past it, `503` with "
       "`Retry-After`", shown_default="4 × concurrency"),
    _s("HASH_WAIT", "seconds", 5.0, "hashing", "seconds a login may wait for a hashing slot (at most 60); past it, "
       "`503` with `Retry-After`"),
    # -- tokens
    _s("ISSUER", "text", "sessionward", "tokens", "`iss` of access tokens", aliases=("TOKEN_ISSUER",)),
    _s("AUDIENCE", "text", "sessionward-api", "tokens", "`aud` of access tokens", aliases=("TOKEN_AUDIENCE",)),
    _s("ACCESS_TTL", "seconds", 900.0, "tokens", "lifetime of an access token (10 s to 1 day)",
       aliases=("TOKEN_ACCESS_TTL",)),
    _s("REFRESH_IDLE", "seconds", 1209600.0, "tokens", "a token family must be refreshed within this time, or it "
       "dies (14 days)", aliases=("TOKEN_REFRESH_IDLE",)),
    _s("REFRESH_ABSOLUTE", "seconds", 2592000.0, "tokens", "a token family dies this long after login (30 days)",
       aliases=("TOKEN_REFRESH_ABSOLUTE",)),
    _s("TOKEN_LEEWAY", "seconds", 30.0, "tokens", "clock skew allowed for `exp`/`nbf`/`iat` (at most 300)",
       aliases=("TOKEN_LEEWAY",)),
    _s("REFRESH_REUSE_GRACE", "seconds", 0.0, "tokens", "seconds in which a client that lost the answer may present "
       "the refresh token just spent again (at most 60; `0` = off)", aliases=("TOKEN_REUSE_GRACE",)),
    _s("TOKEN_ALG", "choice", "ES256", "tokens", "algorithm of the first signing key, and of `keys rotate` without "
       "`--alg` (see JSON API)", choices=("ES256", "Ed25519", "EdDSA", "RS256", "HS256"),
       aliases=("TOKEN_ALGORITHM",)),
    _s("TOKEN_CACHE_SIZE", "whole", 4096, "tokens", "verified access tokens remembered per process (about 1 KB "
       "each; `0` = off). A token seen before skips its signature check (never the revocation checks); with more "
       "active clients than this, requests take the cold path. Hits and misses: "
       "`sessionward_token_cache_lookups_total` in `/metrics`", aliases=("TOKEN_CACHE_SIZE",)),
    _s("KEYS_REFRESH_INTERVAL", "seconds", 5.0, "tokens", "seconds between checks for a rotated signing key; a new "
       "key signs only after twice this", aliases=("TOKEN_KEYS_REFRESH_INTERVAL",)),
    # -- DPoP (RFC 9449): tokens bound to a client's key
    _s("DPOP", "choice", "allowed", "dpop", "`off`: no DPoP (bound tokens refused); `allowed`: a client that sends a "
       "`DPoP` proof at login gets key-bound tokens, Bearer clients work as before; `required`: every token is "
       "bound", choices=("off", "allowed", "required"), aliases=("DPOP",)),
    _s("DPOP_ALGS", "text", "ES256 Ed25519 EdDSA", "dpop", "JWS algorithms accepted in proofs (space- or "
       "comma-separated; asymmetric only: `none` and HMAC cannot be named)", aliases=("DPOP_ALGS",)),
    _s("DPOP_MAX_AGE", "seconds", 60.0, "dpop", "a proof's `iat` may be at most this old (1 to 600); its `jti` "
       "is remembered as long, in the store, for every instance", aliases=("DPOP_MAX_AGE",)),
    _s("DPOP_NONCE", "flag", False, "dpop", "require server nonces in proofs (`DPoP-Nonce`, RFC 9449 8, 9)",
       shown_default="`0`", aliases=("DPOP_NONCE",)),
    _s("DPOP_NONCE_LIFETIME", "seconds", 300.0, "dpop", "seconds a server nonce stays valid (10 to 3600)",
       aliases=("DPOP_NONCE_LIFETIME",)),
    _s("DPOP_NONCE_KEY", "key", None, "dpop", "hex, 32+ random bytes: MACs the server nonces; one key per purpose",
       shown_default="generated into `secrets.json`", aliases=("DPOP_NONCE_KEYS",)),
    # -- the reference service
    _s("TRUSTED_PROXIES", "whole", 0, "service", "number of proxies whose `X-Forwarded-*` headers are trusted"),
    _s("MANAGEMENT_PORT", "whole", 9000, "serve", "default of `serve --management-port`: plain-HTTP port for "
       "`/metrics` and the detailed `/healthz` (`0` = off)"),
    _s("MANAGEMENT_HOST", "text", "127.0.0.1", "serve", "default of `serve --management-host` (loopback only)"),
    # -- device-bound cookie sessions (DBSC)
    _s("DBSC", "flag", False, "dbsc", "offer Device Bound Session Credentials at login (see DBSC); browsers "
       "without DBSC work as before", shown_default="`0` (the reference service: `1`)", aliases=("DBSC",)),
    _s("DBSC_COOKIE_LIFETIME", "seconds", 600.0, "dbsc", "lifetime of the short device-bound cookie (30 s to "
       "1 day); the browser renews it with a signature of its key", aliases=("DBSC_COOKIE_LIFETIME",)),
    _s("DBSC_CHALLENGE_LIFETIME", "seconds", 120.0, "dbsc", "seconds a registration or refresh challenge stays "
       "valid (10 to 3600)", aliases=("DBSC_CHALLENGE_LIFETIME",)),
    _s("DBSC_ALGS", "text", "ES256 RS256", "dbsc", "key algorithms offered and accepted (`ES256`, `RS256`; "
       "never `none`)", aliases=("DBSC_ALGS",)),
    _s("DBSC_REGISTRATION_PATH", "text", "/dbsc/register", "dbsc", "path of the registration endpoint",
       aliases=("DBSC_REGISTRATION_PATH",)),
    _s("DBSC_REFRESH_PATH", "text", "/dbsc/refresh", "dbsc", "path of the refresh endpoint",
       aliases=("DBSC_REFRESH_PATH",)),
    _s("DBSC_COOKIE_NAME", "text", "__Host-sw_dbsc", "dbsc", "name of the short device-bound cookie "
       "(`__Host-` prefix)", aliases=("DBSC_COOKIE_NAME",)),
    _s("DBSC_CHALLENGE_KEY", "key", None, "dbsc", "hex, 32+ random bytes: DBSC challenges (required when `DBSC` "
       "is on)", shown_default="generated into `secrets.json`", aliases=("DBSC_CHALLENGE_KEYS",)),
    _s("DBSC_COOKIE_KEY", "key", None, "dbsc", "hex, 32+ random bytes: the short device-bound cookie (required "
       "when `DBSC` is on; not the challenge key)", shown_default="generated into `secrets.json`",
       aliases=("DBSC_COOKIE_KEYS",)),
)


BY_NAME: dict[str, Setting] = {s.name: s for s in TABLE}
_WHOLE = re.compile(r"[+-]?[0-9]+")


class Reader:
    """Typed reads of one mapping; each raises `ConfigError` naming the full key."""

    def __init__(self, mapping: Mapping[str, Any]) -> None:
        self._mapping = mapping

    def raw(self, name: str) -> Any:
        spec = BY_NAME[name]
        value = self._mapping.get(name)
        if value is None or (spec.empty_is_unset and isinstance(value, str) and not value.strip()):
            return None
        return value

    def seconds(self, name: str) -> float:
        value = self.raw(name)
        if value is None:
            return float(BY_NAME[name].default)  # type: ignore[arg-type]
        number: float | None = None
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        if number is None or not math.isfinite(number):
            raise ConfigError(name, f"must be a number of seconds, got {value!r}")
        return number

    def whole(self, name: str, default: int | None = None) -> int:
        value = self.raw(name)
        if value is None:
            return default if default is not None else int(BY_NAME[name].default)  # type: ignore[call-overload]
        if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
            return int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(name, f"must be a whole number, got {value!r}")

    def text(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            return BY_NAME[name].default  # type: ignore[return-value]
        if not isinstance(value, str):
            raise ConfigError(name, f"must be text, got {type(value).__name__}")
        return value

    def choice(self, name: str) -> str:
        value = self.text(name)
        choices = BY_NAME[name].choices
        if value not in choices:
            raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def flag(self, name: str) -> bool:
        value = self.raw(name)
        if isinstance(value, bool):
            return value
        text = str(value if value is not None else "").strip().lower()
        if text in ("", "0", "false", "no", "off"):
            return False
        if text in ("1", "true", "yes", "on"):
            return True
        raise ConfigError(name, f"must be true or false, got {value!r}")

    def key(self, name: str) -> bytes | None:
        value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = bytes.fromhex(value.strip())
            except ValueError:
                raise ConfigError(name, "must be bytes or hex text of 32+ random bytes") from None
        return check_key(name, value)  # ConfigError for anything that is not 256+ random-looking bits

    def origins(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        items: Iterable[Any] = re.split(r"[\s,]+", value.strip()) if isinstance(value, str) else value
        try:
            result = tuple(item for item in items if item)
        except TypeError:
            raise ConfigError(name, f"must be a list of origins, got {value!r}") from None
        for origin in result:
            if not isinstance(origin, str) or not re.fullmatch(r"https?://[^\s/]+/?", origin):
                raise ConfigError(name, f"must be origins like https://app.example, got {origin!r}")
        return result


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| variable | type | default | used by | meaning |", "|---|---|---|---|---|"]
    for s in TABLE:
        lines.append(f"| `{s.name}` | {s.type_name} | {s.default_text} | {s.component} | {s.description} |")
    return "\n".join(lines) + "\n"


BEGIN = "<!-- settings table: generated by `python -m sessionward.settings --readme README.md`; do not edit -->"
END = "<!-- end of settings table -->"


def with_table(readme: str) -> str:
    """`readme` with the text between `BEGIN` and `END` replaced by `markdown_table()`. Raises ValueError if
    the markers are missing."""
    head, begin, rest = readme.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError("the README has no settings table markers")
    return f"{head}{BEGIN}\n{markdown_table()}{END}{tail}"
