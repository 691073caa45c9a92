"""Test doubles shared by several test modules.

Clocks: ``FakeClock`` is a hand-moved clock for code that takes a ``clock`` callable; ``OffsetClock``
follows real time shifted by an offset (a server whose clock runs ahead or behind).
"""

from __future__ import annotations

import time


class FakeClock:
    """A clock that only moves when told: ``clock()`` is ``clock.now``; ``advance`` or set ``now``."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class OffsetClock:
    """Real time plus ``offset`` seconds (a server whose clock runs ahead)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


# ManualClock (the simulator's clock, moving from exporter/simulator.py) goes here as well; it and
# FakeClock overlap and can then be merged into one.
