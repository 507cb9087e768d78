"""The reference service on ASGI: the same pages, JSON API, OpenAPI document, instance folder and secrets as
the Flask app (`create_app`), served by FastAPI through the public adapter `sessionward.asgi`.

    uvicorn --factory sessionward.app.asgi:create_asgi_app
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..asgi import Sessionward
from ..clock import Clock
from .common import MAX_BODY, service_settings
from .instance import instance_path

__all__ = ["create_asgi_app"]


def create_asgi_app(
    instance: str | os.PathLike[str] | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    clock: Clock | None = None,
) -> ASGIApp:
    """Build the service. Raises `ConfigError` (naming the setting) when something is wrong."""
    path = instance_path(instance)
    settings = service_settings(path, config)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, redirect_slashes=False)
    app.router.redirect_slashes = False
    sw = Sessionward(app, settings, clock=clock, max_body=int(settings.get("MAX_CONTENT_LENGTH") or MAX_BODY))

    from . import asgi_api, asgi_web

    app.include_router(asgi_web.router)
    app.include_router(asgi_api.router)
    app.mount("/static", _Static(directory=Path(__file__).with_name("static")), name="static")
    proxies = sw.state.settings.service.trusted_proxies
    return ProxyFix(app, proxies) if proxies > 0 else app


class _Static(StaticFiles):
    """Static files revalidated on every use (`Cache-Control: no-cache`, with the ETag), as Flask serves them."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


class ProxyFix:
    """Trust `X-Forwarded-For`, `-Proto` and `-Host` as set by the `proxies` proxies in front (the last
    `proxies` values of each), as werkzeug's ProxyFix does for the Flask app."""

    def __init__(self, app: ASGIApp, proxies: int) -> None:
        self.app = app
        self.proxies = proxies

    @property
    def state(self) -> Any:
        """The wrapped app's state (`state.sessionward`)."""
        return self.app.state  # type: ignore[attr-defined]

    def _trusted(self, scope: Scope, name: bytes) -> str | None:
        values = [v.decode("latin-1") for k, v in scope["headers"] if k == name]
        parts = [p.strip() for p in ",".join(values).split(",") if p.strip()]
        return parts[-self.proxies] if len(parts) >= self.proxies else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = dict(scope)
            forwarded_for = self._trusted(scope, b"x-forwarded-for")
            if forwarded_for:
                scope["client"] = (forwarded_for, 0)
            proto = self._trusted(scope, b"x-forwarded-proto")
            if proto in ("http", "https"):
                scope["scheme"] = proto
            host = self._trusted(scope, b"x-forwarded-host")
            if host:
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"] + [(b"host", host.encode())]
        await self.app(scope, receive, send)
