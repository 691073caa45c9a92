"""The actions of the task kinds beside pushes: real-time recording (``*OnlineRecord*``) and document
transcodes (``CreateTranscode``, ``DescribeTranscode``), each kind with its own callback settings.

``TiwApi`` runs them after the same checks as the push actions (authentication, rate window per
action, faults, the SdkAppId checks), and asks them for the running list of their TaskTypes.

Decisions where the documentation leaves room (the Go SDK's per-action error lists name the codes):

* StopOnlineRecord, PauseOnlineRecord and ResumeOnlineRecord on a recording that stopped (or failed):
  ``UnsupportedOperation.TaskHasAlreadyStopped``; Pause on one not RECORDING, Resume on one not
  PAUSED: ``UnsupportedOperation.InvalidTaskStatus``.
* StartOnlineRecord with the RecordUserId of a recording of the same SdkAppId that has not stopped:
  ``ResourceInUse.RecordUserId``; an ``AutoStopTimeout`` outside [300, 86400]:
  ``InvalidParameter.RecordParameter``.
* CreateTranscode with a ``Url`` that is not http(s): ``InvalidParameter.UrlFormatError``.
* The test hook of pushes works here too: ``ExtraData`` of StartOnlineRecord / CreateTranscode
  holding ``{"simulator": {<RecordScript / TranscodeScript fields>}}`` fixes the new task's script;
  without it a script is drawn from the seeded RNG.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic
from urllib.parse import urlsplit

from exporter.simulator.kind_book import K, KindBook
from exporter.simulator.mixes import random_record_script, random_transcode_script
from exporter.simulator.protocol import SimulatedError, param, reject_unknown, script_from_extra
from exporter.simulator.record_lifecycle import RECORD_TASK_TYPE, Controls, RecordScript, RecordState, SimRecord
from exporter.simulator.task_callbacks import KindCallbackSettings
from exporter.simulator.transcode_lifecycle import TRANSCODE_TASK_TYPES, SimTranscode, TranscodeScript

Handler = Callable[[dict[str, Any]], dict[str, Any]]

# fmt: off
_START_RECORD_PARAMS = frozenset({  # the request fields of the SDK's StartOnlineRecordRequest
    "SdkAppId", "RoomId", "RecordUserId", "RecordUserSig", "GroupId", "Concat", "Whiteboard", "MixStream", "Extras",
    "AudioFileNeeded", "RecordControl", "RecordMode", "ChatGroupId", "AutoStopTimeout", "ExtraData", "TRTCRoomId",
    "TRTCRoomIdStr",
})
_CREATE_TRANSCODE_PARAMS = frozenset({  # the request fields of the SDK's CreateTranscodeRequest
    "SdkAppId", "Url", "IsStaticPPT", "MinResolution", "ThumbnailResolution", "CompressFileType", "ExtraData",
    "Priority", "MinScaleResolution", "AutoHandleUnsupportedElement", "AutoHandleUnsupportedElementTypes",
    "ExcelParam",
})
# fmt: on


class KindActions(Generic[K]):
    """What every kind answers the same way: Describe, the callback settings, the running list."""

    prefix = ""  # the kind's name in its actions: Describe<prefix>, Set<prefix>Callback(Key)
    task_types: tuple[str, ...] = ()

    def __init__(self, book: KindBook[K], settings: KindCallbackSettings, clock: Callable[[], float]) -> None:
        self.book = book
        self.settings = settings
        self.clock = clock

    def handlers(self) -> dict[str, Handler]:
        return {
            f"Describe{self.prefix}": self.describe,
            f"Describe{self.prefix}Callback": self.settings.describe,
            f"Set{self.prefix}Callback": self.settings.set_callback,
            f"Set{self.prefix}CallbackKey": self.settings.set_key,
        }

    def task(self, params: dict[str, Any]) -> K:
        """The task ``SdkAppId`` / ``TaskId`` name (the only parameters); ``InvalidParameter.TaskNotFound``."""
        reject_unknown(params, ("SdkAppId", "TaskId"))
        sdk_app_id, task_id = param(params, "SdkAppId", int), param(params, "TaskId", str)
        task = self.book.find(sdk_app_id, task_id)
        if task is None:
            raise SimulatedError("InvalidParameter.TaskNotFound", f"Task `{task_id[:64]}` does not exist.")
        return task

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        task = self.task(params)
        now = self.clock()
        failure = task.failure(now)
        if failure:
            raise SimulatedError(*failure)
        return task.describe(now)

    def running(self, sdk_app_id: int, task_type: str, now: float) -> list[dict[str, Any]]:
        return self.book.running(sdk_app_id, task_type, now)


class RecordActions(KindActions[SimRecord]):
    """Start / Stop / Pause / Resume / DescribeOnlineRecord and the recording callback settings."""

    prefix = "OnlineRecord"
    task_types = (RECORD_TASK_TYPE,)

    def handlers(self) -> dict[str, Handler]:
        return super().handlers() | {
            "StartOnlineRecord": self._start,
            "StopOnlineRecord": self._control(_stop),
            "PauseOnlineRecord": self._control(_pause),
            "ResumeOnlineRecord": self._control(_resume),
        }

    def _start(self, params: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(params, _START_RECORD_PARAMS)
        sdk_app_id, room_id = param(params, "SdkAppId", int), param(params, "RoomId", int)
        user = param(params, "RecordUserId", str)
        param(params, "RecordUserSig", str)
        group_id = param(params, "GroupId", str, required=False)
        timeout = param(params, "AutoStopTimeout", int, required=False)
        if timeout is not None and not 300 <= timeout <= 86400:
            raise SimulatedError("InvalidParameter.RecordParameter", "AutoStopTimeout must be within [300, 86400].")
        script = script_from_extra(param(params, "ExtraData", str, required=False), RecordScript.from_mapping)
        now = self.clock()
        if self.book.any(lambda t: (t.sdk_app_id, t.record_user_id) == (sdk_app_id, user) and not t.state(now).ended):
            raise SimulatedError("ResourceInUse.RecordUserId", f"RecordUserId `{user[:60]}` is recording already.")

        def make(task_id: str, rng: Any) -> SimRecord:
            return SimRecord(sdk_app_id, task_id, script or random_record_script(rng), now, room_id,
                             group_id or str(room_id), user)

        return {"TaskId": self.book.create(make, None, now).task_id}

    def _control(self, change: Callable[[Controls, RecordState, float], Controls]) -> Handler:
        """An action that changes a recording's controls once its state allows it (``change`` raises if not)."""
        def act(params: dict[str, Any]) -> dict[str, Any]:
            task = self.task(params)
            now = self.clock()

            def apply() -> None:
                state = task.state(now)
                if state.ended:
                    raise SimulatedError("UnsupportedOperation.TaskHasAlreadyStopped",
                                         f"Task `{task.task_id}` has already stopped.")
                task.controls = change(task.controls, state, now)

            self.book.locked(apply)
            return {}
        return act


def _stop(controls: Controls, state: RecordState, now: float) -> Controls:
    return dataclasses.replace(controls, stopped_at=now)


def _pause(controls: Controls, state: RecordState, now: float) -> Controls:
    _require(state, "RECORDING")
    return dataclasses.replace(controls, paused_at=(*controls.paused_at, now))


def _resume(controls: Controls, state: RecordState, now: float) -> Controls:
    _require(state, "PAUSED")
    return dataclasses.replace(controls, resumed_at=(*controls.resumed_at, now))


def _require(state: RecordState, status: str) -> None:
    if state.status != status:
        raise SimulatedError("UnsupportedOperation.InvalidTaskStatus",
                             f"The recording is {state.status}; this needs it {status}.")


class TranscodeActions(KindActions[SimTranscode]):
    """CreateTranscode / DescribeTranscode and the transcode callback settings."""

    prefix = "Transcode"
    task_types = TRANSCODE_TASK_TYPES

    def handlers(self) -> dict[str, Handler]:
        return super().handlers() | {"CreateTranscode": self._create}

    def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(params, _CREATE_TRANSCODE_PARAMS)
        sdk_app_id, url = param(params, "SdkAppId", int), param(params, "Url", str)
        static = bool(param(params, "IsStaticPPT", bool, required=False))
        thumbnail = param(params, "ThumbnailResolution", str, required=False) or ""
        compress = param(params, "CompressFileType", str, required=False) or ""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SimulatedError("InvalidParameter.UrlFormatError", "Url must be an http(s) URL of the document.")
        script = script_from_extra(param(params, "ExtraData", str, required=False), TranscodeScript.from_mapping)
        now = self.clock()

        def make(task_id: str, rng: Any) -> SimTranscode:
            return SimTranscode(sdk_app_id, task_id, script or random_transcode_script(rng), now, url, static,
                                thumbnail, compress)

        return {"TaskId": self.book.create(make, None, now).task_id}
