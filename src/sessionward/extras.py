"""Optional dependencies, installed as extras: a missing one is a clear `MissingExtra` naming the extra.

`pip install sessionward` brings only what SQLite needs; `[redis]`, `[postgres]`, `[flask]`, `[asgi]` and
`[server]` bring the rest. `require("redis", "redis")` imports and returns the module, or raises
`MissingExtra("... pip install 'sessionward[redis]'")`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .exceptions import MissingExtra

__all__ = ["EXTRAS", "MissingExtra", "require"]

#: What each extra is for (the messages name it).
EXTRAS = {
    "redis": "Redis stores (redis://, rediss://, unix://, redis+sentinel://, redis+cluster://)",
    "postgres": "PostgreSQL (postgresql://)",
    "flask": "the Flask extension (sessionward.flask)",
    "asgi": "the Starlette / FastAPI adapter",
    "server": "the reference service (sessionward serve)",
}


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise `MissingExtra` saying which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name != module and not module.startswith(exc.name + "."):
            raise  # the module is there but one of its own imports is broken: show that
        raise MissingExtra(module, extra, EXTRAS.get(extra, extra)) from None
