"""The one exponential backoff: every "wait longer after each failure" in the exporter uses it."""

from __future__ import annotations


def exponential_backoff(base: float, step: int, cap: float) -> float:
    """``base * 2**step`` seconds, never more than ``cap`` (``step`` 0 is the first wait)."""
    return min(cap, base * 2 ** max(0, step))
