"""The tracked-task store: which tasks we follow, where each came from, and its latest result.

Records are immutable (``TaskRecord``); every change replaces a record under one short lock, so
readers (metrics, the task API, the state file writer) take a cheap snapshot and never wait on
the collector. The status of a task only moves forward: PREPARED -> PUSHING -> STOPPED.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from exporter.tiw import STATUS_RANK, InvalidTaskRef, PushTask, validate_sdk_app_id, validate_task_id

log = logging.getLogger(__name__)

TaskKey = tuple[int, str]

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


class TaskStore:
    """Thread-safe map of TaskKey -> TaskRecord with per-source membership."""

    def __init__(self, clock: Any = time.time) -> None:
        self._lock = threading.Lock()
        self._records: dict[TaskKey, TaskRecord] = {}
        self._clock = clock
        self._listeners: list[Any] = []
        self._dirty: set[TaskKey] = set()  # keys changed since the last take_dirty(), for the renderer
        self.changes = 0  # bumped on every write; the state file writer persists when it moves

    # --- observers -------------------------------------------------------------------------
    def subscribe(self, listener: Any) -> None:
        """``listener(added: list[TaskKey], removed: list[TaskKey])`` after membership changes."""
        self._listeners.append(listener)

    def _notify(self, added: list[TaskKey], removed: list[TaskKey]) -> None:
        if added or removed:
            for listener in self._listeners:
                listener(added, removed)

    # --- reads -----------------------------------------------------------------------------
    def snapshot(self) -> list[TaskRecord]:
        with self._lock:
            return list(self._records.values())

    def take_dirty(self) -> dict[TaskKey, TaskRecord | None]:
        """Keys changed since the last call, with their current record (None when removed)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            return {key: self._records.get(key) for key in dirty}

    def get(self, key: TaskKey) -> TaskRecord | None:
        with self._lock:
            return self._records.get(key)

    def __len__(self) -> int:
        return len(self._records)

    # --- membership --------------------------------------------------------------------------
    def add(self, key: TaskKey, source: str) -> bool:
        """Track ``key`` (from ``source``); True when the task was not tracked before."""
        with self._lock:
            record = self._records.get(key)
            if record is not None:
                if source not in record.sources:
                    self._records[key] = replace(record, sources=record.sources | {source})
                    self.changes += 1
                return False
            self._records[key] = TaskRecord(key[0], key[1], frozenset({source}), self._clock())
            self._dirty.add(key)
            self.changes += 1
        self._notify([key], [])
        return True

    def remove_source(self, key: TaskKey, source: str) -> bool:
        """Drop one source; the task stops being tracked when it has none left. True if removed."""
        with self._lock:
            record = self._records.get(key)
            if record is None or source not in record.sources:
                return False
            remaining = record.sources - {source}
            self.changes += 1
            if remaining:
                self._records[key] = replace(record, sources=remaining)
                return False
            del self._records[key]
            self._dirty.add(key)
        self._notify([], [key])
        return True

    def remove(self, key: TaskKey) -> bool:
        with self._lock:
            if self._records.pop(key, None) is None:
                return False
            self._dirty.add(key)
            self.changes += 1
        self._notify([], [key])
        return True

    def replace_source(self, source: str, keys: Iterable[TaskKey]) -> tuple[int, int]:
        """Make ``source`` name exactly ``keys`` (a reloaded file); returns (added, removed) counts."""
        wanted = set(keys)
        added: list[TaskKey] = []
        removed: list[TaskKey] = []
        with self._lock:
            now = self._clock()
            for key, record in list(self._records.items()):
                if source in record.sources and key not in wanted:
                    remaining = record.sources - {source}
                    if remaining:
                        self._records[key] = replace(record, sources=remaining)
                    else:
                        del self._records[key]
                        removed.append(key)
            for key in wanted:
                record = self._records.get(key)
                if record is None:
                    self._records[key] = TaskRecord(key[0], key[1], frozenset({source}), now)
                    added.append(key)
                elif source not in record.sources:
                    self._records[key] = replace(record, sources=record.sources | {source})
            self._dirty.update(added)
            self._dirty.update(removed)
            self.changes += 1
        self._notify(added, removed)
        return len(added), len(removed)

    # --- results ------------------------------------------------------------------------------
    def update(self, key: TaskKey, change: Any) -> TaskRecord | None:
        """Replace the record with ``change(record)``; no-op if the task was removed meanwhile."""
        with self._lock:
            record = self._records.get(key)
            if record is None:
                return None
            new = change(record)
            self._records[key] = new
            self._dirty.add(key)
            self.changes += 1
            return new

    def restore(self, records: Iterable[TaskRecord]) -> int:
        """Load records from the state file, merging with tasks configured by flags/file."""
        restored: list[TaskKey] = []
        with self._lock:
            for record in records:
                current = self._records.get(record.key)
                persistent_sources = record.sources - CONFIG_SOURCES
                sources = (current.sources if current else frozenset()) | persistent_sources
                if not sources:
                    continue  # it came only from flags/file that no longer name it
                self._records[record.key] = replace(record, sources=sources)
                self._dirty.add(record.key)
                if current is None:
                    restored.append(record.key)
            self.changes += 1
        self._notify(restored, [])
        return len(restored)


class TasksFileError(Exception):
    """A tasks file that cannot be used; the message is one line naming the problem."""


def load_tasks_file(path: Path) -> list[TaskKey]:
    """Read a YAML list of ``{sdk_app_id, task_id}`` (also accepts ``{tasks: [...]}``)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TasksFileError(f"cannot read tasks file {path}: {exc.strerror or exc}") from None
    except Exception:  # PyYAML's constructors also raise ValueError, IndexError, RecursionError...
        raise TasksFileError(f"tasks file {path} is not valid YAML") from None
    if isinstance(document, dict) and set(document) == {"tasks"}:
        document = document["tasks"]
    if document is None:
        return []
    if not isinstance(document, list):
        raise TasksFileError(f"tasks file {path} must be a list of {{sdk_app_id, task_id}}")
    keys: list[TaskKey] = []
    for index, item in enumerate(document, start=1):
        if not isinstance(item, dict) or set(item) != {"sdk_app_id", "task_id"}:
            raise TasksFileError(f"tasks file {path}: entry {index} must have exactly sdk_app_id and task_id")
        try:
            keys.append((validate_sdk_app_id(item["sdk_app_id"]), validate_task_id(item["task_id"])))
        except InvalidTaskRef as exc:
            raise TasksFileError(f"tasks file {path}: entry {index}: {exc}") from None
    return list(dict.fromkeys(keys))


class TasksFileWatcher:
    """Keeps the ``file`` source equal to ``--tasks-file``: re-read when it changes and on demand.

    A broken file keeps the last good set; ``on_result(ok)`` feeds the reload-success gauge.
    """

    def __init__(self, path: Path, store: TaskStore, on_result: Any = lambda ok: None, period: float = 2.0,
                 accept: Any = lambda key: True):
        self.accept = accept  # sharding: the file names every task; this replica keeps its share
        self.path = path
        self.store = store
        self.on_result = on_result
        self.period = period
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tasks-file", daemon=True)

    def _current_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def reload(self) -> bool:
        with self._lock:
            self._stamp = self._current_stamp()
            try:
                keys = load_tasks_file(self.path)
            except TasksFileError as exc:
                log.error("%s; keeping the last good task set", exc)
                self.on_result(False)
                return False
            added, removed = self.store.replace_source("file", [key for key in keys if self.accept(key)])
            log.info("tasks file %s loaded: %d tasks (%d new, %d removed)", self.path, len(keys), added, removed)
            self.on_result(True)
            return True

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            if self._current_stamp() != self._stamp:
                try:
                    self.reload()
                except Exception:  # a watcher must never die
                    log.exception("tasks file reload failed unexpectedly")

    def stop(self) -> None:
        self._stop.set()
