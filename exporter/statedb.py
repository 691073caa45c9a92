"""``--state-file`` as SQLite (WAL mode, one row per task): only what changed is written.

Rewriting and fsyncing the whole JSON file every 5 s cost 13 % of a core at 10k tasks and 34 % at
50k. Here ``StateWriter`` follows the store's change feed (``changed_since``) and upserts or deletes
just those rows in one transaction; WAL keeps a ``kill -9`` at any moment from tearing anything
(a crash loses at most the last interval). A JSON state file of earlier versions found at the path
is migrated on first start (kept beside it as ``<name>.json-migrated``); a file that is neither is
set aside as ``<name>.corrupt-<unix time>``, as before. Never fatal, but for a symbolic link at the
path (or at its -wal or -shm): a start refuses it (``StateFileRefused``), and a save skips it rather
than write through it.

Table ``ended`` remembers the final tasks that left the store (``ended.py``), so a restart keeps every
task counted once. A database written by the sharded versions (0.1.x) opens as it is: its rows, the peers' tasks among
them, are this process's own now, and its ``deleted`` table (the peers' tombstones) is dropped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from exporter import legacy_statefile
from exporter.lifecycle import TaskRecord
from exporter.model import InvalidTaskRef, TaskKey, key_from_row, row_id
from exporter.periodic import Periodic
from exporter.store import Changes, TaskStore

log = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
WAL_SIZE_LIMIT = 4 * 2**20  # bytes the -wal file is cut back to after a checkpoint
ENCODER = json.JSONEncoder(separators=(",", ":"))  # json.dumps with options builds a new encoder per call
SCHEMA = ("CREATE TABLE IF NOT EXISTS tasks (sdk_app_id INTEGER NOT NULL, task_id TEXT NOT NULL, "
          "record TEXT NOT NULL, PRIMARY KEY (sdk_app_id, task_id)) WITHOUT ROWID",
          "DROP TABLE IF EXISTS deleted",  # the sharded versions' tombstones: no peers, nothing to refuse
          # final tasks that left the store (ended.py): counted once, ever, across restarts
          "CREATE TABLE IF NOT EXISTS ended (sdk_app_id INTEGER NOT NULL, task_id TEXT NOT NULL, "
          "final_at REAL NOT NULL, PRIMARY KEY (sdk_app_id, task_id)) WITHOUT ROWID")
COMPANIONS = ("-wal", "-shm")  # the files SQLite keeps beside the database, opened by name
WRITE_FAILURE_REASONS = ("error", "symlink")  # StateWriter's on_failure: SQLite or the OS refused; a link in the way


class StateFileRefused(Exception):
    """The state file cannot be used as given (a symbolic link): a start refuses it, exit status 2."""


def symlink_at(path: Path) -> Path | None:
    """The first of ``path`` and its SQLite companions that is a symbolic link (dangling or not), else None.

    Writing through one would put the state into a file elsewhere, or create a dangling link's target."""
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in COMPANIONS)):
        try:
            if stat.S_ISLNK(os.lstat(candidate).st_mode):
                return candidate
        except OSError:
            continue  # absent, or unreadable (opening it says so)
    return None


def refusal(path: Path, link: Path, option: str = "--state-file") -> str:
    """The one line that refuses ``path`` because ``link`` (the path itself, or a companion) is a symbolic link."""
    if link == path:
        return f"{option}: {path} is a symbolic link; give the real path"
    return f"{option}: {link} (SQLite's file beside {path.name}) is a symbolic link; remove it"


def _open_nofollow(path: Path, flags: int) -> int:
    """``os.open`` that refuses a symbolic link at ``path`` itself (StateFileRefused) in the same step."""
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP and os.path.islink(path):
            raise StateFileRefused(refusal(path, path)) from None
        raise


def _connect_nofollow(path: Path) -> sqlite3.Connection:
    """``sqlite3.connect(path)``, never through a symbolic link (StateFileRefused).

    SQLite opens the file by name, and Python's sqlite3 cannot pass it SQLITE_OPEN_NOFOLLOW. So the file is
    opened here first (created if absent) with O_NOFOLLOW, which refuses a link in the same step as the open,
    and once SQLite has opened it (the open itself, before any statement reads or writes) the path must
    still name that very file, and neither -wal nor -shm may be a link. What remains: a link swapped in and
    out again between our open and SQLite's goes unnoticed (if its target did not exist, SQLite created it
    empty), and SQLite opens -wal and -shm by name at the first statement, after the last look at them.
    """
    link = symlink_at(path)
    if link is not None:
        raise StateFileRefused(refusal(path, link))
    fd = _open_nofollow(path, os.O_RDONLY | os.O_CREAT)
    try:
        opened = os.fstat(fd)
        db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            now = os.lstat(path)
            link = path if stat.S_ISLNK(now.st_mode) else symlink_at(path)
            if link is not None or (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
                raise StateFileRefused(refusal(path, link) if link else f"--state-file: {path} was replaced "
                                       "while it was being opened; start again")
        except BaseException:
            db.close()
            raise
        return db
    finally:
        os.close(fd)


def _set_aside(path: Path, why: str) -> None:
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    with contextlib.suppress(OSError):
        os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(OSError):
            os.unlink(f"{path}{suffix}")
    log.error("state file %s is corrupt (%s); moved to %s; starting without it", path, why[:120], aside)


class StateDB:
    """One SQLite connection (used by one thread at a time under a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = _connect_nofollow(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a process crash loses nothing committed
        # The first write after a start can put every row in the WAL (~40 MB at 50,000 tasks); without a
        # limit the file keeps that size for good. Each interval's changes are a few hundred kB at most.
        self._db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        for statement in SCHEMA:
            self._db.execute(statement)

    def load(self) -> list[TaskRecord]:
        records = []
        with self._lock:
            rows = self._db.execute("SELECT record FROM tasks").fetchall()
        for (text,) in rows:
            try:
                records.append(TaskRecord.from_json(json.loads(text)))
            except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
                log.error("state file %s: skipped an unreadable task row (%s)", self.path, type(exc).__name__)
        return records

    def load_ended(self) -> list[tuple[TaskKey, float]]:
        """The remembered endings (``ended.py``); rows that are not a task key and a time are skipped."""
        with self._lock:
            rows = self._db.execute("SELECT sdk_app_id, task_id, final_at FROM ended").fetchall()
        found = []
        for app, task, at in rows:
            try:
                found.append((key_from_row(app, task), float(at)))
            except (InvalidTaskRef, TypeError, ValueError):
                log.error("state file %s: skipped an unreadable ended-task row", self.path)
        return found

    def write(self, upserts: list[TaskRecord], deletes: list[TaskKey], replace_all: bool = False,
              ended: list[tuple[TaskKey, float]] = (), ended_before: float | None = None) -> None:
        """One transaction: ``replace_all`` empties the tables first (a resync of the change feed); ``ended``
        rows are remembered endings, and those older than ``ended_before`` are dropped. A task's row is named
        by its SdkAppId and ``model.row_id`` (the TaskId of a push, ``<kind>/<TaskId>`` of another kind)."""
        rows = [(r.sdk_app_id, row_id(r.key), ENCODER.encode(r.to_json())) for r in upserts]
        deletes = [(key[0], row_id(key)) for key in deletes]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if replace_all:
                    self._db.execute("DELETE FROM tasks")
                    self._db.execute("DELETE FROM ended")
                self._db.executemany("DELETE FROM tasks WHERE sdk_app_id = ? AND task_id = ?", deletes)
                self._db.executemany("INSERT OR REPLACE INTO tasks VALUES (?, ?, ?)", rows)
                self._db.executemany("DELETE FROM ended WHERE sdk_app_id = ? AND task_id = ?", [r[:2] for r in rows])
                self._db.executemany("INSERT OR REPLACE INTO ended VALUES (?, ?, ?)",
                                     [(key[0], row_id(key), at) for key, at in ended])
                if ended_before is not None:
                    self._db.execute("DELETE FROM ended WHERE final_at < ?", (ended_before,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_state(path: Path) -> tuple[StateDB | None, list[TaskRecord]]:
    """The database at ``path`` and its records, migrating a JSON state file; (None, []) if unusable.

    Raises ``StateFileRefused`` when ``path`` (or its -wal or -shm) is a symbolic link: nothing is written."""
    link = symlink_at(path)
    if link is not None:
        raise StateFileRefused(refusal(path, link))
    try:
        with os.fdopen(_open_nofollow(path, os.O_RDONLY), "rb") as handle:
            head = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        head = SQLITE_MAGIC
    except OSError as exc:
        log.error("cannot read state file %s: %s; starting without it", path, exc.strerror or exc)
        return None, []
    migrated: list[TaskRecord] | None = None
    if head != SQLITE_MAGIC:  # the JSON format of earlier versions, or neither
        try:
            migrated = legacy_statefile.load(path)  # read by name: a link swapped in since _open_nofollow is read
        except legacy_statefile.CorruptStateFile as exc:
            _set_aside(path, str(exc))  # then a fresh database
        except OSError as exc:
            log.error("cannot read state file %s: %s; starting without it", path, exc.strerror or exc)
            return None, []
        else:
            os.replace(path, path.with_name(f"{path.name}.json-migrated"))
    try:
        db = StateDB(path)
        if migrated is not None:
            db.write(migrated, [])
            log.info("state file %s: migrated %d tasks from JSON to SQLite", path, len(migrated))
        return db, db.load()
    except sqlite3.DatabaseError as exc:
        _set_aside(path, str(exc))
    except OSError as exc:  # _connect_nofollow's own open: a missing directory, no permission
        log.error("cannot open state file %s: %s; running without one", path, exc.strerror or exc)
        return None, []
    try:
        return StateDB(path), []
    except (sqlite3.Error, OSError) as exc:
        log.error("cannot open state file %s: %s; running without one", path, exc)
        return None, []


def _differences(loaded: dict[TaskKey, TaskRecord],
                 current: dict[TaskKey, TaskRecord | None]) -> tuple[list[TaskRecord], list[TaskKey]]:
    """What turns the rows ``loaded`` into ``current``: changed or new records, and dropped keys.

    ``TaskStore.restore`` keeps a restored record's object when nothing about it changed, so most
    tasks compare by identity: at 50,000 tasks comparing every field took most of the first write.
    """
    upserts = [r for key, r in current.items() if r is not None and not _same(loaded.get(key), r)]
    return upserts, [key for key in loaded if current.get(key) is None]


def _same(before: TaskRecord | None, after: TaskRecord) -> bool:
    return before is after or before == after


class StateWriter:
    """Writes the rows the store's change feed names, at most every ``period`` seconds, and on stop."""

    def __init__(self, db: StateDB, store: TaskStore, period: float = 5.0, *,
                 loaded: Iterable[TaskRecord] | None = None, on_failure: Callable[[str], None] | None = None) -> None:
        """``loaded``: the rows the database holds (what the store was restored from): the first write
        skips the ones the store still has unchanged and deletes the ones it dropped. Without it, the
        first write replaces every row. ``on_failure(reason)``: a save failed or was skipped, one of
        ``WRITE_FAILURE_REASONS``."""
        self.db = db
        self.store = store
        self._cursor = 0
        self._loaded: dict[TaskKey, TaskRecord] | None = None if loaded is None else {r.key: r for r in loaded}
        self._rewritten = loaded is not None
        self._loop = Periodic("state-writer", period, self.flush)
        self.failures = 0
        self._on_failure = on_failure or (lambda reason: None)
        self._linked: Path | None = None  # the link in the way, once logged
        self._flush_lock = threading.Lock()

    def start(self) -> None:
        self._loop.start()

    def _link_in_the_way(self) -> bool:
        """Whether the path (or -wal, -shm) became a symbolic link: then the save is skipped, not written through
        it; said once, at ERROR, until the path is a file again. The changes wait in the feed meanwhile."""
        link = symlink_at(self.db.path)
        if link is None:
            if self._linked is not None:
                log.info("state file %s: %s is no longer a symbolic link; saving again", self.db.path, self._linked)
                self._linked = None
            return False
        self.failures += 1
        self._on_failure("symlink")
        if self._linked is None:
            self._linked = link
            log.error("state file %s: %s became a symbolic link; not saving through it until it is a regular file "
                      "again (a restart refuses it)", self.db.path, link)
        return True

    def flush(self) -> None:
        with self._flush_lock:
            if self._link_in_the_way():
                return
            changes = self.store.changed_since(self._cursor)
            replace_all = changes.resync or not self._rewritten
            upserts, deletes = self._rows(changes, replace_all)
            if not upserts and not deletes and not replace_all:
                self._cursor, self._loaded = changes.cursor, None
                return
            ended = self.store.ended() if replace_all else [
                (key, at) for key in deletes if (at := self.store.ended_at(key)) is not None]
            try:
                self.db.write(upserts, deletes, replace_all=replace_all, ended=ended,
                              ended_before=self.store.ended_horizon())
                self._cursor, self._rewritten, self._loaded = changes.cursor, True, None
            except (sqlite3.Error, OSError) as exc:
                self.failures += 1
                self._on_failure("error")
                log.error("cannot write state file %s: %s", self.db.path, exc)

    def _rows(self, changes: Changes, replace_all: bool) -> tuple[list[TaskRecord], list[TaskKey]]:
        """The records to upsert and the keys to delete."""
        if replace_all:
            return self.store.snapshot(), []
        if self._loaded is not None:  # the first write after a restore: the feed's first read names every task
            return _differences(self._loaded, changes.records)
        return ([r for r in changes.records.values() if r is not None],
                [key for key, r in changes.records.items() if r is None])

    def stop(self) -> None:
        self._loop.stop()
        self.flush()
        self.db.close()
