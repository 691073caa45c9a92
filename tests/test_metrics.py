"""Metric families: names, state sets, absent-until-known rules, and the fast path's fidelity."""

from __future__ import annotations

import gzip
import subprocess
from dataclasses import replace

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter import exposition as exposition_module
from exporter.appinfo import SdkAppInfoCollector
from exporter.exposition import Exposition
from exporter.freshness import FreshnessIndex, FreshnessSnapshots
from exporter.kind_answers import RecordTask, TranscodeTask
from exporter.kinds import RECORD_KIND, TRANSCODE_KIND
from exporter.lifecycle import FAILED, Milestones, TaskError, TaskRecord, end, merge_error, merge_result
from exporter.model import PushTask
from exporter.pollstate import LivenessState, PollStates
from exporter.secretfile import WatchedSecret
from exporter.selfmetrics import (
    CredentialsCollector,
    ExporterMetrics,
    FreshnessCollector,
    PausedAccountsCollector,
    QueueCollector,
    SecretsCollector,
    self_registry,
)
from exporter.store import TaskStore
from tests.constants import APP
from tests.harness import eventually
from tests.monitoring import CONTRACT_METRICS, EXTENSION_METRICS, KIND_METRICS
from tests.procs import Process, exporter_cmd
from tests.tools import find_tool


class RoleLike:
    """A provider with refresh state, like CvmRoleCredentials."""

    consecutive_failures = 2
    expires_at = 1_700_003_600.0


def tracked(store: TaskStore, task_id: str, status: str | None = None, now: float = 1_700_000_000.0,
            **fields) -> None:
    store.add((APP, task_id), "api")
    if status:
        task = PushTask(APP, task_id, status, **fields)
        store.update((APP, task_id), lambda r: merge_result(r, task, now))


def samples(store: TaskStore) -> dict[tuple[str, frozenset], float]:
    exposition = Exposition(store, CollectorRegistry())
    text = b"".join(exposition.render_text()).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def value(found, name, **labels):
    return found.get((name, frozenset({"sdk_app_id": str(APP), **labels}.items())))


def test_pushing_task_has_status_set_duration_and_no_finish_reason():
    store = TaskStore()
    tracked(store, "p", "PUSHING", now=1000.0, push_start_time=400, exception_cnt=3, room_id=7, group_id="g",
            push_user_id="u")
    found = samples(store)
    assert value(found, "tiw_push_task_status", task_id="p", status="PUSHING") == 1
    assert value(found, "tiw_push_task_status", task_id="p", status="PREPARED") == 0
    assert value(found, "tiw_push_task_status", task_id="p", status="STOPPED") == 0
    assert value(found, "tiw_push_task_duration_seconds", task_id="p") == 600
    assert value(found, "tiw_push_task_exceptions_total", task_id="p") == 3
    assert value(found, "tiw_push_task_start_timestamp_seconds", task_id="p") == 400
    assert value(found, "tiw_push_task_stop_timestamp_seconds", task_id="p") is None
    assert value(found, "tiw_push_task_info", task_id="p", room_id="7", group_id="g", push_user_id="u") == 1
    assert value(found, "tiw_push_task_last_success_timestamp_seconds", task_id="p") == 1000
    assert not any(name == "tiw_push_task_finish_reason" for name, _ in found)


def test_stopped_task_has_finish_reason_state_set_and_stop_minus_start_duration():
    store = TaskStore()
    tracked(store, "s", "STOPPED", finish_reason="EXCEPTION", push_start_time=100, push_stop_time=160)
    found = samples(store)
    assert value(found, "tiw_push_task_finish_reason", task_id="s", reason="EXCEPTION") == 1
    assert value(found, "tiw_push_task_finish_reason", task_id="s", reason="AUTO") == 0
    assert value(found, "tiw_push_task_finish_reason", task_id="s", reason="USER_CALL") == 0
    assert value(found, "tiw_push_task_duration_seconds", task_id="s") == 60
    assert value(found, "tiw_push_task_stop_timestamp_seconds", task_id="s") == 160


def test_prepared_task_has_no_duration_or_start_time():
    store = TaskStore()
    tracked(store, "r", "PREPARED")
    found = samples(store)
    assert value(found, "tiw_push_task_status", task_id="r", status="PREPARED") == 1
    assert value(found, "tiw_push_task_duration_seconds", task_id="r") is None
    assert value(found, "tiw_push_task_start_timestamp_seconds", task_id="r") is None


def test_task_before_its_first_answer_counts_as_unknown():
    store = TaskStore()
    tracked(store, "new")
    found = samples(store)
    assert all(value(found, "tiw_push_task_status", task_id="new", status=s) == 0
               for s in ("PREPARED", "PUSHING", "STOPPED"))
    assert value(found, "tiw_push_tasks", status="UNKNOWN") == 1
    assert value(found, "tiw_push_tasks", status="PUSHING") == 0
    assert found[("tiw_exporter_tracked_tasks", frozenset())] == 1


def test_error_gauge_carries_the_latest_error_code_only_while_failing():
    store = TaskStore()
    tracked(store, "e", "PUSHING")
    store.update((APP, "e"), lambda r: merge_error(r, TaskError("FailedOperation.WhiteboardPush", "m", "", 1)))
    found = samples(store)
    assert value(found, "tiw_push_task_error", task_id="e", code="FailedOperation.WhiteboardPush") == 1
    assert value(found, "tiw_push_task_status", task_id="e", status="PUSHING") == 1  # last good value kept
    tracked(store, "e", "PUSHING")
    assert not any(name == "tiw_push_task_error" for name, _ in samples(store))


def test_backup_object_exports_backup_status_and_exceptions():
    store = TaskStore()
    tracked(store, "b", "PUSHING", backup='{"Status": "PUSHING", "ExceptionCnt": 4}')
    found = samples(store)
    assert value(found, "tiw_push_task_backup_status", task_id="b", status="PUSHING") == 1
    assert value(found, "tiw_push_task_backup_exceptions_total", task_id="b") == 4


@pytest.mark.parametrize("backup", ["", "null", "{}", "{broken"])
def test_empty_or_unparseable_backup_exports_nothing(backup):
    store = TaskStore()
    tracked(store, "b", "PUSHING", backup=backup)
    assert not any(name.startswith("tiw_push_task_backup") for name, _ in samples(store))


def test_unparseable_backup_is_logged_once_per_task(caplog):
    store = TaskStore()
    tracked(store, "b", "PUSHING", backup="{broken")
    exposition = Exposition(store, CollectorRegistry())
    exposition.render_text()
    tracked(store, "b", "PUSHING", backup="{still broken")
    exposition.render_text()
    assert caplog.text.count("unparseable Backup") == 1
    assert exposition.problems.tasks == 1
    store.remove((APP, "b"))
    exposition.render_text()
    assert exposition.problems.tasks == 0  # a removed task's log entry goes with it: the log never grows for good


def test_removed_and_retired_tasks_leave_no_series():
    store = TaskStore()
    exposition = Exposition(store, CollectorRegistry())
    tracked(store, "gone", "PUSHING")
    tracked(store, "kept", "PUSHING")
    assert b'task_id="gone"' in b"".join(exposition.render_text())
    store.remove((APP, "gone"))
    text = b"".join(exposition.render_text())
    assert b'task_id="gone"' not in text and b'task_id="kept"' in text


SEED_FAILURE = ("code: 40006, msg: 2021-01-13 22:34:42, TRTC onError, code: -70003, msg: The UserSig in use is "
                "illegal.")


def _fleet(size: int) -> TaskStore:
    store = TaskStore()
    statuses = ("PREPARED", "PUSHING", "STOPPED")
    for i in range(size):
        status = statuses[i % 3]
        tracked(store, f"task{i:05d}", status if i % 7 else None, push_start_time=100 * (i % 2),
                push_stop_time=200 if status == "STOPPED" and i % 2 else 0, finish_reason="AUTO", exception_cnt=i,
                backup='{"Status":"STOPPED","ExceptionCnt":1}' if i % 5 == 0 else "", group_id='we"ird\\',
                push_user_id="line\nbreak")
        if i % 4 == 0:
            store.update((APP, f"task{i:05d}"), lambda r: merge_error(r, TaskError("InternalError", "x", "", 5)))
        if i % 11 == 1:  # a failed push, final: finish reason FAILED and the failure info
            store.update((APP, f"task{i:05d}"), lambda r: end(merge_error(r, TaskError(
                "FailedOperation.WhiteboardPush", SEED_FAILURE, "", 6)), FAILED, 7))
    return store


def test_fast_text_equals_prometheus_client_output_line_for_line():
    store = _fleet(300)
    exposition = Exposition(store, CollectorRegistry())
    registry = CollectorRegistry()
    registry.register(exposition.task_collector)
    for _ in range(2):  # a cold and a warm (cached) render
        fast = b"".join(exposition.render_text()).decode()
        reference = generate_latest(registry).decode()
        assert sorted(fast.splitlines()) == sorted(reference.splitlines())
        tracked(store, "task00001", "STOPPED", exception_cnt=99)


def _with_kinds(store: TaskStore, size: int) -> TaskStore:
    """``store`` plus recordings and transcodes in every status, some failed, with text that needs escaping."""
    for i in range(size):
        record_key, transcode_key = (APP, f"rec{i:04d}", "record"), (APP, f"doc{i:04d}", "transcode")
        store.add(record_key, "api")
        store.add(transcode_key, "api")
        status = RECORD_KIND.statuses[i % 5]
        answer = RecordTask(APP, f"rec{i:04d}", status, finish_reason="FORCE_STOP" if i % 2 else "AUTO",
                            record_start_time=100, record_stop_time=200 * (i % 2), total_time_ms=1500 * i,
                            exception_cnt=i, omitted_ms=250, videos=i % 3, interrupts=2 * i, group_id='g"1\\')
        store.update(record_key, lambda r, a=answer: merge_result(r, a, 1_700_000_000.0))
        doc = TranscodeTask(APP, f"doc{i:04d}", TRANSCODE_KIND.statuses[i % 3], progress=33 * (i % 4),
                            pages=i, title="lesson\n1.pptx", create_time=10, assign_time=20 * (i % 2),
                            finished_time=60 if i % 3 == 2 else 0)
        if i % 4 == 3:  # a recording that failed for good
            store.update(record_key, lambda r: end(merge_error(r, TaskError("FailedOperation.Record", "x", "", 6)),
                                                   FAILED, 7))
        if i % 6:
            store.update(transcode_key, lambda r, a=doc: merge_result(r, a, 1_700_000_000.0))
        if i % 5 == 1:
            store.update(transcode_key, lambda r: end(merge_error(r, TaskError(
                "FailedOperation.FileDownloadFail", "x", "", 6)), FAILED, 7))
    return store


def test_fast_text_equals_prometheus_client_output_with_every_kind():
    store = _with_kinds(_fleet(60), 30)
    exposition = Exposition(store, CollectorRegistry())
    registry = CollectorRegistry()
    registry.register(exposition.task_collector)
    fast = b"".join(exposition.render_text()).decode()
    assert sorted(fast.splitlines()) == sorted(generate_latest(registry).decode().splitlines())
    found = samples(store)
    assert value(found, "tiw_record_tasks", status="RECORDING") == 5  # rec0011 failed
    assert value(found, "tiw_record_task_finish_reason", task_id="rec0013", reason="FORCE_STOP") == 1  # STOPPED
    assert value(found, "tiw_record_task_finish_reason", task_id="rec0002", reason="AUTO") is None  # PAUSED
    assert value(found, "tiw_transcode_task_failure_info", task_id="doc0001", code="FailedOperation.FileDownloadFail")
    assert value(found, "tiw_exporter_tracked_tasks") is None  # it has no sdk_app_id label
    tracked_line = [line for line in fast.splitlines() if line.startswith("tiw_exporter_tracked_tasks ")]
    assert tracked_line == ["tiw_exporter_tracked_tasks 60.0"]  # pushes only, as before


def test_gzip_is_served_when_accepted():
    store = _fleet(10)
    exposition = Exposition(store, CollectorRegistry())
    chunks, _, gzipped = exposition.render("text/plain", "gzip, deflate")
    assert gzipped
    assert gzip.decompress(b"".join(chunks)) == b"".join(exposition.render_text())


def test_the_gzipped_task_text_is_compressed_once_per_change_and_stays_one_valid_stream():
    store = _fleet(50)
    exposition = Exposition(store, CollectorRegistry())
    first, _, _ = exposition.render("text/plain", "gzip")
    again, _, _ = exposition.render("text/plain", "gzip")
    assert all(a is b for a, b in zip(first[:-2], again[:-2]))  # no answer since: the same compressed bytes
    assert gzip.decompress(b"".join(again)) == b"".join(exposition.render_text())
    tracked(store, "task00001", "STOPPED", exception_cnt=99)
    changed, _, _ = exposition.render("text/plain", "gzip")
    text = gzip.decompress(b"".join(changed))
    assert text == b"".join(exposition.render_text()) and b'task_id="task00001"} 99.0' in text


def test_changes_are_rendered_by_catch_up_between_scrapes_and_a_scrape_renders_only_what_is_left():
    store = _fleet(20)
    exposition = Exposition(store, CollectorRegistry())
    assert exposition.catch_up() and not exposition.catch_up()  # the first renders all, then nothing is new
    tracked(store, "task00001", "STOPPED", exception_cnt=99)
    assert exposition.catch_up()  # what the exporter's render thread does every second
    rendered = []
    original = exposition_module.render_task
    exposition_module.render_task = lambda record, problems: rendered.append(record.key) or original(record, problems)
    try:
        text = b"".join(exposition.render_text())
    finally:
        exposition_module.render_task = original
    assert rendered == [] and b'task_id="task00001"} 99.0' in text


def test_openmetrics_output_when_asked():
    store = _fleet(10)
    exposition = Exposition(store, CollectorRegistry())
    chunks, content_type, _ = exposition.render("application/openmetrics-text; version=1.0.0", "")
    body = b"".join(chunks).decode()
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")
    assert "# TYPE tiw_push_task_exceptions counter" in body


def _every_family(tmp_path) -> str:
    """Text exposition with every family the exporter can export: per task, its own, every scrape-time
    collector (the runtime registers the same ones), each with at least one sample."""
    registry = self_registry()
    metrics = ExporterMetrics(registry)
    metrics.observe_attempt("DescribeWhiteboardPush", "success", 0.1)
    metrics.count_api_error(APP, "InternalError")
    metrics.count_callback("WhiteboardPushStarted", "accepted")
    metrics.count_milestones(TaskRecord(APP, "t", frozenset({"api"}), 0.0), Milestones(started=True))
    metrics.count_state_write_failure("symlink")
    metrics.count_queue_warning(APP, "TaskQueuedTimeLimitWarning")
    fleet = _with_kinds(_fleet(30), 6)
    finished_transcode = replace(TaskRecord(APP, "d", frozenset({"api"}), 0.0, kind="transcode"), latest=TranscodeTask(
        APP, "d", "FINISHED", create_time=10, assign_time=20, finished_time=50))
    failed_transcode = end(merge_error(TaskRecord(APP, "f", frozenset({"api"}), 0.0, kind="transcode"), TaskError(
        "FailedOperation.FileOpenFail", "x", "", 1.0)), FAILED, 2.0)
    for record in (finished_transcode, failed_transcode, TaskRecord(APP, "r", frozenset({"api"}), 0.0, kind="record")):
        metrics.count_milestones(record, Milestones(started=True, finished=True))
    states = PollStates(["default"])
    states.publish("default", paused_sdk_app_ids={APP: "AuthFailure.SecretIdNotFound"},
                   credential_pause="AuthFailure.SecretIdNotFound",
                   liveness=LivenessState(seen={APP: {r.key: 1.0 for r in fleet.snapshot()}}, stale_after=15.0,
                                          unsupported={APP: "InvalidAction"}, queued={APP: 2}))
    registry.register(PausedAccountsCollector(states))
    registry.register(QueueCollector(states))
    registry.register(CredentialsCollector(lambda: [("default", RoleLike())]))
    registry.register(SdkAppInfoCollector(fleet, lambda app: "default"))
    (tmp_path / "token").write_text("token\n")
    token = WatchedSecret("api_token", "API token", tmp_path / "token")
    registry.register(SecretsCollector(lambda: [("api_token", token)]))
    registry.register(FreshnessCollector(FreshnessSnapshots(FreshnessIndex(fleet), states, 30.0, clock=lambda: 2.0)))
    return b"".join(Exposition(fleet, registry).render_text()).decode()


def _promtool_check_metrics(body: bytes) -> None:
    """``promtool check metrics`` reports nothing at all on ``body`` (not even a lint warning)."""
    result = subprocess.run([find_tool("promtool"), "check", "metrics"], input=body, capture_output=True,
                            timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert result.stdout.strip() == b"" and result.stderr.strip() == b"", (result.stdout + result.stderr).decode()


def test_exporter_output_passes_promtool_check_metrics(tmp_path):
    body = _every_family(tmp_path)
    exported = {family.name for family in text_string_to_metric_families(body)}
    # every family, scrape-time collectors included (a gauge with a "quantile" label once slipped through)
    assert {n.removesuffix("_total") for n in CONTRACT_METRICS | EXTENSION_METRICS
            if not n.startswith("tiw_exporter_api_request_duration_seconds_")} <= exported
    _promtool_check_metrics(body.encode())


def test_data_age_is_a_summary_whose_quantiles_keep_their_label():
    """A summary of quantiles only: _count and _sum would be counters, and neither a count of active tasks
    nor a sum of their ages only goes up."""
    store = _fleet(20)
    states = PollStates(["default"])
    states.publish("default", liveness=LivenessState(seen={APP: {r.key: 1.0 for r in store.snapshot()}},
                                                     stale_after=15.0))
    registry = CollectorRegistry()
    registry.register(FreshnessCollector(FreshnessSnapshots(FreshnessIndex(store), states, 30.0, clock=lambda: 2.0)))
    text = generate_latest(registry).decode()
    assert "# TYPE tiw_exporter_data_age_seconds summary" in text
    assert "tiw_exporter_data_age_seconds_count" not in text and "tiw_exporter_data_age_seconds_sum" not in text
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "tiw_exporter_data_age_seconds"]
    assert family.type == "summary"
    assert {(s.labels["kind"], s.labels["quantile"]) for s in family.samples} == {
        (kind, q) for kind in ("detail", "liveness") for q in ("0.5", "0.95", "1")}
    assert registry.get_sample_value("tiw_exporter_data_age_seconds", {"kind": "liveness", "quantile": "1"}) == 1.0
    openmetrics = Exposition(store, registry).render_openmetrics()[0].decode()
    assert "# TYPE tiw_exporter_data_age_seconds summary" in openmetrics


@pytest.mark.slow
def test_a_running_demo_passes_promtool_check_metrics():
    """The real process: the demo's mix learned from callbacks and discovery, with liveness on."""
    process = Process(exporter_cmd("demo", "--listen", "127.0.0.1:0", "--simulator-listen", "127.0.0.1:0",
                                   "--interval", "1s"))
    try:
        url = process.wait_for(r"Metrics: +(?P<url>http://127\.0\.0\.1:\d+)/metrics").group("url")

        def lively() -> bytes | None:
            body = requests.get(f"{url}/metrics", timeout=5).content
            wanted = (b'tiw_exporter_data_age_seconds{kind="liveness"', b'status="STOPPED"} 1.0',
                      b'tiw_exporter_callbacks_total{', b"tiw_push_task_error{")
            return body if all(w in body for w in wanted) else None

        body = eventually(lively, timeout=60)
        _promtool_check_metrics(body)
    finally:
        process.stop()
    assert "Traceback" not in process.output


def test_every_family_has_help_text():
    registry = self_registry()
    ExporterMetrics(registry)
    body = b"".join(Exposition(_fleet(30), registry).render_text()).decode()
    for family in text_string_to_metric_families(body):
        assert family.documentation, family.name



def test_reload_gauges_start_healthy_without_their_files():
    registry = self_registry()
    ExporterMetrics(registry)
    assert registry.get_sample_value("tiw_exporter_tasks_file_reload_success") == 1
    assert registry.get_sample_value("tiw_exporter_web_config_last_reload_successful") == 1


def test_exported_series_names_are_exactly_the_contract_plus_documented_extensions(tmp_path):
    body = _every_family(tmp_path)
    names = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line and not line.startswith("#")}
    ours = {n for n in names if n.startswith("tiw_")}
    assert ours == CONTRACT_METRICS | EXTENSION_METRICS | KIND_METRICS
