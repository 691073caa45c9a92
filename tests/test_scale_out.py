"""Scale-out by account group: one process owns every account it is configured with and shares nothing.

Two account groups run as two processes, each with its own SdkAppIds, callbacks, task-API registrations
and state file; killing one loses nothing of it and the other never notices. Several accounts in one
process keep independent budgets. The removed ``--shard-*`` options say what to do instead.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from exporter.callbacks import sign
from exporter.config import SHARDING_REMOVED, ConfigError, build_settings
from exporter.runtime import Exporter
from exporter.simulator import Simulator, TaskScript
from exporter.statedb import open_state
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.harness import eventually
from tests.procs import Process, exporter_cmd, exporter_process

TOKEN = "group-token"
CALLBACK_KEY = "group-callback-key"


@dataclass
class Group:
    """One account group: its account, SdkAppId, config file and exporter process."""

    name: str
    sdk_app_id: int
    secret_id: str
    directory: Path
    process: Process | None = None
    url: str = ""
    registered: list[str] = field(default_factory=list)  # through the task API
    called_back: list[str] = field(default_factory=list)  # learned from a signed Started callback

    @property
    def state_file(self) -> Path:
        return self.directory / "state.db"

    def write_config(self, simulator_url: str) -> Path:
        key = self.directory / "secret-key"
        key.write_text(f"{self.name}-secret\n")
        callback_key = self.directory / "callback-key"
        callback_key.write_text(CALLBACK_KEY + "\n")
        config = self.directory / "config.yml"
        config.write_text(
            f"listen: 127.0.0.1:0\nendpoint: {simulator_url}\ninterval: 1s\nstate_file: {self.state_file}\n"
            f"state_save_interval: 200ms\ncallback_key_file: {callback_key}\nlog_level: info\n"
            f"accounts:\n  - {{name: {self.name}, secret_id: {self.secret_id}, secret_key_file: {key}, "
            f"sdk_app_ids: [{self.sdk_app_id}]}}\n")
        return config

    def start(self) -> None:
        self.process, self.url = exporter_process("--config", str(self.directory / "config.yml"),
                                                  env={"TIW_EXPORTER_API_TOKEN": TOKEN})

    def tasks(self) -> dict[str, dict]:
        answer = requests.get(f"{self.url}/api/v1/tasks", timeout=5)
        answer.raise_for_status()
        return {t["task_id"]: t for t in answer.json()["tasks"]}

    def saved(self) -> set[str]:
        """Task ids in the state file as a reader sees it now (WAL: readers never block the writer)."""
        with sqlite3.connect(f"file:{self.state_file}?mode=ro", uri=True) as db:
            return {task for (task,) in db.execute("SELECT task_id FROM tasks")}


def register(group: Group, task_id: str) -> None:
    answer = requests.post(f"{group.url}/api/v1/tasks", json={"sdk_app_id": group.sdk_app_id, "task_id": task_id},
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert answer.status_code == 201, answer.text
    group.registered.append(task_id)


def call_back(group: Group, task_id: str) -> None:
    """What TIW does for the group's SdkAppId: its push callback URL points at this group's exporter."""
    expire = int(time.time()) + 60
    body = {"Timestamp": int(time.time()), "SdkAppId": group.sdk_app_id, "ExpireTime": expire,
            "Sign": sign(CALLBACK_KEY, expire), "EventType": "WhiteboardPushStarted",
            "EventData": {"TaskId": task_id, "RoomId": 7, "PushUserId": "push_user"}}
    answer = requests.post(f"{group.url}/callbacks/tiw", json=body, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"error_code": 0}, answer.text
    group.called_back.append(task_id)


def polls(simulator: Simulator, task_ids: list[str]) -> dict[str, int]:
    by_task = simulator.stats()["describes_by_task"]
    return {t: by_task.get(t, 0) for t in task_ids}


@pytest.mark.slow
def test_two_account_groups_as_two_processes_lose_nothing_when_one_is_killed_and_restarted(tmp_path):
    groups = [Group("east", 1400000031, "AKIDeast", tmp_path / "east"),
              Group("west", 1400000032, "AKIDwest", tmp_path / "west")]
    credentials = {g.secret_id: f"{g.name}-secret" for g in groups}
    with Simulator(credentials=credentials, sdk_app_ids=[g.sdk_app_id for g in groups]) as simulator:
        try:
            for group in groups:
                group.directory.mkdir()
                group.write_config(simulator.url)
                group.start()
                for _ in range(3):
                    register(group, simulator.add_task(group.sdk_app_id, TaskScript(prepare_seconds=0)))
                    call_back(group, simulator.add_task(group.sdk_app_id, TaskScript(prepare_seconds=0)))
            east, west = groups
            for group in groups:
                mine = set(group.registered + group.called_back)
                eventually(lambda group=group, mine=mine: set(group.tasks()) == mine
                           and all(t["latest"] for t in group.tasks().values()), timeout=30)
                eventually(lambda group=group, mine=mine: group.saved() == mine)
            answered_before = {t: r["last_success"] for t, r in east.tasks().items()}
            west_tasks = west.registered + west.called_back
            west_before = polls(simulator, west_tasks)
            west_lines = len(west.process.lines)

            east.process.proc.kill()  # SIGKILL: no shutdown, no last save
            east.process.stop()
            eventually(lambda: all(n > west_before[t] for t, n in polls(simulator, west_tasks).items()), timeout=30)
            assert set(west.tasks()) == set(west_tasks)
            east.start()

            restored = east.tasks()
            assert set(restored) == set(east.registered + east.called_back)  # nothing lost
            assert {t: r["sources"] for t, r in restored.items()} == {
                **{t: ["api"] for t in east.registered}, **{t: ["callback"] for t in east.called_back}}
            assert all(restored[t]["last_success"] >= answered_before[t] for t in restored)  # results kept too
            east_tasks = east.registered + east.called_back
            east_before = polls(simulator, east_tasks)
            eventually(lambda: all(n > east_before[t] for t, n in polls(simulator, east_tasks).items()), timeout=30)
            assert not set(east.tasks()) & set(west.tasks())  # each owns only its own accounts' tasks
            noticed = [line for line in west.process.lines[west_lines:] if "WARNING" in line or "ERROR" in line]
            assert west.process.proc.poll() is None and noticed == [], noticed  # the other never noticed
        finally:
            for group in groups:
                if group.process:
                    group.process.stop()


def test_a_sharded_deployment_is_refused_with_one_line_naming_account_groups():
    with pytest.raises(ConfigError) as refused:
        build_settings({"shard_count": "3", "shard_index": "1"})
    assert refused.value.problems == [f"--shard-count 3: {SHARDING_REMOVED}"]
    assert "accounts:" in SHARDING_REMOVED and "one deployment per account group" in SHARDING_REMOVED


def test_a_single_shard_is_accepted_without_a_word_and_peer_options_warn():
    settings = build_settings({"shard_count": "1", "shard_index": "0"})
    assert settings.warnings == ()
    settings = build_settings({"shard_peer_url": "http://tiw-{index}:9877", "shard_sync_interval": "30s"})
    assert [w.split(":")[0] for w in settings.warnings] == ["--shard-peer-url", "--shard-sync-interval"]


@pytest.mark.slow
def test_run_with_shard_count_3_exits_2_with_one_line():
    done = subprocess.run(exporter_cmd("run", "--listen", "127.0.0.1:0", "--shard-count", "3"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "one deployment per account group" in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_a_state_file_of_the_sharded_version_opens_with_its_peers_tasks_as_its_own(tmp_path):
    path = tmp_path / "state.db"
    record = {"sdk_app_id": APP, "task_id": "from_a_peer", "sources": ["api"], "added_at": 1.0}
    with sqlite3.connect(path) as db:  # the 0.1.x schema: tasks plus the peers' tombstones
        db.execute("CREATE TABLE tasks (sdk_app_id INTEGER NOT NULL, task_id TEXT NOT NULL, record TEXT NOT NULL, "
                   "PRIMARY KEY (sdk_app_id, task_id)) WITHOUT ROWID")
        db.execute("CREATE TABLE deleted (sdk_app_id INTEGER NOT NULL, task_id TEXT NOT NULL, at REAL NOT NULL, "
                   "PRIMARY KEY (sdk_app_id, task_id)) WITHOUT ROWID")
        db.execute("INSERT INTO tasks VALUES (?, ?, ?)", (APP, "from_a_peer", json.dumps(record)))
        db.execute("INSERT INTO deleted VALUES (?, ?, ?)", (APP, "deleted_on_a_peer", 5.0))
    state, records = open_state(path)
    assert state is not None
    state.close()
    assert [(r.key, r.sources) for r in records] == [((APP, "from_a_peer"), frozenset({"api"}))]
    with sqlite3.connect(path) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "deleted" not in tables and "tasks" in tables


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
            busy_limiter = busy_account.kinds["push"].collector.limiter
            eventually(lambda: busy_limiter.current_rate < busy_limiter.nominal, timeout=20)
            eventually(lambda: all(exporter.store.get((calm_app, t)).last_success for t in calm), timeout=20)
            calm_limiter = calm_account.kinds["push"].collector.limiter
            assert calm_limiter.current_rate == calm_limiter.nominal  # never slowed down
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
