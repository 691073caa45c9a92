"""Scale-out: three shards against one simulator, and several accounts in one process."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
import requests

from exporter.config import ConfigError, build_settings
from exporter.runtime import Exporter
from exporter.sharding import shard_budget, shard_of
from exporter.simulator import Simulator, TaskScript
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.harness import common_free_port, eventually
from tests.procs import Process, exporter_cmd

TOKEN = "shard-token"
SHARDS = 3
LIMIT = 20


def test_shard_of_is_stable_and_spreads_evenly():
    assert shard_of(APP, "ghucnligqtgtvk2624mb", 3) == 0  # pinned: ownership must never change across versions
    counts = Counter(shard_of(APP, f"task{i}", SHARDS) for i in range(3000))
    assert set(counts) == set(range(SHARDS))
    assert min(counts.values()) > 900


@pytest.mark.parametrize(("limit", "count", "share"), [(20, 1, 20), (20, 3, 6), (20, 2, 10), (2, 4, 0.5)])
def test_shards_get_whole_requests_per_second_so_their_windows_cannot_add_up_past_the_limit(limit, count, share):
    assert shard_budget(limit, count) == share
    assert count * math.ceil(shard_budget(limit, count)) <= max(limit, count)


def shard_host(index: int) -> str:
    """Replicas differ by loopback address (127.0.0.10, .11, ...), like pods by DNS name."""
    return f"127.0.0.1{index}"


def port_free_on_all_hosts() -> int:
    return common_free_port(["127.0.0.1", *(shard_host(index) for index in range(SHARDS))])


class Fleet:
    """SHARDS exporter processes sharing one tasks file, one simulator and one account limit."""

    def __init__(self, simulator: Simulator, tasks_file: Path, key_file: Path) -> None:
        self.port = port_free_on_all_hosts()
        self.simulator, self.tasks_file, self.key_file = simulator, tasks_file, key_file
        self.processes: dict[int, Process] = {}

    def url(self, index: int) -> str:
        return f"http://{shard_host(index)}:{self.port}"

    def start(self, index: int) -> None:
        args = exporter_cmd(
            "run", "--listen", f"{shard_host(index)}:{self.port}", "--endpoint", self.simulator.url,
            "--secret-id", SECRET_ID, "--secret-key-file", str(self.key_file), "--interval", "1s",
            "--rate-limit", str(LIMIT), "--tasks-file", str(self.tasks_file), "--shard-index", str(index),
            "--shard-count", str(SHARDS), "--shard-peer-url", f"http://127.0.0.1{{index}}:{self.port}",
        )
        process = Process(args, env={"TIW_EXPORTER_API_TOKEN": TOKEN})
        self.processes[index] = process
        process.wait_for(r"listening on http://")

    def stop(self, index: int) -> None:
        self.processes.pop(index).stop()

    def stop_all(self) -> None:
        for index in list(self.processes):
            self.stop(index)

    def tracked(self, index: int) -> set[str]:
        """The tasks replica ``index`` owns: polls and exports."""
        tasks = requests.get(f"{self.url(index)}/api/v1/tasks", timeout=5).json()["tasks"]
        return {t["task_id"] for t in tasks}

    def known(self, index: int) -> set[str]:
        """Every task replica ``index`` knows of (what it tells a peer)."""
        peer = {"X-TIW-Exporter-Forwarded": "test", "Authorization": f"Bearer {TOKEN}"}
        tasks = requests.get(f"{self.url(index)}/api/v1/tasks", headers=peer, timeout=5).json()["tasks"]
        return {t["task_id"] for t in tasks}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, key_file):
    directory = tmp_path_factory.mktemp("fleet")
    with Simulator(credentials={SECRET_ID: SECRET_KEY}, rate_limit=LIMIT) as simulator:
        task_ids = [simulator.add_task(APP, TaskScript(prepare_seconds=0)) for _ in range(90)]
        tasks_file = directory / "tasks.yml"
        tasks_file.write_text("".join(f"- {{sdk_app_id: {APP}, task_id: {t}}}\n" for t in task_ids))
        fleet = Fleet(simulator, tasks_file, key_file)
        fleet.task_ids = task_ids
        try:
            for index in range(SHARDS):
                fleet.start(index)
            yield fleet
        finally:
            fleet.stop_all()


def polls(fleet: Fleet, task_ids) -> dict[str, int]:
    by_task = fleet.simulator.stats()["describes_by_task"]
    return {t: by_task.get(t, 0) for t in task_ids}


@pytest.mark.slow
def test_every_task_is_polled_by_exactly_one_shard_within_the_account_limit(fleet):
    sets = [fleet.tracked(index) for index in range(SHARDS)]
    assert set().union(*sets) == set(fleet.task_ids)
    assert sum(len(s) for s in sets) == len(fleet.task_ids)  # disjoint
    for index, owned in enumerate(sets):
        assert all(shard_of(APP, t, SHARDS) == index for t in owned)
    eventually(lambda: all(polls(fleet, fleet.task_ids).values()), timeout=30)
    stats = fleet.simulator.stats()
    assert stats["max_arrivals_in_any_second"]["DescribeWhiteboardPush"] <= LIMIT
    assert stats["throttled"] == 0


@pytest.mark.slow
def test_api_write_to_the_wrong_shard_is_forwarded_to_its_owner(fleet):
    task_id = next(f"fwd{i}" for i in range(100) if shard_of(APP, f"fwd{i}", SHARDS) == 1)
    answer = requests.post(f"{fleet.url(0)}/api/v1/tasks", json={"sdk_app_id": APP, "task_id": task_id},
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 201
    assert answer.headers["X-TIW-Exporter-Shard"] == "1"
    assert task_id in fleet.tracked(1)
    assert task_id not in fleet.tracked(0)


def settled(read, interval: float = 0.3):
    """``read()`` once two reads ``interval`` apart agree."""
    previous = [read()]

    def unchanged():
        current = read()
        same, previous[0] = current == previous[0], current
        return same

    eventually(unchanged, interval=interval)
    return previous[0]


@pytest.mark.slow
def test_killing_a_shard_loses_only_its_share_until_it_returns(fleet):
    lost = [t for t in fleet.task_ids if shard_of(APP, t, SHARDS) == 2]
    kept = [t for t in fleet.task_ids if shard_of(APP, t, SHARDS) != 2]
    fleet.stop(2)
    try:
        lost_before = settled(lambda: polls(fleet, lost))  # in-flight polls of the stopped shard drain
        kept_before = polls(fleet, kept)
        eventually(lambda: all(v > kept_before[t] for t, v in polls(fleet, kept).items()), timeout=30)
        assert polls(fleet, lost) == lost_before
        orphan = next(f"orphan{i}" for i in range(100) if shard_of(APP, f"orphan{i}", SHARDS) == 2)
        answer = requests.post(f"{fleet.url(0)}/api/v1/tasks", json={"sdk_app_id": APP, "task_id": orphan},
                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert answer.status_code == 201 and "X-TIW-Exporter-Shard" not in answer.headers
        assert orphan in fleet.known(0)  # kept by a live replica rather than lost
        assert orphan not in fleet.tracked(0)  # but polled and exported only by its owner
    finally:
        fleet.start(2)
    eventually(lambda: all(v > lost_before[t] for t, v in polls(fleet, lost).items()), timeout=30)
    eventually(lambda: orphan in fleet.tracked(2), timeout=30)  # the owner learns it from its peers on return


@pytest.mark.slow
def test_a_throttled_account_does_not_slow_the_others(tmp_path):
    calm_app, busy_app = 1400000011, 1400000022
    credentials = {"AKIDcalm": "calm-key", "AKIDbusy": "busy-key"}
    with Simulator(credentials=credentials, sdk_app_ids=(calm_app, busy_app), rate_limit=10) as simulator:
        calm = [simulator.add_task(calm_app, TaskScript(prepare_seconds=0)) for _ in range(30)]
        busy = [simulator.add_task(busy_app, TaskScript(prepare_seconds=0)) for _ in range(30)]
        directory = tmp_path
        for name, key in credentials.items():
            (directory / name).write_text(key)
        config = directory / "config.yml"
        config.write_text(
            f"accounts:\n"
            f"  - {{name: calm, secret_id: AKIDcalm, secret_key_file: {directory / 'AKIDcalm'}, "
            f"sdk_app_ids: [{calm_app}], rate_limit: 10}}\n"
            f"  - {{name: busy, secret_id: AKIDbusy, secret_key_file: {directory / 'AKIDbusy'}, "
            f"sdk_app_ids: [{busy_app}], rate_limit: 40}}\n"  # twice what the API allows: it gets throttled
        )
        tasks = tuple(f"{calm_app}:{t}" for t in calm) + tuple(f"{busy_app}:{t}" for t in busy)
        settings = build_settings({"listen": "127.0.0.1:0", "endpoint": simulator.url, "interval": "1s",
                                   "tasks": tasks}, config)
        exporter = Exporter(settings).start()
        try:
            calm_account, busy_account = exporter.accounts.by_name["calm"], exporter.accounts.by_name["busy"]
            eventually(lambda: busy_account.limiter.current_rate < busy_account.limiter.nominal, timeout=20)
            eventually(lambda: all(exporter.store.get((calm_app, t)).last_success for t in calm), timeout=20)
            assert calm_account.limiter.current_rate == calm_account.limiter.nominal  # never slowed down
            assert all(exporter.store.get((calm_app, t)).last_error is None for t in calm)
        finally:
            exporter.stop()
        stats = simulator.stats()
    assert stats["throttled"] > 0


def test_accounts_config_errors_are_named(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("accounts:\n  - {name: a, sdk_app_ids: [1]}\n  - {name: b, sdk_app_ids: [1]}\n")
    with pytest.raises(ConfigError, match="at most one account"):
        build_settings({}, config)
    config.write_text("accounts:\n  - {name: a, secret_key: inline}\n")
    with pytest.raises(ConfigError, match="unknown keys"):
        build_settings({}, config)


def test_single_process_keeps_working_without_accounts_section():
    with Simulator(credentials={SECRET_ID: SECRET_KEY}) as simulator:
        task_id = simulator.add_task(APP, TaskScript(prepare_seconds=0))
        settings = build_settings({"listen": "127.0.0.1:0", "endpoint": simulator.url, "interval": "1s",
                                   "tasks": (f"{APP}:{task_id}",)})
        exporter = Exporter(settings, credentials=StaticCredentials(Credential(SECRET_ID, SECRET_KEY))).start()
        try:
            assert [a.name for a in exporter.accounts] == ["default"]
            eventually(lambda: exporter.store.get((APP, task_id)).last_success)
        finally:
            exporter.stop()
