"""What we know about one push task, and how each answer moves it along a lifecycle that ends.

A task is **final** when it cannot change any more, and then it is never polled again and leaves
after ``--finished-retention``:

* an answer (or a ``WhiteboardPushStopped`` callback) says ``STOPPED``, with any finish reason;
* ``FailedOperation.WhiteboardPush`` answered twice in a row: the push failed (``ended=FAILED``);
* ``InvalidParameter.TaskNotFound`` answered twice in a row over at least the not-found grace
  period (a task just started may not be visible yet): ``ended=NOT_FOUND``.

A final task reports status ``STOPPED`` (it is not pushing), and its finish reason is TIW's
(``AUTO``, ``USER_CALL``, ``EXCEPTION``) or ours (``FAILED``, ``NOT_FOUND``).

Rules that keep the numbers honest (``merge_result``):

* the status only moves forward, PREPARED -> PUSHING -> STOPPED: a late or out-of-order answer
  never turns a stopped task back into a pushing one;
* ``ExceptionCnt`` is a counter: an answer with fewer exceptions than already seen keeps the
  highest value (and is counted as an anomaly), so ``increase()`` never sees a fake reset; the
  backup task's ``ExceptionCnt`` inside ``Backup`` likewise;
* timestamps are exported as answered; durations are clamped at 0 (a stop before the start, or a
  start in the future, gives 0 and is counted as an anomaly).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, replace
from typing import Any

from exporter.kind_answers import RecordTask, TranscodeTask
from exporter.kinds import KINDS, TaskKind
from exporter.model import (
    PUSH,
    Answer,
    PushTask,
    TaskKey,
    backup_exception_cnt,
    parse_backup,
    task_key,
    validate_kind,
    validate_sdk_app_id,
    validate_task_id,
)

ANSWER_TYPES: dict[str, type[Answer]] = {"push": PushTask, "record": RecordTask, "transcode": TranscodeTask}
KIND_OF_ANSWER = {answer_type: kind for kind, answer_type in ANSWER_TYPES.items()}

log = logging.getLogger(__name__)

# Where a task came from, as shown by GET /api/v1/tasks. Config sources are owned by their
# configuration: the API cannot delete them and they come back if configured again.
SOURCES = ("flag", "file", "api", "callback", "discovery")
CONFIG_SOURCES = frozenset({"flag", "file"})

FAILED = "FAILED"  # ended: FailedOperation.WhiteboardPush, confirmed
NOT_FOUND = "NOT_FOUND"  # ended: InvalidParameter.TaskNotFound, confirmed over the grace period
ENDINGS = (FAILED, NOT_FOUND)
_TRTC_CODE = re.compile(r"TRTC onError, code: (-?[0-9]{1,9})\b")
ANOMALY_KINDS = ("status_regressed", "exceptions_decreased", "backup_exceptions_decreased", "stop_before_start",
                 "start_in_future")
FUTURE_TOLERANCE = 300.0  # a start this far past our clock is skew, not data (TC3 allows 5 minutes too)


@dataclass(frozen=True, slots=True)
class TaskError:
    """A failed query of a task (or the Error of a stop callback)."""

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
    latest: Any = None  # the kind's validated answer (PushTask, RecordTask, TranscodeTask), None before one
    last_success: float | None = None
    last_error: TaskError | None = None
    final_at: float | None = None  # when we first learned it is final (drives retention)
    retired: bool = False  # a configured task past its retention: kept for the config, not exported
    stop_error: TaskError | None = None  # the Error of a WhiteboardPushStopped callback, if any
    ended: str = ""  # FAILED / NOT_FOUND: final by a confirmed error answer rather than a STOPPED one
    error_streak: int = 0  # consecutive failed answers with last_error's code
    error_since: float | None = None  # when that streak began
    counted_start: bool = False  # tiw_push_tasks_started_total has counted it (kept across restarts)
    counted_final: bool = False  # tiw_push_tasks_finished_total has counted it (kept across restarts)
    exceptions_rose_at: float | None = None  # the last answer whose ExceptionCnt was higher than before
    kind: str = PUSH  # which TIW task kind (kinds.KINDS); part of the key for every kind but push

    @property
    def key(self) -> TaskKey:
        return task_key(self.sdk_app_id, self.task_id, self.kind)

    @property
    def spec(self) -> TaskKind:
        return KINDS[self.kind]

    @property
    def status(self) -> str:
        """One of the kind's statuses, or UNKNOWN before the first answer (or an unknown value); a task
        ended by a confirmed error reports the kind's ``ended_status`` (STOPPED for a push)."""
        if self.ended:
            return self.spec.ended_status
        if self.latest is None or self.latest.status not in self.spec.rank:
            return "UNKNOWN"
        return self.latest.status

    @property
    def finish_reason(self) -> str:
        """TIW's FinishReason once the task is in one of its kind's ``reason_statuses`` (a push: STOPPED;
        a recording: STOPPED or FINISHED), or FAILED / NOT_FOUND; "" before."""
        if self.ended:
            return self.ended
        latest = self.latest
        return latest.finish_reason if latest is not None and latest.status in self.spec.reason_statuses else ""

    @property
    def final(self) -> bool:
        """In one of the kind's final statuses, or ended: every scrape and pass asks it of every task."""
        return bool(self.ended) or (self.latest is not None and self.latest.status in self.spec.final_statuses)

    @property
    def steady(self) -> bool:
        """Running as it should (a push PUSHING, a recording RECORDING or PAUSED): the cadence may stretch it."""
        return self.status in self.spec.steady_statuses

    @property
    def active(self) -> bool:
        return not self.final

    @property
    def pollable(self) -> bool:
        """Still worth a query: not final and not retired."""
        return not self.retired and not self.final

    def to_json(self) -> dict[str, Any]:
        return {
            "sdk_app_id": self.sdk_app_id,
            "task_id": self.task_id,
            "sources": sorted(self.sources),
            "added_at": self.added_at,
            "status": self.status,
            "finish_reason": self.finish_reason,
            "latest": self.latest.to_dict() if self.latest else None,
            "last_success": self.last_success,
            "last_error": _error_json(self.last_error),
            "stop_error": _error_json(self.stop_error),
            "final_at": self.final_at,
            "retired": self.retired,
            "ended": self.ended,
            "error_streak": self.error_streak,
            "error_since": self.error_since,
            "counted_start": self.counted_start,
            "counted_final": self.counted_final,
            "exceptions_rose_at": self.exceptions_rose_at,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRecord:
        """Inverse of ``to_json`` (also reads state files written before ``final_at``/``ended``);
        raises ValueError/TypeError/KeyError on malformed input."""
        latest = data.get("latest")
        sources = frozenset(data["sources"])
        if not sources <= set(SOURCES):
            raise ValueError(f"unknown sources {sorted(sources - set(SOURCES))}")
        ended = str(data.get("ended") or "")
        if ended and ended not in ENDINGS:
            raise ValueError(f"unknown ending {ended[:20]!r}")
        kind = validate_kind(data.get("kind", PUSH))
        record = cls(
            kind=kind,
            sdk_app_id=validate_sdk_app_id(data["sdk_app_id"]),
            task_id=validate_task_id(data["task_id"]),
            sources=sources,
            added_at=float(data["added_at"]),
            latest=ANSWER_TYPES[kind].from_dict(latest) if latest else None,
            last_success=_opt_float(data.get("last_success")),
            last_error=_error_from_json(data.get("last_error")),
            final_at=_opt_float(data.get("final_at", data.get("stopped_seen_at"))),
            retired=bool(data.get("retired", False)),
            stop_error=_error_from_json(data.get("stop_error")),
            ended=ended,
            error_streak=int(data.get("error_streak") or 0),
            error_since=_opt_float(data.get("error_since")),
            exceptions_rose_at=_opt_float(data.get("exceptions_rose_at")),
        )
        # A state file from before the counters: what it already knew is not counted again.
        return replace(record, counted_start=bool(data.get("counted_start", record.latest is not None or record.final)),
                       counted_final=bool(data.get("counted_final", record.final)))


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


def merge_result(record: TaskRecord, task: Answer, now: float) -> TaskRecord:
    """Apply a successful answer: status never backwards, counters never down (module docstring).

    A late answer that says PUSHING for a task we already know is STOPPED (e.g. from a stop
    callback) keeps the stopped state but still refreshes ``last_success``.
    """
    spec = record.spec
    previous = record.latest
    if previous is not None and _regresses(spec, previous, task):
        log.info("ignoring out-of-order status %s for %s %s (already %s)", task.status, spec.noun, task.task_id,
                 previous.status)
        task = replace(previous, request_id=task.request_id, **_highest(spec, previous, task))
    elif previous is not None:
        task = replace(task, **_highest(spec, previous, task))
    if previous is not None and isinstance(task, PushTask):
        task = _keep_backup_exceptions(previous, task)
    final_at = record.final_at
    if task.status in spec.final_statuses and final_at is None:
        final_at = now
    rose = previous is not None and task.exception_cnt > previous.exception_cnt
    return replace(record, latest=task, last_success=now, last_error=None, final_at=final_at, error_streak=0,
                   error_since=None, exceptions_rose_at=now if rose else record.exceptions_rose_at)


def _highest(spec: TaskKind, previous: Answer, task: Answer) -> dict[str, int]:
    """The kind's counters as the highest seen (a fresh answer with fewer never fakes a reset)."""
    return {name: max(getattr(previous, name), getattr(task, name)) for name in spec.counters}


def answer_anomalies(previous: Answer | None, answer: Answer, now: float) -> list[str]:
    """What in ``answer`` cannot be true as answered (the kinds of ``tiw_exporter_answer_anomalies_total``)."""
    spec = KINDS[KIND_OF_ANSWER[type(answer)]]
    kinds = []
    if previous is not None and _regresses(spec, previous, answer):
        kinds.append("status_regressed")
    if previous is not None and answer.exception_cnt < previous.exception_cnt:
        kinds.append("exceptions_decreased")
    if isinstance(previous, PushTask) and _backup_exceptions_dropped(previous, answer) is not None:
        kinds.append("backup_exceptions_decreased")
    start, stop = (getattr(answer, name) for name in spec.times)
    if start and stop and stop < start:
        kinds.append("stop_before_start")
    if start > now + FUTURE_TOLERANCE:
        kinds.append("start_in_future")
    return kinds


def _backup(task: PushTask) -> dict[str, Any] | None:
    try:
        return parse_backup(task.backup)
    except ValueError:
        return None  # unparseable text is logged where it is rendered


def _backup_exceptions_dropped(previous: PushTask, new: PushTask) -> int | None:
    """The backup's earlier, higher ``ExceptionCnt`` when ``new`` answers fewer, else None."""
    old_count = backup_exception_cnt(_backup(previous))
    new_count = backup_exception_cnt(_backup(new))
    return old_count if old_count is not None and new_count is not None and new_count < old_count else None


def _keep_backup_exceptions(previous: PushTask, task: PushTask) -> PushTask:
    """The backup's ``ExceptionCnt`` is a counter too: keep the highest seen inside the ``Backup`` text."""
    highest = _backup_exceptions_dropped(previous, task)
    if highest is None or (backup := _backup(task)) is None:  # parsed again only on the rare drop
        return task
    backup["ExceptionCnt"] = highest
    return replace(task, backup=json.dumps(backup, ensure_ascii=False, separators=(",", ":")))


def _regresses(spec: TaskKind, previous: Answer, new: Answer) -> bool:
    old_rank = spec.rank.get(previous.status)
    new_rank = spec.rank.get(new.status)
    return old_rank is not None and new_rank is not None and new_rank < old_rank


def merge_error(record: TaskRecord, error: TaskError) -> TaskRecord:
    """Record a failed query; consecutive failures with one code form a streak (to confirm endings). A final
    task keeps its last error: a query in flight when it ended cannot change the code it failed with."""
    if record.final:
        return record
    same = record.last_error is not None and record.last_error.code == error.code
    return replace(record, last_error=error, error_streak=record.error_streak + 1 if same else 1,
                   error_since=record.error_since if same and record.error_since is not None else error.at)


def end(record: TaskRecord, ending: str, now: float) -> TaskRecord:
    """Make the task final by a confirmed error answer (``FAILED`` or ``NOT_FOUND``)."""
    if record.final:
        return record
    return replace(record, ended=ending, final_at=record.final_at or now)


@dataclass(frozen=True, slots=True)
class Milestones:
    """What a change made newly true of a task, each reported once in its life (the SLI counters)."""

    started: bool = False  # first answer (or ending): the exporter has seen the push exist
    finished: bool = False  # it became final; ``record.finish_reason`` says how

    def __bool__(self) -> bool:
        return self.started or self.finished


def take_milestones(record: TaskRecord) -> tuple[TaskRecord, Milestones]:
    """Mark the milestones ``record`` has reached and not yet counted; the record keeps the marks,
    so the state file carries them and a restart never counts a task twice."""
    started = not record.counted_start and (record.latest is not None or record.final)
    finished = not record.counted_final and record.final
    if not (started or finished):
        return record, Milestones()
    return (replace(record, counted_start=record.counted_start or started,
                    counted_final=record.counted_final or finished), Milestones(started, finished))


def trtc_code(message: str) -> str:
    """TRTC's error code in a failed push's message (``... TRTC onError, code: -70003, ...``), else ""."""
    match = _TRTC_CODE.search(message)
    return match[1] if match else ""


def push_duration(record: TaskRecord) -> float | None:
    """How long the task has run, as TIW reported it; None when TIW did not say. (Named for pushes, where
    it began; every kind has it from its row's start and end times: a recording's RecordStartTime and
    RecordStopTime, a transcode's AssignTime and FinishedTime.)

    An ended one (STOPPED push, STOPPED or FINISHED recording, FINISHED transcode): end minus start (an
    answer without an end time says nothing, so nothing is made up); a running one (PUSHING, RECORDING,
    PAUSED): up to its last answer. Never negative: a stop before the start is an anomaly, counted where it
    is answered. ``/metrics`` and the status page both show this one figure.
    """
    task = record.latest
    start_field, stop_field = record.spec.times
    start = getattr(task, start_field, 0) if task is not None else 0
    if not start:
        return None
    if task.status in record.spec.reason_statuses:
        stop = getattr(task, stop_field)
        return max(0.0, float(stop - start)) if stop else None
    if task.status in record.spec.steady_statuses and record.last_success is not None:
        return max(0.0, record.last_success - start)
    return None
