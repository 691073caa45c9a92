"""The TIW whiteboard-push actions and the validated ``PushTask`` model.

Validation policy for ``DescribeWhiteboardPush`` answers (documented here, tested in
tests/test_tiw.py):

* ``Status`` must be a non-empty string. Missing, ``null`` or non-string -> ``BadResponse``
  (without a status nothing useful can be exported). A string outside
  PREPARED/PUSHING/STOPPED is kept verbatim; ``known_status`` is then ``None`` and the
  task counts as ``UNKNOWN`` in aggregates.
* Integer fields (RoomId, PushStartTime, PushStopTime, ExceptionCnt, IMSyncTime): missing or
  ``null`` -> 0 (the API's own "not yet"); integral floats and digit strings are accepted;
  booleans, other strings, fractions and negative values -> ``BadResponse`` naming the field.
* String fields (TaskId, FinishReason, GroupId, PushUserId, RequestId): missing or ``null`` -> "";
  numbers are turned into their decimal text (GroupId is often numeric); anything else ->
  ``BadResponse``. An unknown FinishReason is kept verbatim.
* ``Backup`` is free text (the backup task's result as JSON text): ``null`` -> "", an object or
  list is re-serialised to JSON text, other scalars become text.
* A ``TaskId`` in the answer that differs from the one asked for is kept in ``answered_task_id``;
  the task is always identified by the id we asked for (the seed's example 1 shows such a pair).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from exporter.tencentcloud import BadResponse, TencentCloudClient

STATUSES = ("PREPARED", "PUSHING", "STOPPED")
FINISH_REASONS = ("AUTO", "USER_CALL", "EXCEPTION")
STATUS_RANK = {status: rank for rank, status in enumerate(STATUSES)}

TASK_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # used with fullmatch: "$" would accept a final newline
MAX_SDK_APP_ID = 2**63 - 1
_DECIMAL_RE = re.compile(r"\s*([0-9]{1,19})\s*")  # ASCII digits only: str.isdigit() also takes "²" and "①"


def decimal_int(text: str) -> int | None:
    """The integer a short ASCII decimal text spells, else None."""
    match = _DECIMAL_RE.fullmatch(text)
    return int(match[1]) if match else None


class InvalidTaskRef(ValueError):
    """A task reference (SdkAppId or TaskId) that cannot name a real task."""


def validate_sdk_app_id(value: Any) -> int:
    """SdkAppId: a positive integer (digit strings accepted, as from a CLI or YAML)."""
    if isinstance(value, bool):
        raise InvalidTaskRef(f"sdk_app_id must be a positive integer, got {value!r}")
    if isinstance(value, str):
        value = decimal_int(value)
    if not isinstance(value, int) or not 0 < value <= MAX_SDK_APP_ID:
        raise InvalidTaskRef(f"sdk_app_id must be a positive integer, got {str(value)[:40]!r}")
    return value


def validate_task_id(value: Any) -> str:
    """TaskId: 1-64 characters of [A-Za-z0-9_-]."""
    if not isinstance(value, str) or not TASK_ID_RE.fullmatch(value):
        raise InvalidTaskRef(f"task_id must be 1-64 characters of [A-Za-z0-9_-], got {str(value)[:80]!r}")
    return value


@dataclass(frozen=True, slots=True)
class PushTask:
    """One ``DescribeWhiteboardPush`` answer, validated."""

    sdk_app_id: int
    task_id: str
    status: str
    finish_reason: str = ""
    room_id: int = 0
    group_id: str = ""
    push_user_id: str = ""
    push_start_time: int = 0
    push_stop_time: int = 0
    exception_cnt: int = 0
    im_sync_time: int = 0
    backup: str = ""
    request_id: str = ""
    answered_task_id: str = ""

    @property
    def known_status(self) -> str | None:
        return self.status if self.status in STATUS_RANK else None

    @property
    def stopped(self) -> bool:
        return self.status == "STOPPED"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PushTask:
        """Inverse of ``to_dict`` for the state file; raises ValueError/TypeError on bad data."""
        names = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown PushTask fields {sorted(unknown)}")
        task = cls(**data)
        for name, field_ in cls.__dataclass_fields__.items():
            expected = int if field_.type in ("int", int) else str
            value = getattr(task, name)
            if not isinstance(value, expected) or isinstance(value, bool):
                raise TypeError(f"PushTask.{name} must be {expected.__name__}")
        return task


def _int_field(response: dict[str, Any], name: str) -> int:
    value = response.get(name)
    if value is None:
        return 0
    if isinstance(value, bool):
        raise BadResponse("ClientError.BadResponse", f"{name} is a boolean, expected an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and decimal_int(value) is not None:
        value = decimal_int(value)
    if not isinstance(value, int):
        raise BadResponse("ClientError.BadResponse", f"{name} is {type(value).__name__}, expected an integer")
    if value < 0:
        raise BadResponse("ClientError.BadResponse", f"{name} is negative ({value})")
    return value


def _str_field(response: dict[str, Any], name: str) -> str:
    value = response.get(name)
    if value is None:
        return ""
    if isinstance(value, bool):
        raise BadResponse("ClientError.BadResponse", f"{name} is a boolean, expected a string")
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise BadResponse("ClientError.BadResponse", f"{name} is {type(value).__name__}, expected a string")
    return value


def _backup_field(response: dict[str, Any]) -> str:
    value = response.get("Backup")
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def parse_push_task(sdk_app_id: int, task_id: str, response: dict[str, Any]) -> PushTask:
    """Validate a ``Response`` object into a ``PushTask`` (policy in the module docstring)."""
    status = response.get("Status")
    if not isinstance(status, str) or not status:
        raise BadResponse("ClientError.BadResponse", "Status is missing or not a string")
    return PushTask(
        sdk_app_id=sdk_app_id,
        task_id=task_id,
        status=status,
        finish_reason=_str_field(response, "FinishReason"),
        room_id=_int_field(response, "RoomId"),
        group_id=_str_field(response, "GroupId"),
        push_user_id=_str_field(response, "PushUserId"),
        push_start_time=_int_field(response, "PushStartTime"),
        push_stop_time=_int_field(response, "PushStopTime"),
        exception_cnt=_int_field(response, "ExceptionCnt"),
        im_sync_time=_int_field(response, "IMSyncTime"),
        backup=_backup_field(response),
        request_id=_str_field(response, "RequestId"),
        answered_task_id=_str_field(response, "TaskId"),
    )


def parse_backup(backup: str) -> dict[str, Any] | None:
    """The backup task's result when ``Backup`` is a JSON object with push-task fields.

    Returns None for empty/``null``/``{}`` text; raises ValueError for unparseable text.
    """
    text = backup.strip()
    if not text or text == "null":
        return None
    parsed = json.loads(text)
    if not isinstance(parsed, dict) or not parsed:
        return None
    if "Status" not in parsed and "ExceptionCnt" not in parsed:
        return None
    return parsed


def describe_whiteboard_push(client: TencentCloudClient, sdk_app_id: int, task_id: str) -> PushTask:
    """Query one push task. Raises ``CallFailure`` (incl. ``ApiError``) on any failure."""
    result = client.call("DescribeWhiteboardPush", {"SdkAppId": sdk_app_id, "TaskId": task_id},
                         parse=lambda response: parse_push_task(sdk_app_id, task_id, response))
    return result.value


@dataclass(frozen=True, slots=True)
class RunningTask:
    """An entry of ``DescribeRunningTasks``: enough to start tracking it."""

    sdk_app_id: int
    task_id: str
    status: str


def describe_running_tasks(
    client: TencentCloudClient, sdk_app_id: int, offset: int = 0, limit: int = 500
) -> tuple[list[RunningTask], int]:
    """One page of running WhiteboardPush tasks and the total count."""
    result = client.call(
        "DescribeRunningTasks",
        {"SdkAppID": sdk_app_id, "TaskType": "WhiteboardPush", "Offset": offset, "Limit": limit},
        parse=lambda response: _running_page(sdk_app_id, response),
    )
    return result.value


def _running_page(sdk_app_id: int, response: dict[str, Any]) -> tuple[list[RunningTask], int]:
    total = _int_field(response, "Total")
    tasks_raw = response.get("Tasks") or []
    if not isinstance(tasks_raw, list):
        raise BadResponse("ClientError.BadResponse", "Tasks is not a list")
    tasks = []
    for item in tasks_raw:
        if not isinstance(item, dict) or not isinstance(item.get("TaskID"), str):
            raise BadResponse("ClientError.BadResponse", "Tasks entry lacks a string TaskID")
        status = item.get("Status") if isinstance(item.get("Status"), str) else ""
        tasks.append(RunningTask(sdk_app_id, item["TaskID"], status))
    return tasks, total


def start_whiteboard_push(client: TencentCloudClient, params: dict[str, Any]) -> str:
    """Start a push task (used by the demo and tests); returns its TaskId."""
    result = client.call("StartWhiteboardPush", params)
    task_id = result.response.get("TaskId")
    if not isinstance(task_id, str) or not task_id:
        raise BadResponse("ClientError.BadResponse", "StartWhiteboardPush answered without a TaskId")
    return task_id


def stop_whiteboard_push(client: TencentCloudClient, sdk_app_id: int, task_id: str) -> None:
    client.call("StopWhiteboardPush", {"SdkAppId": sdk_app_id, "TaskId": task_id})
