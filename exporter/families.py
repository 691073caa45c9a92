"""The shapes every kind's metric families share: a family's name, type and help, and one task's samples.

A kind exports its per-task families (``KindFamilies.families``) from one function of a record
(``KindFamilies.samples``) and one aggregate, ``<prefix>_tasks{sdk_app_id,status}``. ``metrics`` (pushes)
and ``kind_metrics`` (recordings, transcodes) each declare theirs; the collector and the exposition
read them the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Labels = tuple[tuple[str, str], ...]
Sample = tuple[int, Labels, float]  # (index into the kind's families, labels, value)


@dataclass(frozen=True)
class Family:
    name: str  # the exposed name (counters include _total)
    kind: str  # "gauge" | "counter"
    help: str


@dataclass(frozen=True)
class KindFamilies:
    """What one task kind exports per task and in aggregate."""

    kind: str  # kinds.KINDS key
    families: tuple[Family, ...]
    samples: Callable[[Any, Any], list[Sample]]  # (TaskRecord, TaskProblemLog | None) -> samples
    aggregate: Family  # <prefix>_tasks: tracked tasks by SdkAppId and status
    statuses: tuple[str, ...]  # the aggregate's statuses, UNKNOWN included


def state_set(family: int, base: Labels, label: str, states: Iterable[str], current: str) -> list[Sample]:
    return [(family, (*base, (label, state)), 1.0 if state == current else 0.0) for state in states]
