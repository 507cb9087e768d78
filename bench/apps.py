"""The apps under test: the anchors (bare Flask, Flask's signed cookie, Flask-Session + Redis,
Flask-JWT-Extended with HS256 / ES256 / EdDSA / a Redis blocklist; `bench.anchors`) and sessionward's equivalents
(`bench.sw_apps`), listed in `VARIANTS`.

Every variant is built in two steps so that gunicorn workers can serve exactly what the parent measured:

- `setup(workdir)` runs once in the parent: it makes the persistent state (SQLite files, keys, Redis keys, a
  user and a signed-in session or token) and returns the request headers of an authenticated client;
- `make_app(workdir)` builds the Flask app from that state (in the parent for in-process runs, in each
  gunicorn worker for HTTP runs, see `bench.wsgi`).

Each app has `/protected` (needs the credential; returns the user id) and `/public` (no authentication; the
client still sends its credential, as a browser sends its cookie to every page).
Redis keys (and the cache's pub/sub channel) all start with `bench:<run id>:` in db 15; `cleanup_redis` removes
exactly the keys of this run.
"""

from __future__ import annotations

from .anchors import (
    _fje_make,
    _fje_setup,
    _fje_tokens,
    bare_app,
    bare_headers_app,
    bare_setup,
    flask_cookie_app,
    flask_cookie_setup,
    flask_session_app,
    flask_session_setup,
)
from .common import PASSWORD, REDIS_PREFIX, REDIS_URL, RUN_ID, Variant, cleanup_redis
from .sw_apps import (
    SW_PREFIX,
    _sw_cookie_make,
    _sw_cookie_setup,
    _sw_jwt_make,
    _sw_jwt_setup,
    _sw_jwt_tokens,
    app_stores,
    close_app,
)

__all__ = ["BY_NAME", "PASSWORD", "REDIS_PREFIX", "REDIS_URL", "RUN_ID", "SW_PREFIX", "VARIANTS", "Variant",
           "app_stores", "cleanup_redis", "close_app"]

# -- the list ----------------------------------------------------------------------------------------

VARIANTS: list[Variant] = [
    Variant("bare", "bare Flask view", "bare", "anchor", bare_setup, bare_app),
    Variant("bare_headers", "bare Flask view + sessionward's response headers", "headers", "anchor", bare_setup,
            bare_headers_app),
    Variant("flask_cookie", "Flask signed cookie", "cookie", "anchor", flask_cookie_setup, flask_cookie_app),
    Variant("flask_session_redis", "Flask-Session 0.8 + Redis", "cookie", "anchor", flask_session_setup,
            flask_session_app, needs_redis=True),
    Variant("fje_hs256", "FJE HS256", "jwt", "anchor", _fje_setup("HS256", False), _fje_make("HS256", False),
            tokens=_fje_tokens("HS256", False)),
    Variant("fje_es256", "FJE ES256", "jwt", "anchor", _fje_setup("ES256", False), _fje_make("ES256", False),
            tokens=_fje_tokens("ES256", False)),
    Variant("fje_eddsa", "FJE EdDSA", "jwt", "anchor", _fje_setup("EdDSA", False), _fje_make("EdDSA", False),
            tokens=_fje_tokens("EdDSA", False)),
    Variant("fje_hs256_redis_bl", "FJE HS256 + Redis blocklist", "jwt-revocable", "anchor",
            _fje_setup("HS256", True), _fje_make("HS256", True), needs_redis=True, tokens=_fje_tokens("HS256", True)),
    Variant("sw_cookie_sqlite", "sw cookie session, SQLite", "cookie", "sessionward",
            _sw_cookie_setup("sqlite"), _sw_cookie_make("sqlite")),
    Variant("sw_cookie_sqlite_user", "sw cookie session, SQLite, + user row (get_user)", "cookie", "sessionward",
            _sw_cookie_setup("sqlite"), _sw_cookie_make("sqlite", load_user=True)),
    Variant("sw_cookie_redis", "sw cookie session, Redis", "cookie", "sessionward",
            _sw_cookie_setup("redis"), _sw_cookie_make("redis"), needs_redis=True),
    Variant("sw_cookie_redis_cache", "sw cookie session, Redis + local cache", "cookie", "sessionward",
            _sw_cookie_setup("redis"), _sw_cookie_make("redis", cache=True), needs_redis=True, cached=True),
    Variant("sw_jwt_hs256", "sw JWT HS256 (jwt_required, SQLite store)", "jwt", "sessionward",
            _sw_jwt_setup("HS256", "sqlite"), _sw_jwt_make("HS256", "sqlite"),
            tokens=_sw_jwt_tokens("HS256", "sqlite")),
    Variant("sw_jwt_hs256_core", "sw JWT HS256, core verify_access only (SQLite store)", "jwt", "sessionward",
            _sw_jwt_setup("HS256", "sqlite"), _sw_jwt_make("HS256", "sqlite", core=True),
            tokens=_sw_jwt_tokens("HS256", "sqlite")),
    Variant("sw_jwt_es256", "sw JWT ES256 (jwt_required, SQLite store)", "jwt", "sessionward",
            _sw_jwt_setup("ES256", "sqlite"), _sw_jwt_make("ES256", "sqlite"),
            tokens=_sw_jwt_tokens("ES256", "sqlite")),
    Variant("sw_jwt_eddsa", "sw JWT EdDSA (jwt_required, SQLite store)", "jwt", "sessionward",
            _sw_jwt_setup("EdDSA", "sqlite"), _sw_jwt_make("EdDSA", "sqlite"),
            tokens=_sw_jwt_tokens("EdDSA", "sqlite")),
    Variant("sw_jwt_hs256_redis", "sw JWT HS256 (jwt_required), revocation on Redis", "jwt-revocable",
            "sessionward", _sw_jwt_setup("HS256", "redis"), _sw_jwt_make("HS256", "redis"), needs_redis=True,
            tokens=_sw_jwt_tokens("HS256", "redis")),
    Variant("sw_jwt_hs256_redis_cache", "sw JWT HS256 (jwt_required), revocation on Redis + local cache",
            "jwt-revocable", "sessionward", _sw_jwt_setup("HS256", "redis"),
            _sw_jwt_make("HS256", "redis", cache=True), needs_redis=True, cached=True,
            tokens=_sw_jwt_tokens("HS256", "redis")),
    Variant("sw_jwt_hs256_core_redis_cache", "sw JWT HS256, core verify_access only (Redis + local cache)",
            "jwt-revocable", "sessionward", _sw_jwt_setup("HS256", "redis"),
            _sw_jwt_make("HS256", "redis", core=True, cache=True), needs_redis=True, cached=True,
            tokens=_sw_jwt_tokens("HS256", "redis")),
    Variant("sw_jwt_es256_redis_cache", "sw JWT ES256 (jwt_required), revocation on Redis + local cache",
            "jwt-revocable", "sessionward", _sw_jwt_setup("ES256", "redis"),
            _sw_jwt_make("ES256", "redis", cache=True), needs_redis=True, cached=True,
            tokens=_sw_jwt_tokens("ES256", "redis")),
    Variant("sw_jwt_eddsa_redis_cache", "sw JWT EdDSA (jwt_required), revocation on Redis + local cache",
            "jwt-revocable", "sessionward", _sw_jwt_setup("EdDSA", "redis"),
            _sw_jwt_make("EdDSA", "redis", cache=True), needs_redis=True, cached=True,
            tokens=_sw_jwt_tokens("EdDSA", "redis")),
]

BY_NAME = {v.name: v for v in VARIANTS}
