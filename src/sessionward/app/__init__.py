"""The reference service: the lab's two apps done right, built only from sessionward's public API.

`create_app()` reads the instance folder and `SESSIONWARD_*` environment variables, validates everything at
start-up, and never enables Flask's debugger.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from ..clock import Clock, iso_utc
from ..exceptions import ConfigError
from ..flask import Sessionward
from .common import ENV_SETTINGS, MAX_BODY, isotime, service_settings, trusted_proxies
from .instance import instance_path

__all__ = ["ENV_SETTINGS", "MAX_BODY", "create_app"]


def create_app(
    instance: str | os.PathLike[str] | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    clock: Clock | None = None,
) -> Flask:
    """Build the service. Raises `ConfigError` (naming the setting) when something is wrong."""
    path = instance_path(instance)
    app = Flask(__name__, instance_path=str(path))
    app.debug = False
    app.config.update(service_settings(path, config), MAX_FORM_MEMORY_SIZE=MAX_BODY, JSON_SORT_KEYS=False)
    if app.config.get("DEBUG") or app.debug:
        raise ConfigError("DEBUG", "the reference service never runs Flask's debugger")
    proxies = trusted_proxies(app.config)
    if proxies > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]

    Sessionward(app, clock=clock)
    app.jinja_env.filters["isotime"] = isotime
    app.jinja_env.filters["isodatetime"] = iso_utc

    from . import api, ops, web

    app.register_blueprint(web.bp)
    app.register_blueprint(ops.bp)
    api.init_app(app)
    return app
