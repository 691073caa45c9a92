"""TIW task callbacks (``POST /callbacks/tiw``): verify, parse, apply to the store.

Every kind's events come to this one endpoint in one envelope, signed ``Sign = md5(CallbackKey +
str(ExpireTime))`` with the key TIW keeps per SdkAppId **and kind** (``Set<Kind>CallbackKey``): the
event type names the kind (``kinds.KIND_OF_EVENT``) and ``key_for(sdk_app_id, kind)`` its key. An
event type no kind sends (the preflight's probe, one TIW adds later) changes nothing and verifies with
any key of its SdkAppId. A callback with a wrong Sign or a past ExpireTime changes nothing. For
``--callback-key-grace`` after a key file changes, the previous key still verifies (callbacks TIW
signed before the rotation may still be in flight); such a callback is counted as
``accepted_previous_key``. An event of a kind ``--kinds`` does not watch is answered 200, counted as
``unwatched_kind`` and not tracked.

What each event does (status only moves forward and counters never go down, as for answers):

* ``WhiteboardPushStarted`` starts tracking the task; ``WhiteboardPushStopped`` applies the final
  state at once, so a stopped push shows on the next scrape even before the next poll (and a late
  poll answer cannot undo it);
* ``OnlineRecordStarted`` starts tracking a recording (RECORDING unless more is known);
  ``OnlineRecordStopped`` says STOPPED, which is not final (the video is still processed);
  ``OnlineRecordFinished`` is final, its fields read as ``DescribeOnlineRecord``'s are
  (``kind_answers``: one coercion for both);
* ``TranscodeProgressChanged`` tracks a transcode PROCESSING, its progress never lower;
  ``TranscodeFinished`` is final: FINISHED, or FAILED with the code of its ``Error``.

An ``Error`` with the kind's failure code (the one its Describe answers: ``kinds``' ``failure_codes``,
TASK_FAILED in the error table) ends a push or a recording FAILED, as polling would; any ``Error`` of a
``TranscodeFinished`` does (TIW reports a failed transcode as finished, with the error).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any

from exporter.kind_answers import parse_record_task, parse_transcode_task
from exporter.kinds import DEFAULT_KINDS, KIND_OF_EVENT, KINDS, PUSH_KIND, RECORD_KIND, TaskKind
from exporter.lifecycle import FAILED, TaskError, TaskRecord
from exporter.logs import task_fields
from exporter.model import (
    MAX_NESTING,
    PUSH,
    Answer,
    FieldError,
    InvalidTaskRef,
    PushTask,
    int_field,
    nesting_depth,
    str_field,
    task_key,
    validate_sdk_app_id,
    validate_task_id,
)
from exporter.store import RecordChange, TaskStore
from exporter.tencentcloud.errors import BadResponse

log = logging.getLogger(__name__)

STARTED = "WhiteboardPushStarted"
STOPPED = "WhiteboardPushStopped"
assert PUSH_KIND.callback_events == (STARTED, STOPPED)
KNOWN_EVENTS = tuple(KIND_OF_EVENT)  # every kind's events: the counter's event_type values (any other: "other")

KeyGetter = Callable[[], "str | None"]
# (the SdkAppId as sent, the kind) -> (the key to verify its Sign with, the previous key while its grace period runs)
KeyLookup = Callable[[Any, str], "tuple[str | None, str | None]"]
ACCEPTED, ACCEPTED_PREVIOUS_KEY = "accepted", "accepted_previous_key"
UNKNOWN_EVENT, UNWATCHED_KIND = "unknown_event", "unwatched_kind"
EVERY_KIND = ""  # the kind of an SdkAppId's key that signs all its kinds' callbacks (callback_keys: app -> file)


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


def _bad(message: str) -> CallbackRejected:
    return CallbackRejected(HTTPStatus.BAD_REQUEST, "bad_request", message)


def _int(data: dict[str, Any], name: str) -> int:
    """An EventData integer, coerced as API answers are (``model.int_field``)."""
    try:
        return int_field(data, name)
    except FieldError as exc:
        raise _bad(str(exc)) from None


def _str(data: dict[str, Any], name: str) -> str:
    """An EventData string, coerced as API answers are (``model.str_field``), bounded."""
    try:
        return str_field(data, name)[:MAX_TEXT]
    except FieldError as exc:
        raise _bad(str(exc)) from None


def _signing_kinds(document: dict[str, Any]) -> tuple[str, ...]:
    """Whose key signs this body: its event's kind; for an event no kind sends, any kind of the SdkAppId."""
    event_type = document.get("EventType")
    kind = KIND_OF_EVENT.get(event_type) if isinstance(event_type, str) else None
    return (kind,) if kind else tuple(KINDS)


def verify(body: bytes, key_for: KeyLookup, now: float) -> CallbackEvent:
    """Parse and authenticate a callback body with the key of its SdkAppId and kind; raises ``CallbackRejected``."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise _bad("body is not valid JSON") from None
    if not isinstance(document, dict):
        raise _bad("body must be a JSON object")
    if nesting_depth(document, MAX_NESTING) > MAX_NESTING:
        raise _bad(f"body nests deeper than {MAX_NESTING} levels")
    keys = [key_for(document.get("SdkAppId"), kind) for kind in _signing_kinds(document)]
    currents = list(dict.fromkeys(current for current, _ in keys if current))
    previous_keys = list(dict.fromkeys(str(previous) for _, previous in keys if previous))
    if not currents:
        raise CallbackRejected(HTTPStatus.FORBIDDEN, "disabled", "callbacks are disabled: no callback key configured"
                                                                 " for this SdkAppId")
    expire_time = document.get("ExpireTime")
    presented = document.get("Sign")
    if isinstance(expire_time, bool) or not isinstance(expire_time, int) or not isinstance(presented, str):
        raise CallbackRejected(HTTPStatus.FORBIDDEN, "bad_sign", "Sign and ExpireTime are required")
    signed = presented.lower().encode()
    current = any([hmac.compare_digest(signed, sign(key, expire_time).encode()) for key in currents])
    previous = any([hmac.compare_digest(signed, sign(key, expire_time).encode()) for key in previous_keys])
    if not (current or previous):
        raise CallbackRejected(HTTPStatus.FORBIDDEN, "bad_sign", "Sign does not match")
    if expire_time < now:
        raise CallbackRejected(HTTPStatus.FORBIDDEN, "expired", "ExpireTime is in the past")
    try:
        sdk_app_id = validate_sdk_app_id(document.get("SdkAppId"))
    except InvalidTaskRef as exc:
        raise _bad(str(exc)) from None
    event_type = document.get("EventType")
    data = document.get("EventData")
    if not isinstance(event_type, str) or not isinstance(data, dict):
        raise _bad("EventType and EventData are required")
    return CallbackEvent(sdk_app_id, event_type, data, previous_key=not current)


# --- pushes ---------------------------------------------------------------------------------------------------


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


def _event_error(event: CallbackEvent, now: float) -> TaskError | None:
    """The event's ``Error`` {Code, Message}, if it has one with a code."""
    error = event.data.get("Error")
    if not isinstance(error, dict) or not error.get("Code"):
        return None
    return TaskError(_str(error, "Code"), _str(error, "Message"), "", now)


def _task_failed(error: TaskError | None, spec: TaskKind) -> bool:
    """The code of a failed task of this kind, as polling judges it (``TaskKind.failed_by``)."""
    return error is not None and spec.failed_by(error.code)


def _push_started(event: CallbackEvent, task_id: str, now: float) -> RecordChange:
    started = _started_task(event, task_id)
    return lambda r: replace(r, latest=started) if r.latest is None or r.latest.status == "PREPARED" else r


def _push_stopped(event: CallbackEvent, task_id: str, now: float) -> RecordChange:
    stopped, error = _stopped_task(event, task_id), _event_error(event, now)
    return lambda r: _apply_stop(r, stopped, error, now)


def _apply_stop(record: TaskRecord, stopped: PushTask, error: TaskError | None, now: float) -> TaskRecord:
    """The Stopped event's state. Its ``Error`` with the code of a failed push (the one Describe answers,
    ``FailedOperation.WhiteboardPush``) ends the task FAILED, as polling would: one failure, one outcome."""
    updated = replace(record, latest=_merged_stop(stopped, record.latest), stop_error=error,
                      final_at=record.final_at or now)
    if not record.ended and _task_failed(error, PUSH_KIND):
        updated = replace(updated, ended=FAILED, last_error=error)
    return updated


# --- recordings and transcodes: the event's fields read as the kind's Describe answer ------------------------

_NOT_FIELDS = ("sdk_app_id", "task_id", "status", "request_id")  # the key, the status, and the answer's own id
_NEVER_LOWER = ("progress",)  # beside the kind's counters: a transcode's progress


def _answer(event: CallbackEvent, task_id: str, status: str,
            parse: Callable[[int, str, dict[str, Any]], Answer]) -> Answer:
    """EventData as the kind's answer with ``status``, through the parser of its Describe answers (one coercion);
    a field it refuses is a 400. Text is bounded (``MAX_TEXT``)."""
    fields = {name: value for name, value in event.data.items() if name not in ("Status", "RequestId")}
    try:
        answer = parse(event.sdk_app_id, task_id, fields | {"Status": status})
    except BadResponse as exc:
        raise _bad(exc.message) from None
    return replace(answer, **{name: value[:MAX_TEXT] for name, value in answer.to_dict().items()
                              if isinstance(value, str) and name not in _NOT_FIELDS})


def _over(spec: TaskKind, previous: Answer, new: Answer, status: str) -> Answer:
    """``new`` over what we knew, with ``status``: fields it leaves empty keep their known values; counters (and
    progress) keep the highest seen."""
    merged = {name: getattr(new, name) or getattr(previous, name)
              for name in new.__dataclass_fields__ if name not in _NOT_FIELDS}  # type: ignore[attr-defined]
    merged |= {name: max(getattr(new, name), getattr(previous, name))
               for name in (*spec.counters, *_NEVER_LOWER) if name in merged}
    return replace(previous, status=status, **merged)


def _advanced(record: TaskRecord, new: Answer) -> TaskRecord:
    """A not-final event: its status unless as far or further is known (or the task is final), its fields over
    what we knew."""
    previous = record.latest
    if record.final:
        return record
    if previous is None:
        return replace(record, latest=new)
    known = record.spec.rank.get(previous.status)
    status = new.status if known is None or record.spec.rank[new.status] > known else previous.status
    return replace(record, latest=_over(record.spec, previous, new, status))


def _finished(record: TaskRecord, new: Answer, error: TaskError | None, failed: bool, now: float) -> TaskRecord:
    """A final event: its fields over what we knew; ``failed`` with its error ends the task FAILED."""
    latest = new if record.latest is None else _over(record.spec, record.latest, new, new.status)
    updated = replace(record, latest=latest, stop_error=error or record.stop_error, final_at=record.final_at or now)
    if failed and not record.ended:
        updated = replace(updated, ended=FAILED, last_error=error)
    return updated


def _record_event(status: str) -> Callable[[CallbackEvent, str, float], RecordChange]:
    """OnlineRecordStarted (RECORDING) and OnlineRecordStopped (STOPPED, not final)."""
    def change(event: CallbackEvent, task_id: str, now: float) -> RecordChange:
        new = _answer(event, task_id, status, parse_record_task)
        return lambda r: _advanced(r, new)
    return change


def _record_finished(event: CallbackEvent, task_id: str, now: float) -> RecordChange:
    new, error = _answer(event, task_id, "FINISHED", parse_record_task), _event_error(event, now)
    return lambda r: _finished(r, new, error, _task_failed(error, RECORD_KIND), now)


def _transcode_progress(event: CallbackEvent, task_id: str, now: float) -> RecordChange:
    new = _answer(event, task_id, "PROCESSING", parse_transcode_task)
    return lambda r: _advanced(r, new)


def _transcode_finished(event: CallbackEvent, task_id: str, now: float) -> RecordChange:
    """FINISHED at 100 %, or FAILED with its Error's code (a transcode failure code: the failure metrics count it)."""
    new, error = _answer(event, task_id, "FINISHED", parse_transcode_task), _event_error(event, now)
    if error is None:
        new = replace(new, progress=100)
    return lambda r: _finished(r, new, error, error is not None, now)


# Each event's fields validated into the change it makes: a refused callback changes nothing.
CHANGES: Mapping[str, Callable[[CallbackEvent, str, float], RecordChange]] = {
    STARTED: _push_started, STOPPED: _push_stopped,
    "OnlineRecordStarted": _record_event("RECORDING"), "OnlineRecordStopped": _record_event("STOPPED"),
    "OnlineRecordFinished": _record_finished,
    "TranscodeProgressChanged": _transcode_progress, "TranscodeFinished": _transcode_finished,
}
assert set(CHANGES) == set(KIND_OF_EVENT), "every kind's events have a change"


def apply(event: CallbackEvent, store: TaskStore, now: float, watched: Iterable[str] = DEFAULT_KINDS) -> str:
    """Apply a verified event; returns the counter outcome (``accepted``, ``unknown_event``, ``unwatched_kind``)."""
    kind = KIND_OF_EVENT.get(event.event_type)
    if kind is None:
        log.info("ignoring TIW callback of unknown type %r", event.event_type[:60])
        return UNKNOWN_EVENT
    if kind not in watched:
        log.debug("ignoring TIW callback %s: --kinds does not watch %s tasks", event.event_type, kind)
        return UNWATCHED_KIND
    try:
        task_id = validate_task_id(event.data.get("TaskId"))
    except InvalidTaskRef as exc:
        raise _bad(str(exc)) from None
    change = CHANGES[event.event_type](event, task_id, now)  # every field validated before the store is touched
    key = task_key(event.sdk_app_id, task_id, kind)
    store.add(key, "callback")
    store.update(key, change)
    log.info("TIW callback %s for %s %s:%s", event.event_type, KINDS[kind].noun, event.sdk_app_id, task_id,
             extra=task_fields(event.sdk_app_id, task_id))
    return ACCEPTED


class CallbackEndpoint:
    """The ``POST /callbacks/tiw`` handler logic, independent of the HTTP server."""

    def __init__(self, store: TaskStore, callback_key: KeyGetter,
                 count: Callable[[str, str], None] = lambda event_type, outcome: None,
                 clock: Callable[[], float] = time.time,
                 app_keys: Mapping[int | tuple[int, str], KeyGetter] | None = None,
                 previous_key: KeyGetter = lambda: None,
                 app_previous_keys: Mapping[int | tuple[int, str], KeyGetter] | None = None,
                 kinds: Iterable[str] = DEFAULT_KINDS) -> None:
        """``app_keys``: an SdkAppId's own key, for every kind (``app``) or one kind (``(app, kind)``);
        ``previous_key``/``app_previous_keys``: the previous default/own key while its grace period runs
        (``WatchedSecret.previous``), else None. ``kinds``: the kinds whose events are applied (``--kinds``)."""
        self.store = store
        self.callback_key = callback_key  # the default: SdkAppIds (and kinds) without a key of their own
        self.app_keys = _by_slot(app_keys)
        self.previous_key = previous_key
        self.app_previous_keys = _by_slot(app_previous_keys)
        self.count = count
        self.clock = clock
        self.kinds = frozenset(kinds)

    def handle(self, body: bytes) -> tuple[HTTPStatus, dict[str, Any]]:
        event_type = "unknown"
        try:
            event = verify(body, self.key_for, self.clock())
            event_type = event.event_type if event.event_type in KNOWN_EVENTS else "other"
            outcome = apply(event, self.store, self.clock(), self.kinds)
            if outcome == ACCEPTED and event.previous_key:
                outcome = ACCEPTED_PREVIOUS_KEY
        except CallbackRejected as rejected:
            self.count(event_type, rejected.outcome)
            log.warning("TIW callback refused: %s", rejected.message)
            return rejected.status, {"error_code": 1, "error": rejected.message}
        self.count(event_type, outcome)
        return HTTPStatus.OK, {"error_code": 0}

    def key_for(self, sdk_app_id: Any, kind: str = PUSH) -> tuple[str | None, str | None]:
        """The key of ``kind``'s callbacks of an SdkAppId: its own for that kind, else its own for every kind,
        else the default; an own key is the only one that verifies. Each with its previous key too, while that
        one's grace period runs."""
        try:
            app = validate_sdk_app_id(sdk_app_id)
        except InvalidTaskRef:
            app = None
        for slot in ((app, kind), (app, EVERY_KIND)) if app is not None else ():
            own = self.app_keys.get(slot)
            if own is not None:
                previous = self.app_previous_keys.get(slot)
                return own(), previous() if previous is not None else None
        return self.callback_key(), self.previous_key()


def _by_slot(keys: Mapping[int | tuple[int, str], KeyGetter] | None) -> dict[tuple[int, str], KeyGetter]:
    """Keys by (SdkAppId, kind); an SdkAppId alone means every kind (``EVERY_KIND``)."""
    return {(slot, EVERY_KIND) if isinstance(slot, int) else slot: getter for slot, getter in (keys or {}).items()}
