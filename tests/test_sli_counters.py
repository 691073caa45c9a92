"""The SLI counters: every task counted once when it starts and once when it becomes final, whatever
made it final (an answer, a confirmed failure, not found, a stop callback), and never again after a
restart from the state file."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from exporter import legacy_statefile
from exporter.callbacks import STOPPED, CallbackEndpoint, sign
from exporter.lifecycle import TaskRecord
from exporter.model import PushTask
from exporter.selfmetrics import ExporterMetrics
from exporter.store import TaskStore
from exporter.tencentcloud.errors import ApiError
from tests.constants import APP
from tests.fakes import save_legacy_state
from tests.test_lifecycle import ScriptedApi, pushing, rig


def counted(registry: CollectorRegistry, reason: str | None = None, app: int = APP) -> float:
    """The started count of ``app``, or its finished count for ``reason``."""
    if reason is None:
        return registry.get_sample_value("tiw_push_tasks_started_total", {"sdk_app_id": str(app)}) or 0.0
    return registry.get_sample_value("tiw_push_tasks_finished_total",
                                     {"sdk_app_id": str(app), "reason": reason}) or 0.0


def counting(store: TaskStore) -> CollectorRegistry:
    registry = CollectorRegistry()
    store.on_milestone(ExporterMetrics(registry).count_milestones)
    return registry


def stopped(task_id: str, reason: str) -> PushTask:
    return PushTask(APP, task_id, "STOPPED", reason, push_start_time=1_699_999_000, push_stop_time=1_699_999_900)


def test_a_task_is_counted_started_at_its_first_answer_and_finished_once_with_its_reason() -> None:
    api = ScriptedApi(t=[pushing("t"), pushing("t"), stopped("t", "EXCEPTION")])
    store, collector, clock, _ = rig(api)
    registry = counting(store)
    store.add((APP, "t"), "api")
    assert counted(registry) == 0
    for _ in range(3):
        collector.poll((APP, "t"), clock.now)
        clock.now += 15
    assert counted(registry) == 1
    assert counted(registry, "EXCEPTION") == 1
    assert counted(registry, "AUTO") == 0  # every reason of the app is exported from 0: increase() sees the first
    store.update((APP, "t"), lambda r: r)  # any later change of the final task
    assert counted(registry, "EXCEPTION") == 1


def test_failed_and_not_found_endings_are_counted_as_finished() -> None:
    failure = ApiError("FailedOperation.WhiteboardPush", "failed", "r")
    missing = ApiError("InvalidParameter.TaskNotFound", "no such task", "r")
    api = ScriptedApi(f=[failure], n=[missing])
    store, collector, clock, _ = rig(api, not_found_grace=0)
    registry = counting(store)
    store.add((APP, "f"), "api")
    store.add((APP, "n"), "api")
    for _ in range(3):
        collector.poll((APP, "f"), clock.now)
        collector.poll((APP, "n"), clock.now)
        clock.now += 15
    assert store.get((APP, "f")).final and store.get((APP, "n")).final
    assert (counted(registry, "FAILED"), counted(registry, "NOT_FOUND")) == (1, 1)
    assert counted(registry) == 2  # ended unanswered: it existed (or was claimed to), counted started too


def test_a_stop_callback_counts_the_task_finished() -> None:
    store = TaskStore()
    registry = counting(store)
    endpoint = CallbackEndpoint(store, lambda: "key", clock=lambda: 1_700_000_000.0)
    expire = 1_700_000_600
    body = (f'{{"SdkAppId": {APP}, "ExpireTime": {expire}, "Sign": "{sign("key", expire)}", '
            f'"EventType": "{STOPPED}", "EventData": {{"TaskId": "t", "FinishReason": "USER_CALL", '
            f'"PushStartTime": 1699999000, "PushStopTime": 1699999100}}}}').encode()
    assert endpoint.handle(body)[0] == 200
    assert endpoint.handle(body)[0] == 200  # TIW retries callbacks: the same stop again
    assert (counted(registry), counted(registry, "USER_CALL")) == (1, 1)


def test_a_restart_from_the_state_file_does_not_count_a_task_again(tmp_path: Path) -> None:
    api = ScriptedApi(done=[stopped("done", "AUTO")], live=[pushing("live"), stopped("live", "AUTO")])
    store, collector, clock, _ = rig(api)
    counting(store)
    for task in ("done", "live"):
        store.add((APP, task), "api")
        collector.poll((APP, task), clock.now)
    path = tmp_path / "state.json"
    save_legacy_state(path, store.snapshot())

    restarted, collector, clock, _ = rig(api)
    registry = counting(restarted)
    restarted.restore(legacy_statefile.load(path))
    collector.poll((APP, "live"), clock.now)  # polled after the restart: stops now
    restarted.update((APP, "done"), lambda r: r)
    assert counted(registry) == 0  # both were counted started before the restart
    assert counted(registry, "AUTO") == 1  # only "live" became final after it


def test_state_files_written_before_the_counters_do_not_count_what_they_knew() -> None:
    old = {"sdk_app_id": APP, "task_id": "t", "sources": ["api"], "added_at": 1.0,
           "latest": PushTask(APP, "t", "STOPPED", "AUTO").to_dict(), "last_success": 2.0, "last_error": None,
           "stop_error": None, "final_at": 2.0, "retired": False}
    record = TaskRecord.from_json(old)
    assert (record.counted_start, record.counted_final) == (True, True)
    fresh = {**old, "latest": None, "last_success": None, "final_at": None}
    assert not TaskRecord.from_json(fresh).counted_start
