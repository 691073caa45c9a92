"""The answers of the task kinds beside pushes, validated: ``DescribeOnlineRecord`` and ``DescribeTranscode``.

The same policy as ``tiw.parse_push_task`` (its module docstring): ``Status`` must be a non-empty
string (kept verbatim when unknown), every field goes through ``model.int_field`` / ``str_field``, a
refused field makes the whole answer a ``BadResponse`` naming it, and an answer nested deeper than
``model.MAX_NESTING`` is refused first.

Lists are kept as the figures the metrics export, not as lists: a recording's ``OmittedDurations``
become the paused time, ``VideoInfos`` the video count, ``Interrupts`` ([{UserId, Count}], null before
the recording started) the sum of the counts. Per-user interrupts would be a series per student: the
exporter does not keep them (see README, "Task kinds").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from exporter.model import MAX_NESTING, Answer, FieldError, int_field, nesting_depth, str_field, valid_text
from exporter.tencentcloud.errors import BadResponse


@contextmanager
def fields_of_answer() -> Iterator[None]:
    """A field the shared coercion refuses makes the whole answer a ``BadResponse``."""
    try:
        yield
    except FieldError as exc:
        raise BadResponse("ClientError.BadResponse", str(exc)) from None


def answer_status(response: dict[str, Any]) -> str:
    """The answer's ``Status``, after the nesting check every answer gets first."""
    if nesting_depth(response, MAX_NESTING) > MAX_NESTING:
        raise BadResponse("ClientError.BadResponse", f"the answer nests deeper than {MAX_NESTING} levels")
    status = response.get("Status")
    if not isinstance(status, str) or not status:
        raise BadResponse("ClientError.BadResponse", "Status is missing or not a string")
    with fields_of_answer():
        return valid_text(status, "Status")


def _items(response: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """A list field of objects; missing or null -> []."""
    value = response.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise FieldError(f"{name} is not a list of objects")
    return value


def _sum(items: list[dict[str, Any]], figure: Callable[[dict[str, Any]], int], name: str) -> int:
    total = sum(figure(item) for item in items)
    if total > 2**63 - 1:
        raise FieldError(f"{name} adds up to more than an int64")
    return total


@dataclass(frozen=True, slots=True)
class RecordTask(Answer):
    """One ``DescribeOnlineRecord`` answer, validated; times in seconds except ``total_time_ms``."""

    sdk_app_id: int
    task_id: str
    status: str
    finish_reason: str = ""
    room_id: int = 0
    group_id: str = ""
    record_user_id: str = ""
    record_start_time: int = 0
    record_stop_time: int = 0
    total_time_ms: int = 0
    exception_cnt: int = 0  # type: ignore[assignment]
    omitted_ms: int = 0  # OmittedDurations: the paused time, summed
    videos: int = 0  # len(VideoInfos)
    interrupts: int = 0  # Interrupts[].Count, summed over users
    request_id: str = ""


def parse_record_task(sdk_app_id: int, task_id: str, response: dict[str, Any]) -> RecordTask:
    status = answer_status(response)
    with fields_of_answer():
        omitted = _items(response, "OmittedDurations")
        return RecordTask(
            sdk_app_id=sdk_app_id, task_id=task_id, status=status,
            finish_reason=str_field(response, "FinishReason"),
            room_id=int_field(response, "RoomId"),
            group_id=str_field(response, "GroupId"),
            record_user_id=str_field(response, "RecordUserId"),
            record_start_time=int_field(response, "RecordStartTime"),
            record_stop_time=int_field(response, "RecordStopTime"),
            total_time_ms=int_field(response, "TotalTime"),
            exception_cnt=int_field(response, "ExceptionCnt"),
            omitted_ms=_sum(omitted, lambda d: max(0, int_field(d, "ResumeTime") - int_field(d, "PauseTime")),
                            "OmittedDurations"),
            videos=len(_items(response, "VideoInfos")),
            interrupts=_sum(_items(response, "Interrupts"), lambda d: int_field(d, "Count"), "Interrupts"),
            request_id=str_field(response, "RequestId"),
        )


@dataclass(frozen=True, slots=True)
class TranscodeTask(Answer):
    """One ``DescribeTranscode`` answer, validated; times are Unix seconds, 0 where TIW answered null."""

    sdk_app_id: int
    task_id: str
    status: str
    progress: int = 0  # 0-100
    pages: int = 0
    title: str = ""
    resolution: str = ""
    create_time: int = 0
    assign_time: int = 0
    finished_time: int = 0
    request_id: str = ""

    @property
    def finish_reason(self) -> str:
        """TIW gives transcodes no reason: a FINISHED answer is one that finished."""
        return "FINISHED" if self.status == "FINISHED" else ""


def parse_transcode_task(sdk_app_id: int, task_id: str, response: dict[str, Any]) -> TranscodeTask:
    status = answer_status(response)
    with fields_of_answer():
        progress = int_field(response, "Progress")
        if progress > 100:
            raise FieldError(f"Progress is above 100 ({progress})")
        return TranscodeTask(
            sdk_app_id=sdk_app_id, task_id=task_id, status=status, progress=progress,
            pages=int_field(response, "Pages"),
            title=str_field(response, "Title"),
            resolution=str_field(response, "Resolution"),
            create_time=int_field(response, "CreateTime"),
            assign_time=int_field(response, "AssignTime"),
            finished_time=int_field(response, "FinishedTime"),
            request_id=str_field(response, "RequestId"),
        )
