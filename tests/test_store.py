"""The store's change feed: each reader follows it with its own cursor."""

from __future__ import annotations

import threading

from exporter import statedb
from exporter import store as store_module
from exporter.ended import ENDED_MEMORY
from exporter.lifecycle import FAILED, Milestones, end
from exporter.periodic import Periodic
from exporter.store import TaskStore
from tests.constants import APP
from tests.fakes import FakeClock


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


def _ended(store: TaskStore, task_id: str, at: float) -> None:
    key = (APP, task_id)
    store.add(key, "discovery")
    store.update(key, lambda r: end(r, FAILED, at))


def test_a_task_that_ended_and_left_is_never_new_again_from_discovery_or_a_callback() -> None:
    clock = FakeClock(1_700_000_000.0)
    counted: list[tuple[str, Milestones]] = []
    store = TaskStore(clock=clock)
    store.on_milestone(lambda record, milestones: counted.append((record.task_id, milestones)))
    _ended(store, "failed", clock.now)
    clock.advance(3600)  # --finished-retention later the record goes; TIW may still list it, or call back again
    assert store.remove((APP, "failed"))
    assert store.ended_at((APP, "failed")) == clock.now - 3600
    assert not store.add((APP, "failed"), "discovery") and store.get((APP, "failed")) is None
    assert not store.add((APP, "failed"), "callback")
    assert [m.finished for _, m in counted] == [True]  # counted once
    clock.advance(ENDED_MEMORY)  # past TIW's 3-day window: the list no longer holds it
    assert store.ended_at((APP, "failed")) is None


def test_a_user_may_track_an_ended_task_again_without_it_being_counted_again() -> None:
    clock = FakeClock(1_700_000_000.0)
    store = TaskStore(clock=clock)
    _ended(store, "t", clock.now)
    store.remove((APP, "t"))
    assert store.add((APP, "t"), "api")
    record = store.get((APP, "t"))
    assert record.counted_start and record.counted_final and store.ended_at((APP, "t")) is None


def test_endings_survive_in_the_state_file_and_expire_after_the_window(tmp_path) -> None:
    clock = FakeClock(1_700_000_000.0)
    store = TaskStore(clock=clock)
    db, _ = statedb.open_state(tmp_path / "state.db")
    writer = statedb.StateWriter(db, store)
    _ended(store, "old", clock.now - ENDED_MEMORY + 60)
    _ended(store, "recent", clock.now)
    store.remove((APP, "old"))
    store.remove((APP, "recent"))
    writer.stop()
    restarted = TaskStore(clock=clock)
    db, records = statedb.open_state(tmp_path / "state.db")
    restarted.restore(records)
    restarted.restore_ended(db.load_ended())
    db.close()
    assert records == [] and not restarted.add((APP, "recent"), "discovery")
    clock.advance(120)  # "old" falls out of the 3-day window
    assert restarted.add((APP, "old"), "discovery")
