"""Secrets kept in files and re-read when the file changes, so a rotation needs no restart.

Every secret the exporter holds in a file (callback keys, the API token, SecretKeys) goes through
``WatchedSecret``: each ``get()`` compares the file's stat (inode, size, mtime) and re-reads it when
it moved, so a rewritten key replaces the old one for the very next request. A file that cannot be
read keeps the last good value and reports the failure (metric and one WARNING), never its content.
With a ``grace`` period (callback keys: TIW's callbacks signed with the old key may still be in flight),
``previous()`` is the value before the last change for that long after the change was noticed.
Files may begin with a UTF-8 BOM and end with CRLF (editors on Windows, ``kubectl create secret``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class SecretFileError(Exception):
    """A secret file cannot be used (message names the file, never the content)."""


def read_secret_file(path: Path, what: str) -> str:
    """A secret from a file: BOM and surrounding whitespace (CRLF too) removed; the error never shows it."""
    try:
        value = path.read_text(encoding="utf-8-sig").strip()
    except OSError as exc:
        raise SecretFileError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SecretFileError(f"{what} file {path} is not UTF-8 text") from None
    if not value:
        raise SecretFileError(f"{what} file {path} is empty")
    return value


def _stamp(path: Path) -> tuple[int, ...] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


class WatchedSecret:
    """One secret from a file, re-read on change; or a fixed value (environment) that never reloads.

    ``name`` is the metric label (``api_token``, ``callback_key``, ``secret_key/<account>``);
    ``last_success``/``last_reload`` feed ``tiw_exporter_secret_*``. Neither value ever appears in ``repr``.
    """

    def __init__(self, name: str, what: str, path: Path | None = None, value: str | None = None,
                 clock: Callable[[], float] = time.time, grace: float = 0.0) -> None:
        self.name, self.what, self.path = name, what, path
        self.grace = grace
        self._clock = clock
        self._lock = threading.Lock()
        self._value = value
        self._previous: tuple[str, float] | None = None  # the value before the last change, until when it is valid
        self._stamp: tuple[int, ...] | None = None
        self.last_success = True
        self.last_reload = clock()
        if path is not None:
            self._value = read_secret_file(path, what)  # a broken file is a startup error
            self._stamp = _stamp(path)

    def get(self) -> str | None:
        if self.path is None:
            return self._value
        stamp = _stamp(self.path)
        if stamp is not None and stamp == self._stamp:
            return self._value
        with self._lock:
            if stamp != self._stamp:
                self._reload(stamp)
            return self._value

    def previous(self) -> str | None:
        """The value before the last change, for ``grace`` seconds after the change was noticed; else None.
        A change is noticed at the next ``get()`` (a request using the secret, or a scrape)."""
        self.get()
        previous = self._previous
        if previous is None:
            return None
        if self._clock() < previous[1]:
            return previous[0]
        with self._lock:  # expired: not kept in memory longer than needed (unless a newer change replaced it)
            if self._previous is previous:
                self._previous = None
        return None

    def _reload(self, stamp: tuple[int, ...] | None) -> None:
        assert self.path is not None
        self._stamp = stamp
        self.last_reload = self._clock()
        try:
            value = read_secret_file(self.path, self.what)
        except SecretFileError as exc:
            self.last_success = False
            log.warning("%s; keeping the previous %s", exc, self.what)
            return
        self.last_success = True
        if value != self._value:
            old = self._value
            self._previous = (old, self.last_reload + self.grace) if old is not None and self.grace > 0 else None
            log.info("%s file %s changed: new value in use%s", self.what, self.path,
                     f"; the previous one is still accepted for {self.grace:g}s" if self._previous else "")
        self._value = value

    def __repr__(self) -> str:
        return f"WatchedSecret({self.name!r}, path={str(self.path) if self.path else None!r})"
