"""The per-task metric families of recordings (``tiw_record_*``) and transcodes (``tiw_transcode_*``).

The same conventions as the push families (``metrics``): every series carries ``sdk_app_id`` and
``task_id``; a status and a finish reason are state sets; counters never go down (``lifecycle``);
an error is ``<prefix>_task_error{code}`` while the latest query failed, and a task that failed for
good is ``<prefix>_task_failure_info{code}``. No per-user series: a recording's interrupts are summed.
"""

from __future__ import annotations

from exporter.families import Family, KindFamilies, Labels, Sample, state_set
from exporter.kinds import RECORD_KIND, TRANSCODE_KIND
from exporter.lifecycle import ENDINGS, FAILED, TaskRecord

RECORD_REASONS = (*RECORD_KIND.finish_reasons, *ENDINGS)
TRANSCODE_REASONS = (*TRANSCODE_KIND.finish_reasons, *ENDINGS)


def _common(prefix: str, noun: str) -> tuple[Family, ...]:
    """The families every kind has, after its own (the last three of its tuple)."""
    return (
        Family(f"{prefix}_task_error", "gauge", f"1 with the error code the {noun}'s latest query returned."),
        Family(f"{prefix}_task_last_success_timestamp_seconds", "gauge",
               f"When the {noun} was last queried successfully."),
        Family(f"{prefix}_task_failure_info", "gauge", f"1 for a {noun} that failed (final), with the error code."),
    )


def _common_samples(record: TaskRecord, base: Labels, first: int) -> list[Sample]:
    samples: list[Sample] = []
    if record.last_error is not None:
        samples.append((first, (*base, ("code", record.last_error.code)), 1.0))
    if record.last_success is not None:
        samples.append((first + 1, base, record.last_success))
    if record.ended == FAILED and record.last_error is not None:
        samples.append((first + 2, (*base, ("code", record.last_error.code)), 1.0))
    return samples


def _base(record: TaskRecord) -> Labels:
    return (("sdk_app_id", str(record.sdk_app_id)), ("task_id", record.task_id))


RECORD_FAMILIES = (
    Family("tiw_record_task_info", "gauge", "Recording metadata (room, group, recording user); always 1."),
    Family("tiw_record_task_status", "gauge", "Recording status as a state set (STOPPED: the video is still "
           "processed and uploaded; FINISHED is final)."),
    Family("tiw_record_task_finish_reason", "gauge", "Why a recording ended, as a state set, from STOPPED on: TIW's "
           "AUTO, USER_CALL, EXCEPTION, FORCE_STOP, or FAILED (a failed recording), NOT_FOUND (no such task)."),
    Family("tiw_record_task_start_timestamp_seconds", "gauge", "RecordStartTime as a Unix timestamp."),
    Family("tiw_record_task_stop_timestamp_seconds", "gauge", "RecordStopTime as a Unix timestamp."),
    Family("tiw_record_task_exceptions_total", "counter", "ExceptionCnt: exceptions during recording."),
    Family("tiw_record_task_interrupts_total", "counter", "Interrupts: the recorded users' interruptions, summed "
           "over users."),
    Family("tiw_record_task_recorded_seconds", "gauge", "TotalTime: the recorded time without pauses (TIW fills it "
           "once the video is processed; 0 before)."),
    Family("tiw_record_task_omitted_seconds", "gauge", "OmittedDurations: the time paused, summed."),
    Family("tiw_record_task_videos", "gauge", "VideoInfos: how many videos the recording produced."),
    *_common("tiw_record", "recording"),
)
(R_INFO, R_STATUS, R_FINISH, R_START, R_STOP, R_EXCEPTIONS, R_INTERRUPTS, R_RECORDED, R_OMITTED,
 R_VIDEOS, R_COMMON) = range(11)


def record_samples(record: TaskRecord, problems: object = None) -> list[Sample]:
    base = _base(record)
    task = record.latest
    samples: list[Sample] = []
    if task is not None:
        samples.append((R_INFO, (*base, ("room_id", str(task.room_id)), ("group_id", task.group_id),
                                  ("record_user_id", task.record_user_id)), 1.0))
    samples += state_set(R_STATUS, base, "status", RECORD_KIND.statuses, record.status)
    if record.finish_reason:
        samples += state_set(R_FINISH, base, "reason", RECORD_REASONS, record.finish_reason)
    if task is not None:
        if task.record_start_time:
            samples.append((R_START, base, float(task.record_start_time)))
        if task.record_stop_time:
            samples.append((R_STOP, base, float(task.record_stop_time)))
        samples += [(R_EXCEPTIONS, base, float(task.exception_cnt)), (R_INTERRUPTS, base, float(task.interrupts)),
                    (R_RECORDED, base, task.total_time_ms / 1000), (R_OMITTED, base, task.omitted_ms / 1000),
                    (R_VIDEOS, base, float(task.videos))]
    return samples + _common_samples(record, base, R_COMMON)


TRANSCODE_FAMILIES = (
    Family("tiw_transcode_task_info", "gauge", "Transcode metadata (document title, resolution); always 1."),
    Family("tiw_transcode_task_status", "gauge", "Transcode status as a state set (FINISHED is final)."),
    Family("tiw_transcode_task_finish_reason", "gauge", "How a final transcode ended, as a state set: FINISHED "
           "(TIW's answer), FAILED (an error answer, confirmed), NOT_FOUND (no such task)."),
    Family("tiw_transcode_task_progress_ratio", "gauge", "Progress (0-100 in TIW's answer) as a ratio."),
    Family("tiw_transcode_task_pages", "gauge", "Pages of the document (0 until TIW has parsed it)."),
    Family("tiw_transcode_task_create_timestamp_seconds", "gauge", "CreateTime as a Unix timestamp."),
    Family("tiw_transcode_task_assign_timestamp_seconds", "gauge", "AssignTime (left the queue) as a Unix "
           "timestamp."),
    Family("tiw_transcode_task_finish_timestamp_seconds", "gauge", "FinishedTime as a Unix timestamp."),
    *_common("tiw_transcode", "transcode"),
)
(T_INFO, T_STATUS, T_FINISH, T_PROGRESS, T_PAGES, T_CREATE, T_ASSIGN, T_FINISHED, T_COMMON) = range(9)


def transcode_samples(record: TaskRecord, problems: object = None) -> list[Sample]:
    base = _base(record)
    task = record.latest
    samples: list[Sample] = []
    if task is not None:
        samples.append((T_INFO, (*base, ("title", task.title), ("resolution", task.resolution)), 1.0))
    samples += state_set(T_STATUS, base, "status", TRANSCODE_KIND.statuses, record.status)
    if record.final:
        samples += state_set(T_FINISH, base, "reason", TRANSCODE_REASONS, record.finish_reason)
    if task is not None:
        samples += [(T_PROGRESS, base, task.progress / 100), (T_PAGES, base, float(task.pages))]
        for index, value in ((T_CREATE, task.create_time), (T_ASSIGN, task.assign_time),
                             (T_FINISHED, task.finished_time)):
            if value:
                samples.append((index, base, float(value)))
    return samples + _common_samples(record, base, T_COMMON)


RECORD_EXPORT = KindFamilies(
    "record", RECORD_FAMILIES, record_samples,
    Family("tiw_record_tasks", "gauge", "Tracked recordings by SdkAppId and status (UNKNOWN before the first answer)."),
    (*RECORD_KIND.statuses, "UNKNOWN"))
TRANSCODE_EXPORT = KindFamilies(
    "transcode", TRANSCODE_FAMILIES, transcode_samples,
    Family("tiw_transcode_tasks", "gauge", "Tracked transcodes by SdkAppId and status (UNKNOWN before the first "
           "answer)."),
    (*TRANSCODE_KIND.statuses, "UNKNOWN"))
