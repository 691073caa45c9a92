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


@contextmanager
def running(args: list[str], url_pattern: str, env: dict[str, str] | None = None) -> Iterator[tuple[Process, str]]:
    """Start ``args``, wait for a URL in its output, yield (process, url), stop it afterwards."""
    process = Process(args, env)
    try:
        url = process.wait_for(url_pattern).group("url")
        yield process, url
    finally:
        process.stop()


SIMULATOR_URL = r"(?P<url>http://127\.0\.0\.1:\d+)"
EXPORTER_URL = r"listening on (?P<url>http://127\.0\.0\.1:\d+)"

