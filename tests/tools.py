"""Find the external binaries tests need (promtool, prometheus, amtool, alertmanager).

`.ci/run` unpacks Debian's prometheus packages into `.cache/tools`; a developer may have them on
PATH instead. Under ``CI=true`` a missing tool fails the test: CI must never skip silently.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_SEARCH_DIRS = (REPO / ".cache" / "tools" / "usr" / "bin",)


def find_tool(name: str) -> str:
    """Absolute path of ``name``; skip locally, fail under CI, when it is not installed."""
    extra = os.environ.get("TIW_TOOLS_DIR")
    dirs = ([Path(extra)] if extra else []) + list(_SEARCH_DIRS)
    for directory in dirs:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not found (run .ci/run or install Debian's prometheus packages)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")
