"""One simulated real-time recording (OnlineRecord): its script (RecordScript) and its state as a pure
function of time and of the user's Stop / Pause / Resume calls.

Statuses as DescribeOnlineRecord documents them: PREPARED (entering the room), RECORDING, PAUSED
(RECORDING <-> PAUSED go both ways, by script or by Pause/ResumeOnlineRecord), STOPPED (stopped, the
video is still being processed and uploaded: **not final**), FINISHED (final).

Decisions where Tencent's documentation leaves room (tests/test_simulator_kinds.py pins them):

* The recording ends at the earliest of: its scripted end (``record_seconds``, reason
  ``finish_reason``), the user's StopOnlineRecord (USER_CALL), 24 h after recording started or 90 min
  into one pause (FORCE_STOP, the two causes the field's documentation names), or its scripted failure.
  It is STOPPED from then on and FINISHED ``finish_seconds`` later.
* A recording scripted with ``fail_with`` fails at its scripted end (``record_seconds``), or at start
  without it (it never records: no RecordStartTime, no OnlineRecordStarted), with reason EXCEPTION.
  From its end on, DescribeOnlineRecord answers that error (as a failed push does); its callbacks are
  OnlineRecordStopped and then OnlineRecordFinished with ``Error`` {Code, Message} and no videos.
* The result fields (TotalTime, OmittedDurations, VideoInfos) are the processed video's: 0 / [] until
  FINISHED. TotalTime is the recorded time without pauses, in ms; each pause is one OmittedDuration.
* ExceptionCnt grows while RECORDING (``exceptions_per_minute``); ``Interrupts`` is null until the
  recording started, then one ``{UserId, Count}`` per user of ``interrupts_per_minute``, growing the
  same way. Each such user has a camera video (VideoType 0) beside the whiteboard video (VideoType 2).
* ``ReplayUrl`` is null: it only applies to the video-generation mode.
* The running list shows a recording QUEUED while it waits for capacity (``queued_seconds``, described
  PREPARED), else PROCESSING, until it stops; ``listed_until_finished`` keeps it listed while STOPPED.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter.simulator.lifecycle import (
    check_code,
    check_non_negative,
    failure_message,
    script_from_fields,
    scripted_failure,
    time_text,
)

RECORD_STATUSES = ("PREPARED", "RECORDING", "PAUSED", "STOPPED", "FINISHED")
RECORD_FINISH_REASONS = ("AUTO", "USER_CALL", "EXCEPTION", "FORCE_STOP")
RECORD_TASK_TYPE = "OnlineRecord"
STARTED_EVENT = "OnlineRecordStarted"
STOPPED_EVENT = "OnlineRecordStopped"
FINISHED_EVENT = "OnlineRecordFinished"
MAX_RECORDING_SECONDS = 24 * 3600  # FORCE_STOP: "录制总时长超过24小时"
MAX_PAUSE_SECONDS = 90 * 60  # FORCE_STOP: "暂停超过90分钟"
_NEVER = math.inf


@dataclass(frozen=True)
class RecordScript:
    """A recording's deterministic lifecycle; times are seconds (after creation unless said otherwise).

    ``queued_seconds`` waiting for capacity, ``prepare_seconds`` entering the room, then recording for
    ``record_seconds`` of wall time, pauses included (None: until stopped or force-stopped); its end
    has ``finish_reason``. ``pauses`` are ``(after, seconds)``
    pairs, ``after`` seconds into the recording, ``seconds`` None for a pause that never ends by
    itself. ``finish_seconds`` is the STOPPED -> FINISHED processing time. ``fail_with`` is the error
    code the recording fails with at its end (see the module docstring). ``interrupts_per_minute``
    maps a user id to how often its stream breaks off.
    """

    prepare_seconds: float = 2.0
    record_seconds: float | None = None
    finish_reason: str = "AUTO"
    finish_seconds: float = 5.0
    pauses: tuple[tuple[float, float | None], ...] = ()
    exceptions_per_minute: float = 0.0
    interrupts_per_minute: Mapping[str, float] = field(default_factory=dict)
    fail_with: str | None = None
    queued_seconds: float = 0.0
    listed_until_finished: bool = False

    def __post_init__(self) -> None:
        for name in ("prepare_seconds", "finish_seconds", "exceptions_per_minute", "queued_seconds"):
            check_non_negative(name, getattr(self, name))
        if self.record_seconds is not None:
            check_non_negative("record_seconds", self.record_seconds)
        if self.finish_reason not in RECORD_FINISH_REASONS:
            raise ValueError(f"finish_reason must be one of {RECORD_FINISH_REASONS}, got {self.finish_reason!r}")
        check_code("fail_with", self.fail_with)
        if not isinstance(self.listed_until_finished, bool):
            raise ValueError("listed_until_finished must be true or false")
        object.__setattr__(self, "pauses", _checked_pauses(self.pauses))
        if not isinstance(self.interrupts_per_minute, Mapping):
            raise ValueError("interrupts_per_minute must map user ids to rates")
        for user, rate in self.interrupts_per_minute.items():
            if not isinstance(user, str) or not user:
                raise ValueError(f"interrupts_per_minute keys must be user ids, got {user!r}")
            check_non_negative(f"interrupts_per_minute[{user}]", rate)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RecordScript:
        """Build from JSON-ish data (ExtraData hook, control endpoint); ValueError on bad fields."""
        return script_from_fields(cls, data)


def _checked_pauses(pauses: Any) -> tuple[tuple[float, float | None], ...]:
    if isinstance(pauses, (str, bytes)) or not isinstance(pauses, (list, tuple)):
        raise ValueError("pauses must be a list of [after, seconds] pairs")
    checked = []
    for pause in pauses:
        if not isinstance(pause, (list, tuple)) or len(pause) != 2:
            raise ValueError(f"a pause must be [after, seconds], got {pause!r}")
        check_non_negative("a pause's start", pause[0])
        if pause[1] is not None:
            check_non_negative("a pause's length", pause[1])
        checked.append((pause[0], pause[1]))
    return tuple(checked)


@dataclass(frozen=True)
class Controls:
    """The user's calls on a recording: when StopOnlineRecord came, and each Pause / Resume call."""

    stopped_at: float | None = None
    paused_at: tuple[float, ...] = ()
    resumed_at: tuple[float, ...] = ()


@dataclass(frozen=True)
class RecordState:
    """What DescribeOnlineRecord reports at one moment, and what the answers are computed from."""

    status: str
    finish_reason: str
    record_start_time: int
    record_stop_time: int
    recorded_seconds: float  # pauses excluded
    exception_cnt: int
    pauses: tuple[tuple[float, float, float], ...]  # (start, end, recorded seconds before it), clipped
    failed: bool
    queued: bool

    @property
    def ended(self) -> bool:
        return self.status in ("STOPPED", "FINISHED")


def _pause_spans(script: RecordScript, record_start: float, controls: Controls) -> list[tuple[float, float]]:
    """The pauses as absolute (start, end) spans, merged; a user's Resume ends any pause it falls in."""
    spans = [(record_start + after, _NEVER if length is None else record_start + after + length)
             for after, length in script.pauses]
    spans += [(at, min((r for r in controls.resumed_at if r > at), default=_NEVER)) for at in controls.paused_at]
    spans = [(start, min([end, *(r for r in controls.resumed_at if start <= r < end)])) for start, end in spans]
    merged: list[tuple[float, float]] = []
    for start, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _end(script: RecordScript, record_start: float, spans: list[tuple[float, float]],
         controls: Controls) -> tuple[float, str, bool]:
    """(when, FinishReason, failed) of the earliest ending; ``when`` is infinite while none is due."""
    fails = script.fail_with is not None
    if fails and script.record_seconds is None:
        endings = [(record_start, "EXCEPTION", True)]  # fails at start
    else:
        endings = [(record_start + MAX_RECORDING_SECONDS, "FORCE_STOP", False)]
        endings += [(start + MAX_PAUSE_SECONDS, "FORCE_STOP", False) for start, end in spans
                    if end - start > MAX_PAUSE_SECONDS]
    if script.record_seconds is not None:
        endings.append((record_start + script.record_seconds, "EXCEPTION" if fails else script.finish_reason, fails))
    natural = min(endings, key=lambda ending: ending[0])
    if controls.stopped_at is not None and controls.stopped_at < natural[0]:
        return controls.stopped_at, "USER_CALL", False
    return natural


def record_state(script: RecordScript, created_at: float, controls: Controls, now: float) -> RecordState:
    """A recording's state as a pure function of time and the user's calls (see the module docstring)."""
    record_start = created_at + script.queued_seconds + script.prepare_seconds
    spans = _pause_spans(script, record_start, controls)
    end, reason, failed = _end(script, record_start, spans, controls)
    ended = now >= end
    horizon = min(now, end)
    started = not (failed and script.record_seconds is None) and horizon >= record_start
    clipped = [(start, min(stop, end)) for start, stop in spans if start < end]
    pauses, paused_total = [], 0.0
    for start, stop in clipped:
        pauses.append((start, stop, start - record_start - paused_total))
        paused_total += max(0.0, min(stop, horizon) - start) if start < horizon else 0.0
    recorded = max(0.0, horizon - record_start - paused_total) if started else 0.0
    if ended:
        status = "FINISHED" if now >= end + script.finish_seconds else "STOPPED"
    elif not started:
        status = "PREPARED"
    else:
        status = "PAUSED" if any(start <= now < stop for start, stop in clipped) else "RECORDING"
    return RecordState(
        status=status,
        finish_reason=reason if ended else "",
        record_start_time=int(record_start) if started else 0,
        record_stop_time=int(end) if ended else 0,
        recorded_seconds=recorded,
        exception_cnt=math.floor(recorded * script.exceptions_per_minute / 60),
        pauses=tuple(p for p in pauses if p[0] < horizon) if started else (),
        failed=failed and ended,
        queued=not ended and now < created_at + script.queued_seconds,
    )


@dataclass
class SimRecord:
    """A recording the simulator holds; ``announced`` names the callbacks the ticker already queued."""

    sdk_app_id: int
    task_id: str
    script: RecordScript
    created_at: float
    room_id: int
    group_id: str
    record_user_id: str
    controls: Controls = Controls()
    announced: set[str] = field(default_factory=set)

    final_event = FINISHED_EVENT

    def state(self, now: float) -> RecordState:
        return record_state(self.script, self.created_at, self.controls, now)

    def status(self, now: float) -> str:
        return self.state(now).status

    def failure(self, now: float) -> tuple[str, str] | None:
        """(code, message) DescribeOnlineRecord answers instead of the recording, once it failed."""
        return scripted_failure(self.script.fail_with, self.state(now).failed)

    def describe(self, now: float) -> dict[str, Any]:
        state = self.state(now)
        finished = state.status == "FINISHED"
        return self._identity() | {
            "FinishReason": state.finish_reason,
            "Status": state.status,
            "RecordStartTime": state.record_start_time,
            "RecordStopTime": state.record_stop_time,
            "TotalTime": _ms(state.recorded_seconds) if finished else 0,
            "ExceptionCnt": state.exception_cnt,
            "OmittedDurations": self._omitted(state) if finished else [],
            "VideoInfos": self._videos(state) if finished else [],
            "ReplayUrl": None,
            "Interrupts": self._interrupts(state) if state.record_start_time else None,
        }

    def _identity(self) -> dict[str, Any]:
        return {"TaskId": self.task_id, "RoomId": self.room_id, "GroupId": self.group_id,
                "RecordUserId": self.record_user_id}

    @staticmethod
    def _omitted(state: RecordState) -> list[dict[str, int]]:
        return [{"VideoTime": _ms(before), "PauseTime": _ms(start), "ResumeTime": _ms(end)}
                for start, end, before in state.pauses]

    def _interrupts(self, state: RecordState) -> list[dict[str, Any]]:
        return [{"UserId": user, "Count": math.floor(state.recorded_seconds * rate / 60)}
                for user, rate in sorted(self.script.interrupts_per_minute.items())]

    def _videos(self, state: RecordState) -> list[dict[str, Any]]:
        """The whiteboard video and a camera video per user with a stream; none for a failed recording."""
        if state.failed or not state.recorded_seconds:
            return []
        streams = [("", 2, 1280, 720)] + [(user, 0, 640, 480) for user in sorted(self.script.interrupts_per_minute)]
        duration = _ms(state.recorded_seconds)
        return [{"VideoPlayTime": 0, "VideoSize": duration * 50, "VideoFormat": "mp4", "VideoDuration": duration,
                 "VideoUrl": f"https://record.example.com/{self.task_id}/{index}.mp4",
                 "VideoId": _video_id(self.task_id, index), "VideoType": video_type, "UserId": user,
                 "Width": width, "Height": height}
                for index, (user, video_type, width, height) in enumerate(streams)]

    def due_events(self, now: float) -> list[tuple[str, str, dict[str, Any]]]:
        """(announcement key, event type, EventData) of every callback due by now, announced or not."""
        state = self.state(now)
        short = {"TaskId": self.task_id, "RoomId": self.room_id, "RecordUserId": self.record_user_id}
        due = []
        if state.record_start_time:
            due.append((STARTED_EVENT, STARTED_EVENT, short))
        if state.ended:
            due.append((STOPPED_EVENT, STOPPED_EVENT, short))
        if state.status == "FINISHED":
            due.append((FINISHED_EVENT, FINISHED_EVENT, self._finished_event(state)))
        return due

    def _finished_event(self, state: RecordState) -> dict[str, Any]:
        data = self._identity() | {
            "FinishReason": state.finish_reason,
            "RecordStartTime": state.record_start_time,
            "RecordStopTime": state.record_stop_time,
            "TotalTime": _ms(state.recorded_seconds),
            "ExceptionCnt": state.exception_cnt,
            "OmittedDurations": self._omitted(state),
            "VideoInfos": self._videos(state),
        }
        if state.failed and self.script.fail_with:
            data["Error"] = {"Code": self.script.fail_with, "Message": failure_message(self.script.fail_with)}
        return data

    def running_item(self, now: float) -> dict[str, Any] | None:
        """The recording's RunningTaskItem, or None when it is not on the running list."""
        state = self.state(now)
        kept = state.status == "STOPPED" and self.script.listed_until_finished and not state.failed
        if state.ended and not kept:
            return None
        cancelled = self.controls.stopped_at if state.finish_reason == "USER_CALL" else None
        return {"SdkAppID": self.sdk_app_id, "TaskID": self.task_id, "TaskType": RECORD_TASK_TYPE,
                "CreateTime": time_text(self.created_at),
                "CancelTime": "" if cancelled is None else time_text(cancelled),
                "Status": "QUEUED" if state.queued else "PROCESSING", "Progress": 0, "FileURL": "",
                "RoomID": self.room_id}


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _video_id(task_id: str, index: int) -> str:
    """A stable numeric id like VOD's (``5285890792776509100``)."""
    return str(int(hashlib.sha256(f"{task_id}/{index}".encode()).hexdigest()[:15], 16))
