"""One simulated task: its script (TaskScript) and its state as a pure function of time.

Decisions where Tencent's documentation leaves room (tests/test_simulator*.py pin them):

* ``IMSyncTime`` equals ``PushStartTime`` once pushing started (as in Tencent's callback example).
* A stopped callback's ``Error.Code`` is the task's ``fail_with`` code, else ``FailedOperation.Record``
  (the code TIW's callback documentation names) for tasks ending ``EXCEPTION``.
* **The running list is liveness, never status.** ``DescribeRunningTasks`` lists a PREPARED task and a
  PUSHING one alike as ``PROCESSING`` (RunningTaskItem: PROCESSING = "任务正在执行中"; the push's PREPARED
  is "entering the room, starting the push service", i.e. already executing). ``QUEUED`` ("任务正在排队
  等待执行中") is only for a task scripted to wait for capacity first (``queued_seconds``). While queued,
  ``DescribeWhiteboardPush`` answers ``PREPARED``: the push Status has no queued value, and PREPARED
  ("preparing", PushStartTime 0) is the only documented state of a push that has not started pushing
  and has not stopped. ``CreateTime`` is formatted ``2023-03-14 15:00:00`` (UTC+8), as in the API's
  example.
* A task scripted with ``fail_with`` fails when its push would end (``queued_seconds`` +
  ``prepare_seconds`` + ``push_seconds``): until then DescribeWhiteboardPush answers PREPARED/PUSHING as
  usual, afterwards the error (a push fails after a while, not at creation). Without ``push_seconds`` it
  **fails at start** (see ``task_state``): it never pushes, so no ``WhiteboardPushStarted``.
* A task that ended (stopped, or failed) leaves the running list, unless its script says
  ``listed_after_end``: then it stays listed ``PROCESSING`` for the list's three days, what real TIW may
  do (undocumented) and what an exporter must survive without counting the task twice.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

PUSH_STATUSES = ("PREPARED", "PUSHING", "STOPPED")  # as DescribeWhiteboardPush documents them
PUSH_FINISH_REASONS = ("AUTO", "USER_CALL", "EXCEPTION")

# Seed example 2: what DescribeWhiteboardPush answers for a push that failed.
SEED_FAILURE_MESSAGE = (
    "code: 40006, msg: 2021-01-13 22:34:42, TRTC onError, code: -70003, msg: The UserSig in use is "
    "illegal. Please regenerate UserSig through official API. "
    "(FYI: https://cloud.tencent.com/document/product/269/32688 )\n"
)
# Stricter than the client's _ERROR_CODE_RE on purpose: a script's fail_with is a code TIW could send,
# the client's rule is what it tolerates reading (digits/underscores, at most four segments).
_CODE_RE = re.compile(r"^[A-Za-z]+(\.[A-Za-z0-9]+)*$")
_UTC8 = timezone(timedelta(hours=8))
STARTED_EVENT = "WhiteboardPushStarted"
STOPPED_EVENT = "WhiteboardPushStopped"
# The only Describe ``Backup`` text the API page documents (the field's example value); a task without a
# backup push answers "" as in the page's example 1. What TIW puts there for a live or failed backup push
# is undocumented, so the simulator never invents a shape: only a script's explicit ``backup`` text does.
DOCUMENTED_DESCRIBE_BACKUP = "{}"


def time_text(moment: float) -> str:
    """A time as DescribeRunningTasks and the warning callbacks write it: ``2023-03-14 15:00:00`` (UTC+8)."""
    return datetime.fromtimestamp(moment, tz=_UTC8).strftime("%Y-%m-%d %H:%M:%S")


def failure_message(code: str) -> str:
    return SEED_FAILURE_MESSAGE if code == "FailedOperation.WhiteboardPush" else f"simulated failure: {code}"


def scripted_failure(fail_with: str | None, failed: bool) -> tuple[str, str] | None:
    """(code, message) a task answers instead of itself once it ``failed`` with its script's ``fail_with``."""
    return (fail_with, failure_message(fail_with)) if failed and fail_with else None


def check_non_negative(name: str, value: Any) -> None:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


S = TypeVar("S")


def script_from_fields(cls: type[S], data: Mapping[str, Any]) -> S:
    """A script dataclass from JSON-ish fields; ValueError naming the fields it does not have."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}")
    return cls(**dict(data))


def check_code(name: str, value: Any) -> None:
    """None, or an API error code a script may fail with (``FailedOperation.Record``)."""
    if value is not None and not (isinstance(value, str) and _CODE_RE.match(value)):
        raise ValueError(f"{name} must be an API error code, got {value!r}")


@dataclass(frozen=True)
class TaskScript:
    """A task's deterministic lifecycle; times are seconds after the task's creation.

    Phases in order: ``queued_seconds`` waiting for capacity (listed QUEUED, described PREPARED), then
    ``prepare_seconds`` preparing (listed PROCESSING, described PREPARED), then ``push_seconds`` pushing
    (None: until stopped). ``fail_with`` makes the push fail with that API error code at its end, or at
    start without ``push_seconds``. ``backup`` is the Describe ``Backup`` text as given (tests of a
    backup parser set it; the default answers as the API page shows). ``listed_after_end`` keeps the
    task on the running list as PROCESSING after it ended (what real TIW may do; undocumented).
    """

    prepare_seconds: float = 2.0
    push_seconds: float | None = None
    finish_reason: str = "AUTO"
    exceptions_per_minute: float = 0.0
    fail_with: str | None = None
    backup: str | None = None
    queued_seconds: float = 0.0
    listed_after_end: bool = False

    def __post_init__(self) -> None:
        check_non_negative("prepare_seconds", self.prepare_seconds)
        check_non_negative("queued_seconds", self.queued_seconds)
        if not isinstance(self.listed_after_end, bool):
            raise ValueError(f"listed_after_end must be true or false, got {self.listed_after_end!r}")
        if self.push_seconds is not None:
            check_non_negative("push_seconds", self.push_seconds)
        check_non_negative("exceptions_per_minute", self.exceptions_per_minute)
        if self.finish_reason not in PUSH_FINISH_REASONS:
            raise ValueError(f"finish_reason must be one of {PUSH_FINISH_REASONS}, got {self.finish_reason!r}")
        check_code("fail_with", self.fail_with)
        if self.backup is not None and not isinstance(self.backup, str):
            raise ValueError("backup must be text (e.g. a JSON object as a string)")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TaskScript:
        """Build from JSON-ish data (ExtraData hook, control endpoint); ValueError on bad fields."""
        return script_from_fields(cls, data)


@dataclass(frozen=True)
class TaskState:
    """What DescribeWhiteboardPush reports for a task at one moment (``queued``: still waiting for capacity)."""

    status: str
    finish_reason: str
    push_start_time: int
    push_stop_time: int
    exception_cnt: int
    im_sync_time: int
    queued: bool = False


def task_state(script: TaskScript, created_at: float, stopped_by_user_at: float | None, now: float) -> TaskState:
    """A task's state as a pure function of time, so answers never depend on request order.

    A push that fails at start (``fail_with`` without ``push_seconds``, like the API page's failure
    example: a TRTC enter-room error) never pushes: it ends ``EXCEPTION`` when it would have started
    pushing, with PushStartTime 0, so it sends no ``WhiteboardPushStarted``; it leaves the running list
    (it is not listed at all, rather than listed FINISHED: the list is of tasks "执行中", and the
    simulator drops every ended task alike); it sends ``WhiteboardPushStopped`` with ``FinishReason``
    EXCEPTION and the error (the Stopped event is documented for pushes that stop "for other reasons",
    with ``Error`` "if the push had an error"); and DescribeWhiteboardPush keeps answering the failure
    (``SimTask.failed``). The real behaviour is undocumented: this is the reading consistent with the
    API page's failure answer and the callbacks' documented meanings.
    """
    prepare_start = created_at + script.queued_seconds
    push_start = prepare_start + script.prepare_seconds
    fails_at_start = script.fail_with is not None and script.push_seconds is None
    end, reason = None, ""
    if fails_at_start:
        end, reason = push_start, "EXCEPTION"
    elif script.push_seconds is not None:
        end, reason = push_start + script.push_seconds, script.finish_reason
    if stopped_by_user_at is not None and (end is None or stopped_by_user_at < end):
        end, reason = stopped_by_user_at, "USER_CALL"
    stopped = end is not None and now >= end
    horizon = min(now, end) if end is not None else now
    started = not fails_at_start and horizon >= push_start
    status = "STOPPED" if stopped else "PUSHING" if started else "PREPARED"
    start_time = int(push_start) if started else 0
    pushed = max(0.0, horizon - push_start) if started else 0.0
    return TaskState(
        status=status,
        finish_reason=reason if stopped else "",
        push_start_time=start_time,
        push_stop_time=int(end) if stopped and end is not None else 0,
        exception_cnt=math.floor(pushed * script.exceptions_per_minute / 60),
        im_sync_time=start_time,
        queued=not stopped and now < prepare_start,
    )


@dataclass
class SimTask:
    """A task the simulator holds; ``*_announced`` track which callbacks the ticker already queued."""

    sdk_app_id: int
    task_id: str
    script: TaskScript
    created_at: float
    room_id: int
    group_id: str
    push_user_id: str
    stopped_by_user_at: float | None = None
    backup_task_id: str = ""  # started with a backup push (Start's Backup parameter)
    started_announced: bool = False
    stopped_announced: bool = False

    def state(self, now: float) -> TaskState:
        return task_state(self.script, self.created_at, self.stopped_by_user_at, now)

    def failed(self, now: float) -> bool:
        """Whether DescribeWhiteboardPush answers the scripted failure: from the push's scripted end on."""
        if self.script.fail_with is None:
            return False
        script = self.script
        fails_at = self.created_at + script.queued_seconds + script.prepare_seconds + (script.push_seconds or 0.0)
        stopped_first = self.stopped_by_user_at is not None and self.stopped_by_user_at < fails_at
        return now >= fails_at and not stopped_first

    def describe(self, now: float) -> dict[str, Any]:
        state = self.state(now)
        return {
            "FinishReason": state.finish_reason,
            "TaskId": self.task_id,
            "Status": state.status,
            "RoomId": self.room_id,
            "GroupId": self.group_id,
            "PushUserId": self.push_user_id,
            "PushStartTime": state.push_start_time,
            "PushStopTime": state.push_stop_time,
            "ExceptionCnt": state.exception_cnt,
            "IMSyncTime": state.im_sync_time,
            "Backup": self.describe_backup(),
        }

    def describe_backup(self) -> str:
        """The script's text if it sets one; else as the API page shows: "{}" with a backup push, "" without."""
        if self.script.backup is not None:
            return self.script.backup
        return DOCUMENTED_DESCRIBE_BACKUP if self.backup_task_id else ""

    def started_event(self, state: TaskState) -> dict[str, Any]:
        return {
            "TaskId": self.task_id,
            "RoomId": self.room_id,
            "PushUserId": self.push_user_id,
            "PushStartTime": state.push_start_time,
        }

    def stopped_event(self, state: TaskState) -> dict[str, Any]:
        data = self.started_event(state) | {
            "GroupId": self.group_id,
            "FinishReason": state.finish_reason,
            "PushStopTime": state.push_stop_time,
            "IMSyncTime": state.im_sync_time,
            "ExceptionCnt": state.exception_cnt,
        }
        failed = self.script.fail_with is not None and state.finish_reason != "USER_CALL"  # not stopped first
        if failed or state.finish_reason == "EXCEPTION":
            code = self.script.fail_with or "FailedOperation.Record"
            data["Error"] = {"Code": code, "Message": failure_message(code)}
        return data

    def listed(self, state: TaskState) -> bool:
        """Whether DescribeRunningTasks lists the task now (the three-day window aside)."""
        return state.status != "STOPPED" or self.script.listed_after_end

    def running_item(self, state: TaskState) -> dict[str, Any]:
        """The task's RunningTaskItem: QUEUED while waiting for capacity, else PROCESSING (liveness only)."""
        cancelled = self.stopped_by_user_at if state.finish_reason == "USER_CALL" else None
        return {
            "SdkAppID": self.sdk_app_id,
            "TaskID": self.task_id,
            "TaskType": "WhiteboardPush",
            "CreateTime": time_text(self.created_at),
            "CancelTime": "" if cancelled is None else time_text(cancelled),
            "Status": "QUEUED" if state.queued else "PROCESSING",
            "Progress": 0,
            "FileURL": "",
            "RoomID": self.room_id,
        }

    def queued_item(self) -> dict[str, Any]:
        """The task as the warning callbacks' ``Tasks`` list names it (1137/90112)."""
        return {
            "TaskID": self.task_id,
            "CreateTime": time_text(self.created_at),
            "CancelTime": "",
            "RoomID": self.room_id,
            "FileURL": "",
            "SdkAppID": self.sdk_app_id,
        }
