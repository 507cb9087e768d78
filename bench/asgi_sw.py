"""sessionward's ASGI apps for the ASGI part (filled in once the adapter is merged)."""

from __future__ import annotations

from typing import Any

SW_VARIANTS: list[Any] = []
