"""`create_app()`: the reference service as a Flask app, from the instance folder and `SESSIONWARD_*` settings.

Settings come from the environment (known `SESSIONWARD_*` names; unknown ones are warned about), the instance
folder (database URLs and secrets, the environment winning) and `config` (tests), in that order, and are
validated once by `sessionward.settings.Settings` through the extension.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from ..clock import Clock, iso_utc
from ..exceptions import ConfigError
from ..flask import Sessionward
from .common import MAX_BODY, isotime, service_settings
from .instance import instance_path

__all__ = ["MAX_BODY", "create_app"]


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
    proxies = Sessionward().init_app(app, clock=clock).settings.service.trusted_proxies
    if proxies > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]

    app.jinja_env.filters["isotime"] = isotime
    app.jinja_env.filters["isodatetime"] = iso_utc

    from . import api, ops, web

    app.register_blueprint(web.bp)
    app.register_blueprint(ops.bp)
    api.init_app(app)
    return app
