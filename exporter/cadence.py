"""How soon each polled task is due again: the adaptive detail cadence beside liveness.

With liveness (``liveness.py``) the ``DescribeWhiteboardPush`` budget is spent where it tells most:
a task that just left the running list is queried first (the collector's ``urgent``); new, PREPARED
and unconfirmed tasks, and tasks whose exceptions rose in the last ``HOT_PERIOD``, every
``interval``; steady PUSHING tasks the running list confirms are refreshed for ExceptionCnt evenly,
as often as the rest of the budget allows (``steady_interval``). Kept apart from the collector's
dispatch because it changes for other reasons (the budget and liveness coverage, not the loop).
"""

from __future__ import annotations

import threading
from typing import Protocol

from exporter.lifecycle import TaskRecord
from exporter.model import TaskKey
from exporter.ratelimit import PacedLimiter
from exporter.scheduler import Scheduler

HOT_PERIOD = 300.0  # a task whose exceptions rose is polled every interval for this long
STEADY_SHARE = 0.9  # of the detail budget planned for steady tasks: the rest absorbs urgent queries


class LivenessView(Protocol):
    """What the cadence needs of ``liveness.Liveness`` (no import: liveness sits beside it)."""

    def covered(self, key: TaskKey) -> bool: ...

    def covered_count(self) -> int: ...


class Cadence:
    """Per-task marks (exceptions rose, left the list) and the interval each answer earns."""

    def __init__(self, interval: float, limiter: PacedLimiter, scheduler: Scheduler) -> None:
        self.interval = interval
        self.limiter = limiter
        self.scheduler = scheduler
        self.liveness: LivenessView | None = None  # set when liveness runs
        self._hot_until: dict[TaskKey, float] = {}  # exceptions rose: polled every interval until then
        self._left: set[TaskKey] = set()  # left the running list, queried urgently
        self._lock = threading.Lock()

    def exceptions_rose(self, key: TaskKey, now: float) -> None:
        with self._lock:
            self._hot_until[key] = now + HOT_PERIOD

    def left_the_list(self, key: TaskKey) -> None:
        with self._lock:
            self._left.add(key)

    def answered(self, key: TaskKey) -> bool:
        """An answer came: True when it was the urgent query of a task that left the running list."""
        with self._lock:
            left = key in self._left
            self._left.discard(key)
            return left

    def forget(self, key: TaskKey) -> None:
        with self._lock:
            self._hot_until.pop(key, None)
            self._left.discard(key)

    def next_interval(self, key: TaskKey, record: TaskRecord, now: float) -> float:
        with self._lock:
            hot = self._hot_until.get(key, 0.0) > now
            if not hot:
                self._hot_until.pop(key, None)
        liveness = self.liveness
        if hot or liveness is None or not record.steady or not liveness.covered(key):
            return self.interval
        return self.steady_interval()

    def steady_interval(self) -> float:
        """How often each confirmed-running task can be detail-polled with the budget left, evenly."""
        liveness = self.liveness
        if liveness is None:
            return self.interval
        covered = liveness.covered_count()
        return self.stretched(covered, max(0, len(self.scheduler) - covered))

    def stretched(self, covered: int, uncovered: int) -> float:
        """The steady interval for ``covered`` confirmed tasks beside ``uncovered`` ones polled every interval."""
        spare = self.limiter.nominal * STEADY_SHARE - uncovered / self.interval
        spare = max(spare, self.limiter.nominal * (1 - STEADY_SHARE))
        return max(self.interval, covered / spare)
