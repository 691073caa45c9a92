"""Request statistics behind ``Simulator.stats()`` and ``GET /_sim/stats``.

Decisions: ``stats()["requests"][action]`` counts answers by outcome: ``success``, an API error code,
or ``fault:<kind>`` for injected faults that are not an API error envelope (``slow``/``trickle``
count the outcome of the answer they delay); requests without a known action count under
``(invalid)``. ``max_requests_in_any_second`` counts accepted requests, so it never exceeds the
limit; ``max_arrivals_in_any_second`` also counts throttled ones, i.e. what the client sent.
``describes_by_task`` counts DescribeWhiteboardPush requests for an existing task that passed
authentication and the rate limit (faulted ones included: the client did poll). ``callbacks_*`` count
push callbacks, ``warning_callbacks_*`` the task warnings, each by whether the receiver answered 2xx.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Any

INVALID_ACTION_KEY = "(invalid)"


def prune(window: collections.deque[float], now: float) -> collections.deque[float]:
    """Drop the entries older than one second from a sliding window."""
    while window and window[0] <= now - 1.0:
        window.popleft()
    return window


def deque_map() -> dict[Any, collections.deque[float]]:
    return collections.defaultdict(collections.deque)


@dataclass
class Stats:
    """Counters behind ``Simulator.stats()``; every method takes ``lock``."""

    requests: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    accepted: dict[str, collections.deque[float]] = field(default_factory=deque_map)
    arrivals: dict[str, collections.deque[float]] = field(default_factory=deque_map)
    max_accepted: collections.Counter[str] = field(default_factory=collections.Counter)
    max_arrivals: collections.Counter[str] = field(default_factory=collections.Counter)
    describes_by_task: collections.Counter[str] = field(default_factory=collections.Counter)
    throttled: int = 0
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    warning_callbacks_sent: int = 0
    warning_callbacks_failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def _note(
        windows: dict[str, collections.deque[float]],
        maxima: collections.Counter[str],
        action: str,
        now: float,
    ) -> None:
        window = prune(windows[action], now)
        window.append(now)
        maxima[action] = max(maxima[action], len(window))

    def arrival(self, action: str, now: float) -> None:
        with self.lock:
            self._note(self.arrivals, self.max_arrivals, action, now)

    def accepted_request(self, action: str, now: float) -> None:
        with self.lock:
            self._note(self.accepted, self.max_accepted, action, now)

    def throttle(self) -> None:
        with self.lock:
            self.throttled += 1

    def answer(self, action_key: str, outcome: str) -> None:
        with self.lock:
            self.requests[action_key][outcome] += 1

    def describe(self, task_id: str) -> None:
        with self.lock:
            self.describes_by_task[task_id] += 1

    def callback(self, ok: bool) -> None:
        with self.lock:
            if ok:
                self.callbacks_sent += 1
            else:
                self.callbacks_failed += 1

    def warning_callback(self, ok: bool) -> None:
        with self.lock:
            if ok:
                self.warning_callbacks_sent += 1
            else:
                self.warning_callbacks_failed += 1

    def snapshot(self, tasks: dict[str, int]) -> dict[str, Any]:
        """The stats document; ``tasks`` counts tasks by status."""
        with self.lock:
            return {
                "requests": {action: dict(counts) for action, counts in self.requests.items()},
                "max_requests_in_any_second": dict(self.max_accepted),
                "max_arrivals_in_any_second": dict(self.max_arrivals),
                "throttled": self.throttled,
                "tasks": tasks,
                "callbacks_sent": self.callbacks_sent,
                "callbacks_failed": self.callbacks_failed,
                "warning_callbacks_sent": self.warning_callbacks_sent,
                "warning_callbacks_failed": self.warning_callbacks_failed,
                "describes_by_task": dict(self.describes_by_task),
            }
