"""Resharding loses nothing: 3 -> 4 -> 2 replicas by rolling restart, one replica killed (-9) on the way.

Every replica knows every registration and final state (``replication.py``) but polls and exports
only its own; after each change, the live owners between them hold every API-registered task and the
callback-learned final state, each task owned (listed) by exactly one replica. Sync also works behind
basic auth (peers send the API token), and a delete a stopped replica missed stays a delete.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import bcrypt
import pytest
import requests

from exporter.callbacks import sign
from exporter.sharding import shard_of
from exporter.simulator import Simulator, TaskScript
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.harness import common_free_port, eventually, metric, scrape
from tests.procs import Process, exporter_cmd

TOKEN = "reshard-token"
CALLBACK_KEY = "reshard-callback-key"
MAX_REPLICAS = 4
PEER = {"X-TIW-Exporter-Forwarded": "test", "Authorization": f"Bearer {TOKEN}"}  # asked as a peer: every task known


def host(index: int) -> str:
    return f"127.0.0.1{index}"


class Replicas:
    """Exporter processes, each with its own state file, sharing one simulator.

    ``token`` None starts them without an API token; ``web_config`` adds ``--web-config-file``.
    """

    def __init__(self, simulator: Simulator, key_file: Path, directory: Path) -> None:
        self.simulator, self.key_file, self.directory = simulator, key_file, directory
        self.port = common_free_port(["127.0.0.1", *(host(index) for index in range(MAX_REPLICAS))])
        self.processes: dict[int, Process] = {}
        self.token: str | None = TOKEN
        self.web_config: Path | None = None

    def url(self, index: int) -> str:
        return f"http://{host(index)}:{self.port}"

    def start(self, index: int, count: int) -> None:
        args = exporter_cmd(
            "run", "--listen", f"{host(index)}:{self.port}", "--endpoint", self.simulator.url,
            "--secret-id", SECRET_ID, "--secret-key-file", str(self.key_file), "--interval", "1s",
            "--state-file", str(self.state_file(index)), "--state-save-interval", "0.5s",
            "--shard-index", str(index), "--shard-count", str(count), "--shard-sync-interval", "0.5s",
            "--shard-peer-url", f"http://127.0.0.1{{index}}:{self.port}", "--not-found-grace", "1h",
            *(["--web-config-file", str(self.web_config)] if self.web_config else []),
        )
        env = {"TIW_EXPORTER_CALLBACK_KEY": CALLBACK_KEY}
        if self.token:
            env["TIW_EXPORTER_API_TOKEN"] = self.token
        self.processes[index] = Process(args, env=env)
        self.processes[index].wait_for(r"listening on http://")

    def state_file(self, index: int) -> Path:
        return self.directory / f"state-{index}.json"  # SQLite, whatever its name (statedb.py)

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

    def register(self, index: int, task_id: str) -> None:
        answer = requests.post(f"{self.url(index)}/api/v1/tasks", json={"sdk_app_id": APP, "task_id": task_id},
                               headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert answer.status_code in (200, 201), answer.text

    def known_by(self, task_id: str) -> list[int]:
        """The running replicas that know ``task_id`` (asked as a peer)."""
        return [index for index in sorted(self.processes) if task_id in self.tasks(index, every=True)]

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

    # Freshness is of the tasks a replica polls, not of all it knows: together the replicas count each
    # active task once, and each has a fresh answer for all of its own.
    def freshness_of_own_tasks() -> bool:
        found = [scrape(replicas.url(index)) for index in replicas.processes]
        counted = sum(metric(f, "tiw_exporter_liveness_tasks", mode=mode)
                      for f in found for mode in ("listed", "polled"))
        return counted == len(api_tasks) and all(metric(f, "tiw_exporter_coverage_ratio") == 1 for f in found)

    eventually(freshness_of_own_tasks, timeout=30)


def owned_by(index: int, count: int, prefix: str) -> str:
    """A task id replica ``index`` owns among ``count``: one a peer can only learn through sync."""
    return next(f"{prefix}{n}" for n in range(1000) if shard_of(APP, f"{prefix}{n}", count) == index)


def basic_auth_config(directory: Path) -> Path:
    config = directory / "web.yml"
    hashed = bcrypt.hashpw(b"scrape-password", bcrypt.gensalt(rounds=4)).decode()
    config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    return config


@pytest.mark.slow
def test_peers_sync_behind_basic_auth_with_the_api_token(replicas):
    replicas.web_config = basic_auth_config(replicas.directory)
    for index in range(2):
        replicas.start(index, 2)
    task_id = owned_by(0, 2, "behind-auth")  # registered on its owner: replica 1 learns it only by sync
    replicas.register(0, task_id)
    eventually(lambda: replicas.known_by(task_id) == [0, 1], timeout=30)
    assert "cannot authenticate" not in replicas.processes[0].output


@pytest.mark.slow
def test_basic_auth_without_an_api_token_warns_that_peers_cannot_sync(replicas):
    replicas.web_config = basic_auth_config(replicas.directory)
    replicas.token = None
    replicas.start(0, 2)
    replicas.processes[0].wait_for(r"WARNING.*shard sync cannot authenticate: basic auth is on and no API token.*"
                                   r"--api-token-file")


def state_rows(path: Path, table: str) -> set[str]:
    """The task ids of ``table`` in a live replica's state file (read-only: WAL lets us read beside it)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {task_id for (task_id,) in db.execute(f"SELECT task_id FROM {table}")}


@pytest.mark.slow
def test_a_delete_a_stopped_replica_missed_does_not_come_back(replicas):
    for index in range(3):
        replicas.start(index, 3)
    deleted = owned_by(2, 3, "deleted")  # owned by the replica that will miss the delete
    replicas.register(0, deleted)
    eventually(lambda: replicas.known_by(deleted) == [0, 1, 2], timeout=30)
    replicas.stop(2)  # its final save keeps the task in its state file
    answer = requests.delete(f"{replicas.url(0)}/api/v1/tasks/{APP}/{deleted}",
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert replicas.known_by(deleted) == []
    replicas.start(2, 3)

    # proof that sync ran both ways since the restart: each side learned a task only sync could carry
    from_0, from_2 = owned_by(0, 3, "after-0-"), owned_by(2, 3, "after-2-")
    replicas.register(0, from_0)
    replicas.register(2, from_2)
    eventually(lambda: replicas.known_by(from_0) == [0, 1, 2] and replicas.known_by(from_2) == [0, 1, 2], timeout=30)
    eventually(lambda: replicas.known_by(deleted) == [], timeout=30)
    assert replicas.known_by(deleted) == []  # still gone after the peers read the returning replica
    state = replicas.state_file(2)
    eventually(lambda: deleted not in state_rows(state, "tasks") and deleted in state_rows(state, "deleted"),
               timeout=30)

    replicas.register(1, deleted)  # registered again after the delete: newer, so it wins everywhere
    eventually(lambda: replicas.known_by(deleted) == [0, 1, 2], timeout=30)
    eventually(lambda: deleted in replicas.tasks(2), timeout=30)  # and its owner polls and exports it again
