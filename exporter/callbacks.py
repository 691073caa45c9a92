"""TIW push event callbacks (``POST /callbacks/tiw``): verify, parse, apply to the store.

TIW signs each callback with ``Sign = md5(CallbackKey + str(ExpireTime))``. A callback with a
wrong Sign or a past ExpireTime changes nothing. For ``--callback-key-grace`` after a key file
changes, the previous key still verifies (callbacks TIW signed before the rotation may still be in
flight); such a callback is counted as ``accepted_previous_key``. ``WhiteboardPushStarted`` starts
tracking the task; ``WhiteboardPushStopped`` applies the final state at once, so a stopped push shows on the
next scrape even before the next poll (and a late poll answer cannot undo it: status only moves
forward).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any

from exporter.errors import CollectorAction, disposition
from exporter.lifecycle import FAILED, TaskError, TaskRecord
from exporter.logs import task_fields
from exporter.model import (
    MAX_NESTING,
    FieldError,
    InvalidTaskRef,
    PushTask,
    int_field,
    nesting_depth,
    str_field,
    validate_sdk_app_id,
    validate_task_id,
)
from exporter.store import TaskStore

log = logging.getLogger(__name__)

STARTED = "WhiteboardPushStarted"
STOPPED = "WhiteboardPushStopped"
KNOWN_EVENTS = (STARTED, STOPPED)

KeyGetter = Callable[[], "str | None"]
# the SdkAppId as sent -> (the key to verify its Sign with, the previous key while its grace period runs)
KeyLookup = Callable[[Any], "tuple[str | None, str | None]"]
ACCEPTED, ACCEPTED_PREVIOUS_KEY = "accepted", "accepted_previous_key"


def sign(callback_key: str, expire_time: int) -> str:
    return hashlib.md5((callback_key + str(expire_time)).encode("utf-8")).hexdigest()


class CallbackRejected(Exception):
    """A callback we refuse: ``status`` for the answer, ``outcome`` for the counter."""

    def __init__(self, status: HTTPStatus, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome
        self.message = message


@dataclass(frozen=True)
class CallbackEvent:
    sdk_app_id: int
    event_type: str
    data: dict[str, Any]
    previous_key: bool = False  # signed with the previous key, within its grace period


MAX_TEXT = 256  # callback text comes from the internet: bounded before it reaches a label


def _int(data: dict[str, Any], name: str) -> int:
    """An EventData integer, coerced as API answers are (``model.int_field``)."""
    try:
        return int_field(data, name)
    except FieldError as exc:
        raise CallbackRejected(HTTPStatus.BAD_REQUEST, "bad_request", str(exc)) from None


def _str(data: dict[str, Any], name: str) -> str:
    """An EventData string, coerced as API answers are (``model.str_field``), bounded."""
    try:
        return str_field(data, name)[:MAX_TEXT]
    except FieldError as exc:
        raise CallbackRejected(HTTPStatus.BAD_REQUEST, "bad_request", str(exc)) from None


def verify(body: bytes, key_for: KeyLookup, now: float) -> CallbackEvent:
    """Parse and authenticate a callback body with the key of its SdkAppId; raises ``CallbackRejected``."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise CallbackRejected(HTTPStatus.BAD_REQUEST, "bad_request", "body is not valid JSON") from None
    if not isinstance(document, dict):
        raise CallbackRejected(HTTPStatus.BAD_REQUEST, "bad_request", "body must be a JSON object")
    if nesting_depth(document, MAX_NESTING) > MAX_NESTING:
        raise CallbackRejected(HTTPStatus.BAD_REQUEST, "bad_request", f"body nests deeper than {MAX_NESTING} levels")
    callback_key, previous_key = key_for(document.get("SdkAppId"))
    if not callback_key:
        raise CallbackRejected(HTTPStatus.FORBIDDEN, "disabled", "callbacks are disabled: no callback key configured"
                                                                 " for this SdkAppId")
    expire_time = document.get("ExpireTime")
    presented = document.get("Sign")
    if isinstance(expire_time, bool) or not isinstance(expire_time, int) or not isinstance(presented, str):
        raise CallbackRejected(HTTPStatus.FORBIDDEN, "bad_sign", "Sign and ExpireTime are required")
    signed = presented.lower().encode()
    current = hmac.compare_digest(signed, sign(callback_key, expire_time).encode())
    previous = bool(previous_key) and hmac.compare_digest(signed, sign(str(previous_key), expire_time).encode())
    if not (current or previous):
        raise CallbackRejected(HTTPStatus.FORBIDDEN, "bad_sign", "Sign does not match")
    if expire_time < now:
        raise CallbackRejected(HTTPStatus.FORBIDDEN, "expired", "ExpireTime is in the past")
    try:
        sdk_app_id = validate_sdk_app_id(document.get("SdkAppId"))
    except InvalidTaskRef as exc:
        raise CallbackRejected(HTTPStatus.BAD_REQUEST, "bad_request", str(exc)) from None
    event_type = document.get("EventType")
    data = document.get("EventData")
    if not isinstance(event_type, str) or not isinstance(data, dict):
        raise CallbackRejected(HTTPStatus.BAD_REQUEST, "bad_request", "EventType and EventData are required")
    return CallbackEvent(sdk_app_id, event_type, data, previous_key=not current)


def _started_task(event: CallbackEvent, task_id: str) -> PushTask:
    data = event.data
    return PushTask(event.sdk_app_id, task_id, "PUSHING", room_id=_int(data, "RoomId"),
                    push_user_id=_str(data, "PushUserId"), push_start_time=_int(data, "PushStartTime"))


def _stopped_task(event: CallbackEvent, task_id: str) -> PushTask:
    """The stop event's own fields, validated (raises ``CallbackRejected``)."""
    data = event.data
    return PushTask(
        event.sdk_app_id, task_id, "STOPPED", finish_reason=_str(data, "FinishReason"),
        room_id=_int(data, "RoomId"), group_id=_str(data, "GroupId"), push_user_id=_str(data, "PushUserId"),
        push_start_time=_int(data, "PushStartTime"), push_stop_time=_int(data, "PushStopTime"),
        im_sync_time=_int(data, "IMSyncTime"), exception_cnt=_int(data, "ExceptionCnt"),
    )


def _merged_stop(stopped: PushTask, previous: PushTask | None) -> PushTask:
    """The stop event over what we knew: fields the event leaves empty keep their known values."""
    if previous is None:
        return stopped
    return replace(
        previous, status="STOPPED", finish_reason=stopped.finish_reason or previous.finish_reason,
        room_id=stopped.room_id or previous.room_id, group_id=stopped.group_id or previous.group_id,
        push_user_id=stopped.push_user_id or previous.push_user_id,
        push_start_time=stopped.push_start_time or previous.push_start_time,
        push_stop_time=stopped.push_stop_time or previous.push_stop_time,
        im_sync_time=stopped.im_sync_time or previous.im_sync_time,
        exception_cnt=max(stopped.exception_cnt, previous.exception_cnt),
    )


def _stop_error(event: CallbackEvent, now: float) -> TaskError | None:
    error = event.data.get("Error")
    if not isinstance(error, dict) or not error.get("Code"):
        return None
    return TaskError(_str(error, "Code"), _str(error, "Message"), "", now)


def apply(event: CallbackEvent, store: TaskStore, now: float) -> str:
    """Apply a verified event; returns the counter outcome (``accepted`` or ``unknown_event``)."""
    if event.event_type not in KNOWN_EVENTS:
        log.info("ignoring TIW callback of unknown type %r", event.event_type[:60])
        return "unknown_event"
    try:
        task_id = validate_task_id(event.data.get("TaskId"))
    except InvalidTaskRef as exc:
        raise CallbackRejected(HTTPStatus.BAD_REQUEST, "bad_request", str(exc)) from None
    key = (event.sdk_app_id, task_id)
    # Validate every field before touching the store: a refused callback must change nothing.
    if event.event_type == STARTED:
        started = _started_task(event, task_id)
        store.add(key, "callback")
        store.update(key, lambda r: replace(r, latest=started) if r.latest is None or r.latest.status == "PREPARED"
                     else r)
    else:
        stopped = _stopped_task(event, task_id)
        error = _stop_error(event, now)
        store.add(key, "callback")
        store.update(key, lambda r: _apply_stop(r, stopped, error, now))
    log.info("TIW callback %s for task %s:%s", event.event_type, event.sdk_app_id, task_id,
             extra=task_fields(event.sdk_app_id, task_id))
    return ACCEPTED


def _apply_stop(record: TaskRecord, stopped: PushTask, error: TaskError | None, now: float) -> TaskRecord:
    """The Stopped event's state. Its ``Error`` with the code of a failed push (the one Describe answers,
    ``FailedOperation.WhiteboardPush``) ends the task FAILED, as polling would: one failure, one outcome."""
    updated = replace(record, latest=_merged_stop(stopped, record.latest), stop_error=error,
                      final_at=record.final_at or now)
    if error is not None and not record.ended and disposition(error.code).collector is CollectorAction.TASK_FAILED:
        updated = replace(updated, ended=FAILED, last_error=error)
    return updated


class CallbackEndpoint:
    """The ``POST /callbacks/tiw`` handler logic, independent of the HTTP server."""

    def __init__(self, store: TaskStore, callback_key: KeyGetter,
                 count: Callable[[str, str], None] = lambda event_type, outcome: None,
                 clock: Callable[[], float] = time.time,
                 app_keys: Mapping[int, KeyGetter] | None = None, previous_key: KeyGetter = lambda: None,
                 app_previous_keys: Mapping[int, KeyGetter] | None = None) -> None:
        """``previous_key``/``app_previous_keys``: the previous default/own key while its grace period runs
        (``WatchedSecret.previous``), else None."""
        self.store = store
        self.callback_key = callback_key  # the default: SdkAppIds without a key of their own
        self.app_keys = dict(app_keys or {})
        self.previous_key = previous_key
        self.app_previous_keys = dict(app_previous_keys or {})
        self.count = count
        self.clock = clock

    def handle(self, body: bytes) -> tuple[HTTPStatus, dict[str, Any]]:
        event_type = "unknown"
        try:
            event = verify(body, self.key_for, self.clock())
            event_type = event.event_type if event.event_type in KNOWN_EVENTS else "other"
            outcome = apply(event, self.store, self.clock())
            if outcome == ACCEPTED and event.previous_key:
                outcome = ACCEPTED_PREVIOUS_KEY
        except CallbackRejected as rejected:
            self.count(event_type, rejected.outcome)
            log.warning("TIW callback refused: %s", rejected.message)
            return rejected.status, {"error_code": 1, "error": rejected.message}
        self.count(event_type, outcome)
        return HTTPStatus.OK, {"error_code": 0}

    def key_for(self, sdk_app_id: Any) -> tuple[str | None, str | None]:
        """An SdkAppId with its own key is verified with that key only; any other with the default. Each
        with its previous key too, while that one's grace period runs."""
        try:
            app = validate_sdk_app_id(sdk_app_id)
        except InvalidTaskRef:
            app = None
        own = self.app_keys.get(app) if app is not None else None
        if own is None:
            return self.callback_key(), self.previous_key()
        previous = self.app_previous_keys.get(app) if app is not None else None
        return own(), previous() if previous is not None else None
