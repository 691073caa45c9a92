"""The tracked-task store: which tasks we follow, where each came from, and its latest result.

Records are immutable (``TaskRecord``); every change replaces a record under one short lock, so
readers (metrics, the task API, the state file writer) take a cheap snapshot and never wait on
the collector. The status of a task only moves forward: PREPARED -> PUSHING -> STOPPED.

Readers that want only what changed follow the store's change feed: every write bumps
``version``, and ``changed_since(cursor)`` answers the records changed after ``cursor`` (None for a
removed task) with the cursor to pass next time. Each reader keeps its own cursor, so any number of
them can follow the feed without taking updates from each other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from exporter.model import STATUS_RANK, PushTask, TaskKey, validate_sdk_app_id, validate_task_id

log = logging.getLogger(__name__)

# Where a task came from, as shown by GET /api/v1/tasks. Config sources are owned by their
# configuration: the API cannot delete them and they come back if configured again.
SOURCES = ("flag", "file", "api", "callback", "discovery")
CONFIG_SOURCES = frozenset({"flag", "file"})


@dataclass(frozen=True, slots=True)
class TaskError:
    """The latest failed query of a task."""

    code: str
    message: str
    request_id: str
    at: float


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """Everything we know about one tracked task, replaced whole on every change."""

    sdk_app_id: int
    task_id: str
    sources: frozenset[str]
    added_at: float
    latest: PushTask | None = None
    last_success: float | None = None
    last_error: TaskError | None = None
    stopped_seen_at: float | None = None  # when we first learned it is STOPPED (drives retention)
    retired: bool = False  # a configured task past its retention: kept for the config, not exported
    stop_error: TaskError | None = None  # the Error of a WhiteboardPushStopped callback, if any

    @property
    def key(self) -> TaskKey:
        return self.sdk_app_id, self.task_id

    @property
    def status(self) -> str:
        """PREPARED/PUSHING/STOPPED, or UNKNOWN before the first answer (or an unknown value)."""
        if self.latest is None or self.latest.known_status is None:
            return "UNKNOWN"
        return self.latest.status

    @property
    def active(self) -> bool:
        return self.status != "STOPPED"

    @property
    def pollable(self) -> bool:
        """Still worth a query: not stopped (stopped is final) and not retired."""
        return self.active and not self.retired

    def to_json(self) -> dict[str, Any]:
        return {
            "sdk_app_id": self.sdk_app_id,
            "task_id": self.task_id,
            "sources": sorted(self.sources),
            "added_at": self.added_at,
            "status": self.status,
            "latest": self.latest.to_dict() if self.latest else None,
            "last_success": self.last_success,
            "last_error": _error_json(self.last_error),
            "stop_error": _error_json(self.stop_error),
            "stopped_seen_at": self.stopped_seen_at,
            "retired": self.retired,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRecord:
        """Inverse of ``to_json``; raises ValueError/TypeError/KeyError on malformed input."""
        latest = data.get("latest")
        sources = frozenset(data["sources"])
        if not sources <= set(SOURCES):
            raise ValueError(f"unknown sources {sorted(sources - set(SOURCES))}")
        return cls(
            sdk_app_id=validate_sdk_app_id(data["sdk_app_id"]),
            task_id=validate_task_id(data["task_id"]),
            sources=sources,
            added_at=float(data["added_at"]),
            latest=PushTask.from_dict(latest) if latest else None,
            last_success=_opt_float(data.get("last_success")),
            last_error=_error_from_json(data.get("last_error")),
            stopped_seen_at=_opt_float(data.get("stopped_seen_at")),
            retired=bool(data.get("retired", False)),
            stop_error=_error_from_json(data.get("stop_error")),
        )


def _error_json(error: TaskError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"code": error.code, "message": error.message, "request_id": error.request_id, "at": error.at}


def _error_from_json(data: Any) -> TaskError | None:
    if not data:
        return None
    return TaskError(str(data["code"]), str(data["message"]), str(data["request_id"]), float(data["at"]))


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def merge_result(record: TaskRecord, task: PushTask, now: float) -> TaskRecord:
    """Apply a successful answer, never moving the status backwards.

    A late answer that says PUSHING for a task we already know is STOPPED (e.g. from a stop
    callback) keeps the stopped state but still refreshes ``last_success``.
    """
    previous = record.latest
    if previous is not None and _regresses(previous, task):
        log.info("ignoring out-of-order status %s for task %s (already %s)", task.status, task.task_id,
                 previous.status)
        task = replace(previous, exception_cnt=max(previous.exception_cnt, task.exception_cnt),
                       request_id=task.request_id)
    stopped_seen_at = record.stopped_seen_at
    if task.stopped and stopped_seen_at is None:
        stopped_seen_at = now
    return replace(record, latest=task, last_success=now, last_error=None, stopped_seen_at=stopped_seen_at)


def _regresses(previous: PushTask, new: PushTask) -> bool:
    old_rank = STATUS_RANK.get(previous.status)
    new_rank = STATUS_RANK.get(new.status)
    return old_rank is not None and new_rank is not None and new_rank < old_rank


def merge_error(record: TaskRecord, error: TaskError) -> TaskRecord:
    return replace(record, last_error=error)


MembershipListener = Callable[[list[TaskKey], list[TaskKey]], None]
RecordChange = Callable[[TaskRecord], TaskRecord]

MAX_TOMBSTONES = 4096  # removed keys remembered for readers of the change feed; older readers resync


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
        self.version = 0  # bumped on every write; the cursor of the change feed
        self._changed_at: OrderedDict[TaskKey, int] = OrderedDict()  # key -> version of its last change, oldest first
        self._tombstones = 0  # removed keys still in _changed_at
        self._forgotten_before = 0  # removals at or below this version are no longer in _changed_at

    # --- observers -------------------------------------------------------------------------
    def subscribe(self, listener: MembershipListener) -> None:
        """``listener(added, removed)`` after membership changes, outside the lock."""
        self._listeners.append(listener)

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
            self._tombstones -= 1  # a removed task is back
        self._records[key] = record
        self._mark(key)

    def _drop(self, key: TaskKey) -> None:
        del self._records[key]
        self._mark(key)
        self._tombstones += 1
        if self._tombstones > MAX_TOMBSTONES:
            self._forget_old_removals()

    def _mark(self, key: TaskKey) -> None:
        self._changed_at[key] = self.version
        self._changed_at.move_to_end(key)

    def _forget_old_removals(self) -> None:
        """Forget the older half of the remembered removals; a reader older than them resyncs."""
        for key, version in list(self._changed_at.items()):
            if self._tombstones <= MAX_TOMBSTONES // 2:
                break
            if key not in self._records:
                del self._changed_at[key]
                self._tombstones -= 1
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
            self.version += 1
            self._put(key, TaskRecord(key[0], key[1], frozenset({source}), self._clock()))
        self._notify([key], [])
        return True

    def remove(self, key: TaskKey) -> bool:
        with self._lock:
            if key not in self._records:
                return False
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
                    self._put(key, TaskRecord(key[0], key[1], frozenset({source}), now))
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
            new = change(record)
            self.version += 1
            self._put(key, new)
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
                self._put(record.key, replace(record, sources=sources))
                if current is None:
                    restored.append(record.key)
        self._notify(restored, [])
        return len(restored)
