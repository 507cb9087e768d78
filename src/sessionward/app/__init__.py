"""The reference service: the lab's two apps done right, built only from sessionward's public API.

`create_app()` reads the instance folder and `SESSIONWARD_*` environment variables, validates everything at
start-up, and never enables Flask's debugger.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from ..clock import Clock, iso_utc
from ..exceptions import ConfigError
from ..flask import Sessionward
from .instance import database_urls, instance_path, load_secrets

__all__ = ["create_app"]

#: Settings that may also come from the environment (same name).
ENV_SETTINGS = (
    "SESSIONWARD_COOKIE_NAME",
    "SESSIONWARD_COOKIE_SAMESITE",
    "SESSIONWARD_SESSION_IDLE_TIMEOUT",
    "SESSIONWARD_SESSION_ABSOLUTE_LIFETIME",
    "SESSIONWARD_SESSION_TOUCH_INTERVAL",
    "SESSIONWARD_SESSION_REAUTH_WINDOW",
    "SESSIONWARD_ISSUER",
    "SESSIONWARD_AUDIENCE",
    "SESSIONWARD_ACCESS_TTL",
    "SESSIONWARD_TOKEN_ALG",
    "SESSIONWARD_TOKEN_CACHE_SIZE",
    "SESSIONWARD_REFRESH_REUSE_GRACE",
    "SESSIONWARD_REFRESH_IDLE",
    "SESSIONWARD_REFRESH_ABSOLUTE",
    "SESSIONWARD_KEYS_REFRESH_INTERVAL",
    "SESSIONWARD_REDIS_PREFIX",
    "SESSIONWARD_THROTTLE_ACCOUNT_FREE",
    "SESSIONWARD_THROTTLE_ADDRESS_FREE",
    "SESSIONWARD_THROTTLE_MAX_BACKOFF",
    "SESSIONWARD_PURGE_INTERVAL",
    "SESSIONWARD_LOCAL_CACHE",
    "SESSIONWARD_HASH_CONCURRENCY",
    "SESSIONWARD_HASH_QUEUE",
    "SESSIONWARD_HASH_WAIT",
)

MAX_BODY = 64 * 1024


def _isotime(value: float) -> str:
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def create_app(
    instance: str | os.PathLike[str] | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    clock: Clock | None = None,
) -> Flask:
    """Build the service. Raises `ConfigError` (naming the setting) when something is wrong."""
    path = instance_path(instance)
    keys = load_secrets(path)
    store_url, database_url = database_urls(path)
    app = Flask(__name__, instance_path=str(path))
    app.debug = False
    app.config.update(
        SESSIONWARD_STORE_URL=store_url,
        SESSIONWARD_DATABASE_URL=database_url,
        SESSIONWARD_CSRF_KEY=keys.csrf_key,
        SESSIONWARD_REFRESH_KEY=keys.refresh_key,
        SESSIONWARD_KEK=keys.kek,
        MAX_CONTENT_LENGTH=MAX_BODY,
        MAX_FORM_MEMORY_SIZE=MAX_BODY,
        JSON_SORT_KEYS=False,
        TRUSTED_PROXIES=0,
    )
    for name in ENV_SETTINGS:
        if name in os.environ:
            app.config[name] = os.environ[name]
    if config:
        app.config.update(config)
    if app.config.get("DEBUG") or app.debug:
        raise ConfigError("DEBUG", "the reference service never runs Flask's debugger")
    proxies = os.environ.get("SESSIONWARD_TRUSTED_PROXIES", app.config.get("TRUSTED_PROXIES", 0))
    try:
        proxies = int(proxies)
    except (TypeError, ValueError):
        raise ConfigError("SESSIONWARD_TRUSTED_PROXIES", "must be the number of proxies in front (0 = none)") from None
    if proxies > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]

    Sessionward(app, clock=clock)
    app.jinja_env.filters["isotime"] = _isotime
    app.jinja_env.filters["isodatetime"] = iso_utc

    from . import api, ops, web

    app.register_blueprint(web.bp)
    app.register_blueprint(ops.bp)
    api.init_app(app)
    return app
