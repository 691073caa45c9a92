"""Tasks that ended and left the store, remembered so that no source brings one back as new.

TIW's running list covers the tasks created in the last 3 days, and retries callbacks; a task whose
record retention dropped (``--finished-retention``) can therefore be listed again by discovery, or
stopped again by a retried ``WhiteboardPushStopped``. Counting it again would inflate the finished-task
SLI (``tiw_push_tasks_finished_total``). So a final task leaving the store is remembered here for
``ENDED_MEMORY`` (the list's window and a margin), at most ``MAX_ENDED`` of them (oldest forgotten
first), and saved with the state file (``statedb``), so a restart keeps the promise: every task is
counted once, ever.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from exporter.model import TaskKey

ENDED_MEMORY = 3 * 86400.0 + 3600.0  # DescribeRunningTasks lists the tasks of the last 3 days
MAX_ENDED = 200_000  # ~30 MB at most; beyond it the oldest endings are forgotten first


class EndedTasks:
    """Key -> when it became final, oldest first; not thread-safe (the store's lock guards it)."""

    def __init__(self) -> None:
        self._at: OrderedDict[TaskKey, float] = OrderedDict()

    def remember(self, key: TaskKey, final_at: float, now: float) -> None:
        self._at[key] = final_at
        self._at.move_to_end(key)
        self.expire(now)

    def restore(self, rows: Iterable[tuple[TaskKey, float]], now: float) -> None:
        for key, final_at in sorted(rows, key=lambda row: row[1]):
            self._at[key] = final_at
        self.expire(now)

    def ended_at(self, key: TaskKey, now: float) -> float | None:
        """When ``key`` became final, if it ended within the memory."""
        at = self._at.get(key)
        return at if at is not None and now - at <= ENDED_MEMORY else None

    def forget(self, key: TaskKey) -> None:
        self._at.pop(key, None)

    def expire(self, now: float) -> None:
        while self._at:
            key, at = next(iter(self._at.items()))
            if len(self._at) <= MAX_ENDED and now - at <= ENDED_MEMORY:
                break
            del self._at[key]

    def snapshot(self) -> list[tuple[TaskKey, float]]:
        return list(self._at.items())

    def __len__(self) -> int:
        return len(self._at)
