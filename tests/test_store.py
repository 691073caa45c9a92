"""The store's change feed: each reader follows it with its own cursor."""

from __future__ import annotations

import threading

from exporter import store as store_module
from exporter.periodic import Periodic
from exporter.store import TaskStore
from tests.constants import APP


def test_two_readers_each_see_every_change_without_taking_it_from_the_other() -> None:
    store = TaskStore()
    first = second = 0
    store.add((APP, "a"), "api")
    store.add((APP, "b"), "api")
    changes = store.changed_since(first)
    first = changes.cursor
    assert set(changes.records) == {(APP, "a"), (APP, "b")} and not changes.resync
    store.remove((APP, "a"))
    assert store.changed_since(first).records == {(APP, "a"): None}
    seen = store.changed_since(second)
    assert seen.records == {(APP, "a"): None, (APP, "b"): store.get((APP, "b"))}
    assert store.changed_since(seen.cursor).records == {}


def test_only_changes_after_the_cursor_are_answered() -> None:
    store = TaskStore()
    store.add((APP, "a"), "api")
    cursor = store.changed_since(0).cursor
    store.update((APP, "a"), lambda r: r)
    store.add((APP, "b"), "file")
    assert set(store.changed_since(cursor).records) == {(APP, "a"), (APP, "b")}
    assert store.version == store.changed_since(cursor).cursor


def test_a_reader_older_than_the_remembered_removals_resyncs_from_a_full_snapshot(monkeypatch) -> None:
    monkeypatch.setattr(store_module, "MAX_REMEMBERED_REMOVALS", 4)
    store = TaskStore()
    store.add((APP, "kept"), "api")
    stale_cursor = store.changed_since(0).cursor
    for index in range(10):
        store.add((APP, f"gone{index}"), "api")
        store.remove((APP, f"gone{index}"))
    changes = store.changed_since(stale_cursor)
    assert changes.resync and set(changes.records) == {(APP, "kept")}
    fresh = store.changed_since(changes.cursor)
    assert not fresh.resync and fresh.records == {}
    assert sum(1 for key in store._changed_at if key not in store._records) <= 4  # removals stay bounded


def test_a_task_removed_and_added_again_is_reported_live() -> None:
    store = TaskStore()
    store.add((APP, "a"), "api")
    cursor = store.changed_since(0).cursor
    store.remove((APP, "a"))
    store.add((APP, "a"), "file")
    assert store.changed_since(cursor).records[(APP, "a")].sources == {"file"}


def test_a_periodic_loop_survives_exceptions_and_stops_when_asked() -> None:
    calls = []
    ran_twice = threading.Event()

    def work() -> None:
        calls.append(1)
        if len(calls) >= 2:
            ran_twice.set()
        raise RuntimeError("boom")

    loop = Periodic("test-loop", 0.01, work, run_first=True)
    loop.start()
    assert ran_twice.wait(5)
    assert loop.alive
    loop.stop()
    assert not loop.alive
