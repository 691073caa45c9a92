"""The one "loop until stopped, log and go on" helper behind every background loop of the exporter.

A background loop must never die: an unexpected exception is logged with its traceback and the
loop goes on at its next period. Tasks-file watching, state saving, discovery and housekeeping all
run on a ``Periodic``, so that rule lives in one place.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``work()`` every ``period`` seconds on a daemon thread named ``name``.

    ``run_first`` runs it at once instead of after the first period. ``stopping`` is set by
    ``stop()``; long work can pass it to waits so a shutdown interrupts them.
    """

    def __init__(self, name: str, period: float, work: Callable[[], object], *, run_first: bool = False) -> None:
        self.name = name
        self.period = period
        self.work = work
        self.run_first = run_first
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        if self.run_first:
            self._run_once()
        while not self.stopping.wait(self.period):
            self._run_once()

    def _run_once(self) -> None:
        try:
            self.work()
        except Exception:  # the loop must survive anything; the next period tries again
            log.exception("%s failed unexpectedly (continuing)", self.name)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)
