"""``--tasks-file``: a YAML list of tasks to track, kept equal to the store's ``file`` source.

The file is re-read when it changes and on SIGHUP. A broken file keeps the last good set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from exporter.logs import counted
from exporter.model import (
    KIND_NAMES,
    PUSH,
    InvalidTaskRef,
    TaskKey,
    task_key,
    validate_kind,
    validate_sdk_app_id,
    validate_task_id,
)
from exporter.periodic import Periodic
from exporter.store import TaskStore
from exporter.yamlfile import YamlFileError, read_yaml

log = logging.getLogger(__name__)


class TasksFileError(Exception):
    """A tasks file that cannot be used; the message is one line naming the problem."""


ENTRY_KEYS = frozenset({"sdk_app_id", "task_id"})


def load_tasks_file(path: Path, on_repeat: Callable[[str], object] = lambda message: None,
                    watched: tuple[str, ...] = KIND_NAMES) -> list[TaskKey]:
    """Read a YAML list of ``{sdk_app_id, task_id}``, each with an optional ``kind`` (``push`` when absent;
    ``record``, ``transcode``); also accepts ``{tasks: [...]}``. A kind not in ``watched`` is refused.

    A task listed twice is tracked once; ``on_repeat`` gets one line per repeat, because a repeat is
    often a copy-paste that was meant to name another task.
    """
    try:
        document = read_yaml(path, "tasks file")
    except YamlFileError as exc:
        raise TasksFileError(str(exc)) from None
    if isinstance(document, dict) and set(document) == {"tasks"}:
        document = document["tasks"]
    if document is None:
        return []
    if not isinstance(document, list):
        raise TasksFileError(f"tasks file {path} must be a list of {{sdk_app_id, task_id}}")
    first_entry: dict[TaskKey, int] = {}
    for index, item in enumerate(document, start=1):
        if not isinstance(item, dict) or set(item) - {"kind"} != ENTRY_KEYS:
            raise TasksFileError(f"tasks file {path}: entry {index} must have exactly sdk_app_id and task_id "
                                 "(and optionally kind)")
        try:
            kind = validate_kind(item.get("kind", PUSH))
            key = task_key(validate_sdk_app_id(item["sdk_app_id"]), validate_task_id(item["task_id"]), kind)
        except InvalidTaskRef as exc:
            raise TasksFileError(f"tasks file {path}: entry {index}: {exc}") from None
        if kind not in watched:
            raise TasksFileError(f"tasks file {path}: entry {index} is a {kind} task, which --kinds "
                                 f"({','.join(watched)}) does not watch")
        if key in first_entry:
            on_repeat(f"tasks file {path}: entry {index} repeats entry {first_entry[key]} "
                      f"({key[0]}:{key[1]}); tracked once")
        else:
            first_entry[key] = index
    return list(first_entry)


class TasksFileWatcher:
    """Keeps the ``file`` source equal to ``--tasks-file``: re-read when it changes and on demand.

    A broken file keeps the last good set; ``on_result(ok)`` feeds the reload-success gauge.
    """

    def __init__(self, path: Path, store: TaskStore, on_result: Callable[[bool], object] = lambda ok: None,
                 period: float = 2.0, watched: tuple[str, ...] = KIND_NAMES):
        self.path = path
        self.watched = watched
        self.store = store
        self.on_result = on_result
        self._stamp: tuple[int, int] | None = None
        self._loaded = False  # a good version was loaded once: a broken edit keeps it
        self._lock = threading.Lock()
        self._loop = Periodic("tasks-file", period, self._reload_if_changed)

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
                keys = load_tasks_file(self.path, on_repeat=log.warning, watched=self.watched)
            except TasksFileError as exc:
                kept = "keeping the last good task set" if self._loaded else "no tasks from it until it is fixed"
                log.error("%s; %s", exc, kept)
                self.on_result(False)
                return False
            added, removed = self.store.replace_source("file", keys)
            self._loaded = True
            log.info("tasks file %s loaded: %s (%d new, %d removed)", self.path, counted(len(keys), "task"), added,
                     removed)
            self.on_result(True)
            return True

    def _reload_if_changed(self) -> None:
        if self._current_stamp() != self._stamp:
            self.reload()

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
