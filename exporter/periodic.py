"""The one "loop until stopped, log and go on" helper behind every background loop of the exporter.

A background loop must never die: an unexpected exception is logged with its traceback and the
loop goes on at its next period. Tasks-file watching, state saving, discovery and housekeeping all
run on a ``Periodic``, so that rule lives in one place.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Runs ``work()`` every ``period`` seconds on a daemon thread named ``name``.

    ``run_first`` runs it at once instead of after the first period. ``stopping`` is set by
    ``stop()``; long work can pass it to waits so a shutdown interrupts them. ``fixed_rate`` makes
    the period the time from one start to the next, not the gap after each run: a liveness pass
    that takes 1 s of a 5 s interval still starts every 5 s (an overrun starts the next at once).
    """

    def __init__(self, name: str, period: float, work: Callable[[], object], *, run_first: bool = False,
                 fixed_rate: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.period = period
        self.work = work
        self.run_first = run_first
        self.fixed_rate = fixed_rate
        self.clock = clock
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        next_start = self.clock()
        if self.run_first:
            self._run_once()
        while not self.stopping.wait(self.wait_after(next_start)):
            next_start = max(next_start + self.period, self.clock()) if self.fixed_rate else self.clock()
            self._run_once()

    def wait_after(self, last_start: float) -> float:
        """Seconds until the next run: a period after the last start (fixed rate) or after now."""
        if not self.fixed_rate:
            return self.period
        return max(0.0, last_start + self.period - self.clock())

    def _run_once(self) -> None:
        try:
            self.work()
        except Exception:  # the loop must survive anything; the next period tries again
            log.exception("%s failed unexpectedly (continuing)", self.name)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)
