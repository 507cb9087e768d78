"""The reference service: the lab's two apps done right, built only from sessionward's public API.

`create_app()` (in `factory.py`) reads the instance folder and `SESSIONWARD_*` environment variables, validates
everything at start-up, and never enables Flask's debugger. This package imports no web framework itself, so
the CLI can use `app.instance` without loading Flask; `create_app` loads it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .factory import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .factory import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
