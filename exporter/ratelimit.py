"""Paced request budgets: one per API action of a credential (or one shared by all of them).

Requests are spaced evenly (no bursts), because Tencent Cloud enforces its per-second limit on
any one-second window: a bucket that lets 20 requests out at once trips it just as surely as 21.
The pace leaves ``headroom`` below the published limit (``HEADROOM``, 92 %) for jitter: requests leave
a busy Python process and arrive at the API a few tens of milliseconds unevenly, and 21 arrivals in
one second are throttled however even the sends were. At 92 % any 21 paced requests span ~1.09 s, so
arrivals may bunch by ~90 ms before the API sees one too many (at 96 % only ~40 ms: the simulator's
strict window throttled a few requests per run under load). ``RequestLimitExceeded``
halves the pace; each calm second wins back 5% of the nominal rate (AIMD), so the budget recovers
within seconds once the API calms down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HEADROOM = 0.92  # the share of the published limit the pace uses (module docstring)


class PacedLimiter:
    def __init__(
        self,
        rate: float,
        headroom: float = HEADROOM,
        floor_fraction: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.nominal = rate * headroom
        self._current = self.nominal
        self._floor = rate * floor_fraction
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = clock()
        self._last_adjust = clock()

    @property
    def current_rate(self) -> float:
        with self._lock:
            self._recover(self._clock())
            return self._current

    def _recover(self, now: float) -> None:
        calm_seconds = now - self._last_adjust
        if calm_seconds >= 1.0 and self._current < self.nominal:
            self._current = min(self.nominal, self._current + 0.05 * self.nominal * int(calm_seconds))
            self._last_adjust = now
        elif self._current >= self.nominal:
            self._last_adjust = now

    def reserve(self) -> float:
        """Claim the next slot; returns how long the caller must wait before sending."""
        with self._lock:
            now = self._clock()
            self._recover(now)
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self._current
            return slot - now

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for the next slot; False if ``stop`` was set while waiting."""
        wait = self.reserve()
        if wait <= 0:
            return True
        if stop is not None:
            return not stop.wait(wait)
        self._sleep(wait)
        return True

    def throttled(self) -> None:
        """The API said RequestLimitExceeded: halve the pace (not below the floor)."""
        with self._lock:
            now = self._clock()
            self._current = max(self._floor, self._current / 2)
            self._last_adjust = now
            self._next_slot = max(self._next_slot, now + 1.0 / self._current)


@dataclass
class ActionBudgets:
    """Tencent Cloud limits each API action separately: one ``PacedLimiter`` per action at ``rate``.

    With ``shared`` every action spends the one limiter (an account known to share its limit).
    A throttled action slows only its own limiter unless shared.
    """

    rate: float
    shared: bool = False
    _limiters: dict[str, PacedLimiter] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def for_action(self, action: str) -> PacedLimiter:
        name = "*" if self.shared else action
        with self._lock:
            limiter = self._limiters.get(name)
            if limiter is None:
                limiter = self._limiters[name] = PacedLimiter(self.rate)
            return limiter
