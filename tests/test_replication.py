"""Shard sync pulls incrementally: a peer's change-feed position makes the next pull carry only what
changed, and a restarted peer (another epoch) answers everything again. Real HTTP between two stores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry

from exporter.exposition import Exposition
from exporter.lifecycle import merge_result
from exporter.model import PushTask
from exporter.replication import ShardSync, peer_view
from exporter.sharding import Shard
from exporter.store import TaskStore
from exporter.web.http import ExporterHTTPServer
from exporter.web.routes import Routes
from tests.constants import APP

TOKEN = "sync-token"


class Peer:
    """Replica 1: a store behind a real web server; ``restart`` swaps in a fresh store (new epoch)."""

    def __init__(self) -> None:
        self._serve(TaskStore(), 0)

    def _serve(self, store: TaskStore, port: int) -> None:
        self.store = store
        self.server = ExporterHTTPServer(("127.0.0.1", port), Routes(
            store, Exposition(store, CollectorRegistry()), ready=lambda: True,
            api_token=lambda: TOKEN, owns=lambda key: False)).start()

    @property
    def port(self) -> int:
        return int(self.server.url.rsplit(":", 1)[1])

    def restart(self) -> None:
        """The same address, a fresh process: the store holds what its state file would restore."""
        port, old = self.port, self.store
        self.server.stop()
        restored = TaskStore()
        restored.merge(old.snapshot())
        self._serve(restored, port)


@pytest.fixture
def peer() -> Iterator[Peer]:
    peer = Peer()
    yield peer
    peer.server.stop()


def pulling(peer: Peer) -> tuple[ShardSync, TaskStore, list[dict[str, Any]]]:
    """Replica 0's sync from ``peer``, and every document the peer answered it."""
    local = TaskStore()
    sync = ShardSync(Shard(0, 2), f"http://127.0.0.{{index}}:{peer.port}", local, api_token=lambda: TOKEN)
    answers: list[dict[str, Any]] = []
    sync._session.hooks["response"].append(lambda response, *args, **kwargs: answers.append(response.json()))
    return sync, local, answers


def test_the_second_pull_carries_only_what_changed_since_the_first(peer: Peer) -> None:
    for n in range(5):
        peer.store.add((APP, f"t{n}"), "api")
    sync, local, answers = pulling(peer)
    assert sync.sync_from(1) == 5 and answers[-1]["full"] is True
    peer.store.update((APP, "t2"), lambda r: merge_result(r, PushTask(APP, "t2", "STOPPED", "AUTO"), 100.0))
    peer.store.add((APP, "t5"), "callback")
    assert sync.sync_from(1) == 1
    assert answers[-1]["full"] is False
    assert sorted(t["task_id"] for t in answers[-1]["tasks"]) == ["t2", "t5"]
    assert local.get((APP, "t2")).final and len(local) == 6
    assert sync.sync_from(1) == 0 and answers[-1]["tasks"] == []  # nothing changed: nothing sent


def test_a_restarted_peer_answers_everything_again(peer: Peer) -> None:
    peer.store.add((APP, "a"), "api")
    sync, _, answers = pulling(peer)
    sync.sync_from(1)
    peer.restart()  # a new process: its cursors start over, so ours means nothing there
    peer.store.add((APP, "b"), "api")
    assert sync.sync_from(1) == 1
    assert answers[-1]["full"] is True and sorted(t["task_id"] for t in answers[-1]["tasks"]) == ["a", "b"]


@pytest.mark.parametrize("query", ["since=abc&epoch={epoch}", "since=-1&epoch={epoch}", "since=0", "epoch={epoch}",
                                   "since=0&epoch=another-process", ""])
def test_a_position_the_store_cannot_answer_from_gets_the_full_list(query: str) -> None:
    store = TaskStore()
    store.add((APP, "a"), "api")
    assert peer_view(store, f"since=0&epoch={store.epoch}")["full"] is False  # the control: a usable position
    view = peer_view(store, query.format(epoch=store.epoch))
    assert view["full"] is True and [t["task_id"] for t in view["tasks"]] == ["a"]
    assert view["epoch"] == store.epoch and view["cursor"] == store.version


def test_a_plain_task_list_keeps_its_shape_for_readers(peer: Peer) -> None:
    peer.store.add((APP, "a"), "api")
    answer = requests.get(f"{peer.server.url}/api/v1/tasks", params={"since": "0"}, timeout=5)
    assert answer.json() == {"tasks": []}  # not a peer: only what it owns (nothing), no feed position
