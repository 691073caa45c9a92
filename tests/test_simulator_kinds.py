"""The simulator's other task kinds: real-time recordings (OnlineRecord) and document transcodes.

Pinned here: each kind's lifecycle (a recording goes RECORDING <-> PAUSED both ways, STOPPED is not
final and FINISHED follows; a transcode's progress and times), each failure code answered once the
task ended, the running list per TaskType, each kind's callbacks signed with its own key, faults, the
control hooks, and the demo's recordings and transcodes (only when asked for). The official SDK
parses these answers in tests/test_client_against_simulator.py.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from exporter.simulator import (
    RecordScript,
    Simulator,
    SimulatorClient,
    SimulatorOptions,
    TaskScript,
    TranscodeScript,
    record_state,
    run,
    transcode_state,
)
from exporter.simulator.mixes import TRANSCODE_FAILURES, demo_records, demo_scripts, demo_transcodes
from exporter.simulator.record_lifecycle import RECORD_STATUSES, Controls
from exporter.simulator.transcode_lifecycle import TRANSCODE_STATUSES, task_type_of
from tests.fakes import CallbackReceiver as Receiver
from tests.fakes import FakeClock
from tests.harness import eventually
from tests.simcalls import call, code

APP = 1400000001
OTHER_APP = 1400000002
T0 = 1_700_000_000.0
RECORD_KEY, TRANSCODE_KEY, PUSH_KEY = "record-key", "transcode-key", "push-key"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def sim_options(clock: FakeClock) -> dict[str, Any]:
    """Every simulator here runs on the test's manual clock (unless given another), without a rate limit."""
    return {"clock": clock, "rate_limit": 0}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def record(sim: Simulator, task_id: str) -> dict[str, Any]:
    return call(sim, "DescribeOnlineRecord", {"SdkAppId": APP, "TaskId": task_id})


def transcode(sim: Simulator, task_id: str) -> dict[str, Any]:
    return call(sim, "DescribeTranscode", {"SdkAppId": APP, "TaskId": task_id})


def listed(sim: Simulator, task_type: str, **paging: int) -> dict[str, Any]:
    return call(sim, "DescribeRunningTasks", {"SdkAppID": APP, "TaskType": task_type, **paging})


def start_record(sim: Simulator, user: str = "tic_record_user_880528_a", **script: Any) -> str:
    params = {"SdkAppId": APP, "RoomId": 880528, "RecordUserId": user, "RecordUserSig": "sig",
              "ExtraData": json.dumps({"simulator": script})}
    answer = call(sim, "StartOnlineRecord", params)
    assert set(answer) == {"TaskId", "RequestId"}, answer
    return str(answer["TaskId"])


def control(sim: Simulator, action: str, task_id: str) -> str:
    return code(call(sim, f"{action}OnlineRecord", {"SdkAppId": APP, "TaskId": task_id}))


def signed_by(body: dict[str, Any], key: str) -> bool:
    return body["Sign"] == hashlib.md5(f"{key}{body['ExpireTime']}".encode()).hexdigest()


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


# --------------------------------------------------------------------------- recordings over the API


def test_a_recording_over_the_api_pauses_resumes_stops_and_finishes(sim: Simulator, clock: FakeClock) -> None:
    task_id = start_record(sim, prepare_seconds=1, finish_seconds=20, interrupts_per_minute={"teacher": 6})
    first = record(sim, task_id)
    assert (first["Status"], first["RecordStartTime"], first["Interrupts"], first["ReplayUrl"]) == (
        "PREPARED", 0, None, None)
    assert control(sim, "Pause", task_id) == "UnsupportedOperation.InvalidTaskStatus"  # not recording yet
    clock.advance(11)
    assert control(sim, "Resume", task_id) == "UnsupportedOperation.InvalidTaskStatus"  # not paused
    assert control(sim, "Pause", task_id) == "success"
    assert record(sim, task_id)["Status"] == "PAUSED"
    clock.advance(30)
    assert control(sim, "Resume", task_id) == "success"
    assert record(sim, task_id)["Interrupts"] == [{"UserId": "teacher", "Count": 1}]  # 10 s recorded
    clock.advance(10)
    assert control(sim, "Stop", task_id) == "success"
    stopped = record(sim, task_id)
    assert (stopped["Status"], stopped["FinishReason"], stopped["TotalTime"], stopped["VideoInfos"]) == (
        "STOPPED", "USER_CALL", 0, [])  # not final: the video is being processed
    for action in ("Stop", "Pause", "Resume"):
        assert control(sim, action, task_id) == "UnsupportedOperation.TaskHasAlreadyStopped"
    clock.advance(20)
    done = record(sim, task_id)
    assert (done["Status"], done["TotalTime"], done["RecordStopTime"] - done["RecordStartTime"]) == (
        "FINISHED", 20_000, 50)
    assert done["OmittedDurations"] == [{"VideoTime": 10_000, "PauseTime": int((T0 + 11) * 1000),
                                         "ResumeTime": int((T0 + 41) * 1000)}]
    assert [(v["VideoType"], v["UserId"], v["VideoDuration"]) for v in done["VideoInfos"]] == [
        (2, "", 20_000), (0, "teacher", 20_000)]


def test_a_failed_recording_answers_its_error_once_it_ended(sim: Simulator, clock: FakeClock) -> None:
    task_id = start_record(sim, prepare_seconds=0, record_seconds=30, fail_with="FailedOperation.Record")
    assert record(sim, task_id)["Status"] == "RECORDING"
    clock.advance(30)
    assert code(record(sim, task_id)) == "FailedOperation.Record"
    clock.advance(3600)
    assert code(record(sim, task_id)) == "FailedOperation.Record"
    assert control(sim, "Stop", task_id) == "UnsupportedOperation.TaskHasAlreadyStopped"


@pytest.mark.parametrize(("params", "expected"), [
    ({"AutoStopTimeout": 299}, "InvalidParameter.RecordParameter"),
    ({"RecordUserSig": 1}, "InvalidParameter.BodyParameterTypeUnmatched"),
    ({"Colour": "red"}, "UnknownParameter"),
    ({"ExtraData": json.dumps({"simulator": {"finish_reason": "NEVER"}})}, "InvalidParameter.InvalidExtra"),
    ({"SdkAppId": OTHER_APP}, "UnauthorizedOperation.SdkAppId"),
])
def test_start_online_record_refuses_what_tiw_refuses(sim: Simulator, params: dict[str, Any], expected: str) -> None:
    base = {"SdkAppId": APP, "RoomId": 1, "RecordUserId": "tic_record_user_1_a", "RecordUserSig": "s"}
    assert code(call(sim, "StartOnlineRecord", base | params)) == expected


def test_a_record_user_id_in_use_is_refused_until_that_recording_stopped(sim: Simulator) -> None:
    first = start_record(sim, prepare_seconds=0)
    params = {"SdkAppId": APP, "RoomId": 2, "RecordUserId": "tic_record_user_880528_a", "RecordUserSig": "s"}
    assert code(call(sim, "StartOnlineRecord", params)) == "ResourceInUse.RecordUserId"
    assert control(sim, "Stop", first) == "success"
    assert code(call(sim, "StartOnlineRecord", params)) == "success"


def test_unknown_tasks_of_each_kind_are_not_found(sim: Simulator) -> None:
    push = sim.add_task(APP)
    assert code(record(sim, push)) == "InvalidParameter.TaskNotFound"  # ids are per kind
    assert code(transcode(sim, push)) == "InvalidParameter.TaskNotFound"
    assert control(sim, "Pause", "ghucnligqtgtvk2624mb") == "InvalidParameter.TaskNotFound"


# --------------------------------------------------------------------------- transcodes over the API


def test_a_transcode_over_the_api_learns_its_document_then_its_result(sim: Simulator, clock: FakeClock) -> None:
    script = json.dumps({"simulator": {"queued_seconds": 5, "processing_seconds": 20, "pages": 7}})
    created = call(sim, "CreateTranscode", {"SdkAppId": APP, "Url": "https://x.example.com/My%20Deck.pptx",
                                            "ThumbnailResolution": "200x200", "CompressFileType": "zip",
                                            "ExtraData": script})
    task_id = created["TaskId"]
    queued = transcode(sim, task_id)
    assert (queued["Status"], queued["Progress"], queued["Pages"], queued["Title"], queued["AssignTime"]) == (
        "QUEUED", 0, 0, "", None)
    assert (queued["CreateTime"], queued["FinishedTime"], queued["ResourceListUrl"]) == (int(T0), None, None)
    clock.advance(15)
    working = transcode(sim, task_id)
    assert (working["Status"], working["Progress"], working["Pages"], working["Title"]) == (
        "PROCESSING", 50, 7, "My Deck.pptx")
    assert (working["AssignTime"], working["ResultUrl"]) == (int(T0 + 5), "")
    clock.advance(10)
    done = transcode(sim, task_id)
    assert (done["Status"], done["Progress"], done["FinishedTime"]) == ("FINISHED", 100, int(T0 + 25))
    assert done["ResultUrl"].endswith(f"/{task_id}/index.html")  # dynamic (H5): a page
    assert done["ThumbnailUrl"] and done["CompressFileUrl"].endswith(".zip")


@pytest.mark.parametrize("failure", TRANSCODE_FAILURES)
def test_a_failed_transcode_answers_its_error_once_it_would_have_finished(
    sim: Simulator, clock: FakeClock, failure: str,
) -> None:
    task_id = sim.add_transcode(APP, TranscodeScript(0, 10, fail_with=failure))
    assert transcode(sim, task_id)["Status"] == "PROCESSING"
    clock.advance(10)
    assert code(transcode(sim, task_id)) == failure
    assert listed(sim, "TranscodeH5")["Total"] == 0


def test_create_transcode_refuses_a_url_that_is_not_http(sim: Simulator) -> None:
    answer = call(sim, "CreateTranscode", {"SdkAppId": APP, "Url": "ftp://x.example.com/a.pdf"})
    assert code(answer) == "InvalidParameter.UrlFormatError"
    assert code(call(sim, "CreateTranscode", {"SdkAppId": APP, "Url": "https://x/a.pdf", "IsStaticPPT": "no"})) == (
        "InvalidParameter.BodyParameterTypeUnmatched")


# --------------------------------------------------------------------------- the running list per TaskType


def test_each_task_type_lists_only_its_own_running_tasks(sim: Simulator) -> None:
    push = sim.add_task(APP)
    recording = sim.add_record(APP, RecordScript(queued_seconds=30))
    dynamic = sim.add_transcode(APP)
    static = sim.add_transcode(APP, url="https://x.example.com/handout.pdf")
    found = {task_type: [(t["TaskID"], t["TaskType"], t["Status"]) for t in listed(sim, task_type)["Tasks"]]
             for task_type in ("WhiteboardPush", "OnlineRecord", "TranscodeH5", "TranscodeJPG")}
    assert found == {
        "WhiteboardPush": [(push, "WhiteboardPush", "PROCESSING")],
        "OnlineRecord": [(recording, "OnlineRecord", "QUEUED")],
        "TranscodeH5": [(dynamic, "TranscodeH5", "QUEUED")],
        "TranscodeJPG": [(static, "TranscodeJPG", "QUEUED")],
    }
    (item,) = listed(sim, "OnlineRecord")["Tasks"]
    assert (item["RoomID"], item["FileURL"]) == (record(sim, recording)["RoomId"], "")
    (item,) = listed(sim, "TranscodeJPG")["Tasks"]
    assert (item["RoomID"], item["FileURL"]) == (0, "https://x.example.com/handout.pdf")


def test_recordings_page_like_pushes_and_leave_the_list_when_they_stop(sim: Simulator, clock: FakeClock) -> None:
    ids = [sim.add_record(APP, RecordScript(0), created_at=T0 - 60 * (5 - i)) for i in range(5)]
    sim.add_record(APP, RecordScript(0), created_at=T0 - 3 * 86400 - 1)  # beyond the list's three days
    pages = [listed(sim, "OnlineRecord", Offset=offset, Limit=2) for offset in (0, 2, 4)]
    assert [page["Total"] for page in pages] == [5, 5, 5]
    assert [t["TaskID"] for page in pages for t in page["Tasks"]] == ids
    assert control(sim, "Stop", ids[0]) == "success"
    assert [t["TaskID"] for t in listed(sim, "OnlineRecord")["Tasks"]] == ids[1:]
    assert record(sim, ids[0])["Status"] == "STOPPED"  # off the list, yet not final


def test_a_recording_can_be_kept_listed_until_it_finished(sim: Simulator, clock: FakeClock) -> None:
    kept = sim.add_record(APP, RecordScript(0, 10, finish_seconds=30, listed_until_finished=True))
    gone = sim.add_record(APP, RecordScript(0, 10, finish_seconds=30))
    clock.advance(20)
    assert [t["TaskID"] for t in listed(sim, "OnlineRecord")["Tasks"]] == [kept]
    assert (record(sim, kept)["Status"], record(sim, gone)["Status"]) == ("STOPPED", "STOPPED")
    clock.advance(20)
    assert listed(sim, "OnlineRecord")["Tasks"] == []


def test_a_processing_transcode_is_listed_with_its_progress(sim: Simulator, clock: FakeClock) -> None:
    task_id = sim.add_transcode(APP, TranscodeScript(0, 100))
    clock.advance(42)
    (item,) = listed(sim, "TranscodeH5")["Tasks"]
    assert (item["TaskID"], item["Status"], item["Progress"], item["CancelTime"]) == (task_id, "PROCESSING", 42, "")


# --------------------------------------------------------------------------- callbacks per kind


def _set_callbacks(sim: Simulator, url: str) -> None:
    for kind, key in (("OnlineRecord", RECORD_KEY), ("Transcode", TRANSCODE_KEY), ("WhiteboardPush", PUSH_KEY)):
        assert code(call(sim, f"Set{kind}Callback", {"SdkAppId": APP, "Callback": url})) == "success"
        assert code(call(sim, f"Set{kind}CallbackKey", {"SdkAppId": APP, "CallbackKey": key})) == "success"


def test_each_kinds_settings_are_its_own(sim: Simulator) -> None:
    call(sim, "SetOnlineRecordCallback", {"SdkAppId": APP, "Callback": "https://x.example.com/record"})
    call(sim, "SetOnlineRecordCallbackKey", {"SdkAppId": APP, "CallbackKey": RECORD_KEY})
    described = call(sim, "DescribeOnlineRecordCallback", {"SdkAppId": APP})
    assert (described["Callback"], described["CallbackKey"]) == ("https://x.example.com/record", RECORD_KEY)
    assert call(sim, "DescribeTranscodeCallback", {"SdkAppId": APP}) | {"RequestId": ""} == {
        "Callback": "", "CallbackKey": "", "RequestId": ""}
    assert call(sim, "DescribeWhiteboardPushCallback", {"SdkAppId": APP})["Callback"] == ""
    assert code(call(sim, "SetTranscodeCallback", {"SdkAppId": APP, "Callback": "ftp://x"})) == (
        "InvalidParameter.CallbackAddressFormatError")
    assert code(call(sim, "SetTranscodeCallbackKey", {"SdkAppId": APP, "CallbackKey": "k" * 65})) == (
        "InvalidParameterValue")


def test_a_recordings_callbacks_are_signed_with_the_recording_key(
    sim: Simulator, clock: FakeClock, receiver: Receiver,
) -> None:
    _set_callbacks(sim, receiver.url)
    task_id = sim.add_record(APP, RecordScript(1, 60, "AUTO", finish_seconds=10, exceptions_per_minute=2))
    clock.advance(2)
    (started,) = receiver.wait_for(1)
    assert (started["EventType"], started["SdkAppId"]) == ("OnlineRecordStarted", APP)
    assert signed_by(started, RECORD_KEY)
    assert set(started["EventData"]) == {"TaskId", "RoomId", "RecordUserId"}
    clock.advance(60)
    stopped = receiver.wait_for(2)[1]
    assert (stopped["EventType"], stopped["EventData"]["TaskId"]) == ("OnlineRecordStopped", task_id)
    clock.advance(10)
    finished = receiver.wait_for(3)[2]
    assert finished["EventType"] == "OnlineRecordFinished" and signed_by(finished, RECORD_KEY)
    data = finished["EventData"]
    assert (data["FinishReason"], data["ExceptionCnt"], data["TotalTime"], len(data["VideoInfos"])) == (
        "AUTO", 2, 60_000, 1)
    assert set(data) == {"TaskId", "RoomId", "GroupId", "RecordUserId", "FinishReason", "RecordStartTime",
                         "RecordStopTime", "TotalTime", "ExceptionCnt", "OmittedDurations", "VideoInfos"}
    assert [body["EventType"] for body in receiver.settle()] == [
        "OnlineRecordStarted", "OnlineRecordStopped", "OnlineRecordFinished"]
    assert (sim.stats()["record_callbacks_sent"], sim.stats()["callbacks_sent"]) == (3, 0)


def test_a_failed_recording_finishes_with_the_error_and_no_video(
    sim: Simulator, clock: FakeClock, receiver: Receiver,
) -> None:
    _set_callbacks(sim, receiver.url)
    sim.add_record(APP, RecordScript(1, finish_seconds=5, fail_with="FailedOperation.Record"))  # fails at start
    clock.advance(10)
    bodies = receiver.wait_for(2)
    assert [body["EventType"] for body in bodies] == ["OnlineRecordStopped", "OnlineRecordFinished"]
    data = bodies[1]["EventData"]
    assert (data["FinishReason"], data["Error"]["Code"], data["VideoInfos"], data["RecordStartTime"]) == (
        "EXCEPTION", "FailedOperation.Record", [], 0)


def test_a_transcodes_callbacks_report_progress_by_tenths_then_the_end_with_the_transcode_key(
    sim: Simulator, clock: FakeClock, receiver: Receiver,
) -> None:
    _set_callbacks(sim, receiver.url)
    task_id = sim.add_transcode(APP, TranscodeScript(0, 100, pages=3))
    clock.advance(10)
    receiver.wait_for(1, "TranscodeProgressChanged")
    clock.advance(5)  # 15: the same tenth, whether a tick sees it or not
    clock.advance(5)
    receiver.wait_for(2, "TranscodeProgressChanged")
    clock.advance(5)
    clock.advance(75)
    receiver.wait_for(1, "TranscodeFinished")
    bodies = receiver.settle()
    progress = [body["EventData"]["Progress"] for body in bodies if body["EventType"] == "TranscodeProgressChanged"]
    assert progress == [10, 20]  # one per new tenth; 100 is the end
    assert bodies[0]["EventData"] == {"TaskId": task_id, "Progress": 10, "Resolution": "1024x768",
                                      "Title": "lesson-1.pptx", "Pages": 3}
    finished = bodies[-1]
    assert finished["EventType"] == "TranscodeFinished" and signed_by(finished, TRANSCODE_KEY)
    assert (finished["EventData"]["TaskId"], finished["EventData"]["Pages"]) == (task_id, 3)
    assert "Error" not in finished["EventData"] and finished["EventData"]["ResultUrl"]
    assert all(signed_by(body, TRANSCODE_KEY) for body in bodies)


def test_a_failed_transcode_finishes_with_the_error(sim: Simulator, clock: FakeClock, receiver: Receiver) -> None:
    _set_callbacks(sim, receiver.url)
    sim.add_transcode(APP, TranscodeScript(0, 1, fail_with="FailedOperation.FileDownloadFail"))
    clock.advance(2)
    (finished,) = receiver.wait_for(1, "TranscodeFinished")
    assert finished["EventData"]["Error"]["Code"] == "FailedOperation.FileDownloadFail"
    assert finished["EventData"]["ResultUrl"] == ""


def test_each_kind_goes_to_its_own_url_and_none_without_one(make_sim: Callable[..., Simulator]) -> None:
    records, transcodes = Receiver(), Receiver()
    try:
        sim = make_sim()
        SimulatorClient(sim.url).configure_callbacks(records.url, RECORD_KEY, kind="record")
        sim.configure_callbacks(transcodes.url, TRANSCODE_KEY, kind="transcode")
        sim.add_task(APP, TaskScript(0))  # no push URL: no push callback anywhere
        sim.add_record(APP, RecordScript(0))
        sim.add_transcode(APP, TranscodeScript(0, 0))
        assert [b["EventType"] for b in records.wait_for(1)] == ["OnlineRecordStarted"]
        assert [b["EventType"] for b in transcodes.wait_for(1)] == ["TranscodeFinished"]
        assert signed_by(records.bodies[0], RECORD_KEY) and signed_by(transcodes.bodies[0], TRANSCODE_KEY)
        assert len(records.settle()) == len(transcodes.settle()) == 1
        with pytest.raises(ValueError):
            sim.configure_callbacks(records.url, "", kind="snapshot")
    finally:
        records.close()
        transcodes.close()


def test_backdated_recordings_and_transcodes_replay_no_callbacks(sim: Simulator, receiver: Receiver) -> None:
    _set_callbacks(sim, receiver.url)
    sim.add_record(APP, RecordScript(0, 10, finish_seconds=1), created_at=T0 - 600)
    sim.add_transcode(APP, TranscodeScript(0, 10), created_at=T0 - 600)
    assert receiver.settle() == []


# --------------------------------------------------------------------------- faults, stats and control hooks


def test_faults_and_the_rate_window_are_per_action_for_the_new_actions(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim()
    task_id = sim.add_transcode(APP)
    sim.set_fault("internal_error", action="DescribeOnlineRecord")
    assert code(transcode(sim, task_id)) == "success"
    assert code(record(sim, "ghucnligqtgtvk2624mb")) == "InternalError"
    sim.set_fault("wrong_types", count=1, action="DescribeTranscode")
    assert transcode(sim, task_id)["Progress"] == "half"
    sim.rate_limit = 1
    settings = [code(call(sim, "DescribeOnlineRecordCallback", {"SdkAppId": APP})) for _ in range(2)]
    assert settings == ["success", "RequestLimitExceeded"]
    assert code(call(sim, "DescribeTranscodeCallback", {"SdkAppId": APP})) == "success"  # its own window
    assert sim.stats()["requests"]["DescribeTranscode"] == {"success": 1, "fault:wrong_types": 1}


def test_the_control_hooks_add_tasks_of_each_kind_and_stats_count_them(sim: Simulator, clock: FakeClock) -> None:
    client = SimulatorClient(sim.url)
    recording = client.add_record(APP, "my_recording", prepare_seconds=0, pauses=[[0, None]])
    document = client.add_transcode(APP, url="https://x.example.com/a.docx", queued_seconds=0, pages=2)
    push = client.add_task(APP, "my_recording")  # the same id in another kind
    assert (recording, push) == ("my_recording", "my_recording")
    assert record(sim, recording)["Status"] == "PAUSED"
    assert listed(sim, "TranscodeJPG")["Tasks"][0]["TaskID"] == document
    stats = client.stats()
    assert (stats["record_tasks"]["PAUSED"], stats["transcode_tasks"]["PROCESSING"], stats["tasks"]["PREPARED"]) == (
        1, 1, 1)
    for bad in ({"kind": "snapshot"}, {"kind": "record", "colour": 1}, {"kind": "transcode", "url": 3},
                {"kind": "record", "task_id": "my_recording"}, {"kind": "transcode", "sdk_app_id": 99}):
        answer = requests.post(sim.url + "/_sim/tasks", json={"sdk_app_id": APP} | bad, timeout=5)
        assert answer.status_code == 400 and "error" in answer.json(), bad


def test_the_same_seed_gives_the_same_ids_per_kind_and_other_kinds_leave_push_ids_alone(
    make_sim: Callable[..., Simulator],
) -> None:
    first, second = make_sim(seed=5), make_sim(seed=5)
    first.add_record(APP)
    first.add_transcode(APP)
    assert first.add_task(APP) == second.add_task(APP)  # each kind draws from its own RNG
    second.add_record(APP)
    assert first.add_record(APP) == second.add_record(APP)
    params = {"SdkAppId": APP, "RoomId": 1, "RecordUserId": "tic_record_user_1_a", "RecordUserSig": "s"}
    assert call(first, "StartOnlineRecord", params)["TaskId"] == call(second, "StartOnlineRecord", params)["TaskId"]


# --------------------------------------------------------------------------- the demo, when asked


def test_the_demo_shows_every_recording_and_transcode_state_within_two_minutes(
    sim: Simulator, clock: FakeClock,
) -> None:
    ids = sim.populate_demo_kinds()
    records, transcodes = ids[:len(demo_records())], ids[len(demo_records()):]
    assert len(transcodes) == len(demo_transcodes())
    seen: set[str] = set()
    for _ in range(12):
        for answer in [record(sim, task_id) for task_id in records] + [transcode(sim, i) for i in transcodes]:
            seen |= {answer.get("Status", ""), answer.get("FinishReason", ""), code(answer)}
        clock.advance(10)
    assert seen >= {*RECORD_STATUSES, *TRANSCODE_STATUSES, "AUTO", "USER_CALL", "EXCEPTION", "FORCE_STOP",
                    "FailedOperation.Record", "FailedOperation.FileFormatError",
                    "LimitExceeded.TranscodePagesLimitation"}


@pytest.mark.parametrize("demo_kinds", [False, True])
def test_simulate_adds_recordings_and_transcodes_to_the_demo_only_with_the_option(demo_kinds: bool) -> None:
    lines: list[str] = []
    stop = threading.Event()
    options = SimulatorOptions(demo=True, spawn_every=0, demo_kinds=demo_kinds)
    runner = threading.Thread(target=run, args=(options,), kwargs={"stop": stop, "out": lines.append})
    runner.start()
    try:
        url = eventually(lambda: lines and lines[0].rsplit(" ", 1)[-1], timeout=5)
        stats = eventually(lambda: SimulatorClient(url).stats() if len(lines) > 2 else None, timeout=5)
    finally:
        stop.set()
        runner.join(5)
    others = sum(stats["record_tasks"].values()) + sum(stats["transcode_tasks"].values())
    assert others == (len(demo_records()) + len(demo_transcodes()) if demo_kinds else 0)
    assert sum(stats["tasks"].values()) == len(demo_scripts())  # the pushes are the demo's either way
    assert any("recordings and transcodes" in line for line in lines) == demo_kinds
    assert SimulatorOptions().demo_kinds is False
