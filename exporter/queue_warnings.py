"""TIW's task warning callbacks: pushes waiting for capacity (``POST /callbacks/tiw/warnings/<token>``).

``SetWarningCallback(SdkAppId, Callback, CallbackKey)`` makes TIW post ``TaskQueuedAmountLimitWarning``
(too many queued tasks) and ``TaskQueuedTimeLimitWarning`` (tasks queued too long) with EventData
``{TaskType, Total, Tasks: [{TaskID, CreateTime, CancelTime, RoomID, FileURL, SdkAppID}]}``.

**How a warning is authenticated.** Tencent's documented example carries no ``SdkAppId``, ``Sign`` or
``ExpireTime``, so the push callbacks' signature cannot be required. The warning URL carries a secret
instead: ``--warning-callback-token-file`` (or ``TIW_EXPORTER_WARNING_CALLBACK_TOKEN``), given to TIW as
``https://<exporter>/callbacks/tiw/warnings/<token>``. That is safe because the URL is known only to TIW
(set by the account owner) and the operator, travels inside TLS, and is compared in constant time; a
wrong or missing token gets 403, and without a configured token the route does not exist. What a
warning can do is bounded too: count warnings per SdkAppId, and start tracking the listed push tasks,
which the exporter then only ever asks ``DescribeWhiteboardPush`` about.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from exporter.model import MAX_NESTING, InvalidTaskRef, nesting_depth, validate_sdk_app_id, validate_task_id
from exporter.store import TaskStore

log = logging.getLogger(__name__)

WARNING_PATH = "/callbacks/tiw/warnings/"
QUEUE_EVENTS = ("TaskQueuedAmountLimitWarning", "TaskQueuedTimeLimitWarning")
PUSH_TASK_TYPE = "WhiteboardPush"
UNKNOWN_APP = 0  # a warning that names no SdkAppId (the documented body has none at the top level)


class WarningEndpoint:
    """The handler logic of the warning route, independent of the HTTP server."""

    def __init__(self, store: TaskStore, token: Callable[[], str | None],
                 count: Callable[[int, str], None] = lambda sdk_app_id, event_type: None) -> None:
        self.store = store
        self.token = token
        self.count = count

    def enabled(self) -> bool:
        return bool(self.token())

    def handle(self, presented: str, body: bytes) -> tuple[HTTPStatus, dict[str, Any]]:
        expected = self.token()
        if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
            log.warning("TIW warning callback refused: wrong or missing token in the URL")
            return HTTPStatus.FORBIDDEN, {"error_code": 1, "error": "wrong or missing token"}
        try:
            event_type, data = _parse(body)
        except ValueError as exc:
            log.warning("TIW warning callback refused: %s", exc)
            return HTTPStatus.BAD_REQUEST, {"error_code": 1, "error": str(exc)}
        if event_type not in QUEUE_EVENTS or data.get("TaskType") != PUSH_TASK_TYPE:
            return HTTPStatus.OK, {"error_code": 0}  # another kind's warning (recording, transcode): not ours
        apps, tasks = _queued_tasks(data)
        for app in apps or {UNKNOWN_APP}:
            self.count(app, event_type)
        for key in tasks:
            self.store.add(key, "callback")
        log.warning("TIW warns %s: %d push task(s) of SdkAppId %s waiting for capacity", event_type, len(tasks),
                    ", ".join(map(str, sorted(apps))) or "?")
        return HTTPStatus.OK, {"error_code": 0}


def _parse(body: bytes) -> tuple[str, dict[str, Any]]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise ValueError("body is not valid JSON") from None
    if not isinstance(document, dict) or nesting_depth(document, MAX_NESTING) > MAX_NESTING:
        raise ValueError(f"body must be a JSON object nested at most {MAX_NESTING} levels")
    event_type, data = document.get("EventType"), document.get("EventData")
    if not isinstance(event_type, str) or not isinstance(data, dict):
        raise ValueError("EventType and EventData are required")
    return event_type[:64], data


def _queued_tasks(data: dict[str, Any]) -> tuple[set[int], list[tuple[int, str]]]:
    """The SdkAppIds and push tasks a warning names; entries that are not valid ids are skipped."""
    apps: set[int] = set()
    tasks: list[tuple[int, str]] = []
    listed = data.get("Tasks")
    for entry in listed if isinstance(listed, list) else ():
        if not isinstance(entry, dict):
            continue
        try:
            app = validate_sdk_app_id(entry.get("SdkAppID", entry.get("SdkAppId")))
        except InvalidTaskRef:
            continue
        apps.add(app)
        try:
            tasks.append((app, validate_task_id(entry.get("TaskID", entry.get("TaskId")))))
        except InvalidTaskRef:
            continue
    return apps, tasks[:500]  # one warning lists a page of tasks at most
