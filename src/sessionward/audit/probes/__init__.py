"""The probes, one module per area. Each probe is a function registered with `@probe`: it declares the checks
it can report, its request budget, and what it needs from the recipe; it returns findings or raises `Skip`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..context import Context
from ..model import Check, Finding

__all__ = ["PROBES", "Probe", "Skip", "all_probes", "probe"]


class Skip(Exception):
    """The probe does not apply to this target or recipe (the message says why)."""


@dataclass(frozen=True)
class Probe:
    name: str
    checks: tuple[Check, ...]
    budget: int
    run: Callable[[Context], list[Finding]]
    order: int


PROBES: list[Probe] = []


def probe(name: str, *checks: Check, budget: int | Callable[[Context], int], order: int = 50) -> Callable[..., object]:
    """Register a probe. `budget` may depend on the recipe (e.g. the number of throttle attempts)."""

    def register(func: Callable[[Context], list[Finding]]) -> Callable[[Context], list[Finding]]:
        PROBES.append(Probe(name, checks, budget if isinstance(budget, int) else 0, func, order))
        if not isinstance(budget, int):
            _DYNAMIC[name] = budget
        return func

    return register


_DYNAMIC: dict[str, Callable[[Context], int]] = {}


def budget_of(p: Probe, ctx: Context) -> int:
    return _DYNAMIC[p.name](ctx) if p.name in _DYNAMIC else p.budget


def all_probes() -> list[Probe]:
    from . import cookies, csrf, debug, headers, login, logout, tokens  # noqa: F401  (registration)

    return sorted(PROBES, key=lambda p: p.order)
