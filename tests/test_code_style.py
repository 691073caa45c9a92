"""The code stays ruff-clean (rules in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from tests.tools import REPO


def test_ruff_reports_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)], capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
