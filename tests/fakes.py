"""Test doubles shared by several test modules (kept out of the runtime package)."""

from __future__ import annotations

import threading


class ManualClock:
    """A clock tests move by hand; share one between a Simulator and a client so signatures agree."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
