"""The freshness an operator actually gets: data age per kind of answer, and coverage.

Two kinds of answer keep a task's series true: *liveness* (the running list confirmed it is still
pushing) and *detail* (a ``DescribeWhiteboardPush`` answer: exceptions, finish reason). With
liveness, detail polling of steady tasks stretches to what the budget allows, so the two ages differ
by design; exporting both lets the operator see the tiers the README's sizing table describes.
A task has a *fresh answer* when either kind is younger than ``fresh_within`` (2 poll intervals, or
the liveness staleness limit); ``coverage`` is the share of active tasks that have one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from exporter.lifecycle import TaskRecord
from exporter.model import TaskKey

QUANTILES = (0.5, 0.95, 1.0)


@dataclass(frozen=True)
class Freshness:
    """Age quantiles (seconds) per kind, tasks per mode, and the covered share of active tasks."""

    ages: dict[str, dict[float, float]]
    listed: int  # active tasks the running list confirms
    polled: int  # active tasks polled one by one (never listed, too old, or no such action)
    fresh: int
    active: int

    @property
    def coverage(self) -> float:
        return self.fresh / self.active if self.active else 1.0


def quantiles(values: list[float]) -> dict[float, float]:
    """Nearest-rank quantiles of ``values`` (empty: no samples)."""
    if not values:
        return {}
    ordered = sorted(values)
    return {q: ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))] for q in QUANTILES}


def measure(records: Iterable[TaskRecord], last_seen: Callable[[TaskKey], float | None],
            covered: Callable[[TaskKey], bool], now: float, detail_fresh_within: float) -> Freshness:
    """Freshness of the active, exported tasks in ``records`` at ``now``."""
    detail: list[float] = []
    liveness: list[float] = []
    listed = fresh = active = 0
    for record in records:
        if not record.pollable:
            continue
        active += 1
        detail_age = now - record.last_success if record.last_success is not None else now - record.added_at
        detail.append(max(0.0, detail_age))
        seen = last_seen(record.key)
        is_covered = seen is not None and covered(record.key)
        if seen is not None:
            liveness.append(max(0.0, now - seen))
        listed += is_covered
        fresh += is_covered or (record.last_success is not None and detail_age <= detail_fresh_within)
    return Freshness({"detail": quantiles(detail), "liveness": quantiles(liveness)}, listed, active - listed,
                     fresh, active)
