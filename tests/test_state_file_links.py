"""``--state-file`` is never written through a symbolic link: refused at start, skipped when one appears later."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from exporter import statedb
from exporter.store import TaskStore
from exporter.tencentcloud.credentials import Credential
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.harness import eventually, metric, running_exporter, scrape
from tests.procs import exporter_cmd

REFUSED = "is a symbolic link; give the real path"


def _sqlite_file(path: Path) -> bytes:
    """A real SQLite state file at ``path`` holding one task; its bytes."""
    store = TaskStore()
    store.add((APP, "kept"), "api")
    db, _ = statedb.open_state(path)
    assert db is not None
    statedb.StateWriter(db, store).stop()  # writes, checkpoints, closes
    for suffix in statedb.COMPANIONS:
        assert not Path(f"{path}{suffix}").exists()
    return path.read_bytes()


def _files(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(exporter_cmd(*args), capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("target_kind", ["sqlite", "dangling"])
def test_run_refuses_a_state_file_that_is_a_symbolic_link_and_writes_nothing(tmp_path, target_kind):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "target.db"
    before = _sqlite_file(target) if target_kind == "sqlite" else None
    link = tmp_path / "state.db"
    link.symlink_to(target)
    result = _run("run", "--listen", "127.0.0.1:0", "--task", f"{APP}:a", "--state-file", str(link))
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"tiw-exporter: error: --state-file: {link} {REFUSED}\n"  # one line, no traceback
    assert _files(tmp_path) == {"elsewhere", "state.db"} and link.is_symlink()  # no -wal, -shm
    if before is None:
        assert _files(elsewhere) == set()  # the dangling link's target was not created
    else:
        assert _files(elsewhere) == {"target.db"} and target.read_bytes() == before


def test_the_refusal_names_where_the_path_was_given(tmp_path):
    link = tmp_path / "state.db"
    link.symlink_to(tmp_path / "real.db")
    from_env = _run("run", "--listen", "127.0.0.1:0", env={"TIW_EXPORTER_STATE_FILE": str(link)})
    assert from_env.returncode == 2
    assert from_env.stderr == f"tiw-exporter: error: TIW_EXPORTER_STATE_FILE: {link} {REFUSED}\n"
    config = tmp_path / "config.yml"
    config.write_text("interval: 30s\nstate_file: state.db\n")  # relative to the config file
    checked = _run("check-config", str(config))
    assert checked.returncode == 2
    assert checked.stderr == f"tiw-exporter: error: config file {config}, line 2: state_file: {link} {REFUSED}\n"
    assert _files(tmp_path) == {"state.db", "config.yml"}


def test_a_symbolic_link_beside_the_state_file_is_refused_too(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"not yours")
    Path(f"{tmp_path / 'state.db'}-wal").symlink_to(victim)
    result = _run("check-config", str(_config(tmp_path, "state.db")))
    assert result.returncode == 2
    assert "state.db-wal (SQLite's file beside state.db) is a symbolic link; remove it" in result.stderr
    with pytest.raises(statedb.StateFileRefused):
        statedb.open_state(tmp_path / "state.db")
    assert victim.read_bytes() == b"not yours" and not (tmp_path / "state.db").exists()


def _config(directory: Path, state_file: str) -> Path:
    config = directory / "config.yml"
    config.write_text(f"state_file: {state_file}\n")
    return config


def test_open_state_refuses_a_link_it_finds_and_creates_nothing(tmp_path):
    link = tmp_path / "state.db"
    link.symlink_to(tmp_path / "missing" / "target.db")
    with pytest.raises(statedb.StateFileRefused, match=REFUSED):
        statedb.open_state(link)
    assert _files(tmp_path) == {"state.db"}


def test_a_link_appearing_after_the_check_is_not_followed(tmp_path, monkeypatch):
    """The check and the open are two steps: O_NOFOLLOW refuses a link that appears between them."""
    target = tmp_path / "target.db"
    link = tmp_path / "state.db"
    link.symlink_to(target)
    monkeypatch.setattr(statedb, "symlink_at", lambda path: None)  # the link was not there yet when checked
    with pytest.raises(statedb.StateFileRefused, match=REFUSED):
        statedb.open_state(link)
    with pytest.raises(statedb.StateFileRefused, match=REFUSED):
        statedb.StateDB(link)
    assert _files(tmp_path) == {"state.db"}  # the dangling link's target was not created


def test_a_file_swapped_for_a_link_while_sqlite_opens_it_is_refused(tmp_path, monkeypatch):
    """Between our O_NOFOLLOW open and SQLite's own (by name), the path must not change."""
    path = tmp_path / "state.db"
    victim = tmp_path / "victim.db"
    before = _sqlite_file(victim)
    connect = sqlite3.connect
    opened: list[sqlite3.Connection] = []

    def swapped_then_connect(name: str, **kwargs: object) -> sqlite3.Connection:
        os.unlink(name)
        os.symlink(victim, name)
        opened.append(connect(name, **kwargs))
        return opened[-1]

    monkeypatch.setattr(statedb.sqlite3, "connect", swapped_then_connect)
    with pytest.raises(statedb.StateFileRefused, match=REFUSED):
        statedb.StateDB(path)
    with pytest.raises(sqlite3.ProgrammingError):  # closed, not left open on the victim
        opened[0].execute("SELECT 1")
    assert victim.read_bytes() == before
    assert _files(tmp_path) == {"state.db", "victim.db"}


def test_a_state_file_that_becomes_a_link_is_not_saved_through_it(tmp_path, caplog):
    path = tmp_path / "state.db"
    store = TaskStore()
    store.add((APP, "a"), "api")
    db, _ = statedb.open_state(path)
    assert db is not None
    failures: list[str] = []
    writer = statedb.StateWriter(db, store, on_failure=failures.append)
    writer.flush()
    victim = tmp_path / "victim"
    victim.write_bytes(b"not a state file")
    moved = tmp_path / "moved.db"
    os.replace(path, moved)
    path.symlink_to(victim)
    store.add((APP, "b"), "api")
    with caplog.at_level(logging.INFO, logger="exporter.statedb"):
        for _ in range(3):
            writer.flush()
        assert victim.read_bytes() == b"not a state file"
        assert failures == ["symlink"] * 3 and writer.failures == 3  # every skipped save counts
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "became a symbolic link" in errors[0].getMessage()  # said once
        path.unlink()
        os.replace(moved, path)  # the real file is back: what waited is saved now
        writer.stop()
    assert any("no longer a symbolic link" in r.getMessage() for r in caplog.records)
    assert failures == ["symlink"] * 3
    assert {r.task_id for r in statedb.open_state(path)[1]} == {"a", "b"}
    assert victim.read_bytes() == b"not a state file"


def test_a_running_exporter_counts_saves_skipped_for_a_link(tmp_path):
    from exporter.simulator import Simulator

    path = tmp_path / "state.db"
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    with Simulator(credentials={SECRET_ID: SECRET_KEY}) as simulator, \
            running_exporter(simulator.url, Credential(SECRET_ID, SECRET_KEY), state_file=str(path),
                             state_save_interval="100ms") as exporter:
        found = scrape(exporter.url)
        for reason in statedb.WRITE_FAILURE_REASONS:  # from 0, so increase() sees the first one
            assert metric(found, "tiw_exporter_state_file_write_failures_total", reason=reason) == 0
        path.unlink()
        path.symlink_to(victim)
        eventually(lambda: metric(scrape(exporter.url), "tiw_exporter_state_file_write_failures_total",
                                  reason="symlink") >= 2, timeout=10)
        path.unlink()
    assert victim.read_bytes() == b"untouched"
