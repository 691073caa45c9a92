"""Tombstones of API deletes, so a replica that missed a delete cannot bring the task back.

``DELETE /api/v1/tasks/...`` reaches the peers that are up; a replica that was down keeps the task in
its state file and, when it returns, would hand it back to everyone through shard sync
(``replication.py``). So the store remembers each deleted key with the time of the delete, peers
exchange these tombstones, and ``TaskStore.merge`` lets a tombstone beat any record added before it
(a registration after the delete is newer and wins). Tombstones are bounded: each lives
``DELETION_TTL`` (a replica down longer than that can still bring a task back) and at most
``MAX_DELETIONS`` are kept, the oldest dropped first. Times are each replica's wall clock, so replicas
whose clocks disagree by more than the gap between a delete and a re-registration may disagree too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter.model import TaskKey, validate_sdk_app_id, validate_task_id, well_formed

DELETION_TTL = 7 * 86400.0  # longer than any replica should stay down
MAX_DELETIONS = 10_000  # a bulk delete beyond this forgets the oldest first


@dataclass(frozen=True, slots=True)
class Deletion:
    """One tombstone: ``key`` was deleted through the task API at ``at`` (unix time)."""

    sdk_app_id: int
    task_id: str
    at: float

    @property
    def key(self) -> TaskKey:
        return self.sdk_app_id, self.task_id

    def to_json(self) -> dict[str, Any]:
        return {"sdk_app_id": self.sdk_app_id, "task_id": self.task_id, "at": self.at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deletion:
        """Raises ValueError/TypeError/KeyError on anything malformed (a peer's or a state row's)."""
        at = float(data["at"])
        if at != at or at in (float("inf"), float("-inf")):
            raise ValueError("deletion time must be finite")
        return cls(validate_sdk_app_id(data["sdk_app_id"]), validate_task_id(data["task_id"]), at)


def parse_deletions(items: object) -> list[Deletion]:
    """The well-formed tombstones of a list; the rest is skipped (a peer or a state row never breaks us)."""
    return well_formed(items, Deletion.from_json)


class Deletions:
    """Deleted key -> time of the delete, bounded by age and count. Not locked: the store holds its lock."""

    def __init__(self, ttl: float = DELETION_TTL, limit: int = MAX_DELETIONS) -> None:
        self.ttl = ttl
        self.limit = limit
        self._at: dict[TaskKey, float] = {}
        self.version = 0  # bumped on every change: the state writer rewrites its table when it moved

    def hides(self, key: TaskKey, added_at: float) -> bool:
        """True when ``key`` was deleted after a record added at ``added_at``: that record stays gone."""
        at = self._at.get(key)
        return at is not None and added_at < at

    def record(self, key: TaskKey, at: float, now: float) -> bool:
        """Remember that ``key`` was deleted at ``at``; False when that is already past the TTL."""
        if at < now - self.ttl:
            return False
        if self._at.get(key, float("-inf")) < at:
            self._at[key] = at
            self.version += 1
            if len(self._at) > self.limit:
                self._drop_oldest()
        return True

    def forget(self, key: TaskKey) -> None:
        """``key`` is tracked again (registered after its delete): its tombstone has done its job."""
        if self._at.pop(key, None) is not None:
            self.version += 1

    def current(self, now: float) -> list[Deletion]:
        """Every tombstone still inside the TTL (expired ones are dropped here), oldest first."""
        cutoff = now - self.ttl
        expired = [key for key, at in self._at.items() if at < cutoff]
        for key in expired:
            del self._at[key]
        if expired:
            self.version += 1
        return sorted((Deletion(key[0], key[1], at) for key, at in self._at.items()), key=lambda d: d.at)

    def _drop_oldest(self) -> None:
        """Back to 90 % of the limit (not one at a time, so a burst of deletes sorts rarely)."""
        keep = sorted(self._at.items(), key=lambda item: item[1])[-(self.limit * 9 // 10):]
        self._at = dict(keep)

    def __len__(self) -> int:
        return len(self._at)
