"""The exporter and the simulator as separate processes, talking real HTTP.

One simulator serves a scenario with every state, finish reason and error code of the seed; exporters
run against it with a 1 s interval. Assertions read the exporter's /metrics and task API and the
simulator's own request statistics.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from exporter import statedb
from exporter.simulator import SimulatorClient
from tests.constants import APP, SECRET_ID
from tests.harness import eventually, metric, scrape, series
from tests.procs import SIMULATOR_URL, Process, exporter_cmd, exporter_process, running

UNKNOWN_APP = 1400009999
UNREGISTERED_APP = 1400000002
EXPIRED_APP = 1400000003
TOKEN = "integration-token"

SCRIPTS = {
    "prepared": {"prepare_seconds": 3600},
    "pushing": {"prepare_seconds": 0},
    "exceptions": {"prepare_seconds": 0, "exceptions_per_minute": 600},
    "user_call": {"prepare_seconds": 0, "push_seconds": 0.5, "finish_reason": "USER_CALL"},
    "auto": {"prepare_seconds": 0, "push_seconds": 0.5, "finish_reason": "AUTO"},
    "exception": {"prepare_seconds": 0, "push_seconds": 0.5, "finish_reason": "EXCEPTION"},
    "stops_mid_run": {"prepare_seconds": 1, "push_seconds": 3, "finish_reason": "AUTO"},
    "failed": {"prepare_seconds": 0, "fail_with": "FailedOperation.WhiteboardPush"},
    "backup": {"prepare_seconds": 0, "backup": '{"Status": "PUSHING", "ExceptionCnt": 2}'},
}


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorClient]:
    args = exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix", "--rate-limit", "20",
                        "--unregistered-sdk-app-id", str(UNREGISTERED_APP), "--expired-sdk-app-id", str(EXPIRED_APP))
    with running(args, SIMULATOR_URL) as (_, url):
        yield SimulatorClient(url)


@contextmanager
def exporter(simulator: SimulatorClient, key_file: Path, *extra: str,
             env: dict | None = None) -> Iterator[tuple[Process, str]]:
    process, url = exporter_process("--listen", "127.0.0.1:0", "--endpoint", simulator.url, "--secret-id", SECRET_ID,
                                    "--secret-key-file", str(key_file), "--interval", "1s", *extra,
                                    env={"TIW_EXPORTER_API_TOKEN": TOKEN, **(env or {})})
    with process:
        yield process, url


@pytest.fixture(scope="module")
def scenario(simulator, key_file, tmp_path_factory):
    """The module's main exporter, tracking the whole scenario; yields (url, task ids by name, state file)."""
    ids = {name: simulator.add_task(APP, name, **script) for name, script in SCRIPTS.items()}
    ids["not_found"] = "no_such_task_here"
    tasks = [f"{APP}:{task_id}" for task_id in ids.values()]
    tasks += [f"{UNKNOWN_APP}:unknown_app_task", f"{UNREGISTERED_APP}:unregistered_task",
              f"{EXPIRED_APP}:expired_task"]
    state = tmp_path_factory.mktemp("state") / "state.json"
    flags = [flag for task in tasks for flag in ("--task", task)]
    with exporter(simulator, key_file, *flags, "--state-file", str(state)) as (process, url):
        eventually(lambda: requests.get(f"{url}/-/ready", timeout=5).status_code == 200)
        eventually(lambda: _settled(scrape(url), ids), timeout=30)
        yield url, ids, state, process


def _settled(found, ids) -> bool:
    stopped = [metric(found, "tiw_push_task_status", sdk_app_id=APP, task_id=ids[n], status="STOPPED")
               for n in ("user_call", "auto", "exception", "stops_mid_run")]
    return all(v == 1 for v in stopped)


@pytest.mark.slow
def test_every_status_is_exported_as_a_state_set(scenario):
    url, ids, _, _ = scenario
    found = scrape(url)
    expected = {"prepared": "PREPARED", "pushing": "PUSHING", "exceptions": "PUSHING", "user_call": "STOPPED"}
    for name, status in expected.items():
        states = series(found, "tiw_push_task_status", task_id=ids[name])
        assert sum(states.values()) == 1 and len(states) == 3
        assert metric(found, "tiw_push_task_status", sdk_app_id=APP, task_id=ids[name], status=status) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["user_call", "auto", "exception"])
def test_every_finish_reason_is_exported(scenario, name):
    url, ids, _, _ = scenario
    found = scrape(url)
    reason = SCRIPTS[name]["finish_reason"]
    assert metric(found, "tiw_push_task_finish_reason", sdk_app_id=APP, task_id=ids[name], reason=reason) == 1
    duration = metric(found, "tiw_push_task_duration_seconds", sdk_app_id=APP, task_id=ids[name])
    assert duration is not None and duration >= 0


@pytest.mark.slow
def test_growing_exception_count_is_exported_as_a_counter(scenario):
    url, ids, _, _ = scenario
    first = metric(scrape(url), "tiw_push_task_exceptions_total", sdk_app_id=APP, task_id=ids["exceptions"])
    eventually(lambda: metric(scrape(url), "tiw_push_task_exceptions_total", sdk_app_id=APP,
                              task_id=ids["exceptions"]) > first)


@pytest.mark.slow
def test_backup_result_is_exported(scenario):
    url, ids, _, _ = scenario
    found = scrape(url)
    assert metric(found, "tiw_push_task_backup_status", sdk_app_id=APP, task_id=ids["backup"], status="PUSHING") == 1
    assert metric(found, "tiw_push_task_backup_exceptions_total", sdk_app_id=APP, task_id=ids["backup"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize(("sdk_app_id", "task", "code"), [
    (APP, "failed", "FailedOperation.WhiteboardPush"),
    (APP, "not_found", "InvalidParameter.TaskNotFound"),
    (UNKNOWN_APP, "unknown_app_task", "UnauthorizedOperation.SdkAppId"),
    (UNREGISTERED_APP, "unregistered_task", "ResourceUnavailable.NotRegistered"),
    (EXPIRED_APP, "expired_task", "ResourceUnavailable.ServiceExpired"),
])
def test_each_seed_error_code_is_exported_on_its_task_and_counted(scenario, sdk_app_id, task, code):
    url, ids, _, _ = scenario
    task_id = ids.get(task, task)
    found = scrape(url)
    assert metric(found, "tiw_push_task_error", sdk_app_id=sdk_app_id, task_id=task_id, code=code) == 1
    assert metric(found, "tiw_push_api_errors_total", sdk_app_id=sdk_app_id, code=code) >= 1


@pytest.mark.slow
def test_account_level_errors_pause_their_sdk_app_id(scenario):
    url, _, _, _ = scenario
    paused = series(scrape(url), "tiw_exporter_account_paused")
    paused_apps = {dict(labels)["sdk_app_id"] for labels, value in paused.items() if value == 1}
    assert {str(UNKNOWN_APP), str(UNREGISTERED_APP), str(EXPIRED_APP)} <= paused_apps
    assert str(APP) not in paused_apps


@pytest.mark.slow
def test_task_stopping_mid_run_is_not_polled_again(scenario, simulator):
    _, ids, _, _ = scenario
    task_id = ids["stops_mid_run"]
    before = simulator.describes(task_id)
    pushing = simulator.describes(ids["pushing"])
    eventually(lambda: simulator.describes(ids["pushing"]) >= pushing + 3)  # three more intervals passed
    assert simulator.describes(task_id) == before


@pytest.mark.slow
def test_broken_answers_count_as_bad_response_while_healthy_tasks_keep_updating(scenario, simulator):
    url, ids, _, _ = scenario
    def last_success():
        return metric(scrape(url), "tiw_push_task_last_success_timestamp_seconds", sdk_app_id=APP,
                      task_id=ids["pushing"])
    before_success = last_success()
    simulator.set_fault(kind="malformed_json", ratio=0.5, action="DescribeWhiteboardPush")
    try:
        eventually(lambda: (metric(scrape(url), "tiw_exporter_api_requests_total", action="DescribeWhiteboardPush",
                                   outcome="bad_response") or 0) >= 3)
        eventually(lambda: last_success() > before_success)
        # The request counter also counts other SdkAppIds' probes: keep the fault on until this
        # SdkAppId has seen three broken answers itself.
        eventually(lambda: (metric(scrape(url), "tiw_push_api_errors_total", sdk_app_id=APP,
                                   code="ClientError.BadResponse") or 0) >= 3, timeout=60.0)
    finally:
        simulator.clear_faults()
    assert metric(scrape(url), "tiw_push_task_status", sdk_app_id=APP, task_id=ids["pushing"], status="PUSHING") == 1


@pytest.mark.slow
def test_requests_stay_within_the_simulated_rate_limit(scenario, simulator):
    assert simulator.stats()["max_arrivals_in_any_second"]["DescribeWhiteboardPush"] <= 20


@pytest.mark.slow
def test_task_api_requires_the_token_and_validates_bodies(scenario, simulator):
    url, _, _, _ = scenario
    body = {"sdk_app_id": APP, "task_id": "added_by_api"}
    assert requests.post(f"{url}/api/v1/tasks", json=body, timeout=5).status_code == 401
    assert requests.post(f"{url}/api/v1/tasks", json=body, timeout=5,
                         headers={"Authorization": "Bearer nope"}).status_code == 401
    bad = requests.post(f"{url}/api/v1/tasks", data=b"{", timeout=5, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    added = simulator.add_task(APP, "added_by_api", prepare_seconds=0)
    created = requests.post(f"{url}/api/v1/tasks", json={"sdk_app_id": APP, "task_id": added}, timeout=5,
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert created.status_code == 201
    eventually(lambda: metric(scrape(url), "tiw_push_task_status", sdk_app_id=APP, task_id=added,
                              status="PUSHING") == 1)
    listed = requests.get(f"{url}/api/v1/tasks", timeout=5).json()["tasks"]
    entry = next(t for t in listed if t["task_id"] == added)
    assert entry["sources"] == ["api"] and entry["latest"]["status"] == "PUSHING"


@pytest.mark.slow
def test_failed_task_lists_its_error_message_in_the_task_api(scenario):
    url, ids, _, _ = scenario
    entry = requests.get(f"{url}/api/v1/tasks/{APP}/{ids['failed']}", timeout=5).json()
    assert entry["last_error"]["code"] == "FailedOperation.WhiteboardPush"
    assert "UserSig" in entry["last_error"]["message"]
    assert entry["last_error"]["request_id"]


@pytest.mark.slow
def test_restart_with_state_file_keeps_api_tasks_and_final_results(scenario, simulator, key_file):
    url, ids, state, process = scenario
    task_id = simulator.add_task(APP, "survives_restart", prepare_seconds=0)
    requests.post(f"{url}/api/v1/tasks", json={"sdk_app_id": APP, "task_id": task_id}, timeout=5,
                  headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
    eventually(lambda: metric(scrape(url), "tiw_push_task_status", sdk_app_id=APP, task_id=task_id,
                              status="PUSHING") == 1)
    process.proc.send_signal(signal.SIGTERM)
    assert process.proc.wait(10) == 0
    db, saved = statedb.open_state(state)
    db.close()
    assert any(t.task_id == task_id for t in saved)
    stopped_polls = simulator.describes(ids["user_call"])
    with exporter(simulator, key_file, "--state-file", str(state), "--task", f"{APP}:{ids['user_call']}") as (_, new):
        found = scrape(new)
        # Restored before the first poll: the saved result is served straight away.
        assert metric(found, "tiw_push_task_status", sdk_app_id=APP, task_id=task_id, status="PUSHING") == 1
        assert metric(found, "tiw_push_task_finish_reason", sdk_app_id=APP, task_id=ids["user_call"],
                      reason="USER_CALL") == 1
        eventually(lambda: requests.get(f"{new}/-/ready", timeout=5).status_code == 200)
        assert simulator.describes(ids["user_call"]) == stopped_polls  # final: never polled again


def test_wrong_secret_key_is_an_account_level_signature_failure(simulator, tmp_path):
    wrong = tmp_path / "wrong-key"
    wrong.write_text("not-the-key")
    task_id = simulator.add_task(APP, "auth_probe", prepare_seconds=0)
    with exporter(simulator, wrong, "--task", f"{APP}:{task_id}") as (_, url):
        eventually(lambda: metric(scrape(url), "tiw_push_task_error", sdk_app_id=APP, task_id=task_id,
                                  code="AuthFailure.SignatureFailure") == 1)
        assert metric(scrape(url), "tiw_exporter_account_paused", sdk_app_id=APP,
                      code="AuthFailure.SignatureFailure") == 1


@pytest.mark.slow
def test_demo_serves_a_changing_mix_learned_without_a_task_list_and_stops_on_ctrl_c():
    process = Process(exporter_cmd("demo", "--listen", "127.0.0.1:0", "--simulator-listen", "127.0.0.1:0"))
    try:
        url = process.wait_for(r"Metrics: +(?P<url>http://127\.0\.0\.1:\d+)/metrics").group("url")
        eventually(lambda: (metric(scrape(url), "tiw_push_tasks", sdk_app_id=APP, status="PUSHING") or 0) >= 3)
        found = scrape(url)
        assert metric(found, "tiw_push_task_error", sdk_app_id=APP, task_id="demo_task_not_found",
                      code="InvalidParameter.TaskNotFound") == 1
        # A failed push (seed example 2) ends: FailedOperation.WhiteboardPush twice, then finish reason FAILED.
        eventually(lambda: any(name == "tiw_push_task_finish_reason" and dict(labels).get("reason") == "FAILED"
                               and value == 1 for (name, labels), value in scrape(url).items()), timeout=60)
        def sources() -> set[str]:
            return {s for t in requests.get(f"{url}/api/v1/tasks", timeout=5).json()["tasks"] for s in t["sources"]}

        eventually(lambda: {"callback", "discovery"} <= sources(), timeout=30)  # discovery passes every 10 s
        # the class's recording and courseware beside its push: every kind is watched in the demo
        eventually(lambda: (metric(scrape(url), "tiw_record_tasks", sdk_app_id=APP, status="RECORDING") or 0) >= 1)
        eventually(lambda: (metric(scrape(url), "tiw_transcode_tasks", sdk_app_id=APP, status="FINISHED") or 0) >= 1,
                   timeout=60)
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(timeout=10) == 0
    finally:
        process.stop()
    assert "Traceback" not in process.output


def test_json_logs_are_one_object_per_line(simulator, key_file):
    with exporter(simulator, key_file, "--log-format", "json", "--task", f"{APP}:no_such_task") as (process, _):
        eventually(lambda: "TaskNotFound" in process.output)
    lines = [line for line in process.output.splitlines() if line.strip()]
    documents = [json.loads(line) for line in lines]
    assert all({"ts", "level", "logger", "msg"} <= set(d) for d in documents)
    assert any(d["level"] == "warning" and "InvalidParameter.TaskNotFound" in d["msg"] for d in documents)
    # the task and the code are fields of their own, not only words in the message
    assert any(d.get("code") == "InvalidParameter.TaskNotFound" and d.get("task_id") == "no_such_task"
               and d.get("sdk_app_id") == APP for d in documents)
