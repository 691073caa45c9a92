"""The JSON state file of earlier versions: read once to migrate it to SQLite (``statedb.py``).

A file that is not a readable version-1 document raises ``CorruptStateFile``; ``statedb`` sets it
aside as it does a corrupt database (one place does that).
"""

from __future__ import annotations

import json
from pathlib import Path

from exporter.lifecycle import TaskRecord

FORMAT_VERSION = 1


class CorruptStateFile(ValueError):
    """The file exists but is not a JSON state file this version can read."""


def load(path: Path) -> list[TaskRecord]:
    """Records from the JSON state file at ``path``; raises OSError when unreadable, CorruptStateFile
    when it is not a version-1 state file."""
    raw = path.read_bytes()
    try:
        document = json.loads(raw)
        if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
            raise ValueError(f"not a version {FORMAT_VERSION} state file")
        if not isinstance(document.get("tasks"), list):
            raise ValueError("no task list")
        return [TaskRecord.from_json(item) for item in document["tasks"]]
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        raise CorruptStateFile(f"{type(exc).__name__}: {exc}") from None
