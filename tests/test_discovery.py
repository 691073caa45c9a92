"""Zero-configuration discovery: signed TIW callbacks and DescribeRunningTasks, over real HTTP."""

from __future__ import annotations

import json
import logging
import time

import pytest
import requests

from exporter.callbacks import sign
from exporter.discovery import Discoverer
from exporter.ratelimit import PacedLimiter
from exporter.runtime import Exporter
from exporter.simulator import Simulator, TaskScript
from exporter.store import TaskStore
from exporter.tencentcloud.client import TencentCloudClient
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from exporter.tencentcloud.errors import ApiError
from exporter.tiw import describe_running_tasks
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.harness import eventually, metric, running_exporter, scrape

CALLBACK_KEY = "Xz4ZgayTr7rMgWQrH"


def test_sign_matches_tencents_worked_example():
    assert sign("Xz4ZgayTr7rMgWQrH", 1588040109) == "a2dabb362a9b811c0e26953a6276a41c"


def exporter_for(simulator: Simulator, **flags):
    """An in-process exporter against ``simulator`` with the callback key set (a context manager)."""
    flags.setdefault("callback_key", CALLBACK_KEY)
    flags.setdefault("interval", "1s")
    return running_exporter(simulator.url, Credential(SECRET_ID, SECRET_KEY), **flags)


@pytest.fixture
def simulator():
    with Simulator(credentials={SECRET_ID: SECRET_KEY}, rate_limit=20) as sim:
        yield sim


@pytest.fixture
def exporter(simulator):
    with exporter_for(simulator, callback_listen="127.0.0.1:0") as exporter:
        yield exporter


def callback(event_type: str, task_id: str, expire_in: int = 3600, key: str = CALLBACK_KEY, **data) -> dict:
    expire = int(time.time()) + expire_in
    return {"Timestamp": int(time.time()), "SdkAppId": APP, "ExpireTime": expire, "Sign": sign(key, expire),
            "EventType": event_type, "EventData": {"TaskId": task_id, **data}}


def post(exporter: Exporter, body, raw: bytes | None = None) -> requests.Response:
    return requests.post(f"{exporter.url}/callbacks/tiw", data=raw if raw is not None else json.dumps(body),
                         headers={"Content-Type": "application/json"}, timeout=5)


def record(exporter: Exporter, task_id: str):
    return exporter.store.get((APP, task_id))


def test_signed_start_callback_starts_tracking_and_polling(exporter, simulator):
    task_id = simulator.add_task(APP, TaskScript(prepare_seconds=0))
    answer = post(exporter, callback("WhiteboardPushStarted", task_id, RoomId=7, PushUserId="u",
                                     PushStartTime=int(time.time())))
    assert answer.status_code == 200 and answer.json() == {"error_code": 0}
    assert record(exporter, task_id).sources == {"callback"}
    eventually(lambda: simulator.stats()["describes_by_task"].get(task_id, 0) >= 1)
    eventually(lambda: record(exporter, task_id).last_success is not None)


@pytest.mark.parametrize(("body", "status"), [
    (callback("WhiteboardPushStarted", "forged", key="wrong-key"), 403),
    (callback("WhiteboardPushStarted", "expired", expire_in=-10), 403),
    ({**callback("WhiteboardPushStarted", "unsigned"), "Sign": None}, 403),
    ({**callback("WhiteboardPushStarted", "badapp"), "SdkAppId": "x"}, 400),
    (callback("WhiteboardPushStarted", "bad task id!"), 400),
    ({**callback("WhiteboardPushStarted", "nodata"), "EventData": []}, 400),
])
def test_refused_callbacks_change_nothing(exporter, body, status):
    assert post(exporter, body).status_code == status
    assert len(exporter.store) == 0


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b"\xff"])
def test_malformed_callbacks_get_400(exporter, raw):
    assert post(exporter, None, raw=raw).status_code in (400, 403)
    assert len(exporter.store) == 0


def test_oversized_callback_is_refused(exporter):
    body = callback("WhiteboardPushStarted", "big", Padding="x" * 100_000)
    assert post(exporter, body).status_code == 413
    assert len(exporter.store) == 0


def test_unknown_event_types_are_acknowledged_and_counted(exporter):
    assert post(exporter, callback("WhiteboardPushPaused", "t1")).status_code == 200
    assert len(exporter.store) == 0
    metrics = requests.get(f"{exporter.url}/metrics", timeout=5).text
    assert 'tiw_exporter_callbacks_total{event_type="other",outcome="unknown_event"} 1.0' in metrics


def test_callbacks_are_disabled_without_a_key(simulator):
    with exporter_for(simulator, callback_key=None) as exporter:
        assert post(exporter, callback("WhiteboardPushStarted", "t1")).status_code == 403
        assert len(exporter.store) == 0


@pytest.mark.slow
def test_stop_callback_shows_on_the_next_scrape_even_if_the_api_still_says_pushing(exporter, simulator):
    task_id = simulator.add_task(APP, TaskScript(prepare_seconds=0))  # the API keeps answering PUSHING
    post(exporter, callback("WhiteboardPushStarted", task_id))
    eventually(lambda: record(exporter, task_id).status == "PUSHING" and record(exporter, task_id).last_success)
    stopped = callback("WhiteboardPushStopped", task_id, FinishReason="EXCEPTION", PushStopTime=int(time.time()),
                       ExceptionCnt=3, Error={"Code": "FailedOperation.WhiteboardPush", "Message": "TRTC onError"})
    assert post(exporter, stopped).status_code == 200
    metrics = requests.get(f"{exporter.url}/metrics", timeout=5).text
    assert f'tiw_push_task_status{{sdk_app_id="{APP}",status="STOPPED",task_id="{task_id}"}} 1.0' in metrics
    # TIW's Error is a failed push (the code Describe answers for one): FAILED, as polling would end it
    assert f'tiw_push_task_finish_reason{{reason="FAILED",sdk_app_id="{APP}",task_id="{task_id}"}} 1.0' in metrics
    assert 'tiw_push_task_failure_info{code="FailedOperation.WhiteboardPush"' in metrics
    polls = simulator.stats()["describes_by_task"][task_id]
    # Kept sleep, the check is that nothing happens: over two 1 s intervals the stopped task is not polled.
    time.sleep(2.5)
    assert simulator.stats()["describes_by_task"][task_id] == polls
    assert record(exporter, task_id).status == "STOPPED"
    entry = requests.get(f"{exporter.url}/api/v1/tasks/{APP}/{task_id}", timeout=5).json()
    assert entry["stop_error"]["code"] == "FailedOperation.WhiteboardPush"


def test_callback_only_listener_serves_nothing_else(exporter):
    callback_url = exporter.callback_server.url
    assert requests.get(f"{callback_url}/metrics", timeout=5).status_code == 404
    assert requests.get(f"{callback_url}/api/v1/tasks", timeout=5).status_code == 404
    answer = requests.post(f"{callback_url}/callbacks/tiw", json=callback("WhiteboardPushStarted", "via_side_door"),
                           timeout=5)
    assert answer.status_code == 200
    assert record(exporter, "via_side_door") is not None


def test_simulator_callbacks_drive_the_exporter_end_to_end(simulator):
    with exporter_for(simulator) as exporter:
        simulator.configure_callbacks(f"{exporter.url}/callbacks/tiw", CALLBACK_KEY)
        task_id = simulator.add_task(APP, TaskScript(prepare_seconds=0.2, push_seconds=1.0, finish_reason="AUTO"))
        eventually(lambda: record(exporter, task_id) is not None)
        eventually(lambda: record(exporter, task_id).status == "STOPPED")
        assert record(exporter, task_id).latest.finish_reason == "AUTO"


def test_discovery_finds_running_tasks_without_any_task_configured(simulator):
    running = [simulator.add_task(APP, TaskScript(prepare_seconds=p)) for p in (0, 0, 3600)]
    finished = simulator.add_task(APP, TaskScript(prepare_seconds=0, push_seconds=0.01))
    eventually(lambda: simulator.stats()["tasks"]["STOPPED"] == 1, interval=0.01)  # ``finished`` has stopped
    with exporter_for(simulator, discover_sdk_app_ids=(APP,), discover_interval="1s") as exporter:
        eventually(lambda: all(record(exporter, t) is not None for t in running))
        assert record(exporter, finished) is None
        assert all(record(exporter, t).sources == {"discovery"} for t in running)
        eventually(lambda: all(record(exporter, t).last_success for t in running))


@pytest.mark.slow
def test_task_leaving_the_running_list_is_polled_until_stopped(simulator):
    task_id = simulator.add_task(APP, TaskScript(prepare_seconds=0, push_seconds=2, finish_reason="USER_CALL"))
    with exporter_for(simulator, discover_sdk_app_ids=(APP,), discover_interval="1s") as exporter:
        eventually(lambda: record(exporter, task_id) is not None)
        eventually(lambda: record(exporter, task_id).status == "STOPPED", timeout=10)
        assert record(exporter, task_id).latest.finish_reason == "USER_CALL"


@pytest.mark.slow
def test_discovery_and_polling_each_stay_within_their_own_actions_rate_limit():
    """Tencent counts the limit per action, so each action has its own budget (not one joint one)."""
    with Simulator(credentials={SECRET_ID: SECRET_KEY}, rate_limit=10) as simulator:
        for _ in range(60):
            simulator.add_task(APP, TaskScript(prepare_seconds=0))
        with exporter_for(simulator, discover_sdk_app_ids=(APP,), discover_interval="1s", rate_limit="10") as exporter:
            eventually(lambda: len(exporter.store) == 60)
            # Kept sleep: the rate assertions below measure this window of discovery rounds and polls,
            # and at least three 1 s discovery rounds must fit in it.
            time.sleep(4)
        stats = simulator.stats()
    arrivals = stats["max_arrivals_in_any_second"]
    assert set(arrivals) >= {"DescribeWhiteboardPush", "DescribeRunningTasks"}
    assert all(count <= 10 for count in arrivals.values()), arrivals
    assert stats["throttled"] == 0
    assert stats["requests"]["DescribeRunningTasks"]["success"] >= 3


def test_discovery_refused_for_good_is_said_once_and_asked_again_rarely(caplog):
    """International accounts (no DescribeRunningTasks) and CAM policies without it: one line, not one per pass."""
    requests_made = []

    def refused(app: int, offset: int, limit: int):
        requests_made.append(app)
        raise ApiError("InvalidAction", "no such action", "r")

    discoverer = Discoverer(TaskStore(), refused, PacedLimiter(1000.0), [APP], interval=1.0)
    with caplog.at_level(logging.WARNING, logger="exporter.discovery"):
        for _ in range(5):
            assert discoverer.discover(APP) == 0
    assert len(requests_made) == 1 and caplog.text.count("is not possible") == 1
    assert discoverer.refusals.current() == {APP: "InvalidAction"}


@pytest.mark.slow
def test_a_failed_push_still_listed_is_counted_once_over_retention_periods_and_a_restart(simulator, tmp_path):
    """TIW may keep listing a task after it ended (undocumented): retention must not make it new again."""
    failed = simulator.add_task(APP, TaskScript(prepare_seconds=0, push_seconds=0.5,
                                                fail_with="FailedOperation.WhiteboardPush", listed_after_end=True))
    flags = {"discover_sdk_app_ids": (APP,), "discover_interval": "0.5s", "interval": "0.5s",
             "finished_retention": "2s", "state_file": str(tmp_path / "state.db"), "state_save_interval": "0.2s"}

    def finished(exporter) -> float:
        return metric(scrape(exporter.url), "tiw_push_tasks_finished_total", sdk_app_id=APP, reason="FAILED") or 0

    with exporter_for(simulator, **flags) as exporter:
        eventually(lambda: finished(exporter) == 1, timeout=15)
        eventually(lambda: record(exporter, failed) is None, timeout=10)  # retention dropped it...
        time.sleep(4)  # ...and two more retention periods of 0.5 s discovery passes list it again
        assert record(exporter, failed) is None and finished(exporter) == 1
    with exporter_for(simulator, **flags) as restarted:
        time.sleep(3)  # discovery passes after the restart
        assert record(restarted, failed) is None and finished(restarted) == 0
    client = TencentCloudClient(StaticCredentials(Credential(SECRET_ID, SECRET_KEY)), endpoint=simulator.url)
    listed, _ = describe_running_tasks(client, APP, 0, 500)
    client.close()
    assert failed in [t.task_id for t in listed if not t.ended]  # TIW still listed it all along
