"""Injected faults: what can go wrong (FAULT_KINDS), a FaultPlan deciding which request it hits, and the answers.

Decisions: a fault is taken after authentication and the rate limit, so faults never hit
unauthenticated requests and throttled requests never consume a fault. ``slow`` and ``trickle`` delay
the normal answer; every other kind replaces it. A fault replaces any earlier fault of the same kind
and action.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from exporter.simulator.lifecycle import check_non_negative
from exporter.simulator.protocol import (
    ACTIONS,
    DESCRIBE,
    DESCRIBE_CALLBACK,
    DESCRIBE_WARNING_CALLBACK,
    RECORD_ACTIONS,
    RUNNING,
    SET_CALLBACK,
    SET_CALLBACK_KEY,
    SET_WARNING_CALLBACK,
    START,
    STOP,
    TRANSCODE_ACTIONS,
    Reply,
    envelope,
    error_reply,
)

# More than the client's MAX_RESPONSE_BYTES (1 MiB), so an ``oversized`` answer trips that cap.
OVERSIZED_BYTES = 2 << 20
DEFAULT_SLOW_SECONDS = 10.0
# fmt: off
FAULT_KINDS = (
    "http500", "http502_empty", "http404", "malformed_json", "truncated_json", "wrong_shape", "wrong_types",
    "internal_error", "request_limit", "slow", "trickle", "drop", "oversized", "signature_expire",
    "service_unavailable", "unsupported_region", "sdk_app_id_not_found", "invalid_action",
)
# fmt: on
DELAYING_FAULTS = ("slow", "trickle")
ERROR_FAULTS = {
    "internal_error": "InternalError",
    "request_limit": "RequestLimitExceeded",
    "signature_expire": "AuthFailure.SignatureExpire",
    "service_unavailable": "ServiceUnavailable",
    "unsupported_region": "UnsupportedRegion",
    "sdk_app_id_not_found": "InvalidParameter.SdkAppIdNotFound",
    "invalid_action": "InvalidAction",  # e.g. action=DescribeRunningTasks: an international account
}


@dataclass(frozen=True)
class FaultSpec:
    """One fault: for the next ``count`` requests, a ``ratio`` of them, or until cleared; ValueError if bad."""

    kind: str
    count: int | None = None
    ratio: float | None = None
    seconds: float | None = None
    action: str | None = None

    def __post_init__(self) -> None:
        kind, count, ratio = self.kind, self.count, self.ratio
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError(f"fault count must be a positive integer, got {count!r}")
        if ratio is not None and (
            isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1
        ):
            raise ValueError(f"fault ratio must be between 0 and 1, got {ratio!r}")
        if self.seconds is not None:
            check_non_negative("fault seconds", self.seconds)
        if self.action is not None and self.action not in ACTIONS:
            raise ValueError(f"fault action must be one of {ACTIONS}, got {self.action!r}")

    @property
    def delay(self) -> float:
        """How long ``slow`` holds its answer."""
        return DEFAULT_SLOW_SECONDS if self.seconds is None else self.seconds

    def given(self) -> dict[str, Any]:
        """The fields that were set, as set_fault keyword arguments."""
        return {key: value for key, value in asdict(self).items() if value is not None}


def parse_fault_spec(text: str) -> dict[str, Any]:
    """``KIND[:key=value,...]`` -> set_fault kwargs, e.g. ``http500:ratio=0.1,action=DescribeWhiteboardPush``.

    For the ``simulate`` command's fault options; raises ValueError with a readable message.
    """
    kind, _, rest = text.strip().partition(":")
    spec: dict[str, Any] = {"kind": kind}
    converters: dict[str, Callable[[str], Any]] = {"count": int, "ratio": float, "seconds": float, "action": str}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in converters:
            raise ValueError(f"fault {text!r}: expected key=value with key in {sorted(converters)}, got {item!r}")
        try:
            spec[key] = converters[key](value)
        except ValueError:
            raise ValueError(f"fault {text!r}: {key} has a bad value {value!r}") from None
    FaultSpec(**spec)
    return spec


def fault_spec(fault: str | tuple[str, float | None] | FaultSpec) -> FaultSpec:
    """A ``parse_fault_spec`` text, a ``(kind, ratio)`` pair, or a FaultSpec, as a FaultSpec."""
    if isinstance(fault, FaultSpec):
        return fault
    if isinstance(fault, str):
        return FaultSpec(**parse_fault_spec(fault))
    kind, ratio = fault
    return FaultSpec(kind, ratio=ratio)


@dataclass
class _Armed:
    spec: FaultSpec
    remaining: int | None


class FaultPlan:
    """The faults in force; ``take`` decides (seeded) whether one hits a request."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"tiw-simulator-faults:{seed}")
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []

    def set(self, spec: FaultSpec) -> None:
        key = (spec.kind, spec.action)
        with self._lock:
            kept = [a for a in self._armed if (a.spec.kind, a.spec.action) != key]
            self._armed = [*kept, _Armed(spec, spec.count)]

    def clear(self) -> None:
        with self._lock:
            self._armed = []

    def take(self, action: str) -> FaultSpec | None:
        with self._lock:
            for armed in self._armed:
                if armed.spec.action not in (None, action):
                    continue
                if armed.spec.ratio is not None and self._rng.random() >= armed.spec.ratio:
                    continue
                if armed.remaining is not None:
                    armed.remaining -= 1
                    if armed.remaining <= 0:
                        self._armed.remove(armed)
                return armed.spec
        return None


def fault_outcome(kind: str) -> str:
    """The statistics outcome of a replacing fault: its API error code, else ``fault:<kind>``."""
    return ERROR_FAULTS.get(kind, f"fault:{kind}")


def _html(status: int, title: str) -> Reply:
    body = f"<html><head><title>{status} {title}</title></head><body><h1>{status} {title}</h1></body></html>"
    return Reply(status=status, body=body.encode(), content_type="text/html")


_WRONG_TYPES: dict[str, dict[str, Any]] = {
    DESCRIBE: {"TaskId": "", "Status": 3, "ExceptionCnt": "many", "RoomId": "room", "PushStartTime": [1]},
    START: {"TaskId": 3, "Backup": ""},
    STOP: {"Backup": 3},
    RUNNING: {"Total": "many", "Tasks": "none"},
    DESCRIBE_CALLBACK: {"Callback": 3, "CallbackKey": ["k"]},
    DESCRIBE_WARNING_CALLBACK: {"Callback": 3, "CallbackKey": ["k"]},
    # A Set action answers only RequestId: its wrong type is an Error that is no object.
    SET_CALLBACK: {"Error": "failed"},
    SET_CALLBACK_KEY: {"Error": "failed"},
    SET_WARNING_CALLBACK: {"Error": "failed"},
    "DescribeOnlineRecord": {"TaskId": 3, "Status": ["RECORDING"], "ExceptionCnt": "many", "VideoInfos": "none"},
    "StartOnlineRecord": {"TaskId": 3},
    "DescribeTranscode": {"TaskId": 3, "Status": 3, "Progress": "half", "Pages": "many", "AssignTime": "soon"},
    "CreateTranscode": {"TaskId": 3},
}
# The other kinds' callback settings answer like the push ones; Stop/Pause/Resume answer only RequestId.
for _action in (*RECORD_ACTIONS, *TRANSCODE_ACTIONS):
    _settings = _action.startswith("Describe") and _action.endswith("Callback")
    _WRONG_TYPES.setdefault(_action, _WRONG_TYPES[DESCRIBE_CALLBACK if _settings else SET_CALLBACK])


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


def fault_reply(kind: str, action: str, params: Mapping[str, Any] | None) -> Reply:
    """The answer of a fault that replaces the normal answer."""
    if kind in ERROR_FAULTS:
        return error_reply(ERROR_FAULTS[kind], f"simulated fault {kind}")
    if kind == "http500":
        return _html(500, "Internal Server Error")
    if kind == "http502_empty":
        return Reply(status=502, content_type="text/html")
    if kind == "http404":
        return _html(404, "Not Found")
    if kind == "malformed_json":
        return Reply(body=b'{"Response": {"Status": PUSHING, "RequestId": "x",}}')
    if kind == "truncated_json":
        full = envelope(_sample_describe(params)).body
        return Reply(body=full[: len(full) // 2])
    if kind == "wrong_shape":
        return Reply(body=json.dumps([{"RequestId": str(uuid.uuid4())}]).encode())
    if kind == "wrong_types":
        wrong = dict(_WRONG_TYPES[action])
        if action == DESCRIBE:
            wrong["TaskId"] = _sample_describe(params)["TaskId"]
        return envelope(wrong)
    if kind == "oversized":
        return Reply(body=b'{"Response": {"Padding": "' + b"x" * OVERSIZED_BYTES + b'"}}')
    if kind == "drop":
        return Reply(drop=True)
    raise AssertionError(f"unhandled fault kind {kind}")
