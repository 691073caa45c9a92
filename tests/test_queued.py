"""Queued pushes: TIW's running list (QUEUED) and its warning callbacks, over real HTTP with the simulator.

A push that waits for TIW's capacity is a class without its whiteboard: it shows as a gauge per SdkAppId,
a line on the status page, and counted warnings; the warning route is authenticated by the token in
its URL, since TIW's documented warning body carries no signature.
"""

from __future__ import annotations

import requests

from exporter.simulator import Simulator, TaskScript
from exporter.tencentcloud.credentials import Credential
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.harness import eventually, metric, running_exporter, scrape

TOKEN = "warning-token-0123456789"
TIME_WARNING = "TaskQueuedTimeLimitWarning"


def test_queued_pushes_show_as_a_gauge_a_status_line_and_counted_warnings():
    with Simulator(credentials={SECRET_ID: SECRET_KEY}, warning_queued_amount=5,
                   warning_queued_seconds=0.5) as simulator:
        tracked, untracked = (simulator.add_task(APP, TaskScript(queued_seconds=3600)) for _ in range(2))
        with running_exporter(simulator.url, Credential(SECRET_ID, SECRET_KEY), tasks=(f"{APP}:{tracked}",),
                              interval="60s", liveness_interval="0.3s", warning_callback_token=TOKEN) as exporter:
            simulator.configure_warning_callbacks(f"{exporter.url}/callbacks/tiw/warnings/{TOKEN}")
            eventually(lambda: metric(scrape(exporter.url), "tiw_push_tasks_queued", sdk_app_id=APP) == 2)
            eventually(lambda: (metric(scrape(exporter.url), "tiw_push_queue_warnings_total", sdk_app_id=APP,
                                       event_type=TIME_WARNING) or 0) >= 1, timeout=10)
            assert exporter.store.get((APP, untracked)) is not None  # the warning named it: now tracked
            assert exporter.store.get((APP, tracked)).status == "PREPARED"  # queued is not a status of its own
            page = requests.get(exporter.url + "/", timeout=5).text
            assert "Queued at TIW, waiting for capacity: <b>2</b>" in page


def test_a_warning_without_the_urls_token_changes_nothing():
    body = {"EventType": TIME_WARNING, "EventData": {"TaskType": "WhiteboardPush", "Total": 1, "Tasks": [
        {"TaskID": "forged", "SdkAppID": APP, "CreateTime": 0, "CancelTime": 0, "RoomID": 1, "FileURL": ""}]}}
    with Simulator(credentials={SECRET_ID: SECRET_KEY}) as simulator:
        with running_exporter(simulator.url, Credential(SECRET_ID, SECRET_KEY), interval="60s",
                              warning_callback_token=TOKEN) as exporter:
            for path in ("/callbacks/tiw/warnings/wrong", "/callbacks/tiw/warnings/", "/callbacks/tiw/warnings/x/y"):
                assert requests.post(exporter.url + path, json=body, timeout=5).status_code == 403, path
            bad = requests.post(f"{exporter.url}/callbacks/tiw/warnings/{TOKEN}", data=b"{no json", timeout=5)
            assert bad.status_code == 400
            assert exporter.store.get((APP, "forged")) is None
            assert metric(scrape(exporter.url), "tiw_push_queue_warnings_total", sdk_app_id=APP,
                          event_type=TIME_WARNING) is None
        with running_exporter(simulator.url, Credential(SECRET_ID, SECRET_KEY), interval="60s") as no_token:
            answer = requests.post(f"{no_token.url}/callbacks/tiw/warnings/{TOKEN}", json=body, timeout=5)
            assert answer.status_code == 404  # no token configured: the route does not exist
