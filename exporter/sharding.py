"""Sharding: N replicas split the tracked tasks by a stable hash of ``sdk_app_id:task_id``.

Each replica (``--shard-index I --shard-count N``, e.g. a StatefulSet pod ordinal) polls only the
tasks it owns and paces at ``floor(limit/N)`` requests/s of each account (``shard_budget``), so N
replicas together stay within the account's limit in every one-second window. A task-API write or
a TIW callback that reaches the wrong replica is forwarded to its owner (``--shard-peer-url``, a
template with ``{index}``); if that fails it is kept here and reported, so nothing is lost while a
peer is down.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import requests

log = logging.getLogger(__name__)

FORWARD_TIMEOUT = (1.0, 3.0)
FORWARDED_HEADER = "X-TIW-Exporter-Forwarded"  # a forwarded request is never forwarded again


def shard_budget(rate_limit: float, count: int) -> float:
    """One replica's share of an account's per-second limit.

    Whole requests per second: a replica paced at ``r`` req/s can put ``ceil(r)`` requests into one
    second, so ``count`` replicas at ``rate/count`` each (6.67 for 20/3) could together reach 21 in
    some window. ``floor(rate/count)`` (6) keeps the sum of every replica's worst window within the limit.
    """
    share = rate_limit / count
    return float(math.floor(share)) if share >= 1 else share


def shard_of(sdk_app_id: int, task_id: str, count: int) -> int:
    """Stable across processes, versions and Python hash seeds."""
    digest = hashlib.sha256(f"{sdk_app_id}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Forwarded:
    status: int
    body: bytes
    content_type: str


class Shard:
    def __init__(self, index: int = 0, count: int = 1, peer_url: str | None = None) -> None:
        if not 0 <= index < count:
            raise ValueError("shard index must be in [0, count)")
        self.index = index
        self.count = count
        self.peer_url = peer_url
        self._session = requests.Session()

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owner(self, key: tuple[int, str]) -> int:
        return shard_of(key[0], key[1], self.count) if self.sharded else 0

    def owns(self, key: tuple[int, str]) -> bool:
        return self.owner(key) == self.index

    def forward(self, key: tuple[int, str], method: str, path: str, body: bytes,
                headers: Mapping[str, str]) -> Forwarded | None:
        """Send the request to the owner of ``key``; None when that is impossible or fails."""
        if not self.peer_url or headers.get(FORWARDED_HEADER):
            return None
        url = self.peer_url.format(index=self.owner(key)) + path
        passed = {name: value for name, value in headers.items()
                  if name.lower() in ("authorization", "content-type")}
        try:
            answer = self._session.request(method, url, data=body, timeout=FORWARD_TIMEOUT,
                                           headers={**passed, FORWARDED_HEADER: str(self.index)})
        except requests.RequestException as exc:
            log.warning("cannot forward %s %s to shard %d: %s", method, path, self.owner(key), type(exc).__name__)
            return None
        if answer.status_code >= 500:
            log.warning("shard %d answered %d to a forwarded %s %s", self.owner(key), answer.status_code, method,
                        path)
            return None
        return Forwarded(answer.status_code, answer.content, answer.headers.get("Content-Type", "application/json"))
