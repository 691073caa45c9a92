"""The tracked-task store: which tasks we follow, where each came from, and its latest result.

Records are immutable (``TaskRecord``); every change replaces a record under one short lock, so
readers (metrics, the task API, the state file writer) take a cheap snapshot and never wait on
the collector. How one answer changes a record (and when a task is final) is ``lifecycle.py``.

Readers that want only what changed follow the store's change feed: every write bumps
``version``, and ``changed_since(cursor)`` answers the records changed after ``cursor`` (None for a
removed task) with the cursor to pass next time. Each reader keeps its own cursor, so any number of
them can follow the feed without taking updates from each other.

One process is the only writer of its accounts' tasks: nothing here merges another process's records.
A final task that leaves the store is remembered (``ended.py``) so that discovery or a retried callback
cannot bring it back as a new task: every task is counted once, ever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from exporter.ended import ENDED_MEMORY, EndedTasks
from exporter.lifecycle import CONFIG_SOURCES, Milestones, TaskRecord, take_milestones
from exporter.model import TaskKey, key_kind

log = logging.getLogger(__name__)

MembershipListener = Callable[[list[TaskKey], list[TaskKey]], None]
MilestoneListener = Callable[[TaskRecord, Milestones], None]
RecordChange = Callable[[TaskRecord], TaskRecord]

MAX_REMEMBERED_REMOVALS = 4096  # removed keys remembered for readers of the change feed; older readers resync
REDISCOVERING_SOURCES = frozenset({"discovery", "callback"})  # what would bring an ended task back by itself


@dataclass(frozen=True)
class Changes:
    """What ``changed_since`` answers: records changed after the reader's cursor (None: removed).

    ``resync`` is True when the reader's cursor is older than the feed remembers removals for: then
    ``records`` holds every current record, and the reader must forget what it had before.
    """

    cursor: int
    records: dict[TaskKey, TaskRecord | None]
    resync: bool = False


class TaskStore:
    """Thread-safe map of TaskKey -> TaskRecord with per-source membership and a change feed."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._records: dict[TaskKey, TaskRecord] = {}
        self._clock = clock
        self._listeners: list[MembershipListener] = []
        self._milestone_listeners: list[MilestoneListener] = []
        self.version = 0  # bumped on every write; the cursor of the change feed
        self._changed_at: OrderedDict[TaskKey, int] = OrderedDict()  # key -> version of its last change, oldest first
        self._removals = 0  # removed keys still in _changed_at
        self._forgotten_before = 0  # removals at or below this version are no longer in _changed_at
        self._ended = EndedTasks()  # final tasks that left: never new again (ended.py)

    # --- observers -------------------------------------------------------------------------
    def subscribe(self, listener: MembershipListener) -> None:
        """``listener(added, removed)`` after membership changes, outside the lock."""
        self._listeners.append(listener)

    def on_milestone(self, listener: MilestoneListener) -> None:
        """``listener(record, milestones)`` once per task and milestone (started, finished), outside the
        lock. Every change goes through ``update``, so no path to a final task can skip the count."""
        self._milestone_listeners.append(listener)

    def _notify(self, added: list[TaskKey], removed: list[TaskKey]) -> None:
        if added or removed:
            for listener in self._listeners:
                listener(added, removed)

    # --- reads -----------------------------------------------------------------------------
    def snapshot(self) -> list[TaskRecord]:
        with self._lock:
            return list(self._records.values())

    def changed_since(self, cursor: int) -> Changes:
        """Records changed after ``cursor`` (None for removed ones) and the cursor to pass next."""
        with self._lock:
            if cursor < self._forgotten_before:
                return Changes(self.version, dict(self._records), resync=True)
            changed: dict[TaskKey, TaskRecord | None] = {}
            for key, version in reversed(self._changed_at.items()):
                if version <= cursor:
                    break
                changed[key] = self._records.get(key)
            return Changes(self.version, changed)

    def get(self, key: TaskKey) -> TaskRecord | None:
        with self._lock:
            return self._records.get(key)

    def __len__(self) -> int:
        return len(self._records)

    # --- bookkeeping of the change feed (callers hold the lock and bumped the version once) ------
    def _put(self, key: TaskKey, record: TaskRecord) -> None:
        if key not in self._records and key in self._changed_at:
            self._removals -= 1  # a removed task is back
        self._records[key] = record
        self._mark(key)

    def _drop(self, key: TaskKey) -> None:
        del self._records[key]
        self._mark(key)
        self._removals += 1
        if self._removals > MAX_REMEMBERED_REMOVALS:
            self._forget_old_removals()

    def _mark(self, key: TaskKey) -> None:
        self._changed_at[key] = self.version
        self._changed_at.move_to_end(key)

    def _forget_old_removals(self) -> None:
        """Forget the older half of the remembered removals; a reader older than them resyncs."""
        for key, version in list(self._changed_at.items()):
            if self._removals <= MAX_REMEMBERED_REMOVALS // 2:
                break
            if key not in self._records:
                del self._changed_at[key]
                self._removals -= 1
                self._forgotten_before = version

    # --- membership --------------------------------------------------------------------------
    def add(self, key: TaskKey, source: str) -> bool:
        """Track ``key`` (from ``source``); True when the task was not tracked before."""
        with self._lock:
            record = self._records.get(key)
            if record is not None:
                if source not in record.sources:
                    self.version += 1
                    self._put(key, replace(record, sources=record.sources | {source}))
                return False
            fresh = self._fresh_record(key, source, self._clock())
            if fresh is None:
                return False  # ended within TIW's 3-day window: listed or called back again, not new
            self.version += 1
            self._put(key, fresh)
        self._notify([key], [])
        return True

    def _fresh_record(self, key: TaskKey, source: str, now: float) -> TaskRecord | None:
        """A new record for ``key`` (lock held); None when an ended task would come back by itself. One the
        user names again (the task API, configuration) is tracked, its milestones already counted."""
        if self._ended.ended_at(key, now) is None:
            return TaskRecord(key[0], key[1], frozenset({source}), now, kind=key_kind(key))
        if source in REDISCOVERING_SOURCES:
            return None
        self._ended.forget(key)
        return TaskRecord(key[0], key[1], frozenset({source}), now, counted_start=True, counted_final=True,
                          kind=key_kind(key))

    def remove(self, key: TaskKey) -> bool:
        """Forget ``key`` (an API delete, retention); False when it was not tracked. A final task is
        remembered as ended (``ended_at``)."""
        with self._lock:
            record = self._records.get(key)
            if record is None:
                return False
            if record.final:
                now = self._clock()
                self._ended.remember(key, record.final_at or now, now)
            self.version += 1
            self._drop(key)
        self._notify([], [key])
        return True

    def replace_source(self, source: str, keys: Iterable[TaskKey]) -> tuple[int, int]:
        """Make ``source`` name exactly ``keys`` (a reloaded file); returns (added, removed) counts.

        A task stays tracked while any other source still names it.
        """
        wanted = set(keys)
        added: list[TaskKey] = []
        removed: list[TaskKey] = []
        with self._lock:
            self.version += 1
            now = self._clock()
            for key, record in list(self._records.items()):
                if source in record.sources and key not in wanted:
                    remaining = record.sources - {source}
                    if remaining:
                        self._put(key, replace(record, sources=remaining))
                    else:
                        self._drop(key)
                        removed.append(key)
            for key in wanted:
                record = self._records.get(key)
                if record is None:
                    fresh = self._fresh_record(key, source, now)
                    if fresh is None:
                        continue
                    self._put(key, fresh)
                    added.append(key)
                elif source not in record.sources:
                    self._put(key, replace(record, sources=record.sources | {source}))
        self._notify(added, removed)
        return len(added), len(removed)

    # --- results ------------------------------------------------------------------------------
    def update(self, key: TaskKey, change: RecordChange) -> TaskRecord | None:
        """Replace the record with ``change(record)``; no-op if the task was removed meanwhile."""
        with self._lock:
            record = self._records.get(key)
            if record is None:
                return None
            new, milestones = take_milestones(change(record))
            self.version += 1
            self._put(key, new)
        if milestones:
            for listener in self._milestone_listeners:
                listener(new, milestones)
        return new

    def restore(self, records: Iterable[TaskRecord]) -> int:
        """Load records from the state file, merging with tasks configured by flags/file."""
        restored: list[TaskKey] = []
        with self._lock:
            self.version += 1
            for record in records:
                current = self._records.get(record.key)
                persistent_sources = record.sources - CONFIG_SOURCES
                sources = (current.sources if current else frozenset()) | persistent_sources
                if not sources:
                    continue  # it came only from flags/file that no longer name it
                # the same object when unchanged: the state writer's first write compares by identity
                self._put(record.key, record if sources == record.sources else replace(record, sources=sources))
                if current is None:
                    restored.append(record.key)
        self._notify(restored, [])
        return len(restored)

    # --- ended tasks ------------------------------------------------------------------------------
    def ended_at(self, key: TaskKey) -> float | None:
        """When ``key`` became final, if it is remembered as ended (it left the store)."""
        with self._lock:
            return self._ended.ended_at(key, self._clock())

    def ended(self) -> list[tuple[TaskKey, float]]:
        """Every remembered ending (the state file's copy after a resync)."""
        with self._lock:
            self._ended.expire(self._clock())
            return self._ended.snapshot()

    def ended_horizon(self) -> float:
        """Endings before this are forgotten (TIW's running list no longer holds them)."""
        return self._clock() - ENDED_MEMORY

    def restore_ended(self, rows: Iterable[tuple[TaskKey, float]]) -> None:
        """Endings saved by the last run (``statedb``)."""
        with self._lock:
            self._ended.restore(rows, self._clock())
