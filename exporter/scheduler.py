"""Due times of the active tasks: who is polled next, most overdue first.

A heap with lazy deletion, so scheduling and rescheduling are O(log n) at any fleet size, and a
condition variable the dispatcher waits on until something is due. An ``urgent`` task (one that
just left the running list) goes before every normal one, however overdue they are.

A task scheduled with ``early`` may be polled ahead of its due time from then on, when a request
slot would otherwise go unused (``pop_ahead``): steady tasks are planned on 90 % of the budget, and
the rest, whatever urgent queries leave of it, goes to the stalest of them instead of idling.
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
        self._due: dict[TaskKey, tuple[int, float]] = {}  # key -> (rank: 0 urgent, 1 normal; due)
        self._heap: list[tuple[int, float, int, TaskKey]] = []
        self._early: dict[TaskKey, float] = {}  # key -> from when it may be polled ahead of its due time
        self._ahead: list[tuple[float, float, int, TaskKey]] = []  # (early, due, seq, key): oldest answer first
        self._seq = itertools.count()
        self.cond = threading.Condition()

    def schedule(self, key: TaskKey, due: float, urgent: bool = False, early: float | None = None) -> None:
        rank = 0 if urgent else 1
        with self.cond:
            self._due[key] = (rank, due)
            seq = next(self._seq)
            heapq.heappush(self._heap, (rank, due, seq, key))
            if early is None or urgent:
                self._early.pop(key, None)
            else:
                self._early[key] = early
                heapq.heappush(self._ahead, (early, due, seq, key))
            self.cond.notify()

    def discard(self, key: TaskKey) -> None:
        with self.cond:
            self._due.pop(key, None)
            self._early.pop(key, None)

    def __contains__(self, key: TaskKey) -> bool:
        return key in self._due

    def __len__(self) -> int:
        return len(self._due)

    def _clean_top(self) -> tuple[int, float, int, TaskKey] | None:
        while self._heap:
            rank, due, _, key = self._heap[0]
            if self._due.get(key) == (rank, due):
                return self._heap[0]
            heapq.heappop(self._heap)
        return None

    def _ahead_current(self, early: float, due: float, key: TaskKey) -> bool:
        """Whether an ``_ahead`` entry is still the key's schedule (lazy deletion, as in ``_heap``)."""
        return self._due.get(key) == (1, due) and self._early.get(key) == early

    def _clean_ahead(self) -> tuple[float, float, int, TaskKey] | None:
        while self._ahead:
            early, due, _, key = self._ahead[0]
            if self._ahead_current(early, due, key):
                return self._ahead[0]
            heapq.heappop(self._ahead)
        return None

    def _next_work_at(self) -> float | None:
        """When the next task is due or may be polled ahead, whichever is sooner (None: nothing scheduled)."""
        top, ahead = self._clean_top(), self._clean_ahead()
        if top is None or ahead is None:
            return top[1] if top else ahead[0] if ahead else None
        return min(top[1], ahead[0])

    def earliest(self) -> float | None:
        with self.cond:
            top = self._clean_top()
            return top[1] if top else None

    def wait_work(self, now_fn: Callable[[], float], stop: threading.Event, max_wait: float = 1.0) -> bool:
        """Block until some task is due or may be polled ahead (True), or ``max_wait`` passed / stop was set."""
        with self.cond:
            at, now = self._next_work_at(), now_fn()
            if at is not None and at <= now:
                return True
            self.cond.wait(timeout=max(max_wait if at is None else min(max_wait, at - now), 0.001))
            at = self._next_work_at()
            return at is not None and at <= now_fn() and not stop.is_set()

    def pop_due(self, now: float) -> tuple[TaskKey, float] | None:
        """The most overdue task, removed from the schedule until rescheduled."""
        with self.cond:
            top = self._clean_top()
            if top is None or top[1] > now:
                return None
            _, due, _, key = heapq.heappop(self._heap)
            del self._due[key]
            self._early.pop(key, None)
            return key, due

    def pop_ahead(self, now: float) -> tuple[TaskKey, float] | None:
        """The stalest of the tasks that may be polled ahead at ``now`` (the oldest answer first)."""
        with self.cond:
            top = self._clean_ahead()
            if top is None or top[0] > now:
                return None
            _, due, _, key = heapq.heappop(self._ahead)
            del self._due[key]
            del self._early[key]
            return key, due

    def compact(self) -> None:
        """Drop stale heap entries when they outnumber live ones (long-running churn)."""
        with self.cond:
            if len(self._heap) > 2 * len(self._due) + 1024:
                self._heap = [(r, d, s, k) for r, d, s, k in self._heap if self._due.get(k) == (r, d)]
                heapq.heapify(self._heap)
            if len(self._ahead) > 2 * len(self._early) + 1024:
                self._ahead = [(e, d, s, k) for e, d, s, k in self._ahead if self._ahead_current(e, d, k)]
                heapq.heapify(self._ahead)
