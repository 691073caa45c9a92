"""A simulator of the TIW API 3.0 endpoint: a real HTTP server for the demo, tests and benchmarks.

It answers ``POST /`` like ``tiw.tencentcloudapi.com`` does for ``DescribeWhiteboardPush``,
``StartWhiteboardPush``, ``StopWhiteboardPush`` and ``DescribeRunningTasks``: TC3-HMAC-SHA256
verification (with ``exporter.signing``, the same code the client signs with), the error envelope,
a per-(SecretId, action) rate limit, latency, injected faults, time-driven task lifecycles and signed
``WhiteboardPushStarted`` / ``WhiteboardPushStopped`` callbacks.

Decisions where Tencent's documentation leaves room (tests/test_simulator.py pins them):

* Check order of an API request: body size -> common headers (Action, Version, action known,
  Region, Timestamp) -> authentication -> rate limit -> injected fault -> parameters -> the action.
  So faults never hit unauthenticated requests, and throttled requests never consume a fault.
* A missing or garbled ``Authorization``, or SignedHeaders without ``content-type`` and ``host``:
  ``AuthFailure.InvalidAuthorization``. A credential scope for a service other than ``tiw``:
  ``AuthFailure.SignatureFailure`` (such a signature can never verify).
* A body that is not a JSON object: ``InvalidParameter``; a parameter the action does not define:
  ``UnknownParameter``; a wrong JSON type: ``InvalidParameter.BodyParameterTypeUnmatched``; a value
  out of range (e.g. ``Limit``): ``InvalidParameterValue``; a non-POST request to ``/``:
  ``InvalidRequest``; a body over 1 MiB: ``RequestSizeLimitExceeded``.
* ``X-TC-Region`` must be present; its value is not checked.
* ``StopWhiteboardPush`` on a stopped task: ``UnsupportedOperation.TaskHasAlreadyStopped`` (a TIW code).
* ``DescribeRunningTasks`` reports PREPARED tasks as ``QUEUED`` and PUSHING ones as ``PROCESSING``
  (the statuses of the SDK's ``RunningTaskItem``), ``CreateTime`` as RFC 3339 text in UTC+8 like
  TIW's other task listings; ``TaskType`` ``TranscodeH5``/``TranscodeJPG`` give an empty list.
* ``IMSyncTime`` equals ``PushStartTime`` once pushing started (as in Tencent's callback example).
* A stopped callback's ``Error.Code`` is the task's ``fail_with`` code, else ``FailedOperation.Record``
  (the code TIW's callback documentation names) for tasks ending ``EXCEPTION``.
* Clocks: lifecycles, signature timestamps, ``Date`` headers and callbacks use the injectable
  ``clock``; the rate limiter and delays use ``time.monotonic``, so a frozen fake clock does not
  throttle every request.
* ``stats()["requests"][action]`` counts answers by outcome: ``success``, an API error code, or
  ``fault:<kind>`` for injected faults that are not an API error envelope (``slow``/``trickle``
  count the outcome of the answer they delay); requests without a known action count under
  ``(invalid)``. ``max_requests_in_any_second`` counts accepted requests, so it never exceeds the
  limit; ``max_arrivals_in_any_second`` also counts throttled ones, i.e. what the client sent.
  ``describes_by_task`` counts DescribeWhiteboardPush requests for an existing task that passed
  authentication and the rate limit (faulted ones included: the client did poll).

Test hooks that exist only in the simulator: ``ExtraData`` of StartWhiteboardPush holding JSON text
``{"simulator": {<TaskScript fields>}}`` fixes the new task's script, and the unauthenticated
control endpoints ``GET /_sim/stats``, ``POST /_sim/faults``, ``DELETE /_sim/faults``,
``POST /_sim/tasks`` and ``POST /_sim/credentials`` drive a simulator running in another process.
They are why it binds to 127.0.0.1 by default.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import hmac
import json
import logging
import math
import queue
import random
import re
import signal
import socket
import socketserver
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from exporter.model import FINISH_REASONS, STATUSES
from exporter.tencentcloud import signing

log = logging.getLogger(__name__)

API_VERSION = "2019-09-19"
SERVICE = "tiw"
DEMO_SECRET_ID = "AKIDsimulator"
DEMO_SECRET_KEY = "simulator-secret-key"  # public on purpose: the only key main_simulate prints
DEFAULT_SDK_APP_ID = 1400000001
MAX_BODY_BYTES = 1 << 20
OVERSIZED_BYTES = 2 << 20
TRICKLE_INTERVAL_SECONDS = 0.5
DEFAULT_SLOW_SECONDS = 10.0
RUNNING_TASKS_MAX_AGE_SECONDS = 3 * 86400
CALLBACK_TICK_SECONDS = 0.2
CALLBACK_TTL_SECONDS = 3600
CALLBACK_TIMEOUT = (1.0, 3.0)
JOIN_TIMEOUT_SECONDS = 5.0

DESCRIBE = "DescribeWhiteboardPush"
START = "StartWhiteboardPush"
STOP = "StopWhiteboardPush"
RUNNING = "DescribeRunningTasks"
ACTIONS = (DESCRIBE, START, STOP, RUNNING)
INVALID_ACTION_KEY = "(invalid)"
STARTED_EVENT = "WhiteboardPushStarted"
STOPPED_EVENT = "WhiteboardPushStopped"

# Seed example 2: what DescribeWhiteboardPush answers for a push that failed.
SEED_FAILURE_MESSAGE = (
    "code: 40006, msg: 2021-01-13 22:34:42, TRTC onError, code: -70003, msg: The UserSig in use is "
    "illegal. Please regenerate UserSig through official API. "
    "(FYI: https://cloud.tencent.com/document/product/269/32688 )\n"
)
# fmt: off
FAULT_KINDS = (
    "http500", "http502_empty", "http404", "malformed_json", "truncated_json", "wrong_shape", "wrong_types",
    "internal_error", "request_limit", "slow", "trickle", "drop", "oversized", "signature_expire",
)
# fmt: on
_DELAYING_FAULTS = ("slow", "trickle")
_ERROR_FAULTS = {
    "internal_error": "InternalError",
    "request_limit": "RequestLimitExceeded",
    "signature_expire": "AuthFailure.SignatureExpire",
}
_CODE_RE = re.compile(r"^[A-Za-z]+(\.[A-Za-z0-9]+)*$")
_ID_ALPHABET = string.ascii_lowercase + string.digits
_UTC8 = timezone(timedelta(hours=8))
# fmt: off
_START_PARAMS = frozenset({  # the request fields of the SDK's StartWhiteboardPushRequest
    "SdkAppId", "RoomId", "PushUserId", "PushUserSig", "Whiteboard", "AutoStopTimeout", "AutoManageBackup",
    "Backup", "PrivateMapKey", "VideoFPS", "VideoBitrate", "AutoRecord", "UserDefinedRecordId", "AutoPublish",
    "UserDefinedStreamId", "ExtraData", "TRTCRoomId", "TRTCRoomIdStr", "IMAuthParam", "TRTCAuthParam",
    "TRTCEnterRoomMode", "GroupId",
})
# fmt: on


class SimulatedError(Exception):
    """An API error the simulator answers with ``Response.Error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _missing(name: str) -> SimulatedError:
    return SimulatedError("MissingParameter", f"The request is missing a required parameter `{name}`.")


def _failure_message(code: str) -> str:
    return SEED_FAILURE_MESSAGE if code == "FailedOperation.WhiteboardPush" else f"simulated failure: {code}"


def callback_sign(callback_key: str, expire_time: int) -> str:
    """TIW's callback ``Sign``: hex MD5 of the callback key followed by ``ExpireTime`` in decimal."""
    return hashlib.md5((callback_key + str(expire_time)).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- task lifecycles


class ManualClock:
    """A clock tests move by hand; share one between a Simulator and a client so signatures agree."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def _check_non_negative(name: str, value: Any) -> None:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not is_number or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")


@dataclass(frozen=True)
class TaskScript:
    """A task's deterministic lifecycle; times are seconds after the task's creation."""

    prepare_seconds: float = 2.0
    push_seconds: float | None = None
    finish_reason: str = "AUTO"
    exceptions_per_minute: float = 0.0
    fail_with: str | None = None
    backup: str | None = None

    def __post_init__(self) -> None:
        _check_non_negative("prepare_seconds", self.prepare_seconds)
        if self.push_seconds is not None:
            _check_non_negative("push_seconds", self.push_seconds)
        _check_non_negative("exceptions_per_minute", self.exceptions_per_minute)
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"finish_reason must be one of {FINISH_REASONS}, got {self.finish_reason!r}")
        if self.fail_with is not None and not (
            isinstance(self.fail_with, str) and _CODE_RE.match(self.fail_with)
        ):
            raise ValueError(f"fail_with must be an API error code, got {self.fail_with!r}")
        if self.backup is not None and not isinstance(self.backup, str):
            raise ValueError("backup must be text (e.g. a JSON object as a string)")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TaskScript:
        """Build from JSON-ish data (ExtraData hook, control endpoint); ValueError on bad fields."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown TaskScript fields {unknown}")
        return cls(**dict(data))


@dataclass(frozen=True)
class TaskState:
    """What DescribeWhiteboardPush reports for a task at one moment."""

    status: str
    finish_reason: str
    push_start_time: int
    push_stop_time: int
    exception_cnt: int
    im_sync_time: int


def task_state(
    script: TaskScript, created_at: float, stopped_by_user_at: float | None, now: float
) -> TaskState:
    """A task's state as a pure function of time, so answers never depend on request order."""
    push_start = created_at + script.prepare_seconds
    end, reason = None, ""
    if script.push_seconds is not None:
        end, reason = push_start + script.push_seconds, script.finish_reason
    if stopped_by_user_at is not None and (end is None or stopped_by_user_at < end):
        end, reason = stopped_by_user_at, "USER_CALL"
    stopped = end is not None and now >= end
    horizon = min(now, end) if end is not None else now
    started = horizon >= push_start
    status = "STOPPED" if stopped else "PUSHING" if started else "PREPARED"
    start_time = int(push_start) if started else 0
    pushed = max(0.0, horizon - push_start)
    return TaskState(
        status=status,
        finish_reason=reason if stopped else "",
        push_start_time=start_time,
        push_stop_time=int(end) if stopped and end is not None else 0,
        exception_cnt=math.floor(pushed * script.exceptions_per_minute / 60),
        im_sync_time=start_time,
    )


@dataclass
class _Task:
    sdk_app_id: int
    task_id: str
    script: TaskScript
    created_at: float
    room_id: int
    group_id: str
    push_user_id: str
    stopped_by_user_at: float | None = None
    started_announced: bool = False
    stopped_announced: bool = False

    def state(self, now: float) -> TaskState:
        return task_state(self.script, self.created_at, self.stopped_by_user_at, now)

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
            "Backup": self.script.backup or "",
        }

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
        if self.script.fail_with or state.finish_reason == "EXCEPTION":
            code = self.script.fail_with or "FailedOperation.Record"
            data["Error"] = {"Code": code, "Message": _failure_message(code)}
        return data

    def running_item(self, state: TaskState) -> dict[str, Any]:
        created = datetime.fromtimestamp(self.created_at, tz=_UTC8).isoformat(timespec="seconds")
        return {
            "SdkAppID": self.sdk_app_id,
            "TaskID": self.task_id,
            "TaskType": "WhiteboardPush",
            "CreateTime": created,
            "CancelTime": "",
            "Status": "QUEUED" if state.status == "PREPARED" else "PROCESSING",
            "Progress": 0,
            "FileURL": "",
            "RoomID": self.room_id,
        }


# --------------------------------------------------------------------------- seeded task mixes


def _uniform(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 1)


def _weighted_reason(rng: random.Random) -> str:
    return rng.choices(FINISH_REASONS, weights=(50, 35, 15))[0]


def _backup_text(rng: random.Random) -> str:
    return json.dumps({"Status": "PUSHING", "ExceptionCnt": rng.randint(0, 3), "TaskId": _random_id(rng)})


def _random_id(rng: random.Random) -> str:
    return "".join(rng.choices(_ID_ALPHABET, k=20))


def _random_script(rng: random.Random) -> TaskScript:
    """A script for a task created now (StartWhiteboardPush without the test hook)."""
    roll = rng.random()
    prepare = _uniform(rng, 1.0, 8.0)
    if roll < 0.6:
        return TaskScript(prepare)
    if roll < 0.7:
        return TaskScript(prepare, exceptions_per_minute=_uniform(rng, 0.5, 6.0))
    if roll < 0.9:
        return TaskScript(prepare, _uniform(rng, 300, 3600), _weighted_reason(rng))
    if roll < 0.95:
        return TaskScript(
            prepare, _uniform(rng, 60, 600), "EXCEPTION", exceptions_per_minute=_uniform(rng, 2, 20)
        )
    return TaskScript(prepare, _uniform(rng, 5, 60), "EXCEPTION", fail_with="FailedOperation.WhiteboardPush")


def _populated_task(rng: random.Random) -> tuple[float, TaskScript]:
    """(age in seconds, script) for a task of a fleet observed mid-life."""
    roll = rng.random()
    prepare = _uniform(rng, 1.0, 8.0)
    if roll < 0.15:
        return _uniform(rng, 0, 5), TaskScript(_uniform(rng, 20, 300))
    if roll < 0.65:
        age = _uniform(rng, 60, 4 * 3600)
        push = None if rng.random() < 0.6 else age + _uniform(rng, 600, 7200)
        rate = _uniform(rng, 0.5, 6.0) if rng.random() < 0.2 else 0.0
        return age, TaskScript(prepare, push, _weighted_reason(rng), rate)
    if roll < 0.9:
        age = _uniform(rng, 600, 2 * 86400)
        reason = _weighted_reason(rng)
        rate = _uniform(rng, 1, 20) if reason == "EXCEPTION" else 0.0
        return age, TaskScript(prepare, _uniform(rng, 60, age - prepare - 1), reason, rate)
    if roll < 0.95:
        return _uniform(rng, 0, 600), TaskScript(
            prepare, 30.0, "EXCEPTION", fail_with="FailedOperation.WhiteboardPush"
        )
    return _uniform(rng, 60, 3600), TaskScript(prepare, backup=_backup_text(rng))


def _demo_scripts() -> list[tuple[float, TaskScript]]:
    """The demo mix as (age, script): every state and finish reason shows within two minutes."""
    backup = json.dumps({"Status": "PUSHING", "ExceptionCnt": 1, "TaskId": "demobackuptask000001"})
    return [
        (0, TaskScript(1)),
        (0, TaskScript(3)),
        (0, TaskScript(2, exceptions_per_minute=6)),
        (0, TaskScript(45)),
        (0, TaskScript(2, 40, "AUTO")),
        (0, TaskScript(2, 70, "USER_CALL")),
        (0, TaskScript(5, 55, "EXCEPTION", exceptions_per_minute=12)),
        (0, TaskScript(2, 90, "EXCEPTION", fail_with="FailedOperation.WhiteboardPush")),
        (0, TaskScript(2, backup=backup)),
        (600, TaskScript(3, 300, "AUTO")),
    ]


def _spawned_script(rng: random.Random) -> TaskScript:
    """A short demo-like lifecycle for tasks that keep arriving."""
    reason = _weighted_reason(rng)
    rate = _uniform(rng, 2, 12) if reason == "EXCEPTION" or rng.random() < 0.2 else 0.0
    return TaskScript(_uniform(rng, 1, 10), _uniform(rng, 30, 180), reason, rate)


# --------------------------------------------------------------------------- request parameters


def _param(params: Mapping[str, Any], name: str, kind: type, required: bool = True) -> Any:
    """One parameter, type-checked like the API (JSON integers only, no booleans)."""
    value = params.get(name)
    if value is None:
        if required:
            raise _missing(name)
        return None
    matches = (
        isinstance(value, int) and not isinstance(value, bool) if kind is int else isinstance(value, kind)
    )
    if not matches:
        expected = "Integer" if kind is int else "String"
        raise SimulatedError(
            "InvalidParameter.BodyParameterTypeUnmatched",
            f"The type of parameter `{name}` must be {expected}.",
        )
    return value


def _reject_unknown(params: Mapping[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise SimulatedError("UnknownParameter", f"The parameter `{unknown[0]}` is not recognized.")


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _script_from_extra(extra: str | None) -> TaskScript | None:
    """The test hook: ExtraData as JSON text with a ``simulator`` object of TaskScript fields."""
    if not extra:
        return None
    try:
        data = json.loads(extra)
    except ValueError:
        return None
    if not isinstance(data, dict) or "simulator" not in data:
        return None
    try:
        if not isinstance(data["simulator"], dict):
            raise ValueError("`simulator` must be an object")
        return TaskScript.from_mapping(data["simulator"])
    except (TypeError, ValueError) as exc:
        raise SimulatedError("InvalidParameter.InvalidExtra", f"ExtraData simulator script: {exc}") from None


# --------------------------------------------------------------------------- replies and faults


@dataclass
class _Reply:
    """An HTTP answer and how to deliver it."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    trickle: bool = False
    drop: bool = False


def _envelope(response: Mapping[str, Any]) -> _Reply:
    document = {"Response": {**response, "RequestId": str(uuid.uuid4())}}
    return _Reply(body=json.dumps(document, ensure_ascii=False).encode("utf-8"))


def _error_reply(code: str, message: str) -> _Reply:
    return _envelope({"Error": {"Code": code, "Message": message}})


def _html(status: int, title: str) -> _Reply:
    body = f"<html><head><title>{status} {title}</title></head><body><h1>{status} {title}</h1></body></html>"
    return _Reply(status=status, body=body.encode(), content_type="text/html")


_WRONG_TYPES: dict[str, dict[str, Any]] = {
    DESCRIBE: {"TaskId": "", "Status": 3, "ExceptionCnt": "many", "RoomId": "room", "PushStartTime": [1]},
    START: {"TaskId": 3, "Backup": ""},
    STOP: {"Backup": 3},
    RUNNING: {"Total": "many", "Tasks": "none"},
}


def _sample_describe(params: Mapping[str, Any] | None) -> dict[str, Any]:
    task_id = params.get("TaskId") if params and isinstance(params.get("TaskId"), str) else ""
    return {
        "FinishReason": "",
        "TaskId": task_id,
        "Status": "PUSHING",
        "RoomId": 880528,
        "GroupId": "880528",
        "PushUserId": "tic_push_user_880528_test1",
        "PushStartTime": 1610591726,
        "PushStopTime": 0,
        "ExceptionCnt": 0,
        "IMSyncTime": 1610591726,
        "Backup": "",
    }


def _fault_reply(kind: str, action: str, params: Mapping[str, Any] | None) -> _Reply:
    """The answer of a fault that replaces the normal answer."""
    if kind in _ERROR_FAULTS:
        return _error_reply(_ERROR_FAULTS[kind], f"simulated fault {kind}")
    if kind == "http500":
        return _html(500, "Internal Server Error")
    if kind == "http502_empty":
        return _Reply(status=502, content_type="text/html")
    if kind == "http404":
        return _html(404, "Not Found")
    if kind == "malformed_json":
        return _Reply(body=b'{"Response": {"Status": PUSHING, "RequestId": "x",}}')
    if kind == "truncated_json":
        full = _envelope(_sample_describe(params)).body
        return _Reply(body=full[: len(full) // 2])
    if kind == "wrong_shape":
        return _Reply(body=json.dumps([{"RequestId": str(uuid.uuid4())}]).encode())
    if kind == "wrong_types":
        wrong = dict(_WRONG_TYPES[action])
        if action == DESCRIBE:
            wrong["TaskId"] = _sample_describe(params)["TaskId"]
        return _envelope(wrong)
    if kind == "oversized":
        return _Reply(body=b'{"Response": {"Padding": "' + b"x" * OVERSIZED_BYTES + b'"}}')
    if kind == "drop":
        return _Reply(drop=True)
    raise AssertionError(f"unhandled fault kind {kind}")


@dataclass
class _Fault:
    kind: str
    remaining: int | None
    ratio: float | None
    seconds: float
    action: str | None


def parse_fault_spec(text: str) -> dict[str, Any]:
    """``KIND[:key=value,...]`` -> set_fault kwargs, e.g. ``http500:ratio=0.1,action=DescribeWhiteboardPush``.

    For the ``simulate`` command's fault options; raises ValueError with a readable message.
    """
    kind, _, rest = text.strip().partition(":")
    spec: dict[str, Any] = {"kind": kind}
    converters: dict[str, Callable[[str], Any]] = {
        "count": int,
        "ratio": float,
        "seconds": float,
        "action": str,
    }
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in converters:
            raise ValueError(
                f"fault {text!r}: expected key=value with key in {sorted(converters)}, got {item!r}"
            )
        try:
            spec[key] = converters[key](value)
        except ValueError:
            raise ValueError(f"fault {text!r}: {key} has a bad value {value!r}") from None
    _validate_fault(**spec)
    return spec


def _validate_fault(
    kind: str,
    count: int | None = None,
    ratio: float | None = None,
    seconds: float | None = None,
    action: str | None = None,
) -> None:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"fault count must be a positive integer, got {count!r}")
    if ratio is not None and (
        isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1
    ):
        raise ValueError(f"fault ratio must be between 0 and 1, got {ratio!r}")
    if seconds is not None:
        _check_non_negative("fault seconds", seconds)
    if action is not None and action not in ACTIONS:
        raise ValueError(f"fault action must be one of {ACTIONS}, got {action!r}")


# --------------------------------------------------------------------------- statistics


def _prune(window: collections.deque[float], now: float) -> collections.deque[float]:
    while window and window[0] <= now - 1.0:
        window.popleft()
    return window


def _deque_map() -> dict[Any, collections.deque[float]]:
    return collections.defaultdict(collections.deque)


@dataclass
class _Stats:
    """Counters behind ``Simulator.stats()``; guarded by the simulator's lock."""

    requests: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    accepted: dict[str, collections.deque[float]] = field(default_factory=_deque_map)
    arrivals: dict[str, collections.deque[float]] = field(default_factory=_deque_map)
    max_accepted: collections.Counter[str] = field(default_factory=collections.Counter)
    max_arrivals: collections.Counter[str] = field(default_factory=collections.Counter)
    describes_by_task: collections.Counter[str] = field(default_factory=collections.Counter)
    throttled: int = 0
    callbacks_sent: int = 0
    callbacks_failed: int = 0

    @staticmethod
    def _note(
        windows: dict[str, collections.deque[float]],
        maxima: collections.Counter[str],
        action: str,
        now: float,
    ) -> None:
        window = _prune(windows[action], now)
        window.append(now)
        maxima[action] = max(maxima[action], len(window))

    def arrival(self, action: str, now: float) -> None:
        self._note(self.arrivals, self.max_arrivals, action, now)

    def accepted_request(self, action: str, now: float) -> None:
        self._note(self.accepted, self.max_accepted, action, now)


# --------------------------------------------------------------------------- the simulator


class Simulator:
    """The TIW API simulator; see the module docstring for behaviour and decisions."""

    def __init__(
        self,
        *,
        credentials: Mapping[str, str] | None = None,
        tokens: Mapping[str, str] | None = None,
        sdk_app_ids: Iterable[int] = (DEFAULT_SDK_APP_ID,),
        unregistered_sdk_app_ids: Iterable[int] = (),
        expired_sdk_app_ids: Iterable[int] = (),
        rate_limit: float = 20.0,
        latency: float = 0.0,
        seed: int = 0,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        callback_url: str | None = None,
        callback_key: str | None = None,
        clock: Callable[[], float] = time.time,
        max_skew: int = 300,
    ) -> None:
        _check_non_negative("latency", latency)
        if bool(callback_url) != bool(callback_key):
            raise ValueError("callback_url and callback_key must be given together")
        self._credentials = dict({DEMO_SECRET_ID: DEMO_SECRET_KEY} if credentials is None else credentials)
        self._tokens = dict(tokens or {})
        self._sdk_app_ids = frozenset(sdk_app_ids)
        self._unregistered = frozenset(unregistered_sdk_app_ids)
        self._expired = frozenset(expired_sdk_app_ids)
        self.rate_limit = float(rate_limit)
        self.latency = float(latency)
        self._callback_url = callback_url
        self._callback_key = callback_key
        self._clock = clock
        self._max_skew = max_skew
        self._rng = random.Random(seed)
        self._fault_rng = random.Random(f"tiw-simulator-faults:{seed}")
        self._lock = threading.Lock()
        self._tasks: dict[tuple[int, str], _Task] = {}
        self._by_id: dict[str, _Task] = {}  # task ids are unique across SdkAppIds, as TIW's are
        self._unannounced: dict[tuple[int, str], _Task] = {}
        self._faults: list[_Fault] = []
        self._windows: dict[tuple[str, str], collections.deque[float]] = _deque_map()
        self._stats = _Stats()
        self._closing = threading.Event()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._outbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._spawn_seconds: float | None = None
        self._server = _Server(listen, self)
        self.url = _url_for(self._server.server_address)

    # ----------------------------------------------------------------- lifecycle of the server

    def start(self) -> Simulator:
        """Serve in background threads; returns self (idempotent)."""
        if self._closed:
            raise RuntimeError("the simulator is closed")
        if self._threads:
            return self
        self._spawn_thread("tiw-sim-http", lambda: self._server.serve_forever(poll_interval=0.05))
        if self._callback_url:
            self._spawn_thread("tiw-sim-ticker", self._run_ticker)
            self._spawn_thread("tiw-sim-callbacks", self._run_sender)
        return self

    def configure_callbacks(self, url: str, key: str) -> None:
        """Send signed callbacks to ``url`` from now on (e.g. once the receiver's port is known)."""
        if not url or not key:
            raise ValueError("callback url and key must both be non-empty")
        with self._lock:
            already = bool(self._callback_url)
            self._callback_url, self._callback_key = url, key
        if self._threads and not already:
            self._spawn_thread("tiw-sim-ticker", self._run_ticker)
            self._spawn_thread("tiw-sim-callbacks", self._run_sender)

    def close(self) -> None:
        """Stop serving, abort pending delays, close connections and the socket, join threads."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._outbox.put(None)
        if any(t.name == "tiw-sim-http" for t in self._threads):
            self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT_SECONDS)
        self._server.join_handlers(JOIN_TIMEOUT_SECONDS)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _spawn_thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _pause(self, seconds: float) -> bool:
        """Sleep unless closing; False when the simulator is closing."""
        if seconds > 0:
            return not self._closing.wait(seconds)
        return not self._closing.is_set()

    # ----------------------------------------------------------------- tasks

    def add_task(
        self,
        sdk_app_id: int,
        script: TaskScript = TaskScript(),
        task_id: str | None = None,
        *,
        created_at: float | None = None,
    ) -> str:
        """Create a task (ids drawn from the seeded RNG when not given); ``created_at`` backdates it."""
        if sdk_app_id not in self._known_app_ids:
            raise ValueError(f"SdkAppId {sdk_app_id} is not one of the simulator's SdkAppIds")
        now = self._clock()
        with self._lock:
            if task_id is None:
                task_id = self._fresh_id()
            elif not re.match(r"^[A-Za-z0-9_-]{1,64}$", task_id) or task_id in self._by_id:
                raise ValueError(f"task id {task_id!r} is malformed or already exists")
            room_id = self._rng.randint(10000, 999999)
            user = f"tic_push_user_{room_id}_{''.join(self._rng.choices(_ID_ALPHABET, k=5))}"
            created = now if created_at is None else created_at
            task = _Task(sdk_app_id, task_id, script, created, room_id, str(room_id), user)
            if created < now:
                self._mark_history_announced(task, now)
            self._store(task)
        return task_id

    def _fresh_id(self) -> str:
        while True:
            candidate = _random_id(self._rng)
            if candidate not in self._by_id:
                return candidate

    def _store(self, task: _Task) -> None:
        key = (task.sdk_app_id, task.task_id)
        self._tasks[key] = task
        self._by_id[task.task_id] = task
        if not task.stopped_announced:
            self._unannounced[key] = task

    @staticmethod
    def _mark_history_announced(task: _Task, now: float) -> None:
        """A backdated task's past transitions happened before we existed: no callbacks for them."""
        state = task.state(now)
        task.started_announced = state.push_start_time > 0
        task.stopped_announced = state.status == "STOPPED"

    def populate(self, count: int, sdk_app_id: int = DEFAULT_SDK_APP_ID) -> list[str]:
        """``count`` tasks of a fleet seen mid-life: preparing, pushing, stopped, failing, with backups."""
        now = self._clock()
        ids = []
        for _ in range(count):
            with self._lock:
                age, script = _populated_task(self._rng)
            ids.append(self.add_task(sdk_app_id, script, created_at=now - age))
        return ids

    def populate_demo(self) -> list[str]:
        """The demo mix (see ``_demo_scripts``) under the first SdkAppId; returns the task ids."""
        app = min(self._sdk_app_ids) if self._sdk_app_ids else DEFAULT_SDK_APP_ID
        now = self._clock()
        return [self.add_task(app, script, created_at=now - age) for age, script in _demo_scripts()]

    def spawn_every(self, seconds: float) -> None:
        """Keep creating short demo-like tasks every ``seconds`` (seeded) until close()."""
        if not seconds > 0 or not self._sdk_app_ids:
            raise ValueError("spawn_every needs a positive number of seconds and an SdkAppId")
        with self._lock:
            running = self._spawn_seconds is not None
            self._spawn_seconds = seconds
        if not running:
            self._spawn_thread("tiw-sim-spawner", self._run_spawner)

    def _run_spawner(self) -> None:
        while self._spawn_seconds and self._pause(self._spawn_seconds):
            with self._lock:
                script = _spawned_script(self._rng)
            self.add_task(min(self._sdk_app_ids), script)

    def script(self, task_id: str) -> TaskScript:
        """The script of a task (for tests and the demo); KeyError when unknown."""
        with self._lock:
            return self._by_id[task_id].script

    # ----------------------------------------------------------------- faults and credentials

    def set_fault(
        self,
        kind: str,
        count: int | None = None,
        ratio: float | None = None,
        seconds: float | None = None,
        action: str | None = None,
    ) -> None:
        """Inject a fault for the next ``count`` requests, a ``ratio`` of them, or until cleared.

        A fault replaces any earlier fault of the same kind and action.
        """
        _validate_fault(kind, count, ratio, seconds, action)
        fault = _Fault(kind, count, ratio, DEFAULT_SLOW_SECONDS if seconds is None else seconds, action)
        with self._lock:
            self._faults = [f for f in self._faults if (f.kind, f.action) != (kind, action)] + [fault]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = []

    def _take_fault(self, action: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.action not in (None, action):
                    continue
                if fault.ratio is not None and self._fault_rng.random() >= fault.ratio:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def revoke(self, secret_id: str) -> None:
        """Forget a SecretId: its requests now get AuthFailure.SecretIdNotFound."""
        with self._lock:
            self._credentials.pop(secret_id, None)

    def set_credential(self, secret_id: str, secret_key: str) -> None:
        """Add or rotate a key pair."""
        if not secret_id or not secret_key:
            raise ValueError("secret_id and secret_key must be non-empty")
        with self._lock:
            self._credentials[secret_id] = secret_key

    # ----------------------------------------------------------------- statistics

    def stats(self) -> dict[str, Any]:
        """Counters for tests and benchmarks (a snapshot; see the module docstring for keys)."""
        now = self._clock()
        with self._lock:
            statuses = collections.Counter(task.state(now).status for task in self._tasks.values())
            stats = self._stats
            return {
                "requests": {action: dict(counts) for action, counts in stats.requests.items()},
                "max_requests_in_any_second": dict(stats.max_accepted),
                "max_arrivals_in_any_second": dict(stats.max_arrivals),
                "throttled": stats.throttled,
                "tasks": {status: statuses.get(status, 0) for status in STATUSES},
                "callbacks_sent": stats.callbacks_sent,
                "callbacks_failed": stats.callbacks_failed,
                "describes_by_task": dict(stats.describes_by_task),
            }

    # ----------------------------------------------------------------- the API

    def _api_answer(
        self,
        method: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        problem: SimulatedError | None = None,
    ) -> _Reply:
        """Answer one API request; ``headers`` keys are lower-case; ``problem`` is a body-read error."""
        action = headers.get("x-tc-action", "")
        stat_key = action if action in ACTIONS else INVALID_ACTION_KEY
        reply, outcome = self._classify(method, query, headers, body, problem)
        with self._lock:
            self._stats.requests[stat_key][outcome] += 1
        return reply

    def _classify(
        self, method: str, query: str, headers: Mapping[str, str], body: bytes, problem: SimulatedError | None
    ) -> tuple[_Reply, str]:
        try:
            if problem:
                raise problem
            if method != "POST":
                raise SimulatedError("InvalidRequest", "The simulator accepts only POST with a JSON body.")
            action, timestamp = self._check_common(headers)
            secret_id = self._authenticate(headers, query, body, timestamp)
            self._admit(secret_id, action)
        except SimulatedError as err:
            return _error_reply(err.code, err.message), err.code
        params = _json_object(body)
        self._note_describe(action, params)
        fault = self._take_fault(action)
        if fault and fault.kind not in _DELAYING_FAULTS:
            outcome = _ERROR_FAULTS.get(fault.kind, f"fault:{fault.kind}")
            return _fault_reply(fault.kind, action, params), outcome
        reply, outcome = self._dispatch(action, params)
        if fault:
            reply.delay = fault.seconds if fault.kind == "slow" else 0.0
            reply.trickle = fault.kind == "trickle"
        return reply, outcome

    def _check_common(self, headers: Mapping[str, str]) -> tuple[str, int]:
        action = headers.get("x-tc-action", "").strip()
        version = headers.get("x-tc-version", "").strip()
        if not action:
            raise _missing("Action")
        if not version:
            raise _missing("Version")
        if version != API_VERSION:
            raise SimulatedError("NoSuchVersion", f"The API version `{version[:40]}` does not exist.")
        if action not in ACTIONS:
            raise SimulatedError("InvalidAction", f"The action `{action[:60]}` is not found.")
        if not headers.get("x-tc-region", "").strip():
            raise _missing("Region")
        stamp = headers.get("x-tc-timestamp", "").strip()
        if not stamp:
            raise _missing("Timestamp")
        if not stamp.isdigit() or len(stamp) > 12:
            raise SimulatedError("InvalidParameterValue", "X-TC-Timestamp must be a Unix time in seconds.")
        return action, int(stamp)

    def _authenticate(self, headers: Mapping[str, str], query: str, body: bytes, timestamp: int) -> str:
        """Verify TC3-HMAC-SHA256 from the received headers and raw body; returns the SecretId."""
        parsed = signing.parse_authorization(headers.get("authorization", ""))
        if parsed is None:
            raise SimulatedError(
                "AuthFailure.InvalidAuthorization", "The Authorization header is missing or malformed."
            )
        if not {"content-type", "host"} <= set(parsed.signed_headers):
            raise SimulatedError(
                "AuthFailure.InvalidAuthorization", "SignedHeaders must include content-type and host."
            )
        if parsed.service != SERVICE:
            raise SimulatedError(
                "AuthFailure.SignatureFailure", f"The credential scope must name service `{SERVICE}`."
            )
        with self._lock:
            secret_key = self._credentials.get(parsed.secret_id)
            token = self._tokens.get(parsed.secret_id)
        if secret_key is None:
            raise SimulatedError(
                "AuthFailure.SecretIdNotFound", "The SecretId is not found, or has been disabled."
            )
        if abs(timestamp - self._clock()) > self._max_skew:
            raise SimulatedError(
                "AuthFailure.SignatureExpire",
                f"Signature expired: the timestamp is more than {self._max_skew}s off the server time.",
            )
        signed = {name: headers.get(name, "") for name in parsed.signed_headers}
        canonical = signing.canonical_request("POST", "/", query, signed, parsed.signed_headers, body)
        expected = signing.signature(secret_key, timestamp, SERVICE, canonical)
        if not hmac.compare_digest(expected, parsed.signature):
            raise SimulatedError(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated. Please check your signature is correct.",
            )
        if token is not None and not hmac.compare_digest(
            headers.get("x-tc-token", "").encode(), token.encode()
        ):
            raise SimulatedError("AuthFailure.TokenFailure", "The token is missing, invalid or expired.")
        return parsed.secret_id

    def _admit(self, secret_id: str, action: str) -> None:
        """The strict sliding one-second window per (SecretId, action); throttled requests don't count."""
        now = time.monotonic()
        with self._lock:
            self._stats.arrival(action, now)
            window = _prune(self._windows[(secret_id, action)], now)
            if self.rate_limit > 0 and len(window) >= self.rate_limit:
                self._stats.throttled += 1
                raise SimulatedError(
                    "RequestLimitExceeded",
                    f"Request rate over the limit of {self.rate_limit:g} per second for {action}.",
                )
            window.append(now)
            self._stats.accepted_request(action, now)

    def _note_describe(self, action: str, params: Mapping[str, Any] | None) -> None:
        if action != DESCRIBE or not params or not isinstance(params.get("TaskId"), str):
            return
        with self._lock:
            if params["TaskId"] in self._by_id:
                self._stats.describes_by_task[params["TaskId"]] += 1

    def _dispatch(self, action: str, params: dict[str, Any] | None) -> tuple[_Reply, str]:
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            DESCRIBE: self._describe,
            START: self._start,
            STOP: self._stop,
            RUNNING: self._running,
        }
        try:
            if params is None:
                raise SimulatedError("InvalidParameter", "The request body must be a JSON object.")
            return _envelope(handlers[action](params)), "success"
        except SimulatedError as err:
            return _error_reply(err.code, err.message), err.code

    @property
    def _known_app_ids(self) -> frozenset[int]:
        return self._sdk_app_ids | self._unregistered | self._expired

    def _check_app(self, sdk_app_id: int) -> None:
        if sdk_app_id in self._expired:
            raise SimulatedError(
                "ResourceUnavailable.ServiceExpired",
                "The account is in arrears or the whiteboard service has expired.",
            )
        if sdk_app_id in self._unregistered:
            raise SimulatedError(
                "ResourceUnavailable.NotRegistered", "Interactive Whiteboard is not activated."
            )
        if sdk_app_id not in self._sdk_app_ids:
            raise SimulatedError(
                "UnauthorizedOperation.SdkAppId",
                f"SdkAppId {sdk_app_id} does not exist or does not belong to this account.",
            )

    def _find(self, sdk_app_id: int, task_id: str) -> _Task:
        with self._lock:
            task = self._tasks.get((sdk_app_id, task_id))
        if task is None:
            raise SimulatedError("InvalidParameter.TaskNotFound", f"Task `{task_id[:64]}` does not exist.")
        return task

    def _describe(self, params: dict[str, Any]) -> dict[str, Any]:
        _reject_unknown(params, ("SdkAppId", "TaskId"))
        sdk_app_id, task_id = _param(params, "SdkAppId", int), _param(params, "TaskId", str)
        self._check_app(sdk_app_id)
        task = self._find(sdk_app_id, task_id)
        if task.script.fail_with:
            raise SimulatedError(task.script.fail_with, _failure_message(task.script.fail_with))
        return task.describe(self._clock())

    def _start(self, params: dict[str, Any]) -> dict[str, Any]:
        _reject_unknown(params, _START_PARAMS)
        sdk_app_id, room_id = _param(params, "SdkAppId", int), _param(params, "RoomId", int)
        push_user_id = _param(params, "PushUserId", str)
        _param(params, "PushUserSig", str)
        group_id = _param(params, "GroupId", str, required=False)
        script = _script_from_extra(_param(params, "ExtraData", str, required=False))
        self._check_app(sdk_app_id)
        now = self._clock()
        with self._lock:
            if script is None:
                script = _random_script(self._rng)
            task = _Task(
                sdk_app_id, self._fresh_id(), script, now, room_id, group_id or str(room_id), push_user_id
            )
            self._store(task)
        return {"TaskId": task.task_id, "Backup": ""}

    def _stop(self, params: dict[str, Any]) -> dict[str, Any]:
        _reject_unknown(params, ("SdkAppId", "TaskId"))
        sdk_app_id, task_id = _param(params, "SdkAppId", int), _param(params, "TaskId", str)
        self._check_app(sdk_app_id)
        task = self._find(sdk_app_id, task_id)
        now = self._clock()
        with self._lock:
            if task.state(now).status == "STOPPED":
                raise SimulatedError(
                    "UnsupportedOperation.TaskHasAlreadyStopped", f"Task `{task_id}` has already stopped."
                )
            task.stopped_by_user_at = now
        return {"Backup": ""}

    def _running(self, params: dict[str, Any]) -> dict[str, Any]:
        _reject_unknown(params, ("SdkAppID", "TaskType", "Offset", "Limit"))
        sdk_app_id, task_type = _param(params, "SdkAppID", int), _param(params, "TaskType", str)
        offset = _param(params, "Offset", int, required=False) or 0
        limit = _param(params, "Limit", int, required=False)
        limit = 100 if limit is None else limit
        if task_type not in ("WhiteboardPush", "TranscodeH5", "TranscodeJPG"):
            raise SimulatedError("InvalidParameterValue", f"TaskType `{task_type[:40]}` is not supported.")
        if offset < 0 or not 1 <= limit <= 500:
            raise SimulatedError("InvalidParameterValue", "Offset must be >= 0 and Limit between 1 and 500.")
        self._check_app(sdk_app_id)
        now = self._clock()
        with self._lock:
            candidates = sorted(
                (t for t in self._tasks.values() if t.sdk_app_id == sdk_app_id),
                key=lambda t: (t.created_at, t.task_id),
            )
            recent = [
                (task, task.state(now))
                for task in candidates
                if now - task.created_at <= RUNNING_TASKS_MAX_AGE_SECONDS
            ]
            running = [(task, state) for task, state in recent if state.status != "STOPPED"]
        if task_type != "WhiteboardPush":
            running = []
        page = running[offset : offset + limit]
        return {"Total": len(running), "Tasks": [task.running_item(state) for task, state in page]}

    # ----------------------------------------------------------------- control endpoints (test hooks)

    def _control_answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """The ``/_sim/`` test hooks: (HTTP status, JSON answer)."""
        plain: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
            ("GET", "/_sim/stats"): self.stats,
            ("DELETE", "/_sim/faults"): self._control_clear_faults,
        }
        posts: dict[str, Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]] = {
            "/_sim/faults": self._control_fault,
            "/_sim/tasks": self._control_task,
            "/_sim/credentials": self._control_credentials,
        }
        if (method, path) in plain:
            return 200, plain[(method, path)]()
        if method != "POST" or path not in posts:
            if path in posts or any(path == known_path for _, known_path in plain):
                return 405, {"error": f"{method} is not allowed on {path}"}
            return 404, {"error": "no such endpoint"}
        data = _json_object(body)
        if data is None:
            return 400, {"error": "the body must be a JSON object"}
        try:
            return posts[path](data)
        except (TypeError, ValueError) as exc:
            return 400, {"error": str(exc)}

    def _control_clear_faults(self) -> dict[str, Any]:
        self.clear_faults()
        return {"ok": True}

    def _control_fault(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.set_fault(**data)
        return 200, {"ok": True}

    def _control_task(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        data = dict(data)
        sdk_app_id = data.pop("sdk_app_id", None)
        task_id = data.pop("task_id", None)
        if isinstance(sdk_app_id, bool) or not isinstance(sdk_app_id, int):
            raise ValueError("sdk_app_id must be an integer")
        if task_id is not None and not isinstance(task_id, str):
            raise ValueError("task_id must be a string")
        return 201, {"task_id": self.add_task(sdk_app_id, TaskScript.from_mapping(data), task_id)}

    def _control_credentials(self, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        secret_id = data.get("secret_id")
        if not isinstance(secret_id, str) or not secret_id:
            raise ValueError("secret_id must be a non-empty string")
        if data.get("revoke") is True:
            self.revoke(secret_id)
        elif isinstance(data.get("secret_key"), str):
            self.set_credential(secret_id, data["secret_key"])
        else:
            raise ValueError("give secret_key, or revoke: true")
        return 200, {"ok": True}

    # ----------------------------------------------------------------- callbacks

    def _run_ticker(self) -> None:
        while self._pause(CALLBACK_TICK_SECONDS):
            try:
                self._tick()
            except Exception:  # never let the ticker die; a bug here is logged with its traceback
                log.exception("simulator callback ticker failed")

    def _tick(self) -> None:
        """Detect transitions (time-driven) and queue their callbacks."""
        now = self._clock()
        events = []
        with self._lock:
            for key, task in list(self._unannounced.items()):
                state = task.state(now)
                if not task.started_announced and state.push_start_time:
                    task.started_announced = True
                    events.append(self._callback(task, STARTED_EVENT, task.started_event(state), now))
                if state.status == "STOPPED":
                    task.stopped_announced = True
                    del self._unannounced[key]
                    events.append(self._callback(task, STOPPED_EVENT, task.stopped_event(state), now))
        for event in events:
            self._outbox.put(event)

    def _callback(self, task: _Task, event_type: str, data: dict[str, Any], now: float) -> dict[str, Any]:
        expire = int(now) + CALLBACK_TTL_SECONDS
        return {
            "Timestamp": int(now),
            "SdkAppId": task.sdk_app_id,
            "ExpireTime": expire,
            "Sign": callback_sign(self._callback_key or "", expire),
            "EventType": event_type,
            "EventData": data,
        }

    def _run_sender(self) -> None:
        with requests.Session() as session:
            while (event := self._outbox.get()) is not None and not self._closing.is_set():
                ok = self._post_callback(session, event)
                with self._lock:
                    if ok:
                        self._stats.callbacks_sent += 1
                    else:
                        self._stats.callbacks_failed += 1

    def _post_callback(self, session: requests.Session, event: dict[str, Any]) -> bool:
        assert self._callback_url is not None
        task_id = event["EventData"]["TaskId"]
        try:
            response = session.post(self._callback_url, json=event, timeout=CALLBACK_TIMEOUT)
            response.close()
        except requests.RequestException as exc:
            log.warning("callback %s for task %s failed: %s", event["EventType"], task_id, type(exc).__name__)
            return False
        if not 200 <= response.status_code < 300:
            log.warning(
                "callback %s for task %s got HTTP %d", event["EventType"], task_id, response.status_code
            )
            return False
        return True


# --------------------------------------------------------------------------- HTTP plumbing


def _url_for(address: tuple[Any, ...]) -> str:
    host, port = address[0], address[1]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(ThreadingHTTPServer):
    """Daemon handler threads, tracked so close() can cut keep-alive connections and join them."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, listen: tuple[str, int], simulator: Simulator) -> None:
        self.address_family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self.simulator = simulator
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        super().__init__(listen, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) we neither need nor want to wait for.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections[request] = threading.current_thread()
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._connections_lock:
            threads = list(self._connections.values())
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    """Routes ``/`` to the API and ``/_sim/`` to the test hooks; never lets a client error escape."""

    protocol_version = "HTTP/1.1"
    server_version = "tiw-simulator"
    sys_version = ""
    timeout = 30.0  # idle keep-alive connections
    server: _Server

    @property
    def sim(self) -> Simulator:
        return self.server.simulator

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(self.sim._clock() if timestamp is None else timestamp, usegmt=True)

    def do_POST(self) -> None:
        self._route("POST")

    def do_GET(self) -> None:
        self._route("GET")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _route(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        try:
            if path.startswith("/_sim/"):
                self._control(method, path)
            elif path == "/":
                self._api(method, query)
            else:
                self._send(404, json.dumps({"error": f"no such path {path[:80]}"}).encode())
        except OSError as exc:  # the client went away or timed out: nothing to answer
            log.debug("connection error on %s %s: %s", method, path[:80], exc)
            self.close_connection = True
        except Exception:  # a simulator bug: log it, keep serving
            log.exception("simulator failed on %s %s", method, path[:80])
            self.close_connection = True

    def _read_body(self) -> bytes:
        """The request body, up to MAX_BODY_BYTES; raises SimulatedError for unusable bodies."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise SimulatedError("InvalidRequest", "Transfer-Encoding is not supported; send Content-Length.")
        text = self.headers.get("Content-Length", "0").strip()
        length = int(text) if text.isdigit() else -1
        if length < 0:
            self.close_connection = True
            raise SimulatedError("InvalidRequest", "Content-Length is not a number.")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise SimulatedError(
                "RequestSizeLimitExceeded", f"The request body exceeds {MAX_BODY_BYTES} bytes."
            )
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionError("the client closed the connection mid-body")
        return body

    def _api(self, method: str, query: str) -> None:
        body, problem = b"", None
        try:
            body = self._read_body()
        except SimulatedError as err:
            problem = err
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._deliver(self.sim._api_answer(method, query, headers, body, problem))

    def _control(self, method: str, path: str) -> None:
        try:
            body = self._read_body() if method in ("POST", "PUT") else b""
        except SimulatedError as err:
            status, answer = 400, {"error": err.message}
        else:
            status, answer = self.sim._control_answer(method, path, body)
        self._send(status, json.dumps(answer, sort_keys=True).encode())

    def _deliver(self, reply: _Reply) -> None:
        if not self.sim._pause(self.sim.latency + reply.delay) or reply.drop:
            self._drop()
            return
        self._send(reply.status, reply.body, reply.content_type, trickle=reply.trickle)

    def _send(
        self, status: int, body: bytes, content_type: str = "application/json", trickle: bool = False
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not trickle:
            self.wfile.write(body)
            return
        for index in range(len(body)):
            if index and not self.sim._pause(TRICKLE_INTERVAL_SECONDS):
                self._drop()
                return
            self.wfile.write(body[index : index + 1])

    def _drop(self) -> None:
        """Close the connection without an answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------- the `simulate` command


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; an empty host means all interfaces)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen address {text!r} is not HOST:PORT")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "0.0.0.0", int(port)


def _fault_kwargs(fault: str | tuple[str, float | None]) -> dict[str, Any]:
    """A ``parse_fault_spec`` text, or a ``(kind, ratio)`` pair, as set_fault kwargs."""
    if isinstance(fault, str):
        return parse_fault_spec(fault)
    kind, ratio = fault
    spec = {"kind": kind} if ratio is None else {"kind": kind, "ratio": ratio}
    _validate_fault(**spec)
    return spec


def main_simulate(
    listen: str | tuple[str, int] = "127.0.0.1:0",
    secret_id: str = DEMO_SECRET_ID,
    secret_key: str = DEMO_SECRET_KEY,
    latency: float = 0.0,
    rate_limit: float = 20.0,
    tasks: int = 0,
    seed: int = 0,
    demo: bool = False,
    callback_url: str | None = None,
    callback_key: str | None = None,
    faults: Sequence[str | tuple[str, float | None]] = (),
    *,
    sdk_app_ids: Sequence[int] = (DEFAULT_SDK_APP_ID,),
    unregistered_sdk_app_ids: Sequence[int] = (),
    expired_sdk_app_ids: Sequence[int] = (),
    spawn_every: float | None = None,
    stop: threading.Event | None = None,
    out: Callable[[str], None] = lambda line: print(line, flush=True),
) -> None:
    """Run the simulator until SIGINT/SIGTERM (or ``stop`` is set); ValueError on bad arguments.

    ``listen`` is ``HOST:PORT`` or a (host, port) pair; ``faults`` are ``parse_fault_spec`` texts or
    (kind, ratio) pairs. With ``demo``, the demo mix is created and new tasks keep arriving every
    30 s unless ``spawn_every`` says otherwise (0 disables).
    """
    specs = [_fault_kwargs(fault) for fault in faults]
    simulator = Simulator(
        credentials={secret_id: secret_key},
        sdk_app_ids=sdk_app_ids,
        unregistered_sdk_app_ids=unregistered_sdk_app_ids,
        expired_sdk_app_ids=expired_sdk_app_ids,
        rate_limit=rate_limit,
        latency=latency,
        seed=seed,
        listen=parse_listen(listen) if isinstance(listen, str) else listen,
        callback_url=callback_url,
        callback_key=callback_key,
    )
    stop = stop or threading.Event()
    with simulator:
        for spec in specs:
            simulator.set_fault(**spec)
        created: list[str] = []
        if tasks:
            created += simulator.populate(tasks, sdk_app_ids[0])
        if demo:
            created += simulator.populate_demo()
        interval = spawn_every if spawn_every is not None else (30.0 if demo else 0.0)
        if interval:
            simulator.spawn_every(interval)
        out(f"TIW API simulator listening on {simulator.url}")
        # Only the built-in demo key is printed: it is public anyway; a key the user chose never is.
        shown = f", secret key {secret_key} (the built-in demo key)" if secret_key == DEMO_SECRET_KEY else ""
        out(f"credentials: secret id {secret_id}{shown}")
        for task_id in created[:10]:
            out(f"task: {sdk_app_ids[0]}:{task_id}")
        if len(created) > 10:
            out(f"... and {len(created) - 10} more tasks (GET {simulator.url}/_sim/stats)")
        with _SignalStop(stop):
            while not stop.wait(0.5):
                pass
        out("simulator stopping")


class _SignalStop:
    """Set ``stop`` on SIGINT/SIGTERM while inside; a no-op outside the main thread."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, lambda *_: self._stop.set())

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
