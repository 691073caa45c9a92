"""Registrations and final states known to every replica, so changing ``--shard-count`` loses nothing.

Each replica keeps every task it learns of (an API registration, a callback, a restored state file)
in its store and state file, but polls and exports only the tasks it owns. Every
``--shard-sync-interval`` (and at start) it reads each peer's ``GET /api/v1/tasks`` (asked as a peer,
which lists every task it knows rather than only those it owns) and merges
what the peer knows (``TaskStore.merge``: unknown tasks are added, a final state wins). So after a
scale from 3 to 4 replicas the new owner of a task already has it — with its final state if any
replica learned it — and a replica that was down during a write catches up when it returns.
Deletes are sent to every peer (``ShardForwarder.broadcast``); one a down peer missed can come back.
"""

from __future__ import annotations

import logging

import requests

from exporter.lifecycle import TaskRecord
from exporter.periodic import Periodic
from exporter.sharding import Shard
from exporter.store import TaskStore
from exporter.web.forwarding import FORWARDED_HEADER

log = logging.getLogger(__name__)

SYNC_TIMEOUT = (1.0, 10.0)


def parse_records(document: object) -> list[TaskRecord]:
    """The records of a peer's task list; malformed entries are skipped (a peer never breaks us)."""
    items = document.get("tasks") if isinstance(document, dict) else None
    records = []
    for item in items if isinstance(items, list) else ():
        try:
            records.append(TaskRecord.from_json(item))
        except (ValueError, TypeError, KeyError, AttributeError):
            continue
    return records


class ShardSync:
    """Pulls every peer's task list into the store on a period."""

    def __init__(self, shard: Shard, peer_url: str, store: TaskStore, interval: float = 30.0) -> None:
        self.shard = shard
        self.peer_url = peer_url
        self.store = store
        self._session = requests.Session()
        self._loop = Periodic("shard-sync", interval, self.sync_all, run_first=True)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        self._session.close()

    def sync_all(self) -> int:
        """One pull from every peer; returns how many tasks were new here."""
        return sum(self.sync_from(index) for index in range(self.shard.count) if index != self.shard.index)

    def sync_from(self, index: int) -> int:
        url = self.peer_url.format(index=index) + "/api/v1/tasks"
        try:
            answer = self._session.get(url, timeout=SYNC_TIMEOUT, headers={FORWARDED_HEADER: str(self.shard.index)})
            answer.raise_for_status()
            records = parse_records(answer.json())
        except (requests.RequestException, ValueError) as exc:
            log.debug("shard sync from replica %d failed: %s", index, type(exc).__name__)
            return 0
        added = self.store.merge(records)
        if added:
            log.info("shard sync: %d tasks learned from replica %d", added, index)
        return added
