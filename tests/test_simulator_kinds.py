"""The simulator's other task kinds: real-time recordings (OnlineRecord) and document transcodes.

Pinned here: each kind's lifecycle as a pure function of time (a recording goes RECORDING <-> PAUSED
both ways, STOPPED is not final and FINISHED follows; a transcode's progress and times).
"""

from __future__ import annotations

from typing import Any

import pytest

from exporter.simulator.record_lifecycle import Controls, RecordScript, record_state
from exporter.simulator.transcode_lifecycle import TranscodeScript, task_type_of, transcode_state

# --------------------------------------------------------------------------- a recording over time


def test_a_recording_is_stopped_but_not_final_until_its_video_is_processed() -> None:
    script = RecordScript(prepare_seconds=2, record_seconds=60, finish_seconds=30, exceptions_per_minute=6)
    assert record_state(script, 1000.0, Controls(), 1001.0).status == "PREPARED"
    recording = record_state(script, 1000.0, Controls(), 1032.0)
    assert (recording.status, recording.record_start_time, recording.exception_cnt) == ("RECORDING", 1002, 3)
    stopped = record_state(script, 1000.0, Controls(), 1070.0)
    assert (stopped.status, stopped.finish_reason, stopped.record_stop_time) == ("STOPPED", "AUTO", 1062)
    finished = record_state(script, 1000.0, Controls(), 1092.0)
    assert (finished.status, finished.exception_cnt, finished.recorded_seconds) == ("FINISHED", 6, 60)


def test_a_scripted_pause_goes_paused_and_back_to_recording_and_is_omitted_from_the_video() -> None:
    script = RecordScript(prepare_seconds=0, record_seconds=100, finish_seconds=0, pauses=((10, 30),))
    statuses = [record_state(script, 0.0, Controls(), t).status for t in (5, 15, 39, 41, 100)]
    assert statuses == ["RECORDING", "PAUSED", "PAUSED", "RECORDING", "FINISHED"]
    finished = record_state(script, 0.0, Controls(), 100.0)
    assert finished.recorded_seconds == 70
    assert finished.pauses == ((10.0, 40.0, 10.0),)  # (start, end, recorded seconds before it)


def test_the_users_pause_and_resume_calls_move_the_recording_both_ways() -> None:
    script = RecordScript(prepare_seconds=0, finish_seconds=0)
    calls = Controls(paused_at=(10.0,), resumed_at=(25.0,))
    assert [record_state(script, 0.0, calls, t).status for t in (9, 10, 24, 25)] == [
        "RECORDING", "PAUSED", "PAUSED", "RECORDING"]
    stopped = record_state(script, 0.0, Controls(40.0, (10.0,), (25.0,)), 50.0)
    assert (stopped.status, stopped.finish_reason, stopped.recorded_seconds) == ("FINISHED", "USER_CALL", 25)
    cut_short = record_state(RecordScript(0, pauses=((10, None),)), 0.0, Controls(resumed_at=(20.0,)), 30.0)
    assert (cut_short.status, cut_short.recorded_seconds) == ("RECORDING", 20)  # a Resume ends a scripted pause


def test_a_pause_over_ninety_minutes_or_a_day_of_recording_is_force_stopped() -> None:
    paused = record_state(RecordScript(0, pauses=((60, None),)), 0.0, Controls(), 60 + 5400)
    assert (paused.status, paused.finish_reason, paused.record_stop_time) == ("STOPPED", "FORCE_STOP", 5460)
    assert record_state(RecordScript(0, pauses=((60, 5399),)), 0.0, Controls(), 6000).status == "RECORDING"
    day = record_state(RecordScript(0), 0.0, Controls(), 86400)
    assert (day.status, day.finish_reason) == ("STOPPED", "FORCE_STOP")


def test_a_recording_failing_at_start_never_records_and_one_failing_later_records_first() -> None:
    at_start = record_state(RecordScript(5, fail_with="FailedOperation.Record"), 0.0, Controls(), 6.0)
    assert (at_start.status, at_start.record_start_time, at_start.failed, at_start.finish_reason) == (
        "STOPPED", 0, True, "EXCEPTION")
    later = record_state(RecordScript(0, 30, fail_with="FailedOperation.Record"), 0.0, Controls(), 31.0)
    assert (later.record_start_time, later.recorded_seconds, later.failed) == (0, 30, True)
    stopped_first = record_state(RecordScript(0, 30, fail_with="FailedOperation.Record"), 0.0, Controls(10.0), 31.0)
    assert (stopped_first.finish_reason, stopped_first.failed) == ("USER_CALL", False)


@pytest.mark.parametrize("fields", [
    {"finish_reason": "CRASHED"}, {"record_seconds": -1}, {"finish_seconds": float("nan")},
    {"pauses": [[1]]}, {"pauses": "soon"}, {"pauses": [[1, -2]]}, {"interrupts_per_minute": {"": 1}},
    {"interrupts_per_minute": {"u": -1}}, {"fail_with": "not a code!"}, {"listed_until_finished": "yes"},
    {"colour": "red"},
])
def test_record_script_rejects_bad_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RecordScript.from_mapping(fields)


# --------------------------------------------------------------------------- a transcode over time


def test_a_transcode_is_queued_then_processing_with_progress_then_finished_with_its_times() -> None:
    script = TranscodeScript(queued_seconds=10, processing_seconds=100, pages=12)
    queued = transcode_state(script, 0.0, 5.0)
    assert (queued.status, queued.progress, queued.assign_time, queued.finished_time) == ("QUEUED", 0, None, None)
    halfway = transcode_state(script, 0.0, 60.0)
    assert (halfway.status, halfway.progress, halfway.assign_time) == ("PROCESSING", 50, 10.0)
    assert transcode_state(script, 0.0, 109.99).progress == 99  # 100 only once finished
    done = transcode_state(script, 0.0, 110.0)
    assert (done.status, done.progress, done.finished_time, done.failed) == ("FINISHED", 100, 110.0, False)


def test_the_task_type_follows_the_documents_format_and_is_static_ppt() -> None:
    assert task_type_of("https://x.example.com/deck.PPTX") == "TranscodeH5"
    assert task_type_of("https://x.example.com/deck.ppt", static_ppt=True) == "TranscodeJPG"
    assert task_type_of("https://x.example.com/notes.pdf") == "TranscodeJPG"


@pytest.mark.parametrize("fields", [{"pages": 0}, {"pages": True}, {"queued_seconds": -1},
                                    {"processing_seconds": "long"}, {"fail_with": "no code!"}, {"colour": 1}])
def test_transcode_script_rejects_bad_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TranscodeScript.from_mapping(fields)
