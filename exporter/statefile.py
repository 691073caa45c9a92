"""The JSON state file of earlier versions: read to migrate it (``statedb.py`` is today's format).

Writes are atomic (temp file in the same directory, fsync, rename, fsync of the directory), so a
crash at any moment leaves either the old or the new file. A file that cannot be read back is
renamed aside (``<name>.corrupt-<unix time>``) and reported; it is never fatal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from exporter.lifecycle import TaskRecord

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def write_atomically(path: Path, data: bytes) -> None:
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(path: Path, records: Iterable[TaskRecord]) -> None:
    document = {"version": FORMAT_VERSION, "saved_at": time.time(), "tasks": [r.to_json() for r in records]}
    write_atomically(path, json.dumps(document, separators=(",", ":")).encode("utf-8"))


def load(path: Path) -> list[TaskRecord]:
    """Records from ``path``; [] when it does not exist; a corrupt file is set aside."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.error("cannot read state file %s: %s; starting without it", path, exc.strerror or exc)
        return []
    try:
        document = json.loads(raw)
        if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a version {FORMAT_VERSION} state file")
        if not isinstance(document.get("tasks"), list):
            raise ValueError("no task list")
        return [TaskRecord.from_json(item) for item in document["tasks"]]
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        try:
            os.replace(path, aside)
            where = f"moved to {aside}"
        except OSError as move_error:
            where = f"could not move it aside: {move_error.strerror}"
        log.error("state file %s is corrupt (%s: %s); %s; starting without it", path, type(exc).__name__,
                  str(exc)[:120], where)
        return []
