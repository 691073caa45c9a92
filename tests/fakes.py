"""Test doubles shared by several test modules (kept out of the runtime package).

Clocks: ``FakeClock`` is a hand-moved clock for code that takes a ``clock`` callable (share one
between a simulator and a client so signatures agree); ``OffsetClock`` follows real time shifted by
an offset (a server whose clock runs ahead or behind).
"""

from __future__ import annotations

import threading
import time


class FakeClock:
    """A clock that only moves when told: ``clock()`` is ``clock.now``; ``advance`` or set ``now``. Thread-safe."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self._now = now
        self._lock = threading.Lock()

    @property
    def now(self) -> float:
        with self._lock:
            return self._now

    @now.setter
    def now(self, value: float) -> None:
        with self._lock:
            self._now = value

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class OffsetClock:
    """Real time plus ``offset`` seconds (a server whose clock runs ahead)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset
