"""The callbacks the simulator sends: push events (``WhiteboardPushStarted`` / ``WhiteboardPushStopped``)
and task warnings (``TaskQueued*LimitWarning``).

A ticker notices time-driven transitions (the task book marks them announced) and queue warnings
(``WarningWatch``), and queues their callbacks; one sender thread posts them in order. Each callback
goes where the SdkAppId's settings say *at the moment it is due* (``PushCallbackSettings`` /
``WarningCallbackSettings``: what the Describe*Callback actions answer), signed with that key; an
SdkAppId without a URL gets none, and nothing is replayed once a URL is set later. Callback
timestamps use the injectable clock.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from exporter.periodic import Periodic
from exporter.simulator.push_callbacks import PushCallbackSettings, callback_body
from exporter.simulator.stats import Stats
from exporter.simulator.tasks import TaskBook
from exporter.simulator.warning_callbacks import WarningCallbackSettings, WarningWatch

log = logging.getLogger(__name__)

CALLBACK_TICK_SECONDS = 0.2
CALLBACK_TIMEOUT = (1.0, 3.0)


@dataclass(frozen=True)
class _Outgoing:
    url: str
    body: dict[str, Any]
    warning: bool  # a warning callback (counted apart from push callbacks)


class CallbackSender:
    """Ticker + sender threads; started once some SdkAppId has a push or warning callback URL."""

    def __init__(
        self,
        book: TaskBook,
        stats: Stats,
        clock: Callable[[], float],
        closing: threading.Event,
        push: PushCallbackSettings,
        warnings: WarningCallbackSettings,
        watch: WarningWatch,
    ) -> None:
        self._book = book
        self._stats = stats
        self._clock = clock
        self._closing = closing
        self._push = push
        self._warnings = warnings
        self._watch = watch
        self._lock = threading.Lock()
        self._outbox: queue.Queue[_Outgoing | None] = queue.Queue()
        self._ticker = Periodic("tiw-sim-ticker", CALLBACK_TICK_SECONDS, self.tick)
        self._sender = threading.Thread(target=self._run_sender, name="tiw-sim-callbacks", daemon=True)
        self._started = False

    @property
    def configured(self) -> bool:
        return self._push.any_configured() or self._warnings.any_configured()

    def start(self) -> None:
        """Start the threads once (a no-op until some callback URL is set)."""
        with self._lock:
            if self._started or not self.configured:
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
        """Detect transitions and queue warnings (time-driven) and queue their callbacks."""
        now = self._clock()
        for task, event_type, data in self._book.transitions(now):
            url, key = self._push.destination(task.sdk_app_id)
            if url:
                self._outbox.put(_Outgoing(url, callback_body(task.sdk_app_id, event_type, data, now, key), False))
        for warning in self._watch.check(self._book.queued(now), now):
            url, key = self._warnings.destination(warning[0])
            if url:
                self._outbox.put(_Outgoing(url, self._watch.limits.body(warning, now, key), True))

    def _run_sender(self) -> None:
        with requests.Session() as session:
            while (outgoing := self._outbox.get()) is not None and not self._closing.is_set():
                ok = self._post(session, outgoing)
                if outgoing.warning:
                    self._stats.warning_callback(ok)
                else:
                    self._stats.callback(ok)

    def _post(self, session: requests.Session, outgoing: _Outgoing) -> bool:
        event_type = outgoing.body["EventType"]
        about = outgoing.body["EventData"].get("TaskId", "the queue")
        try:
            response = session.post(outgoing.url, json=outgoing.body, timeout=CALLBACK_TIMEOUT)
            response.close()
        except requests.RequestException as exc:
            log.warning("callback %s for %s failed: %s", event_type, about, type(exc).__name__)
            return False
        if not 200 <= response.status_code < 300:
            log.warning("callback %s for %s got HTTP %d", event_type, about, response.status_code)
            return False
        return True
