"""The task store, forward-only status, the tasks file and the state file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from exporter import legacy_statefile, statedb
from exporter.lifecycle import TaskError, merge_error, merge_result
from exporter.model import PushTask
from exporter.store import TaskStore
from exporter.tasksfile import TasksFileError, TasksFileWatcher, load_tasks_file
from tests.fakes import save_legacy_state

KEY = (1400000001, "task1")


def push(status: str, **fields) -> PushTask:
    return PushTask(KEY[0], KEY[1], status, **fields)


def test_status_never_moves_backwards():
    store = TaskStore()
    store.add(KEY, "api")
    store.update(KEY, lambda r: merge_result(r, push("STOPPED", finish_reason="USER_CALL", exception_cnt=2), 10))
    record = store.update(KEY, lambda r: merge_result(r, push("PUSHING", exception_cnt=1), 20))
    assert record.status == "STOPPED"
    assert record.latest.finish_reason == "USER_CALL"
    assert record.latest.exception_cnt == 2
    assert record.final_at == 10
    assert record.last_success == 20


def test_forward_moves_are_applied():
    store = TaskStore()
    store.add(KEY, "api")
    for status in ("PREPARED", "PUSHING", "STOPPED"):
        record = store.update(KEY, lambda r, s=status: merge_result(r, push(s), 1))
        assert record.status == status


def test_success_clears_the_last_error_but_keeps_values_on_error():
    store = TaskStore()
    store.add(KEY, "api")
    store.update(KEY, lambda r: merge_result(r, push("PUSHING", exception_cnt=3), 1))
    record = store.update(KEY, lambda r: merge_error(r, TaskError("ClientError.Timeout", "slow", "", 2)))
    assert record.latest.exception_cnt == 3 and record.last_error.code == "ClientError.Timeout"
    record = store.update(KEY, lambda r: merge_result(r, push("PUSHING"), 3))
    assert record.last_error is None


def test_a_task_stays_tracked_while_any_source_names_it():
    store = TaskStore()
    assert store.add(KEY, "file") is True
    assert store.add(KEY, "api") is False
    assert store.replace_source("file", []) == (0, 0)  # "api" still names it
    assert store.get(KEY).sources == {"api"}
    assert store.replace_source("api", []) == (0, 1)
    assert store.get(KEY) is None


def test_replace_source_adds_and_removes_only_its_own_tasks():
    store = TaskStore()
    store.add((1, "a"), "file")
    store.add((1, "b"), "file")
    store.add((1, "b"), "api")
    assert store.replace_source("file", [(1, "c")]) == (1, 1)
    assert {r.key for r in store.snapshot()} == {(1, "b"), (1, "c")}
    assert store.get((1, "b")).sources == {"api"}


def test_membership_listeners_hear_adds_and_removes():
    store = TaskStore()
    events = []
    store.subscribe(lambda added, removed: events.append((added, removed)))
    store.add(KEY, "api")
    store.remove(KEY)
    assert events == [([KEY], []), ([], [KEY])]


def test_tasks_file_accepts_a_list(tmp_path):
    path = tmp_path / "tasks.yml"
    path.write_text("- {sdk_app_id: 1400000001, task_id: abc}\n- {sdk_app_id: '1400000002', task_id: def}\n")
    assert load_tasks_file(path) == [(1400000001, "abc"), (1400000002, "def")]


@pytest.mark.parametrize(("content", "message"), [
    ("- {sdk_app_id: 0, task_id: abc}\n", "entry 1: sdk_app_id"),
    ("- {sdk_app_id: 1, task_id: 'a b'}\n", "entry 1: task_id"),
    ("- {sdk_app_id: 1}\n", "exactly sdk_app_id and task_id"),
    ("sdk_app_id: 1\n", "must be a list"),
    ("- [unclosed\n", "not valid YAML"),
])
def test_broken_tasks_files_are_named(tmp_path, content, message):
    path = tmp_path / "tasks.yml"
    path.write_text(content)
    with pytest.raises(TasksFileError, match=message):
        load_tasks_file(path)


def test_broken_tasks_file_keeps_the_last_good_set(tmp_path):
    path = tmp_path / "tasks.yml"
    path.write_text("- {sdk_app_id: 1, task_id: a}\n")
    store = TaskStore()
    results = []
    watcher = TasksFileWatcher(path, store, results.append)
    assert watcher.reload() is True
    path.write_text("- {sdk_app_id: 1, task_id: [oops]}\n")
    assert watcher.reload() is False
    assert [r.key for r in store.snapshot()] == [(1, "a")]
    assert results == [True, False]


def _stored_store() -> TaskStore:
    store = TaskStore()
    store.add(KEY, "api")
    store.add((1400000001, "task2"), "callback")
    store.update(KEY, lambda r: merge_result(r, push("PUSHING", room_id=5, backup='{"a":1}'), 100))
    store.update(KEY, lambda r: merge_error(r, TaskError("InternalError", "boom", "rid", 101)))
    return store


def test_state_file_round_trips_every_record(tmp_path):
    path = tmp_path / "state.json"
    store = _stored_store()
    save_legacy_state(path, store.snapshot())
    restored = TaskStore()
    assert restored.restore(legacy_statefile.load(path)) == 2
    original = {r.key: r for r in store.snapshot()}
    for record in restored.snapshot():
        assert record == original[record.key]


def test_state_restore_drops_tasks_only_configured_by_flags_no_longer_given(tmp_path):
    path = tmp_path / "state.json"
    store = TaskStore()
    store.add((1, "flagged"), "flag")
    save_legacy_state(path, store.snapshot())
    assert TaskStore().restore(legacy_statefile.load(path)) == 0


@pytest.mark.parametrize("content", [b"{truncated", b'{"version": 99, "tasks": []}', b'{"version": 1, "tasks": [{}]}',
                                     b"\xff\xfe"])
def test_corrupt_state_file_is_set_aside_and_reported(tmp_path, caplog, content):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR):
        db, records = statedb.open_state(path)
    assert db is not None and records == []
    db.close()
    assert path.read_bytes().startswith(statedb.SQLITE_MAGIC)  # a fresh database in its place
    aside = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == content
    assert "is corrupt" in caplog.text


def test_state_writer_only_writes_after_changes(tmp_path):
    path = tmp_path / "state.db"
    store = _stored_store()
    db, _ = statedb.open_state(path)
    writer = statedb.StateWriter(db, store)
    writer.flush()
    written = []
    real_write = db.write
    db.write = lambda upserts, deletes, replace_all=False, **ended: (
        written.append((len(upserts), deletes, replace_all)), real_write(upserts, deletes, replace_all, **ended))
    writer.flush()
    assert written == []  # nothing changed: nothing written
    store.add((1, "new"), "api")
    writer.flush()
    assert written == [(1, [], False)]  # only the row that changed
    store.remove((1, "new"))
    writer.flush()
    assert written[-1] == (0, [(1, "new")], False)
    writer.stop()
    assert len(statedb.open_state(path)[1]) == 2


def test_the_write_ahead_log_shrinks_back_after_a_full_write(tmp_path):
    """The first write after a start can hold every row; the -wal file must not keep that size."""
    path = tmp_path / "state.db"
    store = TaskStore()
    for n in range(12_000):
        store.add((1, f"task{n:05d}"), "api")
    db, _ = statedb.open_state(path)
    writer = statedb.StateWriter(db, store)
    writer.flush()  # every row at once
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > statedb.WAL_SIZE_LIMIT  # the control: the full write did outgrow the limit
    for n in range(3):  # ordinary intervals: a few changed rows each
        store.add((2, f"later{n}"), "api")
        writer.flush()
    assert wal.stat().st_size <= statedb.WAL_SIZE_LIMIT
    writer.stop()
    assert len(statedb.open_state(path)[1]) == 12_003


def test_a_json_state_file_is_migrated_on_first_start(tmp_path):
    path = tmp_path / "state.json"
    store = _stored_store()
    save_legacy_state(path, store.snapshot())
    db, records = statedb.open_state(path)
    assert {r.key: r for r in records} == {r.key: r for r in store.snapshot()}
    assert path.read_bytes().startswith(statedb.SQLITE_MAGIC)
    assert (tmp_path / "state.json.json-migrated").exists()  # the old file is kept, not destroyed
    db.close()
    _, again = statedb.open_state(path)  # the second start reads SQLite
    assert len(again) == 2


def test_a_corrupt_sqlite_state_file_is_set_aside(tmp_path, caplog):
    path = tmp_path / "state.db"
    path.write_bytes(statedb.SQLITE_MAGIC + b"\x00garbage" * 100)
    with caplog.at_level(logging.ERROR):
        db, records = statedb.open_state(path)
    assert records == [] and db is not None
    assert len(list(tmp_path.glob("state.db.corrupt-*"))) == 1
    assert "is corrupt" in caplog.text
    db.close()


def test_after_a_restore_only_changes_and_dropped_rows_are_written(tmp_path):
    path = tmp_path / "state.db"
    store = _stored_store()
    store.add((1, "flag_only"), "flag")
    db, _ = statedb.open_state(path)
    statedb.StateWriter(db, store).stop()
    db, records = statedb.open_state(path)
    assert len(records) == 3
    restarted = TaskStore()
    restarted.restore(records)  # the flag is no longer given: flag_only is dropped
    written = []
    real_write = db.write
    db.write = lambda upserts, deletes, replace_all=False, **ended: (
        written.append((len(upserts), deletes, replace_all)), real_write(upserts, deletes, replace_all, **ended))
    restarted.add((1, "new"), "api")
    assert any(r is restarted.get((1400000001, "task2")) for r in records)  # unchanged: the very object loaded
    restarted.update(KEY, lambda r: merge_error(r, TaskError("InternalError", "again", "rid2", 102)))
    writer = statedb.StateWriter(db, restarted, loaded=records)
    writer.flush()
    assert written == [(2, [(1, "flag_only")], False)]  # the new and the changed task, not the unchanged one
    writer.stop()
    reloaded = {r.key: r for r in statedb.open_state(path)[1]}
    assert len(reloaded) == 3 and reloaded[KEY].last_error.message == "again"


def test_a_reload_tracks_a_repeated_task_once_and_says_which_entries_repeat(tmp_path, caplog):
    path = tmp_path / "tasks.yml"
    path.write_text("- {sdk_app_id: 1, task_id: a}\n- {sdk_app_id: 1, task_id: a}\n")
    store = TaskStore()
    with caplog.at_level(logging.WARNING, logger="exporter.tasksfile"):
        assert TasksFileWatcher(path, store).reload() is True
    assert [r.key for r in store.snapshot()] == [(1, "a")]
    assert [r.getMessage() for r in caplog.records] == [
        f"tasks file {path}: entry 2 repeats entry 1 (1:a); tracked once"]
