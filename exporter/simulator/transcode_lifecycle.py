"""One simulated document transcode: its script (TranscodeScript) and its state as a pure function of time.

Statuses as DescribeTranscode documents them: QUEUED, PROCESSING, FINISHED (final); Progress 0-100.

Decisions where Tencent's documentation leaves room (tests/test_simulator_kinds.py pins them):

* The task type follows CreateTranscode's documented rule: a ``.ppt``/``.pptx`` file without
  ``IsStaticPPT`` becomes ``TranscodeH5``, every other document ``TranscodeJPG``.
* QUEUED for ``queued_seconds`` (``AssignTime`` null, Progress 0), then PROCESSING for
  ``processing_seconds`` (Progress rising evenly, at most 99), then FINISHED (Progress 100,
  ``FinishedTime``). ``CreateTime`` / ``AssignTime`` / ``FinishedTime`` are Unix seconds, null until
  reached. ``Pages``, ``Title`` and ``Resolution`` are 0 / "" until the task is assigned (the progress
  callback's documentation: empty until the service has parsed the file); ``ResultUrl`` (and a
  requested thumbnail or compressed file) until it finished. ``ResourceListUrl`` and ``Ext`` (beta
  features) are null.
* A transcode scripted with ``fail_with`` fails when it would have finished: until then it answers like
  any other, from then on DescribeTranscode answers that error (as a failed push does), it leaves the
  running list, and ``TranscodeFinished`` carries ``Error`` {Code, Message} and no ``ResultUrl``. Where
  TIW really puts a failure (the error answer, or a FINISHED answer) is undocumented; this is the
  reading of the Go SDK listing the failure codes among DescribeTranscode's errors.
* ``TranscodeProgressChanged`` is sent when the progress enters a new tenth (at most once per tenth,
  with the progress of that moment; a tenth skipped between two ticks is skipped), and
  ``TranscodeFinished`` at the end. The running list shows the task QUEUED, then PROCESSING with its
  Progress and ``FileURL``, with ``RoomID`` 0 (RunningTaskItem: 0 for transcodes).
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from exporter.simulator.lifecycle import (
    check_code,
    check_non_negative,
    failure_message,
    script_from_fields,
    scripted_failure,
    time_text,
)

TRANSCODE_STATUSES = ("QUEUED", "PROCESSING", "FINISHED")
TRANSCODE_TASK_TYPES = ("TranscodeH5", "TranscodeJPG")
PROGRESS_EVENT = "TranscodeProgressChanged"
FINISHED_EVENT = "TranscodeFinished"
RESOLUTION = "1024x768"  # the callback documentation's example
DEFAULT_URL = "https://courseware.example.com/lesson-1.pptx"
_DYNAMIC_EXTENSIONS = (".ppt", ".pptx")
_COMPRESS_TYPES = ("zip", "tar.gz")


@dataclass(frozen=True)
class TranscodeScript:
    """A transcode's deterministic lifecycle: ``queued_seconds`` QUEUED, ``processing_seconds`` PROCESSING,
    ``pages`` pages; ``fail_with`` is the error code it fails with when it would have finished."""

    queued_seconds: float = 1.0
    processing_seconds: float = 10.0
    pages: int = 16
    fail_with: str | None = None

    def __post_init__(self) -> None:
        check_non_negative("queued_seconds", self.queued_seconds)
        check_non_negative("processing_seconds", self.processing_seconds)
        if isinstance(self.pages, bool) or not isinstance(self.pages, int) or self.pages < 1:
            raise ValueError(f"pages must be a positive integer, got {self.pages!r}")
        check_code("fail_with", self.fail_with)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TranscodeScript:
        """Build from JSON-ish data (ExtraData hook, control endpoint); ValueError on bad fields."""
        return script_from_fields(cls, data)


def task_type_of(url: str, static_ppt: bool = False) -> str:
    """``TranscodeH5`` for a PowerPoint file transcoded dynamically, else ``TranscodeJPG``."""
    dynamic = not static_ppt and urlsplit(url).path.lower().endswith(_DYNAMIC_EXTENSIONS)
    return "TranscodeH5" if dynamic else "TranscodeJPG"


@dataclass(frozen=True)
class TranscodeState:
    """What DescribeTranscode reports at one moment (``failed``: answered as the scripted error)."""

    status: str
    progress: int
    assign_time: float | None
    finished_time: float | None
    failed: bool


def transcode_state(script: TranscodeScript, created_at: float, now: float) -> TranscodeState:
    """A transcode's state as a pure function of time, so answers never depend on request order."""
    assign = created_at + script.queued_seconds
    end = assign + script.processing_seconds
    if now >= end:
        return TranscodeState("FINISHED", 100, assign, end, script.fail_with is not None)
    if now < assign:
        return TranscodeState("QUEUED", 0, None, None, False)
    progress = min(99, math.floor(100 * (now - assign) / script.processing_seconds))
    return TranscodeState("PROCESSING", progress, assign, None, False)


@dataclass
class SimTranscode:
    """A transcode the simulator holds; ``announced`` names the callbacks the ticker already queued."""

    sdk_app_id: int
    task_id: str
    script: TranscodeScript
    created_at: float
    url: str = DEFAULT_URL
    static_ppt: bool = False
    thumbnail_resolution: str = ""
    compress_file_type: str = ""
    announced: set[str] = field(default_factory=set)

    final_event = FINISHED_EVENT

    @property
    def task_type(self) -> str:
        return task_type_of(self.url, self.static_ppt)

    def state(self, now: float) -> TranscodeState:
        return transcode_state(self.script, self.created_at, now)

    def status(self, now: float) -> str:
        return self.state(now).status

    def failure(self, now: float) -> tuple[str, str] | None:
        """(code, message) DescribeTranscode answers instead of the task, once it failed."""
        return scripted_failure(self.script.fail_with, self.state(now).failed)

    def _result(self, state: TranscodeState) -> dict[str, Any]:
        """The fields the transcode learns as it goes: parsed once assigned, results once finished."""
        parsed = state.assign_time is not None
        done = state.status == "FINISHED" and not state.failed
        base = f"https://transcode.example.com/{self.task_id}/"
        dynamic = self.task_type == "TranscodeH5"
        return {
            "Resolution": RESOLUTION if parsed else "",
            "Title": posixpath.basename(unquote(urlsplit(self.url).path)) if parsed else "",
            "Pages": self.script.pages if parsed else 0,
            "ResultUrl": (base + "index.html" if dynamic else base) if done else "",
            "ThumbnailUrl": base + "thumbnail/" if done and dynamic and self.thumbnail_resolution else "",
            "ThumbnailResolution": self.thumbnail_resolution,
            "CompressFileUrl": f"{base}{self.task_id}.{self.compress_file_type}"
            if done and self.compress_file_type in _COMPRESS_TYPES else "",
        }

    def describe(self, now: float) -> dict[str, Any]:
        state = self.state(now)
        return self._result(state) | {
            "Progress": state.progress,
            "Status": state.status,
            "TaskId": self.task_id,
            "ResourceListUrl": None,
            "Ext": None,
            "CreateTime": int(self.created_at),
            "AssignTime": None if state.assign_time is None else int(state.assign_time),
            "FinishedTime": None if state.finished_time is None else int(state.finished_time),
        }

    def due_events(self, now: float) -> list[tuple[str, str, dict[str, Any]]]:
        """(announcement key, event type, EventData) of the callbacks due now, announced or not."""
        state = self.state(now)
        result = self._result(state)
        if state.status == "FINISHED":
            data = {"TaskId": self.task_id} | {name: result[name] for name in (
                "Resolution", "Title", "Pages", "ResultUrl", "ThumbnailUrl", "ThumbnailResolution", "CompressFileUrl")}
            if state.failed and self.script.fail_with:
                data["Error"] = {"Code": self.script.fail_with, "Message": failure_message(self.script.fail_with)}
            return [(FINISHED_EVENT, FINISHED_EVENT, data)]
        if state.status == "PROCESSING" and state.progress >= 10:
            data = {"TaskId": self.task_id, "Progress": state.progress} | {
                name: result[name] for name in ("Resolution", "Title", "Pages")}
            return [(f"{PROGRESS_EVENT}/{state.progress // 10}", PROGRESS_EVENT, data)]
        return []

    def running_item(self, now: float) -> dict[str, Any] | None:
        """The task's RunningTaskItem, or None once it finished (or failed)."""
        state = self.state(now)
        if state.status == "FINISHED":
            return None
        return {"SdkAppID": self.sdk_app_id, "TaskID": self.task_id, "TaskType": self.task_type,
                "CreateTime": time_text(self.created_at), "CancelTime": "", "Status": state.status,
                "Progress": state.progress, "FileURL": self.url, "RoomID": 0}
