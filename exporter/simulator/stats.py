"""Request statistics behind ``Simulator.stats()`` and ``GET /_sim/stats``.

Decisions: ``stats()["requests"][action]`` counts answers by outcome: ``success``, an API error code,
or ``fault:<kind>`` for injected faults that are not an API error envelope (``slow``/``trickle``
count the outcome of the answer they delay); requests without a known action count under
``(invalid)``. ``max_requests_in_any_second`` counts accepted requests, so it never exceeds the
limit; ``max_arrivals_in_any_second`` also counts throttled ones, i.e. what the client sent.
``describes_by_task`` counts DescribeWhiteboardPush requests for an existing task that passed
authentication and the rate limit (faulted ones included: the client did poll). ``callbacks_*`` count
push callbacks, ``warning_callbacks_*`` the task warnings, ``record_callbacks_*`` and
``transcode_callbacks_*`` the other kinds' events, each by whether the receiver answered 2xx.
``tasks`` counts pushes by status, ``record_tasks`` and ``transcode_tasks`` the other kinds.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Any

INVALID_ACTION_KEY = "(invalid)"
CALLBACK_KINDS = ("push", "warning", "record", "transcode")  # push callbacks count as plain ``callbacks_*``


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
    callbacks: collections.Counter[tuple[str, bool]] = field(default_factory=collections.Counter)
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

    def callback(self, kind: str, ok: bool) -> None:
        """One callback of ``kind`` (one of CALLBACK_KINDS) sent, ``ok`` when the receiver answered 2xx."""
        with self.lock:
            self.callbacks[(kind, ok)] += 1

    def snapshot(self, tasks: dict[str, dict[str, int]]) -> dict[str, Any]:
        """The stats document; ``tasks`` counts each kind's tasks by status (``push``, ``record``, ``transcode``)."""
        with self.lock:
            sent = {}
            for kind in CALLBACK_KINDS:
                prefix = "" if kind == "push" else f"{kind}_"
                sent |= {f"{prefix}callbacks_sent": self.callbacks[(kind, True)],
                         f"{prefix}callbacks_failed": self.callbacks[(kind, False)]}
            return {
                "requests": {action: dict(counts) for action, counts in self.requests.items()},
                "max_requests_in_any_second": dict(self.max_accepted),
                "max_arrivals_in_any_second": dict(self.max_arrivals),
                "throttled": self.throttled,
                "tasks": tasks["push"],
                "record_tasks": tasks["record"],
                "transcode_tasks": tasks["transcode"],
                "describes_by_task": dict(self.describes_by_task),
            } | sent
