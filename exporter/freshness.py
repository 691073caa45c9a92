"""The freshness an operator actually gets: data age per kind of answer, and coverage.

Two kinds of answer keep a task's series true: *liveness* (the running list confirmed it is still
pushing) and *detail* (a ``DescribeWhiteboardPush`` answer: exceptions, finish reason). With
liveness, detail polling of steady tasks stretches to what the budget allows, so the two ages differ
by design; exporting both lets the operator see the tiers the README's sizing table describes.
A task has a *fresh answer* when either kind is younger than ``fresh_within`` (2 poll intervals, or
the liveness staleness limit); ``coverage`` is the share of active tasks that have one.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from exporter.lifecycle import TaskRecord
from exporter.model import TaskKey
from exporter.periodic import Periodic
from exporter.pollstate import PollStates
from exporter.store import TaskStore

QUANTILES = (0.5, 0.95, 1.0)


@dataclass(frozen=True)
class Freshness:
    """Age quantiles (seconds) per kind, tasks per mode, and the covered share of active tasks."""

    ages: dict[str, dict[float, float]]
    listed: int  # active tasks the running list confirms
    polled: int  # active tasks polled one by one (never listed, too old, or no such action)
    fresh: int
    active: int

    @property
    def coverage(self) -> float:
        return self.fresh / self.active if self.active else 1.0


def _rank(q: float, count: int) -> int:
    return min(count - 1, max(0, int(q * count + 0.5) - 1))


def quantiles(values: Iterable[float]) -> dict[float, float]:
    """Nearest-rank quantiles of ``values`` (empty: no samples)."""
    ordered = sorted(values)
    return {q: ordered[_rank(q, len(ordered))] for q in QUANTILES} if ordered else {}


def age_quantiles(times: Iterable[float], now: float) -> dict[float, float]:
    """``quantiles`` of the ages ``now - t`` (at least 0), sorting the times themselves: no list of
    10,000 ages is built in Python for each scrape."""
    newest_first = sorted(times, reverse=True)
    return {q: max(0.0, now - newest_first[_rank(q, len(newest_first))]) for q in QUANTILES} if newest_first else {}


class FreshnessIndex:
    """What freshness needs of each active task, kept from the store's change feed between scrapes.

    A scrape used to walk every record (status, last answer, liveness lookups): at 10,000 tasks that
    was more than half of a text scrape. Here only the tasks changed since the last scrape are
    visited, and the rest is sorting and set arithmetic on plain floats and keys.
    """

    def __init__(self, store: TaskStore | None = None) -> None:
        self.store = store
        self._cursor = 0
        self._reference: dict[TaskKey, float] = {}  # active task -> its last answer's time, else when added
        self._answered: dict[TaskKey, float] = {}  # active task with an answer -> that answer's time
        self._lock = threading.Lock()

    def put(self, key: TaskKey, record: TaskRecord | None) -> None:
        """Take ``record`` as the task's latest (None: removed)."""
        if record is None or not record.pollable:
            self._reference.pop(key, None)
            self._answered.pop(key, None)
        elif record.last_success is None:
            self._reference[key] = record.added_at
            self._answered.pop(key, None)
        else:
            self._reference[key] = self._answered[key] = record.last_success

    def _follow(self) -> None:
        if self.store is None:
            return
        changes = self.store.changed_since(self._cursor)
        self._cursor = changes.cursor
        if changes.resync:
            self._reference.clear()
            self._answered.clear()
        for key, record in changes.records.items():
            self.put(key, record)

    def measure(self, seen: Mapping[TaskKey, float], covered: AbstractSet[TaskKey], now: float,
                detail_fresh_within: float) -> Freshness:
        """Freshness at ``now``, given each task's last time on the running list and the covered ones."""
        with self._lock:
            self._follow()
            active = self._reference.keys()
            # the running list names only active tasks but for those final since its last pass
            listed_times = seen.values() if seen.keys() <= active else [t for k, t in seen.items() if k in active]
            listed = len(active & covered)
            horizon = now - detail_fresh_within
            answered_fresh = _count_since(self._answered.values(), horizon) - _count_since(
                map(self._answered.__getitem__, self._answered.keys() & covered), horizon)
            return Freshness({"detail": age_quantiles(self._reference.values(), now),
                              "liveness": age_quantiles(listed_times, now)},
                             listed, len(active) - listed, listed + answered_fresh, len(active))


def _count_since(times: Iterable[float], horizon: float) -> int:
    """How many of ``times`` are at or after ``horizon`` (sorting in C beats a Python loop)."""
    ordered = sorted(times)
    return len(ordered) - bisect.bisect_left(ordered, horizon)


class FreshnessSnapshots:
    """Freshness measured on its own thread every ``period``; scrapes and the status page read the last.

    Measuring sorts every active task's answer times and intersects the covered keys: 3-7 ms at
    10,000 tasks and 50-70 ms at 50,000, two thirds of a scrape when each scrape did it. Ages move by
    whole liveness passes anyway, so one measure per pass (``period``: the liveness interval) costs a
    scrape nothing and makes the ages at most one pass older. Without the thread (``start`` not
    called), or when it is late by more than ``reuse_within``, ``current`` measures on the spot.
    """

    def __init__(self, index: FreshnessIndex, states: PollStates, detail_fresh_within: float, *,
                 period: float = 5.0, clock: Callable[[], float] = time.time) -> None:
        self.index = index
        self.states = states
        self.detail_fresh_within = detail_fresh_within  # two poll intervals
        self.clock = clock
        self.reuse_within = 2 * period
        self._latest: tuple[float, Freshness] | None = None
        self._loop = Periodic("freshness", period, self.refresh, run_first=True, fixed_rate=True)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def refresh(self) -> Freshness:
        now = self.clock()
        seen, covered = self.states.liveness_seen(now)
        measured = self.index.measure(seen, covered, now, self.detail_fresh_within)
        self._latest = (now, measured)
        return measured

    def current(self) -> Freshness:
        latest = self._latest
        if self._loop.alive and latest is not None and 0 <= self.clock() - latest[0] <= self.reuse_within:
            return latest[1]
        return self.refresh()
