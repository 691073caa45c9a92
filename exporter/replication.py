"""Registrations, final states and deletes known to every replica, so changing ``--shard-count`` loses nothing.

Each replica keeps every task it learns of (an API registration, a callback, a restored state file)
in its store and state file, but polls and exports only the tasks it owns. Every
``--shard-sync-interval`` (and at start) it reads each peer's ``GET /api/v1/tasks`` (asked as a peer,
which lists every task it knows rather than only those it owns, and the tombstones of its deletes) and
merges what the peer knows (``TaskStore.merge``: unknown tasks are added, a final state wins, a
tombstone removes a task added before the delete). So after a scale from 3 to 4 replicas the new owner
of a task already has it — with its final state if any replica learned it — and a replica that was down
during a write catches up when it returns. Deletes are sent to every peer (``ShardForwarder.broadcast``)
and leave a tombstone (``deletions.py``), so a replica that missed one drops the task when it returns
instead of handing it back to everyone.

A pull is incremental: the peer answers with its store's ``epoch`` and change-feed ``cursor``, and the
next pull sends them back (``?since=<cursor>&epoch=<epoch>``) to get only the records changed since
(polling changes a few hundred records per interval, not the 10,000s a replica may know). A peer that
restarted (another epoch) or whose feed no longer reaches back that far answers everything again.

The peer view needs the API token when one is configured (it lists what other shards own), and the
token is also what gets a peer past basic auth: sync sends ``Authorization: Bearer <token>``. With
basic auth on and no token, peers cannot sync (``runtime`` says so at start); a peer refusing us is
logged once until it accepts again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import requests

from exporter.deletions import Deletion, parse_deletions
from exporter.lifecycle import TaskRecord
from exporter.model import well_formed
from exporter.periodic import Periodic
from exporter.sharding import Shard
from exporter.store import TaskStore
from exporter.web.forwarding import FORWARDED_HEADER

log = logging.getLogger(__name__)

SYNC_TIMEOUT = (1.0, 10.0)
UNAUTHENTICATED = ("shard sync cannot authenticate: basic auth is on and no API token is configured; set "
                   "--api-token-file (or TIW_EXPORTER_API_TOKEN) to the same token on every replica")
REFUSED = (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN)


def parse_records(document: object) -> list[TaskRecord]:
    """The records of a peer's task list; malformed entries are skipped (a peer never breaks us)."""
    return well_formed(document.get("tasks") if isinstance(document, dict) else None, TaskRecord.from_json)


def parse_peer_list(document: object) -> tuple[list[TaskRecord], list[Deletion]]:
    """A peer's records and tombstones (a peer of an earlier version sends no ``deleted``)."""
    deleted = document.get("deleted") if isinstance(document, dict) else None
    return parse_records(document), parse_deletions(deleted)


def peer_view(store: TaskStore, query: str) -> dict[str, Any]:
    """What a peer's pull gets: every task known here, or with ``since``/``epoch`` of this store only
    those changed since, plus the tombstones and the ``epoch``/``cursor`` to send next time."""
    params = parse_qs(query, max_num_fields=4)
    since = params.get("since", [""])[0]
    comparable = since.isdigit() and params.get("epoch", [""])[0] == store.epoch
    changes = store.changed_since(int(since) if comparable else -1)
    full = not comparable or changes.resync
    records = sorted((r for r in changes.records.values() if r is not None), key=lambda r: r.key)
    _, deleted = store.deletions()
    return {"tasks": [r.to_json() for r in records], "deleted": [d.to_json() for d in deleted],
            "epoch": store.epoch, "cursor": changes.cursor, "full": full}


class ShardSync:
    """Pulls every peer's task list into the store on a period."""

    def __init__(self, shard: Shard, peer_url: str, store: TaskStore, interval: float = 30.0,
                 api_token: Callable[[], str | None] = lambda: None) -> None:
        """``api_token`` is read on every pull, so a rotated token file is used without a restart."""
        self.shard = shard
        self.peer_url = peer_url
        self.store = store
        self.api_token = api_token
        self._refused: set[int] = set()  # peers whose refusal was logged; logged again after they accept
        self._positions: dict[int, tuple[str, int]] = {}  # peer -> (epoch, cursor) of its last answer
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

    def _headers(self) -> dict[str, str]:
        headers = {FORWARDED_HEADER: str(self.shard.index)}
        token = self.api_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def sync_from(self, index: int) -> int:
        url = self.peer_url.format(index=index) + "/api/v1/tasks"
        position = self._positions.get(index)
        params = {"epoch": position[0], "since": str(position[1])} if position else None
        try:
            answer = self._session.get(url, params=params, timeout=SYNC_TIMEOUT, headers=self._headers())
            if answer.status_code in REFUSED:
                self._log_refusal(index, answer.status_code)
                return 0
            answer.raise_for_status()
            document = answer.json()
            records, deleted = parse_peer_list(document)
        except (requests.RequestException, ValueError) as exc:
            log.debug("shard sync from replica %d failed: %s", index, type(exc).__name__)
            return 0
        self._remember_position(index, document)
        if index in self._refused:
            self._refused.discard(index)
            log.info("shard sync: replica %d accepts our requests again", index)
        added = self.store.merge(records, deleted)
        if added:
            log.info("shard sync: %d tasks learned from replica %d", added, index)
        return added

    def _remember_position(self, index: int, document: object) -> None:
        """Where the next pull from ``index`` starts; a peer of an earlier version sends none (full pulls)."""
        epoch = document.get("epoch") if isinstance(document, dict) else None
        cursor = document.get("cursor") if isinstance(document, dict) else None
        if isinstance(epoch, str) and isinstance(cursor, int) and not isinstance(cursor, bool) and cursor >= 0:
            self._positions[index] = (epoch, cursor)
        else:
            self._positions.pop(index, None)

    def _log_refusal(self, index: int, status: int) -> None:
        """Once per peer until it accepts again: every interval would flood the log with one cause."""
        if index in self._refused:
            return
        self._refused.add(index)
        log.warning("shard sync: replica %d answered %d: it needs the API token (the same --api-token-file "
                    "or TIW_EXPORTER_API_TOKEN on every replica); nothing is learned from it until then",
                    index, status)
