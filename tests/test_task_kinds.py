"""Recordings and transcodes beside pushes, end to end through the simulator: polled with their own
Describe action, found by liveness and discovery, final by their kind's rule, failed by their codes,
exported as their own families, kept in the state file, and selectable with ``--kinds``."""

from __future__ import annotations

import pytest
import requests
from tencentcloud.common.credential import Credential

from exporter.kind_answers import RecordTask, TranscodeTask, parse_record_task, parse_transcode_task
from exporter.kinds import KINDS, markdown_table
from exporter.lifecycle import FAILED, TaskRecord, merge_result
from exporter.model import task_key
from exporter.simulator import Simulator
from exporter.simulator.record_lifecycle import RecordScript
from exporter.simulator.tasks import TaskScript
from exporter.simulator.transcode_lifecycle import TranscodeScript
from exporter.tencentcloud.errors import BadResponse
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.harness import eventually, metric, running_exporter, scrape

ALL_KINDS = "push,record,transcode"
TOKEN = "kinds-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def simulator():
    with Simulator(credentials={SECRET_ID: SECRET_KEY}, rate_limit=20) as sim:
        yield sim


def exporter_for(simulator: Simulator, **flags):
    flags.setdefault("interval", "1s")
    flags.setdefault("kinds", ALL_KINDS)
    flags.setdefault("api_token", TOKEN)
    return running_exporter(simulator.url, Credential(SECRET_ID, SECRET_KEY), **flags)


def add(exporter, kind: str, task_id: str, app: int = APP) -> requests.Response:
    return requests.post(f"{exporter.url}/api/v1/tasks", json={"sdk_app_id": app, "task_id": task_id, "kind": kind},
                         headers=AUTH, timeout=5)


def test_a_recording_is_polled_through_stopped_to_finished_and_exported(simulator):
    task_id = simulator.add_record(APP, RecordScript(prepare_seconds=0.5, record_seconds=2.0, finish_seconds=2.0,
                                                     exceptions_per_minute=120, interrupts_per_minute={"u1": 60},
                                                     pauses=((0.5, 0.5),)))
    with exporter_for(simulator) as exporter:
        assert add(exporter, "record", task_id).status_code == 201
        key = task_key(APP, task_id, "record")
        eventually(lambda: exporter.store.get(key).status == "STOPPED", timeout=15)
        stopped = exporter.store.get(key)
        assert not stopped.final and stopped.pollable  # STOPPED: the video is still processed, polled on
        eventually(lambda: exporter.store.get(key).final, timeout=15)
        found = scrape(exporter.url)
    labels = {"sdk_app_id": APP, "task_id": task_id}
    assert metric(found, "tiw_record_task_status", status="FINISHED", **labels) == 1
    assert metric(found, "tiw_record_task_status", status="STOPPED", **labels) == 0
    assert metric(found, "tiw_record_task_finish_reason", reason="AUTO", **labels) == 1
    assert metric(found, "tiw_record_task_exceptions_total", **labels) >= 1
    assert metric(found, "tiw_record_task_interrupts_total", **labels) >= 1
    assert metric(found, "tiw_record_task_videos", **labels) == 2  # the whiteboard's and u1's camera
    assert metric(found, "tiw_record_task_recorded_seconds", **labels) > 0
    assert metric(found, "tiw_record_task_omitted_seconds", **labels) == pytest.approx(0.5, abs=0.01)
    assert metric(found, "tiw_record_tasks_started_total", sdk_app_id=APP) == 1
    assert metric(found, "tiw_record_tasks_finished_total", sdk_app_id=APP, reason="AUTO") == 1
    assert metric(found, "tiw_record_tasks", sdk_app_id=APP, status="FINISHED") == 1
    assert metric(found, "tiw_push_task_status", task_id=task_id, status="STOPPED") is None  # not a push
    assert metric(found, "tiw_exporter_api_requests_total", action="DescribeOnlineRecord", outcome="success") >= 2
    assert metric(found, "tiw_exporter_api_requests_total", action="DescribeWhiteboardPush", outcome="success") \
        is None


def test_a_failed_recording_ends_failed_with_its_code(simulator):
    task_id = simulator.add_record(APP, RecordScript(prepare_seconds=0, fail_with="FailedOperation.Record"))
    with exporter_for(simulator) as exporter:
        add(exporter, "record", task_id)
        key = task_key(APP, task_id, "record")
        eventually(lambda: exporter.store.get(key).ended == FAILED, timeout=15)
        found = scrape(exporter.url)
    labels = {"sdk_app_id": APP, "task_id": task_id}
    assert metric(found, "tiw_record_task_finish_reason", reason="FAILED", **labels) == 1
    assert metric(found, "tiw_record_task_status", status="FINISHED", **labels) == 1  # the kind's ended status
    assert metric(found, "tiw_record_task_failure_info", code="FailedOperation.Record", **labels) == 1
    assert metric(found, "tiw_record_tasks_finished_total", sdk_app_id=APP, reason="FAILED") == 1


def test_a_transcode_is_polled_to_finished_with_its_times_observed_once(simulator):
    task_id = simulator.add_transcode(APP, TranscodeScript(queued_seconds=1, processing_seconds=2, pages=12))
    with exporter_for(simulator) as exporter:
        assert add(exporter, "transcode", task_id).status_code == 201
        key = task_key(APP, task_id, "transcode")
        eventually(lambda: exporter.store.get(key).final, timeout=15)
        found = scrape(exporter.url)
    labels = {"sdk_app_id": APP, "task_id": task_id}
    assert metric(found, "tiw_transcode_task_status", status="FINISHED", **labels) == 1
    assert metric(found, "tiw_transcode_task_finish_reason", reason="FINISHED", **labels) == 1
    assert metric(found, "tiw_transcode_task_progress_ratio", **labels) == 1.0
    assert metric(found, "tiw_transcode_task_pages", **labels) == 12
    assert metric(found, "tiw_transcode_task_assign_timestamp_seconds", **labels) >= \
        metric(found, "tiw_transcode_task_create_timestamp_seconds", **labels)
    assert metric(found, "tiw_transcode_queue_wait_seconds_count", sdk_app_id=APP) == 1
    assert metric(found, "tiw_transcode_processing_seconds_count", sdk_app_id=APP) == 1
    assert metric(found, "tiw_transcode_tasks_finished_total", sdk_app_id=APP, reason="FINISHED") == 1


def test_a_failed_transcode_is_counted_by_its_code(simulator):
    task_id = simulator.add_transcode(APP, TranscodeScript(queued_seconds=0, processing_seconds=0.5,
                                                           fail_with="FailedOperation.FileDownloadFail"))
    with exporter_for(simulator) as exporter:
        add(exporter, "transcode", task_id)
        key = task_key(APP, task_id, "transcode")
        eventually(lambda: exporter.store.get(key).ended == FAILED, timeout=15)
        found = scrape(exporter.url)
    assert metric(found, "tiw_transcode_failures_total", sdk_app_id=APP,
                  code="FailedOperation.FileDownloadFail") == 1
    assert metric(found, "tiw_transcode_task_failure_info", sdk_app_id=APP, task_id=task_id,
                  code="FailedOperation.FileDownloadFail") == 1
    assert metric(found, "tiw_transcode_tasks_finished_total", sdk_app_id=APP, reason="FAILED") == 1


def test_discovery_finds_every_watched_kind_and_liveness_sends_a_gone_recording_to_an_urgent_query(simulator):
    push = simulator.add_task(APP, TaskScript(prepare_seconds=0))
    recording = simulator.add_record(APP, RecordScript(prepare_seconds=0, record_seconds=4, finish_seconds=0.5))
    transcode = simulator.add_transcode(APP, TranscodeScript(queued_seconds=0, processing_seconds=30))
    with exporter_for(simulator, interval="60s", discover_sdk_app_ids=(str(APP),), discover_interval="1s",
                      liveness_interval="1s") as exporter:
        for key in ((APP, push), (APP, recording, "record"), (APP, transcode, "transcode")):
            eventually(lambda key=key: exporter.store.get(key) is not None, timeout=15)
        record_key = (APP, recording, "record")
        eventually(lambda: exporter.store.get(record_key).status == "RECORDING", timeout=15)
        # a 60 s interval: only liveness seeing it leave the running list explains a poll this soon
        eventually(lambda: exporter.store.get(record_key).status in ("STOPPED", "FINISHED"), timeout=15)
        assert exporter.store.get((APP, recording)) is None  # no push of that id was made up


def test_unwatched_kinds_are_refused_by_the_task_api_and_not_polled(simulator):
    task_id = simulator.add_transcode(APP, TranscodeScript())
    with exporter_for(simulator, kinds="push,record") as exporter:
        answer = add(exporter, "transcode", task_id)
        assert answer.status_code == 400 and "not watched" in answer.json()["error"]
        assert add(exporter, "lecture", task_id).status_code == 400
        assert len(exporter.accounts.by_name["default"].kinds) == 2


def test_kinds_survive_a_restart_through_the_state_file(simulator, tmp_path):
    task_id = simulator.add_record(APP, RecordScript(prepare_seconds=0))
    state = tmp_path / "state.db"
    with exporter_for(simulator, state_file=str(state), state_save_interval="1s") as exporter:
        add(exporter, "record", task_id)
        key = task_key(APP, task_id, "record")
        eventually(lambda: exporter.store.get(key).status == "RECORDING", timeout=15)
    with exporter_for(simulator, state_file=str(state)) as exporter:
        restored = exporter.store.get(key)
        assert restored is not None and restored.kind == "record" and isinstance(restored.latest, RecordTask)
        assert exporter.store.get((APP, task_id)) is None
        got = requests.get(f"{exporter.url}/api/v1/tasks/record/{APP}/{task_id}", headers=AUTH, timeout=5)
        assert got.status_code == 200 and got.json()["kind"] == "record"
        assert requests.get(f"{exporter.url}/api/v1/tasks/{APP}/{task_id}", headers=AUTH, timeout=5).status_code \
            == 404


def test_the_kinds_rank_lets_recording_and_paused_alternate_but_never_undo_a_stop():
    record = TaskRecord(APP, "r1", frozenset({"api"}), 0.0, kind="record")
    for status, expected in (("RECORDING", "RECORDING"), ("PAUSED", "PAUSED"), ("RECORDING", "RECORDING"),
                             ("STOPPED", "STOPPED"), ("RECORDING", "STOPPED"), ("FINISHED", "FINISHED"),
                             ("PAUSED", "FINISHED")):
        record = merge_result(record, RecordTask(APP, "r1", status, exception_cnt=3), 1.0)
        assert record.status == expected
    assert record.final
    transcode = TaskRecord(APP, "t1", frozenset({"api"}), 0.0, kind="transcode")
    transcode = merge_result(transcode, TranscodeTask(APP, "t1", "PROCESSING", progress=40), 1.0)
    assert not transcode.final and transcode.finish_reason == ""
    transcode = merge_result(transcode, TranscodeTask(APP, "t1", "FINISHED", progress=100), 2.0)
    assert transcode.final and transcode.finish_reason == "FINISHED"


def test_the_readme_shows_the_kinds_table_as_the_code_has_it():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- kinds-table:start -->\n", "<!-- kinds-table:end -->"
    assert start in readme and end in readme
    assert readme.split(start, 1)[1].split(end, 1)[0] == markdown_table()
    assert set(KINDS) == {"push", "record", "transcode"}


def test_a_refused_describe_of_one_kind_pauses_that_kind_only(simulator):
    """A policy written for pushes refuses DescribeOnlineRecord: the recordings of the SdkAppId pause, the
    pushes of the same SdkAppId are polled on."""
    push = simulator.add_task(APP, TaskScript(prepare_seconds=0))
    recording = simulator.add_record(APP, RecordScript(prepare_seconds=0))
    simulator.set_fault("sdk_app_id_not_found", action="DescribeOnlineRecord")
    with exporter_for(simulator, liveness_interval="0s") as exporter:
        add(exporter, "push", push)
        add(exporter, "record", recording)
        record_key = task_key(APP, recording, "record")
        eventually(lambda: exporter.store.get(record_key).last_error is not None, timeout=15)
        eventually(lambda: metric(scrape(exporter.url), "tiw_exporter_account_paused", sdk_app_id=APP,
                                  code="InvalidParameter.SdkAppIdNotFound") == 1, timeout=15)
        answered = exporter.store.get((APP, push)).last_success
        eventually(lambda: exporter.store.get((APP, push)).last_success > answered, timeout=15)
        assert exporter.store.get(record_key).last_success is None


@pytest.mark.parametrize(("parse", "answer", "problem"), [
    (parse_record_task, {"Status": "RECORDING", "OmittedDurations": {"PauseTime": 1}}, "OmittedDurations"),
    (parse_record_task, {"Status": "RECORDING", "Interrupts": [{"UserId": "u", "Count": -1}]}, "Count"),
    (parse_record_task, {"Status": "RECORDING", "TotalTime": "long"}, "TotalTime"),
    (parse_record_task, {"FinishReason": "AUTO"}, "Status"),
    (parse_transcode_task, {"Status": "PROCESSING", "Progress": 150}, "Progress"),
    (parse_transcode_task, {"Status": "FINISHED", "Pages": True}, "Pages"),
])
def test_a_bad_field_of_another_kind_is_a_bad_response_naming_it(parse, answer, problem):
    with pytest.raises(BadResponse, match=problem):
        parse(APP, "t", answer)


def test_other_kinds_read_lists_as_figures_and_null_as_nothing_yet():
    task = parse_record_task(APP, "t", {"Status": "RECORDING", "Interrupts": None, "VideoInfos": None,
                                        "OmittedDurations": [{"PauseTime": 1000, "ResumeTime": 4000},
                                                             {"PauseTime": 9000, "ResumeTime": 8000}]})
    assert (task.interrupts, task.videos, task.omitted_ms) == (0, 0, 3000)  # a resume before its pause adds 0
    doc = parse_transcode_task(APP, "t", {"Status": "QUEUED", "AssignTime": None, "Progress": "0", "Title": 7})
    assert (doc.assign_time, doc.progress, doc.title) == (0, 0, "7")


def test_every_failure_code_of_a_kind_ends_its_task_failed_and_is_counted_by_code(simulator):
    """Each documented failure code of recordings and transcodes, answered twice by the simulator, ends the
    task FAILED with that code (one exporter, every code at once)."""
    failing = {simulator.add_transcode(APP, TranscodeScript(queued_seconds=0, processing_seconds=0.2,
                                                            fail_with=code)): ("transcode", code)
               for code in KINDS["transcode"].failure_codes}
    failing |= {simulator.add_record(APP, RecordScript(prepare_seconds=0, fail_with=code)): ("record", code)
                for code in KINDS["record"].failure_codes}
    with exporter_for(simulator) as exporter:
        for task_id, (kind, _) in failing.items():
            add(exporter, kind, task_id)
        eventually(lambda: all(exporter.store.get(task_key(APP, task_id, kind)).ended == FAILED
                               for task_id, (kind, _) in failing.items()), timeout=30)
        found = scrape(exporter.url)
    for task_id, (kind, code) in failing.items():
        prefix = KINDS[kind].metric_prefix
        assert metric(found, f"{prefix}_task_failure_info", sdk_app_id=APP, task_id=task_id, code=code) == 1
        if kind == "transcode":
            assert metric(found, "tiw_transcode_failures_total", sdk_app_id=APP, code=code) == 1


def test_a_recording_or_transcode_that_does_not_exist_ends_not_found_after_the_grace(simulator):
    with exporter_for(simulator, not_found_grace="2s") as exporter:
        for kind in ("record", "transcode"):
            add(exporter, kind, f"no_such_{kind}")
        keys = [task_key(APP, f"no_such_{kind}", kind) for kind in ("record", "transcode")]
        eventually(lambda: all(exporter.store.get(key).finish_reason == "NOT_FOUND" for key in keys), timeout=20)
        found = scrape(exporter.url)
    assert metric(found, "tiw_record_task_finish_reason", sdk_app_id=APP, task_id="no_such_record",
                  reason="NOT_FOUND") == 1
    assert metric(found, "tiw_transcode_tasks_finished_total", sdk_app_id=APP, reason="NOT_FOUND") == 1


def test_every_kinds_failure_codes_are_task_failed_rows_of_the_error_table():
    """``TaskKind.failed_by`` (polling and callbacks both ask it) and the error table agree on every code."""
    from exporter.errors import CollectorAction, disposition

    for kind in KINDS.values():
        for code in kind.failure_codes:
            assert disposition(code).collector is CollectorAction.TASK_FAILED, (kind.name, code)
            assert kind.failed_by(code)
    assert not KINDS["push"].failed_by("FailedOperation.Record")  # named by a push's Stopped callback too


def test_recordings_waiting_in_tiws_queue_are_not_counted_as_queued_pushes(simulator):
    """Only the pushes' liveness publishes as the account, so the queued-pushes figure never counts
    recordings, also when pushes are not watched at all."""
    waiting = simulator.add_record(APP, RecordScript(queued_seconds=60, prepare_seconds=0))
    with exporter_for(simulator, kinds="record", liveness_interval="1s") as exporter:
        add(exporter, "record", waiting)
        states = exporter.accounts.states
        eventually(lambda: any(state.kind_liveness.get("record") and state.kind_liveness["record"].queued
                               for state in states.current().values()), timeout=15)
        assert states.queued() == {}
        assert metric(scrape(exporter.url), "tiw_push_tasks_queued", sdk_app_id=APP) is None
