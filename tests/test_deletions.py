"""Tombstones of API deletes: merge rules, bounds, the state file, the peer view and sync's auth.

The multi-process story (a replica down during a delete comes back and the task stays gone) is in
``tests/test_reshard.py``; here each rule is checked on its own.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from http import HTTPStatus

import bcrypt
import pytest
import requests
from prometheus_client import CollectorRegistry

from exporter import statedb
from exporter.config import build_settings
from exporter.deletions import Deletion, Deletions, parse_deletions
from exporter.exposition import Exposition
from exporter.lifecycle import TaskRecord
from exporter.preflight import shard_sync_check
from exporter.replication import ShardSync
from exporter.sharding import Shard
from exporter.store import TaskStore
from exporter.web.http import ExporterHTTPServer, HttpError
from exporter.web.routes import Routes
from tests.constants import APP
from tests.fakes import FakeClock

KEY = (APP, "deleted")
TOKEN = "peer-token"
PEER = {"X-TIW-Exporter-Forwarded": "test"}


def record(added_at: float, *sources: str, key=KEY) -> TaskRecord:
    return TaskRecord(key[0], key[1], frozenset(sources or {"api"}), added_at)


def deleted_store(clock: FakeClock) -> TaskStore:
    """A store that had KEY registered at t-100 and deleted through the API at t."""
    store = TaskStore(clock)
    clock.now -= 100
    store.add(KEY, "api")
    clock.now += 100
    assert store.delete(KEY)
    return store


def test_a_peer_record_older_than_a_local_tombstone_is_not_added_back():
    clock = FakeClock()
    store = deleted_store(clock)
    assert store.merge([record(clock.now - 100)]) == 0
    assert store.get(KEY) is None
    assert [d.key for d in store.deletions()[1]] == [KEY]


def test_a_registration_newer_than_the_tombstone_wins_and_clears_it():
    clock = FakeClock()
    store = deleted_store(clock)
    assert store.merge([record(clock.now + 5)]) == 1
    assert store.get(KEY) is not None and store.deletions()[1] == []
    store.delete(KEY)
    store.add(KEY, "api")  # registered again through the API here
    assert store.deletions()[1] == []


def test_a_peer_tombstone_removes_an_older_task_and_is_remembered():
    clock = FakeClock()
    store = TaskStore(clock)
    store.add(KEY, "callback")
    exposition = Exposition(store, CollectorRegistry())
    assert KEY[1].encode() in b"".join(exposition.render_text())
    removed = []
    store.subscribe(lambda added, gone: removed.extend(gone))
    cursor = store.changed_since(0).cursor
    store.merge([], [Deletion(*KEY, clock.now + 1)])
    assert store.get(KEY) is None and removed == [KEY]
    assert store.changed_since(cursor).records == {KEY: None}  # the state writer deletes the row
    assert KEY[1].encode() not in b"".join(exposition.render_text())  # and /metrics forgets it
    assert store.merge([record(clock.now)]) == 0  # the tombstone now guards this replica too


def test_a_peer_tombstone_older_than_the_local_registration_changes_nothing():
    clock = FakeClock()
    store = TaskStore(clock)
    store.add(KEY, "api")
    store.merge([], [Deletion(*KEY, clock.now - 1)])
    assert store.get(KEY) is not None and store.deletions()[1] == []


@pytest.mark.parametrize("source", ["flag", "file"])
def test_a_configured_task_is_never_removed_by_a_tombstone(source):
    clock = FakeClock()
    store = TaskStore(clock)
    store.add(KEY, source)
    store.add(KEY, "api")
    store.merge([], [Deletion(*KEY, clock.now + 10)])
    assert store.get(KEY).sources == {source, "api"}


def test_tombstones_expire_after_the_ttl_and_stay_bounded_oldest_first():
    clock = FakeClock()
    store = TaskStore(clock, Deletions(ttl=60, limit=10))
    store.merge([], [Deletion(APP, "too-old", clock.now - 61)])
    assert store.deletions()[1] == []  # past the TTL: not even remembered
    store.merge([], [Deletion(APP, f"t{index}", clock.now - 50 + index) for index in range(11)])
    kept = [d.task_id for d in store.deletions()[1]]
    assert len(kept) <= 10 and kept[-1] == "t10" and "t0" not in kept  # the oldest went first
    version = store.deletions()[0]
    clock.now += 19
    assert [d.task_id for d in store.deletions()[1]] == ["t9", "t10"]  # the rest expired
    assert store.deletions()[0] != version  # so the state writer rewrites its table
    assert store.merge([record(clock.now - 3600, key=(APP, "t1"))]) == 1  # an expired tombstone guards nothing


def test_malformed_tombstones_are_skipped():
    good = {"sdk_app_id": APP, "task_id": "x", "at": 5}
    found = parse_deletions([good, {"sdk_app_id": "no", "task_id": "x", "at": 1}, {"task_id": "x"},
                             {"sdk_app_id": APP, "task_id": "x", "at": "nan"}, "junk", None])
    assert found == [Deletion(APP, "x", 5.0)]
    assert parse_deletions({"not": "a list"}) == []


def test_tombstones_survive_a_restart_in_the_state_file(tmp_path):
    path = tmp_path / "state.db"
    clock = FakeClock()
    store = deleted_store(clock)
    store.add((APP, "kept"), "api")
    db, _ = statedb.open_state(path)
    statedb.StateWriter(db, store).stop()  # the final save
    db, records = statedb.open_state(path)
    assert [r.task_id for r in records] == ["kept"]
    restarted = TaskStore(clock)
    restarted.restore(records)
    restarted.merge([], db.load_deleted())
    assert restarted.merge([record(clock.now - 100)]) == 0  # a peer's stale copy stays deleted
    restarted.add(KEY, "api")  # registered again: the tombstone row goes at the next save
    statedb.StateWriter(db, restarted, loaded=records).stop()
    db, _ = statedb.open_state(path)
    assert db.load_deleted() == []
    db.close()


def test_a_state_file_of_an_earlier_version_without_the_tombstone_table_loads(tmp_path):
    path = tmp_path / "state.db"
    old = sqlite3.connect(str(path))
    old.execute(statedb.SCHEMA[0])
    row = record(1.0, key=(APP, "old")).to_json()
    old.execute("INSERT INTO tasks VALUES (?, ?, ?)", (APP, "old", json.dumps(row)))
    old.commit()
    old.close()
    db, records = statedb.open_state(path)
    assert [r.task_id for r in records] == ["old"] and db.load_deleted() == []
    db.write([], [], deleted=[Deletion(APP, "gone", 2.0)])
    assert db.load_deleted() == [Deletion(APP, "gone", 2.0)]
    db.close()


@pytest.fixture
def peer():
    """A replica's web server whose peer view needs the token, behind an optional basic-auth wall."""
    clock = FakeClock()
    store = deleted_store(clock)
    store.add((APP, "alive"), "api")
    wall = {"on": False}

    def authorize(ctx):
        if wall["on"]:
            raise HttpError(HTTPStatus.UNAUTHORIZED, "basic auth")

    routes = Routes(store, Exposition(store, CollectorRegistry()), ready=lambda: True, api_token=lambda: TOKEN,
                    authorize=authorize, owns=lambda key: False)
    http = ExporterHTTPServer(("127.0.0.1", 0), routes).start()
    http.wall = wall
    yield http
    http.stop()


def test_the_peer_view_lists_tombstones_and_needs_the_token(peer):
    plain = requests.get(peer.url + "/api/v1/tasks", timeout=5)
    assert plain.status_code == 200 and plain.json() == {"tasks": []}  # owns nothing; unchanged shape
    refused = requests.get(peer.url + "/api/v1/tasks", headers=PEER, timeout=5)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    answer = requests.get(peer.url + "/api/v1/tasks", headers={**PEER, "Authorization": f"Bearer {TOKEN}"}, timeout=5)
    document = answer.json()
    assert [t["task_id"] for t in document["tasks"]] == ["alive"]
    assert [(d["sdk_app_id"], d["task_id"]) for d in document["deleted"]] == [KEY]


def test_sync_sends_the_token_and_logs_a_refusal_once_per_peer(peer, caplog):
    port = peer.url.rsplit(":", 1)[1]
    token = {"value": "wrong"}
    local = TaskStore(FakeClock(1_000_000.0 - 500))
    local.add(KEY, "api")  # it missed the peer's delete
    sync = ShardSync(Shard(0, 2), f"http://127.0.0.{{index}}:{port}", local, api_token=lambda: token["value"])
    peer.wall["on"] = True
    with caplog.at_level(logging.DEBUG, logger="exporter.replication"):
        for _ in range(3):
            assert sync.sync_from(1) == 0
        refusals = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(refusals) == 1 and "replica 1 answered 401" in refusals[0].getMessage()
        token["value"] = TOKEN  # rotated into place: the token gets past basic auth
        assert sync.sync_from(1) == 1
    assert local.get((APP, "alive")) is not None
    assert local.get(KEY) is None  # the peer's tombstone is newer than what this replica had


def test_check_warns_when_sharded_replicas_behind_basic_auth_have_no_token(tmp_path):
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{bcrypt.hashpw(b'pw', bcrypt.gensalt(rounds=4)).decode()}'\n")
    sharded = {"shard_count": 2, "shard_peer_url": "http://replica-{index}:9877", "web_config_file": str(web)}
    warned = shard_sync_check(build_settings(sharded))
    assert warned.status == "warn" and "--api-token-file" in warned.detail
    assert shard_sync_check(build_settings({**sharded, "api_token": TOKEN})).status == "ok"
    assert shard_sync_check(build_settings({"web_config_file": str(web)})) is None  # not sharded
