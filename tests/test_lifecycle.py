"""A push lifecycle that ends, and numbers that do not lie (fake API, fake clock, real collector)."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter.callbacks import STOPPED, CallbackEndpoint, sign
from exporter.collector import Collector
from exporter.exposition import Exposition
from exporter.lifecycle import FAILED, NOT_FOUND, TaskRecord, answer_anomalies, merge_result, trtc_code
from exporter.model import PushTask
from exporter.ratelimit import PacedLimiter
from exporter.store import TaskStore
from exporter.tencentcloud.errors import ApiError
from tests.constants import APP
from tests.fakes import FakeClock

SEED_FAILURE = ("code: 40006, msg: 2021-01-13 22:34:42, TRTC onError, code: -70003, msg: The UserSig in use is "
                "illegal. Please regenerate UserSig through official API.\n")


class ScriptedApi:
    """Answers each poll of a task with the next step of its script; the last step repeats."""

    def __init__(self, **scripts: list) -> None:
        self.scripts = scripts
        self.calls: dict[str, int] = {}

    def __call__(self, sdk_app_id: int, task_id: str) -> PushTask:
        self.calls[task_id] = self.calls.get(task_id, 0) + 1
        script = self.scripts[task_id]
        step = script[min(self.calls[task_id], len(script)) - 1]
        if isinstance(step, Exception):
            raise step
        return step


def rig(api: ScriptedApi, **kwargs) -> tuple[TaskStore, Collector, FakeClock, list[str]]:
    clock = FakeClock(1_700_000_000.0)
    anomalies: list[str] = []
    store = TaskStore(clock=clock)
    collector = Collector(store, api, PacedLimiter(1000), clock=clock, interval=15, on_anomaly=anomalies.append,
                          **kwargs)
    return store, collector, clock, anomalies


def samples(store: TaskStore) -> dict[tuple[str, frozenset], float]:
    text = b"".join(Exposition(store, CollectorRegistry()).render_text()).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def labels(task_id: str, **extra: str) -> frozenset:
    return frozenset({"sdk_app_id": str(APP), "task_id": task_id, **extra}.items())


def pushing(task_id: str, **fields) -> PushTask:
    return PushTask(APP, task_id, "PUSHING", push_start_time=1_699_999_000, **fields)


def test_a_failed_push_ends_at_the_second_answer_and_is_exported_as_a_failed_end() -> None:
    failure = ApiError("FailedOperation.WhiteboardPush", SEED_FAILURE, "r")
    api = ScriptedApi(t=[pushing("t"), failure])
    store, collector, clock, _ = rig(api)
    store.add((APP, "t"), "discovery")
    collector.poll((APP, "t"), clock.now)
    collector.poll((APP, "t"), clock.now)
    assert store.get((APP, "t")).active  # one failed answer is not yet a failed push
    assert (APP, "t") in collector.scheduler  # asked again at the next interval to confirm
    clock.now += 15
    collector.poll(*collector.scheduler.pop_due(clock.now))
    record = store.get((APP, "t"))
    assert (record.final, record.ended, record.status, record.finish_reason) == (True, FAILED, "STOPPED", FAILED)
    assert (APP, "t") not in collector.scheduler  # final: never polled again
    found = samples(store)
    assert found[("tiw_push_task_status", labels("t", status="STOPPED"))] == 1
    assert found[("tiw_push_task_finish_reason", labels("t", reason="FAILED"))] == 1
    assert found[("tiw_push_task_finish_reason", labels("t", reason="EXCEPTION"))] == 0
    assert found[("tiw_push_task_failure_info", labels("t", code="FailedOperation.WhiteboardPush",
                                                        trtc_code="-70003"))] == 1


def test_a_final_task_expires_after_the_retention_whatever_its_source() -> None:
    api = ScriptedApi(d=[ApiError("FailedOperation.WhiteboardPush", "failed", "r")],
                      f=[ApiError("FailedOperation.WhiteboardPush", "failed", "r")])
    store, collector, clock, _ = rig(api, finished_retention=3600)
    store.add((APP, "d"), "discovery")
    store.add((APP, "f"), "flag")
    for _ in range(2):
        for task in ("d", "f"):
            collector.poll((APP, task), clock.now)
    assert store.get((APP, "d")).final and store.get((APP, "f")).final
    clock.now += 3599
    assert collector.expire_finished() == 0
    clock.now += 2
    assert collector.expire_finished() == 2
    assert store.get((APP, "d")) is None  # gone
    assert store.get((APP, "f")).retired  # configured: kept for the config, not exported
    assert not [key for key in samples(store) if key[0].startswith("tiw_push_task_")]


def test_task_not_found_is_final_only_when_confirmed_over_the_grace_period(caplog) -> None:
    api = ScriptedApi(t=[ApiError("InvalidParameter.TaskNotFound", "no such task", "r")])
    store, collector, clock, _ = rig(api, not_found_grace=120)
    store.add((APP, "t"), "callback")
    with caplog.at_level(logging.INFO, logger="exporter.collector"):
        collector.poll((APP, "t"), clock.now)
        for _ in range(7):  # 105 s of answers: still within the grace of a just-started task
            clock.now += 15
            collector.poll((APP, "t"), clock.now)
            assert store.get((APP, "t")).active
    assert caplog.text.count("query failed") == 1  # said once for the grace period, not on every poll
    clock.now += 15
    collector.poll((APP, "t"), clock.now)
    record = store.get((APP, "t"))
    assert (record.ended, record.finish_reason, record.final_at) == (NOT_FOUND, NOT_FOUND, clock.now)
    assert samples(store)[("tiw_push_task_finish_reason", labels("t", reason="NOT_FOUND"))] == 1


def test_an_answer_in_between_restarts_the_confirmation() -> None:
    failure = ApiError("FailedOperation.WhiteboardPush", "failed", "r")
    api = ScriptedApi(t=[failure, pushing("t"), failure, pushing("t")])
    store, collector, clock, _ = rig(api)
    store.add((APP, "t"), "api")
    for _ in range(4):
        collector.poll((APP, "t"), clock.now)
        assert store.get((APP, "t")).active


def test_a_stop_callback_with_an_error_is_final_at_once() -> None:
    store = TaskStore()
    store.add((APP, "t"), "api")
    endpoint = CallbackEndpoint(store, lambda: "key", clock=lambda: 1_700_000_000.0)
    expire = 1_700_000_600
    body = (f'{{"SdkAppId": {APP}, "ExpireTime": {expire}, "Sign": "{sign("key", expire)}", '
            f'"EventType": "{STOPPED}", "EventData": {{"TaskId": "t", "FinishReason": "EXCEPTION", '
            f'"PushStartTime": 1699999000, "PushStopTime": 1699999100, '
            f'"Error": {{"Code": "FailedOperation.Record", "Message": "x"}}}}}}').encode()
    status, _ = endpoint.handle(body)
    record = store.get((APP, "t"))
    assert status == 200 and record.final and record.final_at == 1_700_000_000.0
    assert record.finish_reason == "EXCEPTION"


def _backup(count: int) -> dict[str, str]:
    return {"backup": json.dumps({"Status": "PUSHING", "ExceptionCnt": count})}


@pytest.mark.parametrize(("family", "fields", "anomaly"), [
    ("tiw_push_task_exceptions_total", lambda count: {"exception_cnt": count}, "exceptions_decreased"),
    ("tiw_push_task_backup_exceptions_total", _backup, "backup_exceptions_decreased"),
])
def test_exception_counters_never_decrease_within_a_task_and_the_drop_is_counted(family, fields, anomaly) -> None:
    api = ScriptedApi(t=[pushing("t", **fields(count)) for count in (7, 3, 9)])
    store, collector, clock, anomalies = rig(api)
    store.add((APP, "t"), "api")
    seen = []
    for _ in range(3):
        collector.poll((APP, "t"), clock.now)
        seen.append(samples(store)[(family, labels("t"))])
    assert seen == [7, 7, 9]
    assert anomalies == [anomaly]


def test_durations_are_never_negative() -> None:
    store = TaskStore()
    store.add((APP, "stop_first"), "api")
    store.add((APP, "future"), "api")
    stopped = PushTask(APP, "stop_first", "STOPPED", "AUTO", push_start_time=1_700_000_100,
                       push_stop_time=1_700_000_000)
    future = PushTask(APP, "future", "PUSHING", push_start_time=1_700_009_999)
    store.update((APP, "stop_first"), lambda r: merge_result(r, stopped, 1_700_000_200))
    store.update((APP, "future"), lambda r: merge_result(r, future, 1_700_000_200))
    found = samples(store)
    assert found[("tiw_push_task_duration_seconds", labels("stop_first"))] == 0
    assert found[("tiw_push_task_duration_seconds", labels("future"))] == 0
    assert answer_anomalies(None, stopped, 1_700_000_200) == ["stop_before_start"]
    assert answer_anomalies(None, future, 1_700_000_200) == ["start_in_future"]


def test_a_credential_error_pauses_every_sdk_app_id_of_the_account_with_one_loud_line(caplog) -> None:
    refused = ApiError("AuthFailure.SecretIdNotFound", "who?", "r")
    api = ScriptedApi(a=[refused], b=[refused, pushing("b")])
    store, collector, clock, _ = rig(api, account="main")
    store.add((APP, "a"), "api")
    store.add((APP + 1, "b"), "api")
    with caplog.at_level(logging.ERROR, logger="exporter.pauses"):
        collector.poll((APP, "a"), clock.now)
        collector.poll((APP + 1, "b"), clock.now)  # in flight together: the same pause
    assert collector.credential_pause() == "AuthFailure.SecretIdNotFound"
    assert collector.paused_sdk_app_ids() == {APP: "AuthFailure.SecretIdNotFound",
                                              APP + 1: "AuthFailure.SecretIdNotFound"}
    assert collector.pauses.gate(APP + 1, clock.now, probe_wait=1) == clock.now + 15  # another app waits too
    assert len([r for r in caplog.records if "refuses this credential" in r.getMessage()]) == 1
    clock.now += 16
    assert collector.pauses.gate(APP + 1, clock.now, probe_wait=1) is None  # the probe
    collector.poll((APP + 1, "b"), clock.now)
    assert collector.credential_pause() is None and collector.paused_sdk_app_ids() == {}


def test_app_level_and_transient_codes_take_their_table_actions() -> None:
    api = ScriptedApi(gone=[ApiError("InvalidParameter.SdkAppIdNotFound", "no app", "r")],
                      busy=[ApiError("ServiceUnavailable", "busy", "r")])
    store, collector, clock, _ = rig(api)
    store.add((APP, "gone"), "api")
    store.add((APP + 1, "busy"), "api")
    collector.poll((APP, "gone"), clock.now)
    assert collector.paused_sdk_app_ids() == {APP: "InvalidParameter.SdkAppIdNotFound"}
    collector.poll((APP + 1, "busy"), clock.now)
    assert collector.scheduler.earliest() == clock.now + 5  # transient and retryable: back in 5 s, not backed off
    assert APP + 1 not in collector.paused_sdk_app_ids()


def test_trtc_codes_are_read_from_failure_messages() -> None:
    assert trtc_code(SEED_FAILURE) == "-70003"
    assert trtc_code("no TRTC here") == ""


def test_state_files_written_before_final_at_still_load() -> None:
    old = {"sdk_app_id": APP, "task_id": "t", "sources": ["api"], "added_at": 1.0, "latest": None,
           "last_success": None, "last_error": None, "stop_error": None, "stopped_seen_at": 5.0, "retired": False}
    assert TaskRecord.from_json(old).final_at == 5.0
