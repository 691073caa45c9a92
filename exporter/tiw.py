"""The TIW whiteboard-push actions' wire format: request parameters in, validated model out.

Validation policy for ``DescribeWhiteboardPush`` answers (tested in tests/test_tiw.py); the
coercion of each field is ``model.int_field``/``model.str_field``, shared with callbacks:

* ``Status`` must be a non-empty string. Missing, ``null`` or non-string -> ``BadResponse``
  (without a status nothing useful can be exported). A string outside
  PREPARED/PUSHING/STOPPED is kept verbatim; the task's status (``TaskRecord.status``, from the kind's
  row in ``kinds``) is then ``UNKNOWN`` and it counts so in aggregates.
* Integer fields (RoomId, PushStartTime, PushStopTime, ExceptionCnt, IMSyncTime) and string fields
  (TaskId, FinishReason, GroupId, PushUserId, RequestId): as ``model`` says; a field it refuses
  makes the whole answer a ``BadResponse`` naming the field. An unknown FinishReason is kept verbatim.
* ``Backup`` is free text (the backup task's result as JSON text): ``null`` -> "", an object or
  list is re-serialised to JSON text, other scalars become text; it must be valid Unicode.
* An answer nested deeper than ``model.MAX_NESTING`` is a ``BadResponse`` before any field is read.
* A ``TaskId`` in the answer that differs from the one asked for is kept in ``answered_task_id``;
  the task is always identified by the id we asked for (the seed's example 1 shows such a pair).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from exporter.kind_answers import answer_status, fields_of_answer, parse_record_task, parse_transcode_task
from exporter.kinds import KINDS
from exporter.model import (
    Answer,
    PushTask,
    RunningTask,
    int_field,
    str_field,
    valid_text,
)
from exporter.tencentcloud.client import TencentCloudClient
from exporter.tencentcloud.errors import BadResponse


def _backup_field(response: dict[str, Any]) -> str:
    value = response.get("Backup")
    if value is None:
        return ""
    if isinstance(value, str):
        return valid_text(value, "Backup")
    return valid_text(json.dumps(value, ensure_ascii=False, separators=(",", ":")), "Backup")


def parse_push_task(sdk_app_id: int, task_id: str, response: dict[str, Any]) -> PushTask:
    """Validate a ``Response`` object into a ``PushTask`` (policy in the module docstring)."""
    status = answer_status(response)
    with fields_of_answer():
        return PushTask(
            sdk_app_id=sdk_app_id,
            task_id=task_id,
            status=status,
            finish_reason=str_field(response, "FinishReason"),
            room_id=int_field(response, "RoomId"),
            group_id=str_field(response, "GroupId"),
            push_user_id=str_field(response, "PushUserId"),
            push_start_time=int_field(response, "PushStartTime"),
            push_stop_time=int_field(response, "PushStopTime"),
            exception_cnt=int_field(response, "ExceptionCnt"),
            im_sync_time=int_field(response, "IMSyncTime"),
            backup=_backup_field(response),
            request_id=str_field(response, "RequestId"),
            answered_task_id=str_field(response, "TaskId"),
        )


DESCRIBE_PUSH = KINDS["push"].describe_action
DESCRIBE_RUNNING = "DescribeRunningTasks"
PARSERS: dict[str, Callable[[int, str, dict[str, Any]], Answer]] = {
    "push": parse_push_task, "record": parse_record_task, "transcode": parse_transcode_task}


def describe_task(client: TencentCloudClient, kind: str, sdk_app_id: int, task_id: str) -> Answer:
    """Query one task of ``kind`` with its Describe action. Raises ``CallFailure`` on any failure."""
    parse = PARSERS[kind]
    result = client.call(KINDS[kind].describe_action, {"SdkAppId": sdk_app_id, "TaskId": task_id},
                         parse=lambda response: parse(sdk_app_id, task_id, response))
    return result.value


def describe_whiteboard_push(client: TencentCloudClient, sdk_app_id: int, task_id: str) -> PushTask:
    """Query one push task. Raises ``CallFailure`` (incl. ``ApiError``) on any failure."""
    result = client.call(DESCRIBE_PUSH, {"SdkAppId": sdk_app_id, "TaskId": task_id},
                         parse=lambda response: parse_push_task(sdk_app_id, task_id, response))
    return result.value


def describe_running_tasks(
    client: TencentCloudClient, sdk_app_id: int, offset: int = 0, limit: int = 500,
    task_type: str = "WhiteboardPush",
) -> tuple[list[RunningTask], int]:
    """One page of running tasks of ``task_type`` (a kind's ``running_task_types``) and the total count."""
    result = client.call(
        DESCRIBE_RUNNING,
        {"SdkAppID": sdk_app_id, "TaskType": task_type, "Offset": offset, "Limit": limit},
        parse=lambda response: _running_page(sdk_app_id, response),
    )
    return result.value


def _running_page(sdk_app_id: int, response: dict[str, Any]) -> tuple[list[RunningTask], int]:
    with fields_of_answer():
        total = int_field(response, "Total")
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
