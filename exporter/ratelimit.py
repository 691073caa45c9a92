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

The pace is kept where a slot is taken (the collector's dispatcher), but a request leaves later, from
another thread (a poll worker); on a starved machine the workers' sends bunch however evenly the slots
were spaced. So the thread that sends passes a ``SendWindow`` first (``PacedLimiter.before_send``, wired
around the describe calls in ``accounts.py``): at most ``send_cap`` sends (18 of 20) in any one second
by the monotonic clock, and no two closer than the pace's spacing (54 ms at 20 req/s). Any 21 sends
then span at least 1 s plus two spacings (~1.11 s), whatever the threads did before sending; what is
left is a thread stalled between the check and its socket write, or jitter on the way to the API.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

HEADROOM = 0.92  # the share of the published limit the pace uses (module docstring)
SEND_SPACING = 1.0  # the least time between two sends at send time, in the pace's spacings (module docstring)

P = ParamSpec("P")
R = TypeVar("R")


def send_cap(rate: float, headroom: float) -> int:
    """Sends allowed in any one second at send time: the paced share of the limit, rounded down."""
    return max(1, math.floor(rate * headroom))


class SendWindow:
    """At most ``cap`` sends in any ``span`` seconds and ``gap`` between two, checked by the thread that sends."""

    def __init__(self, cap: int, span: float = 1.0, gap: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if cap < 1 or span <= 0 or gap < 0:
            raise ValueError("cap and span must be positive, gap not negative")
        self.cap, self.span, self.gap = cap, span, gap
        self._clock, self._sleep = clock, sleep
        self._sent: collections.deque[float] = collections.deque()  # admission times within span, oldest first
        self._last = -math.inf
        self._lock = threading.Lock()

    def admit(self) -> float:
        """Wait until one more send fits; returns the clock time it was admitted at."""
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] + self.span <= now:
                    self._sent.popleft()
                if len(self._sent) < self.cap and self._last + self.gap <= now:
                    self._sent.append(now)
                    self._last = now
                    return now
                wait = self._last + self.gap - now
                if len(self._sent) >= self.cap:
                    wait = max(wait, self._sent[0] + self.span - now)
            self._sleep(wait)


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
        self.sends = SendWindow(send_cap(rate, headroom), gap=SEND_SPACING / self.nominal, clock=clock, sleep=sleep)

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

    def before_send(self) -> float:
        """Called by the thread that sends, immediately before it sends: waits for room in ``sends``."""
        return self.sends.admit()

    def throttled(self) -> None:
        """The API said RequestLimitExceeded: halve the pace (not below the floor)."""
        with self._lock:
            now = self._clock()
            self._current = max(self._floor, self._current / 2)
            self._last_adjust = now
            self._next_slot = max(self._next_slot, now + 1.0 / self._current)


def checked_at_send(limiter: PacedLimiter, call: Callable[P, R]) -> Callable[P, R]:
    """``call``, preceded in the calling thread by ``limiter.before_send()``."""

    def send(*args: P.args, **kwargs: P.kwargs) -> R:
        limiter.before_send()
        return call(*args, **kwargs)

    return send


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
