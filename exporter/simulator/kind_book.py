"""The tasks of one kind beside pushes (recordings, transcodes): a seeded, locked book per kind.

Each kind draws its ids from its own seeded RNG, so adding recordings or transcodes never changes the
push ids a seed gives. Ids are unique within a kind; the same id may name a push and a recording (the
exporter must key tasks by kind). A backdated task's past transitions happened before the simulator
existed, so they never produce callbacks. Pushes keep their own ``TaskBook`` (backups, queue warnings).
"""

from __future__ import annotations

import collections
import random
import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from exporter.simulator.mixes import random_id
from exporter.simulator.tasks import RUNNING_TASKS_MAX_AGE_SECONDS, valid_task_id

Event = tuple[int, str, dict[str, Any]]  # (SdkAppId, event type, EventData)
T = TypeVar("T")


class KindTask(Protocol):
    """What a task of another kind answers (``record_lifecycle.SimRecord``, ``transcode_lifecycle.SimTranscode``)."""

    sdk_app_id: int
    task_id: str
    created_at: float
    announced: set[str]
    final_event: str

    def status(self, now: float) -> str: ...
    def failure(self, now: float) -> tuple[str, str] | None: ...
    def describe(self, now: float) -> dict[str, Any]: ...
    def due_events(self, now: float) -> list[tuple[str, str, dict[str, Any]]]: ...
    def running_item(self, now: float) -> dict[str, Any] | None: ...


K = TypeVar("K", bound=KindTask)


class KindBook(Generic[K]):
    """One kind's tasks by (SdkAppId, TaskId); the lock also guards the tasks' user controls."""

    def __init__(self, seed: int, kind: str, statuses: tuple[str, ...]) -> None:
        self.statuses_known = statuses
        self._rng = random.Random(f"tiw-simulator-{kind}:{seed}")
        self._lock = threading.Lock()
        self._tasks: dict[tuple[int, str], K] = {}
        self._ids: set[str] = set()
        self._unannounced: dict[tuple[int, str], K] = {}

    def create(self, make: Callable[[str, random.Random], K], task_id: str | None, now: float) -> K:
        """Store ``make(task_id, rng)``; the id is drawn when not given; ValueError on a bad or taken id."""
        with self._lock:
            if task_id is None:
                task_id = random_id(self._rng)
                while task_id in self._ids:
                    task_id = random_id(self._rng)
            elif not valid_task_id(task_id) or task_id in self._ids:
                raise ValueError(f"task id {task_id!r} is malformed or already exists")
            task = make(task_id, self._rng)
            if task.created_at < now:  # backdated: what already happened is not announced
                task.announced.update(key for key, _, _ in task.due_events(now))
            key = (task.sdk_app_id, task.task_id)
            self._tasks[key] = task
            self._ids.add(task.task_id)
            if task.final_event not in task.announced:
                self._unannounced[key] = task
        return task

    def find(self, sdk_app_id: int, task_id: str) -> K | None:
        with self._lock:
            return self._tasks.get((sdk_app_id, task_id))

    def locked(self, change: Callable[[], T]) -> T:
        """Run ``change`` (a check and a change of one task's controls) under the book's lock."""
        with self._lock:
            return change()

    def any(self, matches: Callable[[K], bool]) -> bool:
        with self._lock:
            return any(matches(task) for task in self._tasks.values())

    def running(self, sdk_app_id: int, task_type: str, now: float) -> list[dict[str, Any]]:
        """The RunningTaskItems of ``sdk_app_id``'s listed tasks of ``task_type``, at most three days old,
        oldest first."""
        with self._lock:
            candidates = sorted((t for t in self._tasks.values() if t.sdk_app_id == sdk_app_id
                                 and now - t.created_at <= RUNNING_TASKS_MAX_AGE_SECONDS),
                                key=lambda t: (t.created_at, t.task_id))
        items = (task.running_item(now) for task in candidates)
        return [item for item in items if item is not None and item["TaskType"] == task_type]

    def statuses(self, now: float) -> dict[str, int]:
        with self._lock:
            counts = collections.Counter(task.status(now) for task in self._tasks.values())
        return {status: counts.get(status, 0) for status in self.statuses_known}

    def transitions(self, now: float) -> list[Event]:
        """The callbacks due and not yet announced, oldest task first; marks them announced."""
        events = []
        with self._lock:
            for key, task in list(self._unannounced.items()):
                for announce, event_type, data in task.due_events(now):
                    if announce not in task.announced:
                        task.announced.add(announce)
                        events.append((task.sdk_app_id, event_type, data))
                if task.final_event in task.announced:
                    del self._unannounced[key]
        return events
