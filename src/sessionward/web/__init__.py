"""Framework-free shapes that every web adapter (Flask today, ASGI next) shares: the state built at start-up
(`state.SessionwardState`) and the per-request authentication state (`context.RequestState`)."""

from __future__ import annotations

from .context import UNSET, RequestState
from .state import FIRST_PURGE_DELAY, SessionwardState, build_state

__all__ = ["FIRST_PURGE_DELAY", "UNSET", "RequestState", "SessionwardState", "build_state"]
