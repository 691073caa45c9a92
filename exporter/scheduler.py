"""Due times of the active tasks: who is polled next, most overdue first.

A heap with lazy deletion, so scheduling and rescheduling are O(log n) at any fleet size, and a
condition variable the dispatcher waits on until something is due.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable

from exporter.model import TaskKey


class Scheduler:
    """Due times of active tasks; a heap with lazy deletion, so updates are O(log n)."""

    def __init__(self) -> None:
        self._due: dict[TaskKey, float] = {}
        self._heap: list[tuple[float, int, TaskKey]] = []
        self._seq = itertools.count()
        self.cond = threading.Condition()

    def schedule(self, key: TaskKey, due: float) -> None:
        with self.cond:
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._seq), key))
            self.cond.notify()

    def discard(self, key: TaskKey) -> None:
        with self.cond:
            self._due.pop(key, None)

    def __contains__(self, key: TaskKey) -> bool:
        return key in self._due

    def __len__(self) -> int:
        return len(self._due)

    def _clean_top(self) -> tuple[float, int, TaskKey] | None:
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) == due:
                return self._heap[0]
            heapq.heappop(self._heap)
        return None

    def earliest(self) -> float | None:
        with self.cond:
            top = self._clean_top()
            return top[0] if top else None

    def wait_due(self, now_fn: Callable[[], float], stop: threading.Event, max_wait: float = 1.0) -> bool:
        """Block until some task is due (True) or ``max_wait`` passed / stop was set (False)."""
        with self.cond:
            top = self._clean_top()
            now = now_fn()
            if top is not None and top[0] <= now:
                return True
            wait = max_wait if top is None else min(max_wait, top[0] - now)
            self.cond.wait(timeout=max(wait, 0.001))
            top = self._clean_top()
            return top is not None and top[0] <= now_fn() and not stop.is_set()

    def pop_due(self, now: float) -> tuple[TaskKey, float] | None:
        """The most overdue task, removed from the schedule until rescheduled."""
        with self.cond:
            top = self._clean_top()
            if top is None or top[0] > now:
                return None
            due, _, key = heapq.heappop(self._heap)
            del self._due[key]
            return key, due

    def compact(self) -> None:
        """Drop stale heap entries when they outnumber live ones (long-running churn)."""
        with self.cond:
            if len(self._heap) > 2 * len(self._due) + 1024:
                self._heap = [(d, s, k) for d, s, k in self._heap if self._due.get(k) == d]
                heapq.heapify(self._heap)
