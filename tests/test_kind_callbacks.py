"""Every kind's callbacks on the one endpoint (``POST /callbacks/tiw``), over real HTTP to an in-process exporter.

Recordings (OnlineRecordStarted / Stopped / Finished) and transcodes (TranscodeProgressChanged / Finished)
beside pushes: each event's status and final rule, counters and progress never lower, FAILED from the
Error's code, one 400 line for a bad field; each kind verified with its own key per SdkAppId
(``callback_keys:`` with kinds); an unwatched kind answered and counted, not tracked; and the simulator,
configured through its Set<Kind>Callback(Key) actions, ending a recording and a transcode in /metrics by
callback alone.

The exporters here poll every hour (liveness off), and the simulator knows none of the tasks the tests
call back about: each task is polled once when it is first tracked (TaskNotFound, not yet final), so what
changes after that comes from the callbacks. ``tracked`` waits for that one poll, so its answer never
lands on top of a callback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.callbacks import sign
from exporter.config import ConfigError, build_settings
from exporter.lifecycle import TaskRecord
from exporter.model import task_key
from exporter.runtime import Exporter
from exporter.simulator import RecordScript, Simulator, TranscodeScript
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from tests.constants import SECRET_ID, SECRET_KEY
from tests.harness import eventually, metric, scrape
from tests.simcalls import call, code

APP, OTHER_APP, FLAT_APP, MIXED_APP = 1400000001, 1400000002, 1400000003, 1400000004
PUSH_KEY = "the-default-key"  # --callback-key-file: every SdkAppId and kind without a key of its own
RECORD_KEY, TRANSCODE_KEY = "record-key-of-the-first-app", "transcode-key-of-the-first-app"
FLAT_KEY = "every-kind-key-of-the-third-app"  # the old entry: SdkAppId -> file, every kind
MIXED_KEY, MIXED_RECORD_KEY = "all-key-of-the-fourth-app", "record-key-of-the-fourth-app"
ALL_KINDS = "push,record,transcode"


@pytest.fixture
def sim(make_sim: Callable[..., Simulator]) -> Simulator:
    return make_sim(rate_limit=0, sdk_app_ids=(APP, OTHER_APP, FLAT_APP, MIXED_APP))


def key_config(tmp_path: Path) -> Path:
    for name, key in (("record", RECORD_KEY), ("transcode", TRANSCODE_KEY), ("flat", FLAT_KEY),
                      ("mixed", MIXED_KEY), ("mixed-record", MIXED_RECORD_KEY)):
        (tmp_path / f"{name}.key").write_text(key + "\n")
    config = tmp_path / "config.yml"
    config.write_text(f"callback_keys:\n"
                      f"  {APP}:\n    record: {tmp_path / 'record.key'}\n    transcode: {tmp_path / 'transcode.key'}\n"
                      f"  {FLAT_APP}: {tmp_path / 'flat.key'}\n"
                      f"  {MIXED_APP}:\n    all: {tmp_path / 'mixed.key'}\n"
                      f"    record: {tmp_path / 'mixed-record.key'}\n")
    return config


def start_exporter(sim: Simulator, tmp_path: Path, kinds: str = ALL_KINDS) -> Exporter:
    settings = build_settings({"listen": "127.0.0.1:0", "endpoint": sim.url, "callback_key": PUSH_KEY,
                               "kinds": kinds, "interval": "1h", "liveness_interval": "0"}, key_config(tmp_path))
    return Exporter(settings, credentials=StaticCredentials(Credential(SECRET_ID, SECRET_KEY))).start()


@pytest.fixture
def exporter(sim: Simulator, tmp_path: Path) -> Iterator[Exporter]:
    running = start_exporter(sim, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def post(exporter: Exporter, event_type: str, data: dict[str, Any], key: str,
         app: int = APP) -> requests.Response:
    expire = int(time.time()) + 60
    body = {"Timestamp": int(time.time()), "SdkAppId": app, "ExpireTime": expire, "Sign": sign(key, expire),
            "EventType": event_type, "EventData": data}
    return requests.post(f"{exporter.url}/callbacks/tiw", json=body, timeout=5)


def record_of(exporter: Exporter, task_id: str, kind: str, app: int = APP) -> TaskRecord | None:
    return exporter.store.get(task_key(app, task_id, kind))


def tracked(exporter: Exporter, task_id: str, kind: str) -> TaskRecord:
    """The task, once its one poll on being tracked has answered (TaskNotFound: the simulator has no such task)."""
    return eventually(lambda: (r := record_of(exporter, task_id, kind)) is not None and r.last_error is not None
                      and r.last_error.code == "InvalidParameter.TaskNotFound" and r)


def callbacks_counted(exporter: Exporter) -> dict[tuple[str, str], float]:
    found = scrape(exporter.url)
    return {(dict(labels)["event_type"], dict(labels)["outcome"]): value for (name, labels), value in found.items()
            if name == "tiw_exporter_callbacks_total"}


STARTED = {"TaskId": "rec_1", "RoomId": 880528, "RecordUserId": "tic_record_user_880528"}
FINISHED = {"TaskId": "rec_1", "RoomId": 880528, "GroupId": "880528", "RecordUserId": "tic_record_user_880528",
            "FinishReason": "AUTO", "RecordStartTime": 1_700_000_000, "RecordStopTime": 1_700_000_100,
            "TotalTime": 85_000, "ExceptionCnt": 3, "OmittedDurations": [
                {"VideoTime": 40_000, "PauseTime": 1_700_000_040_000, "ResumeTime": 1_700_000_055_000}],
            "VideoInfos": [{"VideoId": "v1", "VideoType": 2}, {"VideoId": "v2", "VideoType": 0}]}


# --------------------------------------------------------------------------- recordings


def test_a_recording_is_recording_then_stopped_but_not_final_then_finished_by_its_callbacks(exporter) -> None:
    assert post(exporter, "OnlineRecordStarted", STARTED, RECORD_KEY).status_code == 200
    record = tracked(exporter, "rec_1", "record")
    assert (record.status, record.sources, record.final, record.latest.room_id) == (
        "RECORDING", frozenset({"callback"}), False, 880528)
    assert post(exporter, "OnlineRecordStopped", STARTED, RECORD_KEY).status_code == 200
    record = record_of(exporter, "rec_1", "record")
    assert (record.status, record.final, record.final_at) == ("STOPPED", False, None)  # the video is still processed
    assert post(exporter, "OnlineRecordStarted", STARTED, RECORD_KEY).status_code == 200  # late: changes nothing
    assert record_of(exporter, "rec_1", "record").status == "STOPPED"

    assert post(exporter, "OnlineRecordFinished", FINISHED, RECORD_KEY).status_code == 200
    record = record_of(exporter, "rec_1", "record")
    task = record.latest
    assert (record.status, record.final, record.finish_reason, record.ended) == ("FINISHED", True, "AUTO", "")
    assert (task.exception_cnt, task.total_time_ms, task.omitted_ms, task.videos, task.group_id) == (
        3, 85_000, 15_000, 2, "880528")  # read as DescribeOnlineRecord's answer is
    found = scrape(exporter.url)
    labels = {"sdk_app_id": APP, "task_id": "rec_1"}
    assert metric(found, "tiw_record_task_status", **labels, status="FINISHED") == 1
    assert metric(found, "tiw_record_task_status", **labels, status="STOPPED") == 0
    assert metric(found, "tiw_record_task_finish_reason", **labels, reason="AUTO") == 1
    assert metric(found, "tiw_record_task_exceptions_total", **labels) == 3
    assert metric(found, "tiw_record_task_videos", **labels) == 2
    assert metric(found, "tiw_record_tasks_finished_total", sdk_app_id=APP, reason="AUTO") == 1

    # delivered again with fewer exceptions (or out of order): counters never go down, it stays final
    assert post(exporter, "OnlineRecordFinished", FINISHED | {"ExceptionCnt": 1}, RECORD_KEY).status_code == 200
    assert post(exporter, "OnlineRecordStopped", STARTED, RECORD_KEY).status_code == 200
    record = record_of(exporter, "rec_1", "record")
    assert (record.status, record.latest.exception_cnt) == ("FINISHED", 3)
    counted = callbacks_counted(exporter)
    assert counted[("OnlineRecordStarted", "accepted")] == 2 and counted[("OnlineRecordStopped", "accepted")] == 2
    assert counted[("OnlineRecordFinished", "accepted")] == 2


def test_a_recording_finished_with_its_failure_code_ends_failed_and_with_another_error_does_not(exporter) -> None:
    for task_id in ("rec_failed", "rec_other_error"):
        assert post(exporter, "OnlineRecordStarted", STARTED | {"TaskId": task_id}, RECORD_KEY).status_code == 200
        tracked(exporter, task_id, "record")
    failed = FINISHED | {"TaskId": "rec_failed", "FinishReason": "EXCEPTION", "VideoInfos": [], "RecordStartTime": 0,
                         "Error": {"Code": "FailedOperation.Record", "Message": "code: 40004, im login failed"}}
    assert post(exporter, "OnlineRecordFinished", failed, RECORD_KEY).status_code == 200
    record = record_of(exporter, "rec_failed", "record")
    assert (record.status, record.ended, record.finish_reason, record.last_error.code) == (
        "FINISHED", "FAILED", "FAILED", "FailedOperation.Record")
    other = failed | {"TaskId": "rec_other_error", "Error": {"Code": "InternalError", "Message": "retry later"}}
    assert post(exporter, "OnlineRecordFinished", other, RECORD_KEY).status_code == 200
    record = record_of(exporter, "rec_other_error", "record")
    assert (record.final, record.ended, record.finish_reason, record.stop_error.code) == (
        True, "", "EXCEPTION", "InternalError")  # TIW's word: EXCEPTION; no failed recording's code
    found = scrape(exporter.url)
    assert metric(found, "tiw_record_task_failure_info", sdk_app_id=APP, task_id="rec_failed",
                  code="FailedOperation.Record") == 1
    assert metric(found, "tiw_record_task_finish_reason", sdk_app_id=APP, task_id="rec_failed", reason="FAILED") == 1
    assert metric(found, "tiw_record_tasks_finished_total", sdk_app_id=APP, reason="FAILED") == 1
    assert metric(found, "tiw_record_tasks_finished_total", sdk_app_id=APP, reason="EXCEPTION") == 1


# --------------------------------------------------------------------------- transcodes

PROGRESS = {"TaskId": "tc_1", "Progress": 30, "Resolution": "1024x768", "Title": "lesson-1.pptx", "Pages": 12}


def test_a_transcodes_progress_never_goes_down_and_its_end_is_final_at_100(exporter) -> None:
    assert post(exporter, "TranscodeProgressChanged", PROGRESS, TRANSCODE_KEY).status_code == 200
    record = tracked(exporter, "tc_1", "transcode")
    assert (record.status, record.latest.progress, record.latest.pages, record.latest.title) == (
        "PROCESSING", 30, 12, "lesson-1.pptx")
    assert post(exporter, "TranscodeProgressChanged", PROGRESS | {"Progress": 20}, TRANSCODE_KEY).status_code == 200
    assert record_of(exporter, "tc_1", "transcode").latest.progress == 30  # a late one: never lower
    assert post(exporter, "TranscodeProgressChanged", PROGRESS | {"Progress": 50}, TRANSCODE_KEY).status_code == 200
    assert record_of(exporter, "tc_1", "transcode").latest.progress == 50
    finished = {"TaskId": "tc_1", "ResultUrl": "https://x.example.com/tc_1/index.html", "Resolution": "1024x768",
                "Title": "lesson-1.pptx", "Pages": 12}  # no Progress: the simulator's sends none either
    assert post(exporter, "TranscodeFinished", finished, TRANSCODE_KEY).status_code == 200
    record = record_of(exporter, "tc_1", "transcode")
    assert (record.status, record.final, record.finish_reason, record.latest.progress) == (
        "FINISHED", True, "FINISHED", 100)
    assert post(exporter, "TranscodeProgressChanged", PROGRESS | {"Progress": 60}, TRANSCODE_KEY).status_code == 200
    assert (record_of(exporter, "tc_1", "transcode").status, record_of(exporter, "tc_1", "transcode").latest.progress
            ) == ("FINISHED", 100)  # nothing changes after the end
    found = scrape(exporter.url)
    labels = {"sdk_app_id": APP, "task_id": "tc_1"}
    assert metric(found, "tiw_transcode_task_status", **labels, status="FINISHED") == 1
    assert metric(found, "tiw_transcode_task_progress_ratio", **labels) == 1.0
    assert metric(found, "tiw_transcode_tasks_finished_total", sdk_app_id=APP, reason="FINISHED") == 1


def test_a_transcode_finished_with_an_error_fails_with_that_code(exporter) -> None:
    assert post(exporter, "TranscodeProgressChanged", PROGRESS | {"TaskId": "tc_bad"}, TRANSCODE_KEY).status_code == 200
    tracked(exporter, "tc_bad", "transcode")
    finished = {"TaskId": "tc_bad", "ResultUrl": "", "Pages": 12,
                "Error": {"Code": "FailedOperation.FileDownloadFail", "Message": "the file cannot be downloaded"}}
    assert post(exporter, "TranscodeFinished", finished, TRANSCODE_KEY).status_code == 200
    record = record_of(exporter, "tc_bad", "transcode")
    assert (record.status, record.ended, record.finish_reason, record.last_error.code, record.latest.progress) == (
        "FINISHED", "FAILED", "FAILED", "FailedOperation.FileDownloadFail", 30)
    found = scrape(exporter.url)
    assert metric(found, "tiw_transcode_task_failure_info", sdk_app_id=APP, task_id="tc_bad",
                  code="FailedOperation.FileDownloadFail") == 1
    assert metric(found, "tiw_transcode_failures_total", sdk_app_id=APP, code="FailedOperation.FileDownloadFail") == 1
    assert metric(found, "tiw_transcode_tasks_finished_total", sdk_app_id=APP, reason="FAILED") == 1


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("event_type", "fields", "problem"), [
    ("OnlineRecordFinished", {"ExceptionCnt": -1}, "ExceptionCnt is negative"),
    ("OnlineRecordFinished", {"TotalTime": "long"}, "TotalTime is str, expected an integer"),
    ("OnlineRecordFinished", {"OmittedDurations": [1]}, "OmittedDurations is not a list of objects"),
    ("OnlineRecordFinished", {"VideoInfos": "two"}, "VideoInfos is not a list of objects"),
    ("OnlineRecordFinished", {"Error": {"Code": ["FailedOperation.Record"]}}, "Code is list"),
    ("OnlineRecordStopped", {"RoomId": True}, "RoomId is a boolean"),
    ("OnlineRecordStarted", {"TaskId": "not a task id!"}, "task_id must be 1-64 characters"),
])
def test_a_bad_recording_field_is_a_one_line_400_that_changes_nothing(exporter, event_type, fields,
                                                                      problem) -> None:
    assert post(exporter, "OnlineRecordStarted", STARTED | {"TaskId": "rec_kept"}, RECORD_KEY).status_code == 200
    before = tracked(exporter, "rec_kept", "record")
    answer = post(exporter, event_type, FINISHED | {"TaskId": "rec_kept"} | fields, RECORD_KEY)
    assert answer.status_code == 400 and problem in answer.json()["error"] and "\n" not in answer.json()["error"]
    assert record_of(exporter, "rec_kept", "record") == before
    assert callbacks_counted(exporter)[(event_type, "bad_request")] == 1


@pytest.mark.parametrize(("event_type", "fields", "problem"), [
    ("TranscodeProgressChanged", {"Progress": 101}, "Progress is above 100"),
    ("TranscodeProgressChanged", {"Pages": 2**64}, "Pages is larger than an int64"),
    ("TranscodeFinished", {"Title": {"text": "x"}}, "Title is dict, expected a string"),
])
def test_a_bad_transcode_field_is_a_one_line_400_and_nothing_is_tracked(exporter, event_type, fields,
                                                                        problem) -> None:
    answer = post(exporter, event_type, PROGRESS | {"TaskId": "tc_refused"} | fields, TRANSCODE_KEY)
    assert answer.status_code == 400 and problem in answer.json()["error"]
    assert record_of(exporter, "tc_refused", "transcode") is None


def test_each_kind_of_an_sdk_app_id_is_verified_with_that_kinds_key(exporter) -> None:
    def status(event_type: str, key: str, app: int, task_id: str) -> int:
        data = PROGRESS if event_type.startswith("Transcode") else STARTED
        return post(exporter, event_type, data | {"TaskId": task_id}, key, app).status_code

    # APP: a record and a transcode key of its own; its pushes use the default key
    assert status("OnlineRecordStarted", PUSH_KEY, APP, "a_rec_push_key") == 403  # its record key only
    assert status("OnlineRecordStarted", TRANSCODE_KEY, APP, "a_rec_tc_key") == 403
    assert status("OnlineRecordStarted", RECORD_KEY, APP, "a_rec") == 200
    assert status("TranscodeProgressChanged", RECORD_KEY, APP, "a_tc_rec_key") == 403
    assert status("TranscodeProgressChanged", TRANSCODE_KEY, APP, "a_tc") == 200
    assert status("WhiteboardPushStarted", RECORD_KEY, APP, "a_push_rec_key") == 403
    assert status("WhiteboardPushStarted", PUSH_KEY, APP, "a_push") == 200
    # OTHER_APP: nothing of its own, the default key for every kind
    assert status("OnlineRecordStarted", PUSH_KEY, OTHER_APP, "o_rec") == 200
    assert status("OnlineRecordStarted", RECORD_KEY, OTHER_APP, "o_rec_other_apps_key") == 403
    # FLAT_APP: the old entry (SdkAppId: file) signs every kind, and only it
    assert status("OnlineRecordStarted", FLAT_KEY, FLAT_APP, "f_rec") == 200
    assert status("TranscodeProgressChanged", FLAT_KEY, FLAT_APP, "f_tc") == 200
    assert status("WhiteboardPushStarted", PUSH_KEY, FLAT_APP, "f_push_default") == 403
    # MIXED_APP: `all` for the kinds not named, its record key for recordings
    assert status("WhiteboardPushStarted", MIXED_KEY, MIXED_APP, "m_push") == 200
    assert status("OnlineRecordStarted", MIXED_KEY, MIXED_APP, "m_rec_all_key") == 403
    assert status("OnlineRecordStarted", MIXED_RECORD_KEY, MIXED_APP, "m_rec") == 200

    assert {r.task_id for r in exporter.store.snapshot()} == {"a_rec", "a_tc", "a_push", "o_rec", "f_rec", "f_tc",
                                                              "m_push", "m_rec"}
    assert exporter.callbacks.key_for(APP, "record") == (RECORD_KEY, None)
    assert exporter.callbacks.key_for(APP) == (PUSH_KEY, None)  # a push: the default
    assert exporter.callbacks.key_for(MIXED_APP, "transcode") == (MIXED_KEY, None)
    found = scrape(exporter.url)
    for secret in (f"callback_key/{APP}/record", f"callback_key/{APP}/transcode", f"callback_key/{FLAT_APP}",
                   f"callback_key/{MIXED_APP}", f"callback_key/{MIXED_APP}/record"):
        assert metric(found, "tiw_exporter_secret_reload_success", secret=secret) == 1
    shown = repr(exporter.callbacks.__dict__) + requests.get(f"{exporter.url}/metrics", timeout=5).text
    for key in (RECORD_KEY, TRANSCODE_KEY, FLAT_KEY, MIXED_KEY, MIXED_RECORD_KEY, PUSH_KEY):
        assert key not in shown


def test_an_unwatched_kinds_event_is_answered_and_counted_but_not_tracked(sim, tmp_path) -> None:
    exporter = start_exporter(sim, tmp_path, kinds="push,record")  # the default: no transcodes
    try:
        assert post(exporter, "TranscodeProgressChanged", PROGRESS, TRANSCODE_KEY).status_code == 200
        assert post(exporter, "TranscodeFinished", PROGRESS, TRANSCODE_KEY).status_code == 200
        assert post(exporter, "TranscodeFinished", PROGRESS, RECORD_KEY).status_code == 403  # verified all the same
        assert post(exporter, "PPT2H5ProgressChanged", PROGRESS, RECORD_KEY).status_code == 200  # no kind's event
        assert post(exporter, "OnlineRecordStarted", STARTED, RECORD_KEY).status_code == 200
        assert [r.key for r in exporter.store.snapshot()] == [task_key(APP, "rec_1", "record")]
        assert callbacks_counted(exporter) == {
            ("TranscodeProgressChanged", "unwatched_kind"): 1, ("TranscodeFinished", "unwatched_kind"): 1,
            ("unknown", "bad_sign"): 1, ("other", "unknown_event"): 1, ("OnlineRecordStarted", "accepted"): 1}
    finally:
        exporter.stop()


@pytest.mark.parametrize(("text", "problem"), [
    ("callback_keys:\n  1400000001:\n    snapshot: /dev/null\n", "SdkAppId 1400000001: unknown kind 'snapshot' "
                                                               "(known: push, record, transcode, all)"),
    ("callback_keys:\n  1400000001: [/dev/null]\n", "SdkAppId 1400000001: must be a key file, or a mapping of kind"),
    ("callback_keys:\n  1400000001: {}\n", "SdkAppId 1400000001: must be a key file, or a mapping of kind"),
    ("callback_keys:\n  1400000001:\n    record: /nonexistent/key\n",
     "cannot read record callback key of SdkAppId 1400000001 file"),
])
def test_bad_kind_keys_are_one_line_config_errors(tmp_path, text, problem) -> None:
    config = tmp_path / "config.yml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        build_settings({}, config)
    assert problem in str(caught.value) and "\n" not in str(caught.value).strip()


def test_callback_keys_read_as_sdk_app_id_file_and_kind(tmp_path) -> None:
    settings = build_settings({}, key_config(tmp_path))
    assert settings.sources.callback_keys == (
        (APP, tmp_path / "record.key", "record"), (APP, tmp_path / "transcode.key", "transcode"),
        (FLAT_APP, tmp_path / "flat.key", ""), (MIXED_APP, tmp_path / "mixed.key", ""),
        (MIXED_APP, tmp_path / "mixed-record.key", "record"))


# --------------------------------------------------------------------------- end to end, through the simulator


def test_the_simulators_callbacks_end_a_recording_and_a_transcode_in_metrics_without_a_poll(sim, tmp_path) -> None:
    """TIW (the simulator, set up through its own Set<Kind>Callback(Key) actions) calls the exporter; with an
    hour between polls, only the callbacks can say the recording and the transcode finished."""
    exporter = start_exporter(sim, tmp_path)
    try:
        url = f"{exporter.url}/callbacks/tiw"
        for settings, key in (("OnlineRecord", RECORD_KEY), ("Transcode", TRANSCODE_KEY)):
            assert code(call(sim, f"Set{settings}Callback", {"SdkAppId": APP, "Callback": url})) == "success"
            assert code(call(sim, f"Set{settings}CallbackKey", {"SdkAppId": APP, "CallbackKey": key})) == "success"
        recording = sim.add_record(APP, RecordScript(prepare_seconds=0, record_seconds=2, finish_seconds=1,
                                                     exceptions_per_minute=60))
        transcode = sim.add_transcode(APP, TranscodeScript(queued_seconds=0, processing_seconds=3, pages=4))

        def finished() -> bool:
            found = scrape(exporter.url)
            return (metric(found, "tiw_record_task_status", sdk_app_id=APP, task_id=recording, status="FINISHED") == 1
                    and metric(found, "tiw_transcode_task_status", sdk_app_id=APP, task_id=transcode,
                               status="FINISHED") == 1)

        eventually(finished, timeout=30, explain=lambda: repr(exporter.store.snapshot()))
        requests_made = sim.stats()["requests"]
        # each was polled once, when its first callback made it tracked, and answered it was not over yet (the
        # preflight's probes of a task that cannot exist answer TaskNotFound: they are not polls)
        assert requests_made["DescribeOnlineRecord"].get("success") == 1
        assert requests_made["DescribeTranscode"].get("success") == 1
        for task_id, kind in ((recording, "record"), (transcode, "transcode")):
            record = record_of(exporter, task_id, kind)
            assert record.sources == frozenset({"callback"}) and record.final_at >= record.last_success
        assert record_of(exporter, transcode, "transcode").latest.pages == 4
        counted = callbacks_counted(exporter)
        assert counted[("OnlineRecordFinished", "accepted")] == 1 and counted[("TranscodeFinished", "accepted")] == 1
    finally:
        exporter.stop()
