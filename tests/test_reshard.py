"""Resharding loses nothing: 3 -> 4 -> 2 replicas by rolling restart, one replica killed (-9) on the way.

Every replica knows every registration and final state (``replication.py``) but polls and exports
only its own; after each change, the live owners between them hold every API-registered task and the
callback-learned final state, each task owned (listed) by exactly one replica.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from exporter.callbacks import sign
from exporter.sharding import shard_of
from exporter.simulator import Simulator, TaskScript
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.harness import common_free_port, eventually
from tests.procs import Process, exporter_cmd

TOKEN = "reshard-token"
CALLBACK_KEY = "reshard-callback-key"
MAX_REPLICAS = 4
PEER = {"X-TIW-Exporter-Forwarded": "test", "Authorization": f"Bearer {TOKEN}"}  # asked as a peer: every task known


def host(index: int) -> str:
    return f"127.0.0.1{index}"


class Replicas:
    """Exporter processes, each with its own state file, sharing one simulator."""

    def __init__(self, simulator: Simulator, key_file: Path, directory: Path) -> None:
        self.simulator, self.key_file, self.directory = simulator, key_file, directory
        self.port = common_free_port(["127.0.0.1", *(host(index) for index in range(MAX_REPLICAS))])
        self.processes: dict[int, Process] = {}

    def url(self, index: int) -> str:
        return f"http://{host(index)}:{self.port}"

    def start(self, index: int, count: int) -> None:
        args = exporter_cmd(
            "run", "--listen", f"{host(index)}:{self.port}", "--endpoint", self.simulator.url,
            "--secret-id", SECRET_ID, "--secret-key-file", str(self.key_file), "--interval", "1s",
            "--state-file", str(self.directory / f"state-{index}.json"), "--state-save-interval", "0.5s",
            "--shard-index", str(index), "--shard-count", str(count), "--shard-sync-interval", "0.5s",
            "--shard-peer-url", f"http://127.0.0.1{{index}}:{self.port}", "--not-found-grace", "1h",
        )
        self.processes[index] = Process(args, env={"TIW_EXPORTER_API_TOKEN": TOKEN,
                                                   "TIW_EXPORTER_CALLBACK_KEY": CALLBACK_KEY})
        self.processes[index].wait_for(r"listening on http://")

    def stop(self, index: int) -> None:
        self.processes.pop(index).stop()

    def kill(self, index: int) -> None:
        process = self.processes.pop(index)
        process.proc.kill()  # SIGKILL: no final save
        process.stop()

    def roll(self, count: int) -> None:
        """A rolling restart to ``count`` replicas: one at a time, the others keep serving."""
        for index in sorted(self.processes):
            if index >= count:
                self.stop(index)
        for index in range(count):
            if index in self.processes:
                self.stop(index)
            self.start(index, count)

    def tasks(self, index: int, every: bool = False) -> dict[str, dict]:
        answer = requests.get(f"{self.url(index)}/api/v1/tasks", headers=PEER if every else {}, timeout=10)
        return {t["task_id"]: t for t in answer.json()["tasks"]}

    def owned_everywhere(self) -> dict[str, list[int]]:
        owners: dict[str, list[int]] = {}
        for index in self.processes:
            for task_id in self.tasks(index):
                owners.setdefault(task_id, []).append(index)
        return owners


@pytest.fixture
def replicas(tmp_path, key_file):
    with Simulator(credentials={SECRET_ID: SECRET_KEY}, rate_limit=20) as simulator:
        fleet = Replicas(simulator, key_file, tmp_path)
        try:
            yield fleet
        finally:
            for index in list(fleet.processes):
                fleet.stop(index)


def stop_callback(task_id: str) -> bytes:
    expire = int(time.time()) + 3600
    return json.dumps({"Timestamp": int(time.time()), "SdkAppId": APP, "ExpireTime": expire,
                       "Sign": sign(CALLBACK_KEY, expire), "EventType": "WhiteboardPushStopped",
                       "EventData": {"TaskId": task_id, "FinishReason": "EXCEPTION", "ExceptionCnt": 4,
                                     "PushStopTime": int(time.time())}}).encode()


@pytest.mark.slow
def test_scaling_3_to_4_to_2_with_a_replica_killed_loses_no_task_and_no_final_state(replicas):
    api_tasks = [replicas.simulator.add_task(APP, TaskScript(prepare_seconds=0)) for _ in range(30)]
    for index in range(3):
        replicas.start(index, 3)
    for number, task_id in enumerate(api_tasks):  # spread over the replicas: most are forwarded
        answer = requests.post(f"{replicas.url(number % 3)}/api/v1/tasks", json={"sdk_app_id": APP, "task_id": task_id},
                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert answer.status_code in (200, 201), answer.text
    ended = "cb-ended-task"  # TIW no longer knows it: only the callback's final state tells how it ended
    answer = requests.post(f"{replicas.url(1)}/callbacks/tiw", data=stop_callback(ended), timeout=10,
                           headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    expected = {*api_tasks, ended}

    def all_know_everything() -> bool:
        return all(set(replicas.tasks(index, every=True)) >= expected for index in replicas.processes)

    def each_owned_once(count: int) -> bool:
        owners = replicas.owned_everywhere()
        return set(owners) >= expected and all(
            owners[t] == [shard_of(APP, t, count)] for t in expected)

    def final_state_kept() -> bool:
        owner = shard_of(APP, ended, len(replicas.processes))
        task = replicas.tasks(owner).get(ended)
        return task is not None and task["finish_reason"] == "EXCEPTION" and task["status"] == "STOPPED"

    eventually(all_know_everything, timeout=30)
    eventually(lambda: each_owned_once(3), timeout=30)

    replicas.roll(4)  # 3 -> 4; replica 3 starts without a state file
    replicas.kill(1)  # mid-way: killed without a final save
    replicas.start(1, 4)
    eventually(all_know_everything, timeout=30)
    eventually(lambda: each_owned_once(4), timeout=30)
    eventually(final_state_kept, timeout=30)

    replicas.roll(2)  # 4 -> 2
    eventually(all_know_everything, timeout=30)
    eventually(lambda: each_owned_once(2), timeout=30)
    eventually(final_state_kept, timeout=30)
    polled = replicas.simulator.stats()["describes_by_task"]
    assert all(polled.get(t, 0) >= 1 for t in api_tasks)
