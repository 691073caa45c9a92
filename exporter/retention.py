"""Retention: a stopped task stays exported for ``--finished-retention``, then goes.

Tasks that came from configuration (flags, tasks file) are *retired* instead of removed: they stay
known, so the configuration still names something, but are no longer exported or polled. Every
other task is removed from the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from exporter.lifecycle import CONFIG_SOURCES, TaskRecord
from exporter.model import TaskKey
from exporter.store import TaskStore


def expire_finished(store: TaskStore, cutoff: float, in_account: Callable[[TaskKey], bool]) -> int:
    """Retire or remove the stopped tasks seen stopped before ``cutoff``; returns how many."""
    expired = 0
    for record in store.snapshot():
        if record.retired or record.final_at is None or record.final_at > cutoff:
            continue
        if not in_account(record.key):
            continue
        expired += 1
        if record.sources & CONFIG_SOURCES:
            store.update(record.key, _retire)
        else:
            store.remove(record.key)
    return expired


def _retire(record: TaskRecord) -> TaskRecord:
    return replace(record, retired=True)
