"""Each class of the error table, driven through the simulator: what the collector does and what shows.

A real simulator, a real exporter in-process, real HTTP between them; assertions read /metrics.
"""

from __future__ import annotations

import logging

import pytest

from exporter.runtime import Exporter
from exporter.simulator import Simulator, TaskScript
from exporter.tencentcloud.credentials import Credential
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.harness import eventually, metric, running_exporter, scrape, series

pytestmark = pytest.mark.slow
DESCRIBE = "DescribeWhiteboardPush"


@pytest.fixture
def sim(unlimited_sim: Simulator) -> Simulator:
    return unlimited_sim


def run(sim: Simulator, *task_ids: str, **flags: str) -> Exporter:
    tasks = tuple(f"{APP}:{task_id}" for task_id in task_ids)
    return running_exporter(sim.url, Credential(SECRET_ID, SECRET_KEY), interval="1s", tasks=tasks, **flags)


def test_a_failed_push_ends_is_not_polled_again_and_expires(sim: Simulator) -> None:
    task_id = sim.add_task(APP, TaskScript(0, fail_with="FailedOperation.WhiteboardPush"))
    with run(sim, task_id, finished_retention="3s") as exporter:
        eventually(lambda: metric(scrape(exporter.url), "tiw_push_task_finish_reason", sdk_app_id=APP,
                                  task_id=task_id, reason="FAILED") == 1)
        found = scrape(exporter.url)
        assert metric(found, "tiw_push_task_status", sdk_app_id=APP, task_id=task_id, status="STOPPED") == 1
        assert metric(found, "tiw_push_task_failure_info", sdk_app_id=APP, task_id=task_id,
                      code="FailedOperation.WhiteboardPush", trtc_code="-70003") == 1
        polls = sim.stats()["describes_by_task"][task_id]
        assert polls == 2  # the failure and its confirmation, then never again
        eventually(lambda: not series(scrape(exporter.url), "tiw_push_task_status", task_id=task_id))
        assert sim.stats()["describes_by_task"][task_id] == polls
        assert exporter.store.get((APP, task_id)).retired  # a --task stays known, no longer exported


def test_a_task_tiw_does_not_know_ends_after_the_grace_period(sim: Simulator) -> None:
    with run(sim, "no_such_task", not_found_grace="2s") as exporter:
        eventually(lambda: metric(scrape(exporter.url), "tiw_push_task_error", sdk_app_id=APP,
                                  task_id="no_such_task", code="InvalidParameter.TaskNotFound") == 1)
        assert exporter.store.get((APP, "no_such_task")).active  # within the grace: still asked
        eventually(lambda: metric(scrape(exporter.url), "tiw_push_task_finish_reason", sdk_app_id=APP,
                                  task_id="no_such_task", reason="NOT_FOUND") == 1, timeout=10)


def test_a_setup_error_pauses_the_whole_credential_until_it_is_fixed(sim: Simulator) -> None:
    task_id = sim.add_task(APP, TaskScript(0))
    sim.set_fault("unsupported_region", action=DESCRIBE)
    with run(sim, task_id) as exporter:
        eventually(lambda: metric(scrape(exporter.url), "tiw_exporter_credential_paused", account="default",
                                  code="UnsupportedRegion") == 1)
        assert metric(scrape(exporter.url), "tiw_exporter_account_paused", sdk_app_id=APP,
                      code="UnsupportedRegion") == 1
        sim.clear_faults()
        eventually(lambda: metric(scrape(exporter.url), "tiw_push_task_status", sdk_app_id=APP, task_id=task_id,
                                  status="PUSHING") == 1, timeout=15)
        found = scrape(exporter.url)
        assert not series(found, "tiw_exporter_credential_paused") and not series(found, "tiw_exporter_account_paused")


def test_an_app_level_error_pauses_only_its_sdk_app_id(sim: Simulator) -> None:
    task_id = sim.add_task(APP, TaskScript(0))
    sim.set_fault("sdk_app_id_not_found", action=DESCRIBE)
    with run(sim, task_id) as exporter:
        eventually(lambda: metric(scrape(exporter.url), "tiw_exporter_account_paused", sdk_app_id=APP,
                                  code="InvalidParameter.SdkAppIdNotFound") == 1)
        assert not series(scrape(exporter.url), "tiw_exporter_credential_paused")
        assert exporter.store.get((APP, task_id)).active


def _pushing(exporter: Exporter, task_id: str) -> bool:
    return metric(scrape(exporter.url), "tiw_push_task_status", sdk_app_id=APP, task_id=task_id, status="PUSHING") == 1


def _settled(exporter: Exporter, task_id: str, caplog: pytest.LogCaptureFixture) -> None:
    """The task answered and the start-up preflight (whose probe would take an injected fault) is done."""
    eventually(lambda: _pushing(exporter, task_id))
    eventually(lambda: any("preflight ok: clock" in r.getMessage() for r in caplog.records))


def test_a_transient_error_is_recorded_and_cleared_by_the_next_answer(sim: Simulator, caplog) -> None:
    caplog.set_level(logging.INFO, logger="exporter.runtime")
    task_id = sim.add_task(APP, TaskScript(0))
    with run(sim, task_id) as exporter:
        _settled(exporter, task_id, caplog)
        sim.set_fault("service_unavailable", count=2, action=DESCRIBE)
        eventually(lambda: (metric(scrape(exporter.url), "tiw_push_api_errors_total", sdk_app_id=APP,
                                   code="ServiceUnavailable") or 0) >= 2)
        eventually(lambda: exporter.store.get((APP, task_id)).last_error is None)
        found = scrape(exporter.url)
        assert _pushing(exporter, task_id)
        assert not series(found, "tiw_push_task_error", task_id=task_id)  # the next good answer cleared it
        assert not series(found, "tiw_exporter_account_paused")


def test_throttling_slows_down_without_blaming_the_task(sim: Simulator, caplog) -> None:
    caplog.set_level(logging.INFO, logger="exporter.runtime")
    task_id = sim.add_task(APP, TaskScript(0))
    with run(sim, task_id) as exporter:
        _settled(exporter, task_id, caplog)
        sim.set_fault("request_limit", count=3, action=DESCRIBE)
        eventually(lambda: (metric(scrape(exporter.url), "tiw_exporter_api_requests_total", action=DESCRIBE,
                                   outcome="throttled") or 0) >= 3)
        eventually(lambda: sim.stats()["describes_by_task"][task_id] >= 5)  # polled again after the throttling
        assert exporter.store.get((APP, task_id)).last_error is None  # throttling never marks the task
