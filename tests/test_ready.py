"""Ready means serving: /-/ready answers 200 once the state is loaded and the listeners serve."""

from __future__ import annotations

import requests

from exporter.lifecycle import TaskRecord
from exporter.simulator import Simulator
from exporter.tencentcloud.credentials import Credential
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.fakes import save_legacy_state
from tests.harness import metric, running_exporter, scrape

TASKS = 2000


def test_ready_with_a_large_state_long_before_every_task_is_polled(tmp_path):
    state = tmp_path / "state.json"
    save_legacy_state(state, [TaskRecord(APP, f"t{i}", frozenset({"api"}), 0.0) for i in range(TASKS)])
    with Simulator(credentials={SECRET_ID: SECRET_KEY}, rate_limit=20) as simulator, \
            running_exporter(simulator.url, Credential(SECRET_ID, SECRET_KEY), state_file=str(state),
                             rate_limit="1", liveness_interval="0") as exporter:
        assert requests.get(f"{exporter.url}/-/ready", timeout=5).status_code == 200  # at once, not in 2000 s
        assert len(exporter.store) == TASKS
        coverage = metric(scrape(exporter.url), "tiw_exporter_coverage_ratio")
        assert coverage is not None and coverage < 0.5  # how far polling has got is a metric instead
