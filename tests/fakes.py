"""Test doubles shared by several test modules (kept out of the runtime package).

Clocks: ``FakeClock`` is a hand-moved clock for code that takes a ``clock`` callable (share one
between a simulator and a client so signatures agree); ``OffsetClock`` follows real time shifted by
an offset (a server whose clock runs ahead or behind).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path

from exporter.freshness import Freshness, FreshnessIndex
from exporter.lifecycle import TaskRecord
from exporter.model import TaskKey


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


def save_legacy_state(path: Path, records: Iterable[TaskRecord]) -> None:
    """A JSON state file as versions before SQLite wrote it (``exporter.legacy_statefile`` migrates it)."""
    document = {"version": 1, "saved_at": time.time(), "tasks": [r.to_json() for r in records]}
    path.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")


def freshness_of(records: Iterable[TaskRecord], seen: Mapping[TaskKey, float], covered: AbstractSet[TaskKey],
                 now: float, detail_fresh_within: float) -> Freshness:
    """Freshness of ``records`` measured as the exporter does (a ``FreshnessIndex``), without a store."""
    index = FreshnessIndex()
    for record in records:
        index.put(record.key, record)
    return index.measure(seen, covered, now, detail_fresh_within)
