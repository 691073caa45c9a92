"""Sharding: N replicas split the tracked tasks by a stable hash of ``sdk_app_id:task_id``.

Each replica (``--shard-index I --shard-count N``, e.g. a StatefulSet pod ordinal) polls only the
tasks it owns and paces at ``floor(limit/N)`` requests/s of each account (``shard_budget``), so N
replicas together stay within the account's limit in every one-second window. Forwarding a write
that reached the wrong replica is the web layer's job (``web/forwarding.py``).
"""

from __future__ import annotations

import hashlib
import math

from exporter.model import TaskKey


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


class Shard:
    """This replica's place among ``count`` shards: which tasks it owns (polls, keeps, exports)."""

    def __init__(self, index: int = 0, count: int = 1) -> None:
        if not 0 <= index < count:
            raise ValueError("shard index must be in [0, count)")
        self.index = index
        self.count = count

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owner(self, key: TaskKey) -> int:
        return shard_of(key[0], key[1], self.count) if self.sharded else 0

    def owns(self, key: TaskKey) -> bool:
        return self.owner(key) == self.index
