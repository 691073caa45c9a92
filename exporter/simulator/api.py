"""The TIW API itself: common headers, TC3-HMAC-SHA256 verification, the rate window and the actions.

Decisions where Tencent's documentation leaves room (tests/test_simulator*.py pin them):

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
* ``X-TC-Region`` must be present, and name a region the simulator serves (``regions``, by default
  ``protocol.DEFAULT_REGIONS``; None serves any): another one gets ``UnsupportedRegion``, the common
  error code for "the action does not support this region", checked with the other common headers,
  before authentication.
* ``SetWarningCallback`` / ``DescribeWarningCallback`` keep and answer the warning-callback settings
  (``warning_callbacks``); a Set*Callback URL that is not http(s) gets
  ``InvalidParameter.CallbackAddressFormatError``.
* ``StopWhiteboardPush`` on a stopped task: ``UnsupportedOperation.TaskHasAlreadyStopped`` (a TIW code).
* ``DescribeRunningTasks`` pages each ``TaskType`` alike: ``WhiteboardPush`` lists pushes,
  ``OnlineRecord`` recordings, ``TranscodeH5`` / ``TranscodeJPG`` transcodes of that type (``kind_api``;
  each kind's lifecycle module says what it lists when).
* Recordings and transcodes (``kind_api``, ``record_lifecycle``, ``transcode_lifecycle``) have their
  own actions, callback settings and key per SdkAppId, and decisions. A recording or transcode scripted
  to fail answers its error code (``FailedOperation.Record``; ``FailedOperation.Transcode``,
  ``FailedOperation.File*``, ``InvalidParameter.UrlFormatError``,
  ``LimitExceeded.TranscodePagesLimitation``...) as ``Response.Error`` once it ended, like a push: how
  TIW answers a failed transcode is undocumented, and an error answer is what the Go SDK's per-action
  list of DescribeTranscode errors suggests.
* ``StartWhiteboardPush`` with a ``Backup`` parameter also starts a backup push: its answer's ``Backup``
  is the JSON text of that call's own answer (``{"RequestId", "TaskId"}``), and ``StopWhiteboardPush``
  of such a task answers ``Backup`` ``{"RequestId"}`` (as the API's examples show); otherwise ``""``.
  ``DescribeWhiteboardPush`` of such a task answers ``Backup`` ``"{}"``, the only Describe text the API
  page shows (``lifecycle.DOCUMENTED_DESCRIBE_BACKUP``).
* A task scripted to fail (``fail_with``) answers normally until its push ends, then that error.
* The rate limiter uses ``time.monotonic``, signature timestamps the injectable ``clock``, so a
  frozen fake clock does not throttle every request.

Test hook: ``ExtraData`` of StartWhiteboardPush holding JSON text ``{"simulator": {<TaskScript
fields>}}`` fixes the new task's script.
"""

from __future__ import annotations

import collections
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from exporter.simulator.faults import DELAYING_FAULTS, FaultPlan, fault_outcome, fault_reply
from exporter.simulator.kind_api import KindActions
from exporter.simulator.lifecycle import SimTask, TaskScript, failure_message
from exporter.simulator.mixes import random_script
from exporter.simulator.protocol import (
    ACTIONS,
    API_VERSION,
    DEFAULT_REGIONS,
    DESCRIBE,
    DESCRIBE_CALLBACK,
    DESCRIBE_WARNING_CALLBACK,
    RUNNING,
    SERVICE,
    SET_CALLBACK,
    SET_CALLBACK_KEY,
    SET_WARNING_CALLBACK,
    START,
    STOP,
    Reply,
    SimulatedError,
    envelope,
    error_reply,
    json_object,
    missing,
    param,
    reject_unknown,
    script_from_extra,
)
from exporter.simulator.stats import INVALID_ACTION_KEY, Stats, deque_map, prune
from exporter.simulator.task_callbacks import KindCallbackSettings
from exporter.simulator.tasks import TaskBook
from exporter.simulator.warning_callbacks import WarningCallbackSettings
from exporter.tencentcloud import signing

# fmt: off
_START_PARAMS = frozenset({  # the request fields of the SDK's StartWhiteboardPushRequest
    "SdkAppId", "RoomId", "PushUserId", "PushUserSig", "Whiteboard", "AutoStopTimeout", "AutoManageBackup",
    "Backup", "PrivateMapKey", "VideoFPS", "VideoBitrate", "AutoRecord", "UserDefinedRecordId", "AutoPublish",
    "UserDefinedStreamId", "ExtraData", "TRTCRoomId", "TRTCRoomIdStr", "IMAuthParam", "TRTCAuthParam",
    "TRTCEnterRoomMode", "GroupId",
})
# fmt: on


def check_common(headers: Mapping[str, str], regions: frozenset[str] | None = None) -> tuple[str, int]:
    """The common headers, in the documented order; returns (action, timestamp).

    ``regions``: the regions served (None: any).
    """
    action = headers.get("x-tc-action", "").strip()
    version = headers.get("x-tc-version", "").strip()
    if not action:
        raise missing("Action")
    if not version:
        raise missing("Version")
    if version != API_VERSION:
        raise SimulatedError("NoSuchVersion", f"The API version `{version[:40]}` does not exist.")
    if action not in ACTIONS:
        raise SimulatedError("InvalidAction", f"The action `{action[:60]}` is not found.")
    region = headers.get("x-tc-region", "").strip()
    if not region:
        raise missing("Region")
    if regions is not None and region not in regions:
        raise SimulatedError("UnsupportedRegion", f"The action `{action}` does not support the region `{region[:40]}`.")
    stamp = headers.get("x-tc-timestamp", "").strip()
    if not stamp:
        raise missing("Timestamp")
    if not stamp.isdigit() or len(stamp) > 12:
        raise SimulatedError("InvalidParameterValue", "X-TC-Timestamp must be a Unix time in seconds.")
    return action, int(stamp)


class Credentials:
    """SecretId -> SecretKey (and session tokens); verifies a request's TC3-HMAC-SHA256 signature."""

    def __init__(
        self, keys: Mapping[str, str], tokens: Mapping[str, str], clock: Callable[[], float], max_skew: int
    ) -> None:
        self._keys = dict(keys)
        self._tokens = dict(tokens)
        self._clock = clock
        self._max_skew = max_skew
        self._lock = threading.Lock()

    def revoke(self, secret_id: str) -> None:
        with self._lock:
            self._keys.pop(secret_id, None)

    def set(self, secret_id: str, secret_key: str) -> None:
        if not secret_id or not secret_key:
            raise ValueError("secret_id and secret_key must be non-empty")
        with self._lock:
            self._keys[secret_id] = secret_key

    def authenticate(self, headers: Mapping[str, str], query: str, body: bytes, timestamp: int) -> str:
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
            raise SimulatedError("AuthFailure.SignatureFailure", f"The credential scope must name service `{SERVICE}`.")
        with self._lock:
            secret_key = self._keys.get(parsed.secret_id)
            token = self._tokens.get(parsed.secret_id)
        if secret_key is None:
            raise SimulatedError("AuthFailure.SecretIdNotFound", "The SecretId is not found, or has been disabled.")
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
        if token is not None and not hmac.compare_digest(headers.get("x-tc-token", "").encode(), token.encode()):
            raise SimulatedError("AuthFailure.TokenFailure", "The token is missing, invalid or expired.")
        return parsed.secret_id


class RateWindow:
    """The strict sliding one-second window per (SecretId, action); throttled requests don't count."""

    def __init__(self, rate_limit: float, stats: Stats) -> None:
        self.rate_limit = float(rate_limit)
        self._stats = stats
        self._windows: dict[tuple[str, str], collections.deque[float]] = deque_map()
        self._lock = threading.Lock()

    def admit(self, secret_id: str, action: str) -> None:
        now = time.monotonic()
        self._stats.arrival(action, now)
        with self._lock:
            window = prune(self._windows[(secret_id, action)], now)
            if self.rate_limit > 0 and len(window) >= self.rate_limit:
                self._stats.throttle()
                raise SimulatedError(
                    "RequestLimitExceeded",
                    f"Request rate over the limit of {self.rate_limit:g} per second for {action}.",
                )
            window.append(now)
        self._stats.accepted_request(action, now)


Handler = Callable[[dict[str, Any]], dict[str, Any]]


class TiwApi:
    """Answers one API request: checks, authentication, rate limit, injected fault, then the action."""

    def __init__(
        self,
        book: TaskBook,
        credentials: Credentials,
        window: RateWindow,
        faults: FaultPlan,
        stats: Stats,
        clock: Callable[[], float],
        push_callbacks: KindCallbackSettings | None = None,
        warning_callbacks: WarningCallbackSettings | None = None,
        regions: frozenset[str] | None = frozenset(DEFAULT_REGIONS),
        kinds: Sequence[KindActions[Any]] = (),
    ) -> None:
        self.kinds = tuple(kinds)
        self.push_callbacks = push_callbacks or KindCallbackSettings()
        self.warning_callbacks = warning_callbacks or WarningCallbackSettings()
        self.regions = regions
        self._book = book
        self._credentials = credentials
        self._window = window
        self._faults = faults
        self._stats = stats
        self._clock = clock

    def answer(
        self,
        method: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        problem: SimulatedError | None = None,
    ) -> Reply:
        """Answer one API request; ``headers`` keys are lower-case; ``problem`` is a body-read error."""
        action = headers.get("x-tc-action", "")
        stat_key = action if action in ACTIONS else INVALID_ACTION_KEY
        reply, outcome = self._classify(method, query, headers, body, problem)
        self._stats.answer(stat_key, outcome)
        return reply

    def _classify(
        self, method: str, query: str, headers: Mapping[str, str], body: bytes, problem: SimulatedError | None
    ) -> tuple[Reply, str]:
        try:
            if problem:
                raise problem
            if method != "POST":
                raise SimulatedError("InvalidRequest", "The simulator accepts only POST with a JSON body.")
            action, timestamp = check_common(headers, self.regions)
            secret_id = self._credentials.authenticate(headers, query, body, timestamp)
            self._window.admit(secret_id, action)
        except SimulatedError as err:
            return error_reply(err.code, err.message), err.code
        params = json_object(body)
        self._note_describe(action, params)
        fault = self._faults.take(action)
        if fault and fault.kind not in DELAYING_FAULTS:
            return fault_reply(fault.kind, action, params), fault_outcome(fault.kind)
        reply, outcome = self._dispatch(action, params)
        if fault:
            reply.delay = fault.delay if fault.kind == "slow" else 0.0
            reply.trickle = fault.kind == "trickle"
        return reply, outcome

    def _note_describe(self, action: str, params: Mapping[str, Any] | None) -> None:
        if action != DESCRIBE or not params or not isinstance(params.get("TaskId"), str):
            return
        if self._book.exists(params["TaskId"]):
            self._stats.describe(params["TaskId"])

    def _dispatch(self, action: str, params: dict[str, Any] | None) -> tuple[Reply, str]:
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            DESCRIBE: self._describe,
            START: self._start,
            STOP: self._stop,
            RUNNING: self._running,
            DESCRIBE_CALLBACK: self._with_app(self.push_callbacks.describe),
            SET_CALLBACK: self._with_app(self.push_callbacks.set_callback),
            SET_CALLBACK_KEY: self._with_app(self.push_callbacks.set_key),
            DESCRIBE_WARNING_CALLBACK: self._with_app(self.warning_callbacks.describe),
            SET_WARNING_CALLBACK: self._with_app(self.warning_callbacks.set_warning_callback),
        }
        for kind in self.kinds:
            handlers |= {name: self._with_app(handler) for name, handler in kind.handlers().items()}
        try:
            if params is None:
                raise SimulatedError("InvalidParameter", "The request body must be a JSON object.")
            return envelope(handlers[action](params)), "success"
        except SimulatedError as err:
            return error_reply(err.code, err.message), err.code

    def _with_app(self, action: Handler) -> Handler:
        """``action`` after the SdkAppId checks every action makes (unknown, expired, unregistered apps)."""
        def checked(params: dict[str, Any]) -> dict[str, Any]:
            self._check_app(param(params, "SdkAppId", int))
            return action(params)
        return checked

    def _check_app(self, sdk_app_id: int) -> None:
        if sdk_app_id in self._book.expired:
            raise SimulatedError(
                "ResourceUnavailable.ServiceExpired",
                "The account is in arrears or the whiteboard service has expired.",
            )
        if sdk_app_id in self._book.unregistered:
            raise SimulatedError("ResourceUnavailable.NotRegistered", "Interactive Whiteboard is not activated.")
        if sdk_app_id not in self._book.sdk_app_ids:
            raise SimulatedError(
                "UnauthorizedOperation.SdkAppId",
                f"SdkAppId {sdk_app_id} does not exist or does not belong to this account.",
            )

    def _find(self, sdk_app_id: int, task_id: str) -> SimTask:
        task = self._book.find(sdk_app_id, task_id)
        if task is None:
            raise SimulatedError("InvalidParameter.TaskNotFound", f"Task `{task_id[:64]}` does not exist.")
        return task

    def _describe(self, params: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(params, ("SdkAppId", "TaskId"))
        sdk_app_id, task_id = param(params, "SdkAppId", int), param(params, "TaskId", str)
        self._check_app(sdk_app_id)
        task = self._find(sdk_app_id, task_id)
        now = self._clock()
        if task.failed(now):
            raise SimulatedError(task.script.fail_with or "", failure_message(task.script.fail_with or ""))
        return task.describe(now)

    def _start(self, params: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(params, _START_PARAMS)
        sdk_app_id, room_id = param(params, "SdkAppId", int), param(params, "RoomId", int)
        push_user_id = param(params, "PushUserId", str)
        param(params, "PushUserSig", str)
        group_id = param(params, "GroupId", str, required=False)
        script = script_from_extra(param(params, "ExtraData", str, required=False), TaskScript.from_mapping)
        self._check_app(sdk_app_id)
        task = self._book.start(sdk_app_id, room_id, group_id, push_user_id, script, self._clock(), random_script,
                                with_backup="Backup" in params)
        if not task.backup_task_id:
            return {"TaskId": task.task_id, "Backup": ""}
        return {"TaskId": task.task_id, "Backup": json.dumps({"RequestId": str(uuid.uuid4()),
                                                              "TaskId": task.backup_task_id})}

    def _stop(self, params: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(params, ("SdkAppId", "TaskId"))
        sdk_app_id, task_id = param(params, "SdkAppId", int), param(params, "TaskId", str)
        self._check_app(sdk_app_id)
        task = self._find(sdk_app_id, task_id)
        if not self._book.stop(task, self._clock()):
            raise SimulatedError("UnsupportedOperation.TaskHasAlreadyStopped", f"Task `{task_id}` has already stopped.")
        return {"Backup": json.dumps({"RequestId": str(uuid.uuid4())}) if task.backup_task_id else ""}

    def _running(self, params: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(params, ("SdkAppID", "TaskType", "Offset", "Limit"))
        sdk_app_id, task_type = param(params, "SdkAppID", int), param(params, "TaskType", str)
        offset = param(params, "Offset", int, required=False) or 0
        limit = param(params, "Limit", int, required=False)
        limit = 100 if limit is None else limit
        if task_type not in ("WhiteboardPush", "TranscodeH5", "TranscodeJPG", "OnlineRecord"):
            raise SimulatedError("InvalidParameterValue", f"TaskType `{task_type[:40]}` is not supported.")
        if offset < 0 or not 1 <= limit <= 500:
            raise SimulatedError("InvalidParameterValue", "Offset must be >= 0 and Limit between 1 and 500.")
        self._check_app(sdk_app_id)
        now = self._clock()
        if task_type == "WhiteboardPush":  # items only for the page: a push fleet can be large
            pushes = self._book.running(sdk_app_id, now)
            page = [task.running_item(state) for task, state in pushes[offset : offset + limit]]
            return {"Total": len(pushes), "Tasks": page}
        listed = [item for kind in self.kinds if task_type in kind.task_types
                  for item in kind.running(sdk_app_id, task_type, now)]
        return {"Total": len(listed), "Tasks": listed[offset : offset + limit]}
