"""The simulator's tasks: one seeded, locked book shared by the API, the control endpoints and the ticker.

Task ids are unique across SdkAppIds, as TIW's are. A backdated task's past transitions happened
before the simulator existed, so they never produce callbacks.
"""

from __future__ import annotations

import collections
import random
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from exporter.simulator.lifecycle import PUSH_STATUSES, STARTED_EVENT, STOPPED_EVENT, SimTask, TaskScript, TaskState
from exporter.simulator.mixes import random_id, random_user_suffix

RUNNING_TASKS_MAX_AGE_SECONDS = 3 * 86400
_TASK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

T = TypeVar("T")


def valid_task_id(task_id: str) -> bool:
    """Whether a task id given by a test (control endpoint, ``add_task``) looks like one TIW could give."""
    return bool(_TASK_ID_RE.match(task_id))


class TaskBook:
    """Tasks by (SdkAppId, TaskId) and by id, plus the SdkAppIds the simulated account has."""

    def __init__(
        self,
        seed: int,
        sdk_app_ids: Iterable[int],
        unregistered_sdk_app_ids: Iterable[int] = (),
        expired_sdk_app_ids: Iterable[int] = (),
    ) -> None:
        self.sdk_app_ids = frozenset(sdk_app_ids)
        self.unregistered = frozenset(unregistered_sdk_app_ids)
        self.expired = frozenset(expired_sdk_app_ids)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._tasks: dict[tuple[int, str], SimTask] = {}
        self._by_id: dict[str, SimTask] = {}
        self._unannounced: dict[tuple[int, str], SimTask] = {}
        self._queueing: dict[tuple[int, str], SimTask] = {}  # scripted to wait in the queue, not yet out of it

    @property
    def known_app_ids(self) -> frozenset[int]:
        return self.sdk_app_ids | self.unregistered | self.expired

    def draw(self, pick: Callable[[random.Random], T]) -> T:
        """A draw from the seeded RNG, under the lock so concurrent draws stay reproducible per order."""
        with self._lock:
            return pick(self._rng)

    def add(
        self, sdk_app_id: int, script: TaskScript, task_id: str | None, created_at: float | None, now: float
    ) -> str:
        """Create a task (ids drawn from the seeded RNG when not given); ValueError on bad ids."""
        if sdk_app_id not in self.known_app_ids:
            raise ValueError(f"SdkAppId {sdk_app_id} is not one of the simulator's SdkAppIds")
        with self._lock:
            if task_id is None:
                task_id = self._fresh_id()
            elif not valid_task_id(task_id) or task_id in self._by_id:
                raise ValueError(f"task id {task_id!r} is malformed or already exists")
            room_id = self._rng.randint(10000, 999999)
            user = f"tic_push_user_{room_id}_{random_user_suffix(self._rng)}"
            created = now if created_at is None else created_at
            task = SimTask(sdk_app_id, task_id, script, created, room_id, str(room_id), user)
            if created < now:
                _mark_history_announced(task, now)
            self._store(task)
        return task_id

    def start(
        self,
        sdk_app_id: int,
        room_id: int,
        group_id: str | None,
        push_user_id: str,
        script: TaskScript | None,
        now: float,
        random_script: Callable[[random.Random], TaskScript],
        with_backup: bool = False,
    ) -> SimTask:
        """A task created by StartWhiteboardPush; without a script, ``random_script`` draws one.

        ``with_backup`` (Start's ``Backup`` parameter) also starts a backup push, named by its own id.
        """
        with self._lock:
            if script is None:
                script = random_script(self._rng)
            task = SimTask(sdk_app_id, self._fresh_id(), script, now, room_id, group_id or str(room_id), push_user_id)
            if with_backup:
                task.backup_task_id = self._fresh_id()
            self._store(task)
        return task

    def _fresh_id(self) -> str:
        while True:
            candidate = random_id(self._rng)
            if candidate not in self._by_id:
                return candidate

    def _store(self, task: SimTask) -> None:
        key = (task.sdk_app_id, task.task_id)
        self._tasks[key] = task
        self._by_id[task.task_id] = task
        if not task.stopped_announced:
            self._unannounced[key] = task
        if task.script.queued_seconds > 0:
            self._queueing[key] = task

    def find(self, sdk_app_id: int, task_id: str) -> SimTask | None:
        with self._lock:
            return self._tasks.get((sdk_app_id, task_id))

    def exists(self, task_id: str) -> bool:
        with self._lock:
            return task_id in self._by_id

    def script(self, task_id: str) -> TaskScript:
        with self._lock:
            return self._by_id[task_id].script

    def stop(self, task: SimTask, now: float) -> bool:
        """Stop a task by the user's call; False when it had already stopped."""
        with self._lock:
            if task.state(now).status == "STOPPED":
                return False
            task.stopped_by_user_at = now
        return True

    def running(self, sdk_app_id: int, now: float) -> list[tuple[SimTask, TaskState]]:
        """Tasks of ``sdk_app_id`` on the running list (not ended, or ``listed_after_end``) and at most three
        days old, oldest first."""
        with self._lock:
            candidates = sorted(
                (t for t in self._tasks.values() if t.sdk_app_id == sdk_app_id),
                key=lambda t: (t.created_at, t.task_id),
            )
            recent = [
                (task, task.state(now)) for task in candidates if now - task.created_at <= RUNNING_TASKS_MAX_AGE_SECONDS
            ]
        return [(task, state) for task, state in recent if task.listed(state)]

    def queued(self, now: float) -> dict[int, list[SimTask]]:
        """Tasks waiting for capacity now, by SdkAppId, oldest first (what the warning callbacks watch).

        Only tasks scripted with ``queued_seconds`` are looked at, and forgotten once they leave the queue,
        so a large fleet costs nothing here.
        """
        with self._lock:
            waiting = []
            for key, task in list(self._queueing.items()):
                if task.state(now).queued:
                    waiting.append(task)
                else:  # out of the queue for good: time only moves forward
                    del self._queueing[key]
        found: dict[int, list[SimTask]] = collections.defaultdict(list)
        for task in sorted(waiting, key=lambda t: (t.created_at, t.task_id)):
            found[task.sdk_app_id].append(task)
        return dict(found)

    def statuses(self, now: float) -> dict[str, int]:
        with self._lock:
            counts = collections.Counter(task.state(now).status for task in self._tasks.values())
        return {status: counts.get(status, 0) for status in PUSH_STATUSES}

    def transitions(self, now: float) -> list[tuple[SimTask, str, dict[str, Any]]]:
        """The (task, event type, event data) of transitions not yet announced; marks them announced."""
        events = []
        with self._lock:
            for key, task in list(self._unannounced.items()):
                state = task.state(now)
                if not task.started_announced and state.push_start_time:
                    task.started_announced = True
                    events.append((task, STARTED_EVENT, task.started_event(state)))
                if state.status == "STOPPED":
                    task.stopped_announced = True
                    del self._unannounced[key]
                    events.append((task, STOPPED_EVENT, task.stopped_event(state)))
        return events


def _mark_history_announced(task: SimTask, now: float) -> None:
    state = task.state(now)
    task.started_announced = state.push_start_time > 0
    task.stopped_announced = state.status == "STOPPED"
