"""TIW's task warning callbacks (1137/90112) and their settings: Set/DescribeWarningCallback.

``SetWarningCallback(SdkAppId, Callback, CallbackKey)`` (all three required; "" deletes a setting) and
``DescribeWarningCallback(SdkAppId)`` -> ``{Callback, CallbackKey}``, as the SDK's models have them.
(Real TIW serves them to allow-listed accounts only; the simulator serves every SdkAppId.)

The events, for pushes waiting for capacity (tasks scripted with ``queued_seconds``):

* ``TaskQueuedAmountLimitWarning`` when an SdkAppId's queued pushes exceed ``queued_amount`` (the
  documented "排队任务数超过指定告警阈值"); sent once each time the count goes over the limit, again
  only after it fell back to it or below.
* ``TaskQueuedTimeLimitWarning`` when queued pushes have waited longer than ``queued_seconds``; sent
  once per task, listing the tasks that crossed the limit since the last check.

EventData is ``{TaskType: "WhiteboardPush", Total, Tasks: [{TaskID, CreateTime, CancelTime, RoomID,
FileURL, SdkAppID}]}``, ``Total`` being the length of ``Tasks`` (as in the documented example; whether
it counts every queued task or only those listed is undocumented). How often real TIW repeats a
warning is undocumented too.

The body: the documented example is ``{"EventType", "EventData"}`` with no ``Timestamp``, ``SdkAppId``,
``ExpireTime`` or ``Sign``, so that is the default (``envelope="documented"``): it is the only body
Tencent shows, and a receiver must cope with it. Yet SetWarningCallback takes a ``CallbackKey`` whose
documentation points to the push callbacks' signing rule (1137/40257), so ``envelope="push"`` sends
the push callbacks' envelope instead: ``Timestamp``, ``SdkAppId`` and, when a key is set,
``ExpireTime`` and ``Sign = md5(key + ExpireTime)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from exporter.simulator.lifecycle import SimTask, check_non_negative
from exporter.simulator.protocol import param, reject_unknown
from exporter.simulator.task_callbacks import CallbackSettings, callback_body, check_key, check_url

AMOUNT_EVENT = "TaskQueuedAmountLimitWarning"
TIME_EVENT = "TaskQueuedTimeLimitWarning"
WARNING_ENVELOPES = ("documented", "push")
DEFAULT_QUEUED_AMOUNT_LIMIT = 1
DEFAULT_QUEUED_SECONDS_LIMIT = 5.0

QueueWarning = tuple[int, str, dict[str, Any]]  # (SdkAppId, event type, EventData)


class WarningCallbackSettings(CallbackSettings):
    """``SetWarningCallback``: the URL and the key in one call."""

    def set_warning_callback(self, params: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(params, ("SdkAppId", "Callback", "CallbackKey"))
        sdk_app_id = param(params, "SdkAppId", int)
        url, key = param(params, "Callback", str), param(params, "CallbackKey", str)
        check_url(url)
        check_key(key)
        self.record(sdk_app_id, url=url, key=key)
        return {}


@dataclass(frozen=True)
class WarningLimits:
    """The warning thresholds (TIW's are its own and unpublished; these are small for tests and the demo)."""

    queued_amount: int = DEFAULT_QUEUED_AMOUNT_LIMIT
    queued_seconds: float = DEFAULT_QUEUED_SECONDS_LIMIT
    envelope: str = "documented"

    def __post_init__(self) -> None:
        amount = self.queued_amount
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(f"the queued amount limit must be a non-negative integer, got {amount!r}")
        check_non_negative("the queued time limit", self.queued_seconds)
        if self.envelope not in WARNING_ENVELOPES:
            raise ValueError(f"the warning envelope must be one of {WARNING_ENVELOPES}, got {self.envelope!r}")

    def body(self, warning: QueueWarning, now: float, key: str) -> dict[str, Any]:
        """A warning callback's body in the chosen envelope (see the module docstring)."""
        sdk_app_id, event_type, data = warning
        if self.envelope == "documented":
            return {"EventType": event_type, "EventData": data}
        return callback_body(sdk_app_id, event_type, data, now, key)


def event_data(tasks: Iterable[SimTask]) -> dict[str, Any]:
    listed = [task.queued_item() for task in tasks]
    return {"TaskType": "WhiteboardPush", "Total": len(listed), "Tasks": listed}


class WarningWatch:
    """Turns the queue, checked now and then, into warnings; used by one thread (the callback ticker)."""

    def __init__(self, limits: WarningLimits) -> None:
        self.limits = limits
        self._over_amount: set[int] = set()
        self._late: set[tuple[int, str]] = set()  # tasks already warned about as waiting too long

    def check(self, queued: dict[int, list[SimTask]], now: float) -> list[QueueWarning]:
        """The warnings due now, given the queued tasks by SdkAppId (``TaskBook.queued``)."""
        warnings: list[QueueWarning] = []
        for sdk_app_id in sorted(set(queued) | self._over_amount):
            tasks = queued.get(sdk_app_id, [])
            if len(tasks) <= self.limits.queued_amount:
                self._over_amount.discard(sdk_app_id)
            elif sdk_app_id not in self._over_amount:
                self._over_amount.add(sdk_app_id)
                warnings.append((sdk_app_id, AMOUNT_EVENT, event_data(tasks)))
            late = [task for task in tasks if now - task.created_at > self.limits.queued_seconds
                    and (sdk_app_id, task.task_id) not in self._late]
            if late:
                self._late.update((sdk_app_id, task.task_id) for task in late)
                warnings.append((sdk_app_id, TIME_EVENT, event_data(late)))
        self._late &= {(task.sdk_app_id, task.task_id) for tasks in queued.values() for task in tasks}
        return warnings
