"""Signed ``WhiteboardPushStarted`` / ``WhiteboardPushStopped`` callbacks.

A ticker notices time-driven transitions (the task book marks them announced) and queues their
callbacks; one sender thread posts them in order. Signing uses the product's ``exporter.callbacks.sign``,
so the simulator and the receiver cannot disagree on TIW's rule. Callback timestamps use the injectable
clock.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import requests

from exporter.callbacks import sign
from exporter.periodic import Periodic
from exporter.simulator.lifecycle import SimTask
from exporter.simulator.stats import Stats
from exporter.simulator.tasks import TaskBook

log = logging.getLogger(__name__)

CALLBACK_TICK_SECONDS = 0.2
CALLBACK_TTL_SECONDS = 3600
CALLBACK_TIMEOUT = (1.0, 3.0)


class CallbackSender:
    """Ticker + sender threads; inert until ``configure``d with a receiver URL and key."""

    def __init__(
        self,
        book: TaskBook,
        stats: Stats,
        clock: Callable[[], float],
        closing: threading.Event,
        url: str | None = None,
        key: str | None = None,
    ) -> None:
        if bool(url) != bool(key):
            raise ValueError("callback_url and callback_key must be given together")
        self._book = book
        self._stats = stats
        self._clock = clock
        self._closing = closing
        self._url, self._key = url, key
        self._lock = threading.Lock()
        self._outbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._ticker = Periodic("tiw-sim-ticker", CALLBACK_TICK_SECONDS, self.tick)
        self._sender = threading.Thread(target=self._run_sender, name="tiw-sim-callbacks", daemon=True)
        self._started = False

    @property
    def configured(self) -> bool:
        return bool(self._url)

    def configure(self, url: str, key: str) -> None:
        """Send to ``url`` signed with ``key`` from now on."""
        if not url or not key:
            raise ValueError("callback url and key must both be non-empty")
        with self._lock:
            self._url, self._key = url, key

    def start(self) -> None:
        """Start the threads once (a no-op until configured)."""
        with self._lock:
            if self._started or not self._url:
                return
            self._started = True
        self._ticker.start()
        self._sender.start()

    def stop_soon(self) -> None:
        """Tell both threads to stop without waiting (close() joins them later)."""
        self._ticker.stopping.set()
        self._outbox.put(None)

    def join(self, timeout: float) -> None:
        if self._started:
            self._ticker.stop(timeout)
            self._sender.join(timeout)

    def tick(self) -> None:
        """Detect transitions (time-driven) and queue their callbacks."""
        now = self._clock()
        for task, event_type, data in self._book.transitions(now):
            self._outbox.put(self._callback(task, event_type, data, now))

    def _callback(self, task: SimTask, event_type: str, data: dict[str, Any], now: float) -> dict[str, Any]:
        expire = int(now) + CALLBACK_TTL_SECONDS
        return {
            "Timestamp": int(now),
            "SdkAppId": task.sdk_app_id,
            "ExpireTime": expire,
            "Sign": sign(self._key or "", expire),
            "EventType": event_type,
            "EventData": data,
        }

    def _run_sender(self) -> None:
        with requests.Session() as session:
            while (event := self._outbox.get()) is not None and not self._closing.is_set():
                self._stats.callback(self._post_callback(session, event))

    def _post_callback(self, session: requests.Session, event: dict[str, Any]) -> bool:
        url = self._url
        assert url is not None
        task_id = event["EventData"]["TaskId"]
        try:
            response = session.post(url, json=event, timeout=CALLBACK_TIMEOUT)
            response.close()
        except requests.RequestException as exc:
            log.warning("callback %s for task %s failed: %s", event["EventType"], task_id, type(exc).__name__)
            return False
        if not 200 <= response.status_code < 300:
            log.warning("callback %s for task %s got HTTP %d", event["EventType"], task_id, response.status_code)
            return False
        return True
