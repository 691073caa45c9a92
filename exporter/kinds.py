"""The TIW task kinds this exporter watches, as data: one row per kind.

Every part that differs by kind reads its row here: the Describe action and the running list's TaskTypes
(polling, liveness), the statuses and which are final, how status may move (lifecycle), the finish
reasons and failure codes (metrics, the error table), the callback events and key (callbacks,
preflight), the metric prefix. Adding a kind is a row here, a parser (``kind_answers``) and its
metric families (``kind_metrics``), not a new code path.

Facts and sources: ``DescribeOnlineRecord`` / ``DescribeTranscode`` in Tencent's API docs and the
official SDK's models; what Tencent leaves undocumented is listed in the README, "Task kinds".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from exporter.errors import TRANSCODE_FAILURES
from exporter.model import KIND_NAMES, PUSH, InvalidTaskRef


@dataclass(frozen=True)
class TaskKind:
    name: str  # the kind as configured and shown: tasks file, task API, status page, --kinds
    noun: str  # for people: log lines, the status page
    describe_action: str  # one task's details (SdkAppId, TaskId)
    running_task_types: tuple[str, ...]  # DescribeRunningTasks TaskType values listing this kind
    statuses: tuple[str, ...]  # TIW's documented statuses, in lifecycle order
    rank: Mapping[str, int]  # a status never moves to a lower rank; equal ranks go both ways
    final_statuses: frozenset[str]  # nothing changes after these: never polled again
    reason_statuses: frozenset[str]  # statuses in which the answer's finish reason is TIW's final word
    steady_statuses: frozenset[str]  # running as it should: liveness-covered ones are polled less often
    ended_status: str  # what a task ended by a confirmed error answer (FAILED / NOT_FOUND) reports
    finish_reasons: tuple[str, ...]  # TIW's finish reasons (ours, FAILED and NOT_FOUND, come on top)
    failure_codes: tuple[str, ...]  # error codes that mean the task failed (the error table's TASK_FAILED)
    counters: tuple[str, ...]  # answer fields that only grow: an answer with less keeps the highest seen
    times: tuple[str, str]  # answer fields of the start and end times (Unix seconds), for sanity checks
    callback_events: tuple[str, ...]  # event types TIW sends for this kind
    callback_settings: str  # <Kind> of Set<Kind>Callback, Set<Kind>CallbackKey, Describe<Kind>Callback
    metric_prefix: str  # every per-task family is <prefix>_task_*, aggregates <prefix>_tasks*

    def failed_by(self, code: str) -> bool:
        """Whether an error ``code`` says a task of this kind failed for good. A code the error table calls
        TASK_FAILED for another kind says nothing of this task: a push's Stopped callback names
        ``FailedOperation.Record`` too, and that is no failed push."""
        return code in self.failure_codes

    @property
    def callback_key_action(self) -> str:
        """The action that sets the key this kind's callbacks are signed with (the user calls it, never us)."""
        return f"Set{self.callback_settings}CallbackKey"

    @property
    def callback_describe_action(self) -> str:
        """The action that answers {Callback, CallbackKey} of this kind (the preflight)."""
        return f"Describe{self.callback_settings}Callback"


def _rank(*steps: tuple[str, ...]) -> Mapping[str, int]:
    return MappingProxyType({status: rank for rank, step in enumerate(steps) for status in step})


PUSH_KIND = TaskKind(
    name=PUSH, noun="push", describe_action="DescribeWhiteboardPush", running_task_types=("WhiteboardPush",),
    statuses=("PREPARED", "PUSHING", "STOPPED"),
    rank=_rank(("PREPARED",), ("PUSHING",), ("STOPPED",)),
    final_statuses=frozenset({"STOPPED"}), reason_statuses=frozenset({"STOPPED"}),
    steady_statuses=frozenset({"PUSHING"}), ended_status="STOPPED",
    finish_reasons=("AUTO", "USER_CALL", "EXCEPTION"),
    failure_codes=("FailedOperation.WhiteboardPush",),
    counters=("exception_cnt",), times=("push_start_time", "push_stop_time"),
    callback_events=("WhiteboardPushStarted", "WhiteboardPushStopped"),
    callback_settings="WhiteboardPush",
    metric_prefix="tiw_push",
)

RECORD_KIND = TaskKind(
    name="record", noun="recording", describe_action="DescribeOnlineRecord", running_task_types=("OnlineRecord",),
    statuses=("PREPARED", "RECORDING", "PAUSED", "STOPPED", "FINISHED"),
    # RECORDING <-> PAUSED both ways; STOPPED (the video is still processed and uploaded) is not final
    rank=_rank(("PREPARED",), ("RECORDING", "PAUSED"), ("STOPPED",), ("FINISHED",)),
    final_statuses=frozenset({"FINISHED"}), reason_statuses=frozenset({"STOPPED", "FINISHED"}),
    steady_statuses=frozenset({"RECORDING", "PAUSED"}), ended_status="FINISHED",
    finish_reasons=("AUTO", "USER_CALL", "EXCEPTION", "FORCE_STOP"),
    failure_codes=("FailedOperation.Record",),
    counters=("exception_cnt", "interrupts"), times=("record_start_time", "record_stop_time"),
    callback_events=("OnlineRecordStarted", "OnlineRecordStopped", "OnlineRecordFinished"),
    callback_settings="OnlineRecord",
    metric_prefix="tiw_record",
)


TRANSCODE_KIND = TaskKind(
    name="transcode", noun="transcode", describe_action="DescribeTranscode",
    running_task_types=("TranscodeH5", "TranscodeJPG"),
    statuses=("QUEUED", "PROCESSING", "FINISHED"),
    rank=_rank(("QUEUED",), ("PROCESSING",), ("FINISHED",)),
    final_statuses=frozenset({"FINISHED"}), reason_statuses=frozenset({"FINISHED"}),
    steady_statuses=frozenset(), ended_status="FINISHED",  # minutes long: every interval, never stretched
    finish_reasons=("FINISHED",),  # TIW gives no reason: a FINISHED answer finished
    failure_codes=TRANSCODE_FAILURES,
    counters=(), times=("assign_time", "finished_time"),
    callback_events=("TranscodeProgressChanged", "TranscodeFinished"),
    callback_settings="Transcode",
    metric_prefix="tiw_transcode",
)

KINDS: Mapping[str, TaskKind] = MappingProxyType({k.name: k for k in (PUSH_KIND, RECORD_KIND, TRANSCODE_KIND)})
assert tuple(KINDS) == KIND_NAMES, "model.KIND_NAMES names the rows of KINDS"
DEFAULT_KINDS = (PUSH, "record")  # --kinds: transcodes are opt-in (a school's courseware is often converted days ahead)
KIND_OF_EVENT: Mapping[str, str] = MappingProxyType(
    {event: kind.name for kind in KINDS.values() for event in kind.callback_events})


def parse_kinds(text: str) -> tuple[str, ...]:
    """``--kinds``: a comma-separated list of kind names, push first if given; InvalidTaskRef names a bad one."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise InvalidTaskRef(f"name at least one of {', '.join(KINDS)}")
    for name in names:
        if name not in KINDS:
            raise InvalidTaskRef(f"unknown kind {name[:40]!r} (known: {', '.join(KINDS)})")
    return tuple(kind for kind in KINDS if kind in names)


def markdown_table() -> str:
    """The table as Markdown for the README (a test keeps the README's copy equal to this)."""
    lines = ["| kind | Describe action | running list TaskType | statuses (final in bold) | finish reasons | "
             "failure codes | callback events | callback key | metrics |",
             "|---|---|---|---|---|---|---|---|---|"]
    for kind in KINDS.values():
        statuses = ", ".join(f"**{s}**" if s in kind.final_statuses else s for s in kind.statuses)
        lines.append(
            f"| `{kind.name}` | `{kind.describe_action}` | {', '.join(kind.running_task_types)} | {statuses} | "
            f"{', '.join(kind.finish_reasons)} | {', '.join(f'`{c}`' for c in kind.failure_codes)} | "
            f"{', '.join(kind.callback_events)} | `{kind.callback_key_action}` | `{kind.metric_prefix}_*` |")
    return "\n".join(lines) + "\n"
