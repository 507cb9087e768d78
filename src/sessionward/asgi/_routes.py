"""Which views are exempt from the session CSRF check: a table of (path pattern, methods, exempt) built once
from the app's routes, recursively through Starlette mounts and FastAPI included routers, since the middleware
runs before routing. A route it cannot see through is not exempt (the stricter answer)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.routing import compile_path

__all__ = ["ExemptTable"]


class ExemptTable:
    def __init__(self, router: Any) -> None:
        self.rows: list[tuple[re.Pattern[str], frozenset[str] | None, bool]] = []
        self._walk(getattr(router, "routes", ()), "", ())

    def exempt(self, path: str, method: str) -> bool:
        for pattern, methods, exempt in self.rows:
            if pattern.match(path) and (methods is None or method in methods):
                return exempt
        return False

    def _walk(self, routes: Iterable[Any], prefix: str, inherited: tuple[Any, ...]) -> None:
        for route in routes:
            original = getattr(route, "original_router", None)  # FastAPI's included router (0.120+)
            if original is not None:
                context = getattr(route, "include_context", None)
                deps = tuple(getattr(context, "dependencies", ()) or ())
                self._walk(original.routes, prefix + str(getattr(context, "prefix", "") or ""), inherited + deps)
                continue
            path = getattr(route, "path", None)
            if path is None:
                continue
            children = getattr(route, "routes", None)
            if children is not None and not hasattr(route, "endpoint"):  # a Mount of routes
                self._walk(children, prefix + path.rstrip("/"), inherited)
                continue
            pattern, _, _ = compile_path(prefix + path)
            methods = getattr(route, "methods", None)
            endpoint = getattr(route, "endpoint", None)
            exempt = bool(getattr(endpoint, "_sw_csrf_exempt", False)) or _needs_token(route, inherited)
            self.rows.append((pattern, frozenset(methods) if methods else None, exempt))


def _needs_token(route: Any, inherited: tuple[Any, ...]) -> bool:
    """The route (or a router it was included with) depends on a non-optional `RequireToken`."""
    from .tokens import TokenDependency

    calls: list[Any] = [getattr(d, "dependency", None) for d in inherited]
    seen: set[int] = set()
    stack = [getattr(route, "dependant", None)]
    while stack:
        dependant = stack.pop()
        if dependant is None or id(dependant) in seen:
            continue
        seen.add(id(dependant))
        calls.append(dependant.call)
        stack.extend(dependant.dependencies)
    return any(isinstance(call, TokenDependency) and not call.optional for call in calls)
