"""Serving the ASGI reference service: gunicorn with uvicorn workers (`sessionward serve --asgi`), or uvicorn
alone (`sessionward serve --server uvicorn`).

Under gunicorn everything around the app is today's: the master binds, each worker has its own listening socket
(`reuse_port`), TLS from `--certfile/--keyfile`, the same timeouts, graceful stop and the management listener;
`SessionwardUvicornWorker` only makes uvicorn behave like the rest of the service: the app's lifespan must
succeed (a worker whose stores cannot open stops instead of serving), no `Server:` banner, `X-Forwarded-*` left
to the app (`SESSIONWARD_TRUSTED_PROXIES`), and an access log whose every field is escaped (O5).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import signal
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn_worker import UvicornWorker

from .exceptions import ConfigError
from .text import log_safe

__all__ = ["ASGI_FACTORY", "SafeAccessFilter", "SessionwardUvicornWorker", "check_lifespan", "load_asgi_factory",
           "run_uvicorn"]

#: The ASGI reference service's factory (`create_asgi_app(instance)`), as an import string for plain uvicorn.
ASGI_FACTORY = "sessionward.app.asgi:create_asgi_app"
#: uvicorn settings shared by both ways of serving (gunicorn's own settings cover the rest).
UVICORN_OPTIONS: dict[str, Any] = {
    "lifespan": "on",  # a lifespan start-up failure (a store that cannot open) stops the worker
    "proxy_headers": False,  # X-Forwarded-* are the app's business (SESSIONWARD_TRUSTED_PROXIES)
    "server_header": False,
    # requests in flight get 4 s to finish, then the lifespan shutdown closes the stores, all within gunicorn's
    # graceful_timeout (5 s), after which the master kills the worker
    "timeout_graceful_shutdown": 4,
}


def load_asgi_factory() -> Callable[..., Any]:
    """`create_asgi_app`. Raises `ConfigError` naming the extra when the ASGI service is not installed."""
    import importlib

    module_name, _, name = ASGI_FACTORY.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("--asgi", f"the ASGI service needs sessionward[asgi] ({exc})") from None
    factory: Callable[..., Any] = getattr(module, name)
    return factory


class SafeAccessFilter(logging.Filter):
    """Escapes every text argument of uvicorn's access records (client address, method, path and query), so
    a request can neither break a log line nor hide text with bidi overrides (O5), as `server.SafeLogger` does
    for gunicorn's own access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(log_safe(a) if isinstance(a, str) else a for a in record.args)
        return True


class Server(uvicorn.Server):
    """uvicorn's server, stopping as gunicorn's own workers do: idle keep-alive connections are dropped at once.
    uvicorn closes them politely, and over TLS a polite close waits for the client's close_notify, which an
    idle client never sends: every stop would then wait until the master kills the worker, skipping the
    lifespan shutdown that closes the stores. Requests in flight still finish (uvicorn's graceful shutdown)."""

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        for connection in list(self.server_state.connections):
            cycle = getattr(connection, "cycle", None)
            transport = getattr(connection, "transport", None)
            if transport is not None and (cycle is None or cycle.response_complete):
                transport.abort()
        await super().shutdown(sockets)


class SessionwardUvicornWorker(UvicornWorker):
    """`uvicorn_worker.UvicornWorker` with the service's uvicorn settings and `Server` (see the module's
    docstring)."""

    CONFIG_KWARGS: dict[str, Any] = {"loop": "auto", "http": "auto", **UVICORN_OPTIONS}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        access = logging.getLogger("uvicorn.access")
        if not any(isinstance(f, SafeAccessFilter) for f in access.filters):
            access.addFilter(SafeAccessFilter())

    async def _serve(self) -> None:  # uvicorn_worker's, with our `Server`
        import sys

        from gunicorn.arbiter import Arbiter

        self.config.app = self.wsgi
        server = Server(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


async def _lifespan(app: Any) -> None:
    """Drive one ASGI lifespan: start-up, then shut-down. Raises `ConfigError` when either fails."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(message: dict[str, Any]) -> None:
        await outbox.put(message)

    task = asyncio.create_task(app(scope, receive, send))
    try:
        for phase in ("startup", "shutdown"):
            await inbox.put({"type": f"lifespan.{phase}"})
            waiter = asyncio.ensure_future(outbox.get())
            done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                task.result()  # the app raised: its error, as is
                raise ConfigError("--asgi", f"the app ended its lifespan during {phase}")
            message = waiter.result()
            if message["type"] != f"lifespan.{phase}.complete":
                raise ConfigError("--asgi", f"lifespan {phase} failed: {message.get('message', '')}".rstrip(": "))
    finally:
        if not task.done():
            task.cancel()


def check_lifespan(app: Any) -> None:
    """Run the app's lifespan once in the serving process before any worker starts, as `serve` builds the
    Flask app once: the stores open (schema, first signing key) and close again, and a failure stops `serve`."""
    asyncio.run(_lifespan(app))


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging with `SafeAccessFilter` on the access log (dictConfig: spawned workers too)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["sessionward_safe"] = {"()": SafeAccessFilter}
    config["handlers"]["access"]["filters"] = ["sessionward_safe"]
    return config


def _stop_resource_tracker() -> None:
    """End and reap multiprocessing's resource tracker (started for the spawned workers) before `serve` exits,
    so no child of it outlives it, as gunicorn's master reaps every worker."""
    import contextlib
    from multiprocessing import resource_tracker

    with contextlib.suppress(Exception):
        resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]


def _exit_zero(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def run_uvicorn(*, host: str, port: int, workers: int, certfile: str, keyfile: str,
                before_serving: Callable[[], None] | None = None) -> None:
    """Serve with uvicorn alone until stopped: one process (our `Server`) for `workers=1`, else uvicorn's
    supervisor with spawned workers sharing one socket (no per-worker sockets, and a stop waits up to 4 s for
    idle keep-alive clients: gunicorn does both better). The instance folder reaches the factory through
    `SESSIONWARD_INSTANCE`. `before_serving` runs first, in this process."""
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        ASGI_FACTORY, factory=True, host=host, port=port, workers=workers, ssl_certfile=certfile,
        ssl_keyfile=keyfile, timeout_keep_alive=5, log_config=uvicorn_log_config(), **UVICORN_OPTIONS,
    )
    server = Server(config)
    if before_serving is not None:
        before_serving()
    # uvicorn stops gracefully on SIGTERM, then raises it again for the handler it found: end with 0, as gunicorn
    signal.signal(signal.SIGTERM, _exit_zero)
    if workers > 1:  # as `uvicorn.run` does; uvicorn's supervisor runs its own `uvicorn.Server` in each worker
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        _stop_resource_tracker()
    else:
        server.run()
