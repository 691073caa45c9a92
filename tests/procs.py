"""Subprocess helpers for integration tests: start, learn the URL from output, always clean up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class Process:
    """A child process whose combined output is collected by a reader thread."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> None:
        self.args = args
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """First output line matching ``pattern``; fails with the output so far."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._new_line:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and seen == len(self.lines)):
                    raise AssertionError(f"{pattern!r} not seen from {self.args}; output:\n{self.output[-3000:]}")
                self._new_line.wait(min(remaining, 0.2))

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(timeout=5)
        return self.proc.returncode


def exporter_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "exporter", *args]


def started(args: list[str], url_pattern: str, env: dict[str, str] | None = None) -> tuple[Process, str]:
    """Start ``args`` and wait for a URL in its output: (process, url); stopped here if the URL never shows."""
    process = Process(args, env)
    try:
        return process, process.wait_for(url_pattern).group("url")
    except BaseException:
        process.stop()
        raise


@contextmanager
def running(args: list[str], url_pattern: str, env: dict[str, str] | None = None) -> Iterator[tuple[Process, str]]:
    """``started``, as a context: yields (process, url), stops it afterwards."""
    process, url = started(args, url_pattern, env)
    with process:
        yield process, url


SIMULATOR_URL = r"(?P<url>http://127\.0\.0\.1:\d+)"
EXPORTER_URL = r"listening on (?P<url>http://127\.0\.0\.1:\d+)"


def exporter_process(*args: str, env: dict[str, str] | None = None) -> tuple[Process, str]:
    """``python -m exporter run *args``, once it says where it listens: (process, url).

    The caller stops it: ``process.stop()``, or ``with process:``.
    """
    return started(exporter_cmd("run", *args), EXPORTER_URL, env)

