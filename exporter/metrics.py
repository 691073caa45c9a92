"""What is exported: metric families, their names, labels and values (the contract of DESIGN §6).

Every per-task sample comes from one function, ``per_task_samples``. Two consumers share it:

* ``TaskCollector.collect()`` yields prometheus_client families (OpenMetrics output, tests);
* ``exposition.Exposition`` formats each task's samples once per change of that task (how it is
  made fast lives there).

Both produce byte-identical text (tests compare them), so the fast path cannot drift.

Each task kind has its families (``EXPORTS``: pushes here, recordings and transcodes in
``kind_metrics``); a task's samples index into its kind's families. Pushes come first, so a push-only
exporter's text is what it always was.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import (
    disable_created_metrics,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample as ClientSample

from exporter.families import Family, KindFamilies, Labels, Sample
from exporter.families import state_set as _state_set
from exporter.kind_metrics import RECORD_EXPORT, TRANSCODE_EXPORT
from exporter.kinds import PUSH_KIND
from exporter.lifecycle import ENDINGS, FAILED, TaskRecord, push_duration, trtc_code
from exporter.model import PUSH, TaskKey, backup_exception_cnt, parse_backup
from exporter.store import TaskStore

log = logging.getLogger(__name__)
disable_created_metrics()  # *_created series double the output and nobody alerts on them

__all__ = ["Family", "Labels", "Sample"]  # re-exported: the shapes live in ``families``

# Per-task families, in exposition order. Indexes below refer to this tuple.
TASK_FAMILIES = (
    Family("tiw_push_task_info", "gauge", "Push task metadata (room, group, push user); always 1."),
    Family("tiw_push_task_status", "gauge", "Push task status as a state set: 1 for the current status."),
    Family("tiw_push_task_finish_reason", "gauge", "Why a final push ended, as a state set (final tasks only): "
           "TIW's AUTO, USER_CALL, EXCEPTION, or FAILED (a failed push), NOT_FOUND (no such task)."),
    Family("tiw_push_task_duration_seconds", "gauge",
           "Push duration: stop minus start when stopped, last successful poll minus start while pushing."),
    Family("tiw_push_task_start_timestamp_seconds", "gauge", "PushStartTime as a Unix timestamp."),
    Family("tiw_push_task_stop_timestamp_seconds", "gauge", "PushStopTime as a Unix timestamp."),
    Family("tiw_push_task_exceptions_total", "counter", "ExceptionCnt: exceptions during pushing."),
    Family("tiw_push_task_error", "gauge", "1 with the error code the task's latest query returned."),
    Family("tiw_push_task_last_success_timestamp_seconds", "gauge", "When the task was last queried successfully."),
    Family("tiw_push_task_backup_status", "gauge", "Status of the backup push task, as a state set."),
    Family("tiw_push_task_backup_exceptions_total", "counter", "ExceptionCnt of the backup push task."),
    Family("tiw_push_task_failure_info", "gauge", "1 for a push that failed (final): the error code, and TRTC's "
           "error code from the message where it has one."),
)
(INFO, STATUS, FINISH, DURATION, START, STOP, EXCEPTIONS, ERROR, LAST_SUCCESS, BACKUP_STATUS,
 BACKUP_EXCEPTIONS, FAILURE_INFO) = range(len(TASK_FAMILIES))
STATUSES = PUSH_KIND.statuses
FINISH_STATES = (*PUSH_KIND.finish_reasons, *ENDINGS)

AGGREGATE_STATUSES = (*STATUSES, "UNKNOWN")
TASKS_FAMILY = Family("tiw_push_tasks", "gauge", "Tracked push tasks by SdkAppId and status (UNKNOWN before the "
                      "first answer).")
TRACKED_FAMILY = Family("tiw_exporter_tracked_tasks", "gauge", "Push tasks tracked by this exporter.")


class TaskProblemLog:
    """Logs a problem of a task's data once per task and kind, not on every scrape; a task that leaves
    the store is forgotten (``forget``), so the log stays as small as the tasks that have problems."""

    def __init__(self) -> None:
        self._seen: dict[TaskKey, set[str]] = {}
        self._lock = threading.Lock()

    def once(self, record: TaskRecord, problem: str, error: Exception) -> None:
        with self._lock:
            kinds = self._seen.setdefault(record.key, set())
            if problem in kinds:
                return
            kinds.add(problem)
        log.warning("task %s:%s: %s (%s)", record.sdk_app_id, record.task_id, problem, type(error).__name__)

    def forget(self, key: TaskKey) -> None:
        with self._lock:
            self._seen.pop(key, None)

    @property
    def tasks(self) -> int:
        """How many tasks have a problem logged (not ``__len__``: an empty log must stay truthy)."""
        return len(self._seen)


def per_task_samples(record: TaskRecord, problems: TaskProblemLog | None = None) -> list[Sample]:
    """Every sample of one task, as (family index, labels, value)."""
    base: Labels = (("sdk_app_id", str(record.sdk_app_id)), ("task_id", record.task_id))
    task = record.latest
    samples: list[Sample] = []
    if task is not None:
        samples.append((INFO, (*base, ("room_id", str(task.room_id)), ("group_id", task.group_id),
                                ("push_user_id", task.push_user_id)), 1.0))
    samples += _state_set(STATUS, base, "status", STATUSES, record.status)
    if record.final:
        samples += _state_set(FINISH, base, "reason", FINISH_STATES, record.finish_reason)
    if task is not None:
        duration = push_duration(record)
        if duration is not None:
            samples.append((DURATION, base, duration))
        if task.push_start_time:
            samples.append((START, base, float(task.push_start_time)))
        if task.push_stop_time:
            samples.append((STOP, base, float(task.push_stop_time)))
        samples.append((EXCEPTIONS, base, float(task.exception_cnt)))
    if record.last_error is not None:
        samples.append((ERROR, (*base, ("code", record.last_error.code)), 1.0))
    if record.last_success is not None:
        samples.append((LAST_SUCCESS, base, record.last_success))
    if task is not None and task.backup:
        samples += _backup_samples(record, base, task.backup, problems)
    if record.ended == FAILED and record.last_error is not None:
        samples.append((FAILURE_INFO, (*base, ("code", record.last_error.code),
                                       ("trtc_code", trtc_code(record.last_error.message))), 1.0))
    return samples


def _backup_samples(record: TaskRecord, base: Labels, text: str, problems: TaskProblemLog | None) -> list[Sample]:
    try:
        backup = parse_backup(text)
    except ValueError as exc:
        if problems is not None:
            problems.once(record, "unparseable Backup; backup metrics skipped", exc)
        return []
    if backup is None:
        return []
    samples: list[Sample] = []
    status = backup.get("Status")
    if isinstance(status, str):
        samples += _state_set(BACKUP_STATUS, base, "status", STATUSES, status)
    count = backup_exception_cnt(backup)
    if count is not None:
        samples.append((BACKUP_EXCEPTIONS, base, float(count)))
    return samples


def renderable_samples(record: TaskRecord, problems: TaskProblemLog) -> list[Sample] | None:
    """``per_task_samples``, or None when one of them cannot be exposed (logged once per task).

    The second line of defence behind the parse boundary (``model``): one task that cannot be
    rendered is left out of the scrape, never the whole scrape with every other task.
    """
    try:
        samples = EXPORTS[record.kind].samples(record, problems)
        for _, labels, value in samples:
            for _, text in labels:
                text.encode("utf-8")
            float(value)
    except Exception as exc:  # whatever it is, it must not fail the scrape
        problems.once(record, "a value cannot be exposed; the task is left out of /metrics", exc)
        return None
    return samples


def _new_family(family: Family) -> Metric:
    if family.kind == "counter":
        return CounterMetricFamily(family.name, family.help)
    return GaugeMetricFamily(family.name, family.help)


def tasks_by_status_samples(tally: Mapping[tuple[int, str], int],
                            statuses: tuple[str, ...] = AGGREGATE_STATUSES) -> list[tuple[Labels, float]]:
    """``tiw_push_tasks`` (or another kind's ``<prefix>_tasks``, with its ``statuses``): every status (0
    included) for every SdkAppId in ``tally``."""
    return [
        ((("sdk_app_id", str(app)), ("status", status)), float(tally.get((app, status), 0)))
        for app in sorted({app for app, _ in tally})
        for status in statuses
    ]


def aggregate_samples(records: Iterable[TaskRecord],
                      statuses: tuple[str, ...] = AGGREGATE_STATUSES) -> tuple[list[tuple[Labels, float]], int]:
    """``<prefix>_tasks`` samples and the tracked count, counted from ``records`` (of one kind)."""
    tally = Tally((record.sdk_app_id, record.status) for record in records)
    return tasks_by_status_samples(tally, statuses), sum(tally.values())


PUSH_EXPORT = KindFamilies(PUSH, TASK_FAMILIES, per_task_samples, TASKS_FAMILY, AGGREGATE_STATUSES)
EXPORTS: dict[str, KindFamilies] = {PUSH: PUSH_EXPORT, "record": RECORD_EXPORT, "transcode": TRANSCODE_EXPORT}


def not_retired(records: Iterable[TaskRecord]) -> list[TaskRecord]:
    return [r for r in records if not r.retired]


class TaskCollector(Collector):
    """prometheus_client collector over the store; never calls the API.

    Example output::

        tiw_push_task_status{sdk_app_id="1400000001",status="PUSHING",task_id="ghucnligqtgtvk2624mb"} 1.0
        tiw_push_tasks{sdk_app_id="1400000001",status="PUSHING"} 12.0
    """

    def __init__(self, store: TaskStore, problems: TaskProblemLog | None = None) -> None:
        self.store = store
        self.problems = problems if problems is not None else TaskProblemLog()

    def describe(self) -> list[Metric]:
        return [_new_family(f) for export in EXPORTS.values() for f in (*export.families, export.aggregate)] + [
            _new_family(TRACKED_FAMILY)]

    def collect(self) -> Iterator[Metric]:
        by_kind: dict[str, list[TaskRecord]] = {kind: [] for kind in EXPORTS}
        for record in not_retired(self.store.snapshot()):
            by_kind[record.kind].append(record)
        for kind, export in EXPORTS.items():
            families = [_new_family(f) for f in export.families]
            for record in by_kind[kind]:
                for index, labels, value in renderable_samples(record, self.problems) or ():
                    families[index].samples.append(_sample(export.families[index].name, labels, value))
            yield from (f for f in families if f.samples)
        for kind, export in EXPORTS.items():
            aggregates, _ = aggregate_samples(by_kind[kind], export.statuses)
            tasks = _new_family(export.aggregate)
            for labels, value in aggregates:
                tasks.samples.append(_sample(export.aggregate.name, labels, value))
            if tasks.samples:
                yield tasks
        yield GaugeMetricFamily(TRACKED_FAMILY.name, TRACKED_FAMILY.help, value=len(by_kind[PUSH]))


def _sample(name: str, labels: Labels, value: float) -> ClientSample:
    return ClientSample(name, dict(labels), value, None, None)
