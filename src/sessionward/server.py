"""Run the reference service under gunicorn over TLS: the Flask app on gthread workers, or the ASGI app on
uvicorn workers (`asgi=True`, see `server_asgi`). Never Flask's debugger."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from .config import PRIVATE_UMASK
from .text import log_safe

if TYPE_CHECKING:
    from gunicorn.glogging import _AtomsDict  # types-gunicorn's TypedDict of the access-log atoms


class SafeLogger(Logger):
    """gunicorn's logger with every access-log atom escaped: a client's User-Agent, Referer or URL can
    neither break a log line nor hide text with bidi overrides (O5)."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> _AtomsDict:
        atoms = super().atoms(resp, req, environ, request_time)
        # The same keys, each string escaped: still the mapping gunicorn's format strings read.
        return cast("_AtomsDict", {k: log_safe(v) if isinstance(v, str) else v for k, v in atoms.items()})


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict[str, Any], instance: str, factory: Callable[[str], Any] | None) -> None:
        self.options = options
        self.instance = instance
        self.factory = factory
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        if self.factory is not None:
            return self.factory(self.instance)  # each worker builds its own engines and connections
        from .app import create_app

        return create_app(self.instance)


def _known_settings() -> set[str]:
    from gunicorn.config import KNOWN_SETTINGS

    return {setting.name for setting in KNOWN_SETTINGS if setting.name}  # None only on the unregistered base class


def _mark_worker_dead(_arbiter: Any, worker: Any) -> None:
    """prometheus_client multiprocess mode: a dead worker's live gauges stop counting (its counters stay)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def run_gunicorn(
    *, host: str, port: int, workers: int, certfile: str, keyfile: str, instance: str,
    when_ready: Callable[[], None] | None = None, asgi: bool = False, factory: Callable[[str], Any] | None = None,
) -> None:
    """Serve until stopped. `when_ready` runs once in the master when it listens (the management listener).
    `asgi`: uvicorn workers serving `factory(instance)` (default: the ASGI reference service); otherwise gthread
    workers serving `factory(instance)` (default: the Flask reference service)."""
    options: dict[str, Any] = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": 4,
        "certfile": certfile,
        "keyfile": keyfile,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": "info",
        "timeout": 30,
        "graceful_timeout": 5,
        "keepalive": 5,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "proc_name": "sessionward",
        # each worker binds its own listening socket (SO_REUSEPORT) and the kernel spreads new connections
        # over them; with one shared socket, keep-alive connections could all land on one worker. Linux lets
        # only sockets of the same user share the port.
        "reuse_port": True,
        # X-Forwarded-* are trusted only when SESSIONWARD_TRUSTED_PROXIES says so (ProxyFix in the app).
        "forwarded_allow_ips": "",
        "umask": PRIVATE_UMASK,
        "logger_class": SafeLogger,
        "child_exit": _mark_worker_dead,
    }
    if asgi:
        from .server_asgi import SessionwardUvicornWorker, load_asgi_factory

        options["worker_class"] = SessionwardUvicornWorker
        del options["threads"]
        factory = factory or load_asgi_factory()
    if when_ready is not None:
        options["when_ready"] = lambda _arbiter: when_ready()
    if "control_socket_disable" in _known_settings():
        options["control_socket_disable"] = True  # no shared control socket between instances
    _Gunicorn(options, instance, factory).run()
