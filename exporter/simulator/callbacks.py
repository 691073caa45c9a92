"""The callbacks the simulator sends: each task kind's events (push ``WhiteboardPushStarted`` /
``WhiteboardPushStopped``, recording ``OnlineRecordStarted`` / ``Stopped`` / ``Finished``, transcode
``TranscodeProgressChanged`` / ``TranscodeFinished``) and task warnings (``TaskQueued*LimitWarning``).

A ticker notices time-driven transitions (each kind's book marks them announced) and queue warnings
(``WarningWatch``), and queues their callbacks; one sender thread posts them in order. Each callback
goes where the SdkAppId's settings *for that kind* say at the moment it is due (a
``KindCallbackSettings`` per kind, ``WarningCallbackSettings``: what the Describe*Callback actions
answer), in the same envelope signed with that kind's key; an SdkAppId without a URL gets none, and
nothing is replayed once a URL is set later. Callback timestamps use the injectable clock.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from exporter.periodic import Periodic
from exporter.simulator.kind_book import Event
from exporter.simulator.stats import Stats
from exporter.simulator.task_callbacks import KindCallbackSettings, callback_body
from exporter.simulator.tasks import TaskBook
from exporter.simulator.warning_callbacks import WarningCallbackSettings, WarningWatch

log = logging.getLogger(__name__)

CALLBACK_TICK_SECONDS = 0.2
CALLBACK_TIMEOUT = (1.0, 3.0)


@dataclass(frozen=True)
class _Outgoing:
    url: str
    body: dict[str, Any]
    kind: str  # what it is counted as (stats.CALLBACK_KINDS)


@dataclass(frozen=True)
class CallbackSource:
    """One task kind's events (``transitions(now)``) and the settings that say where they go."""

    kind: str
    settings: KindCallbackSettings
    transitions: Callable[[float], list[Event]]


def push_source(book: TaskBook, settings: KindCallbackSettings) -> CallbackSource:
    def transitions(now: float) -> list[Event]:
        return [(task.sdk_app_id, event_type, data) for task, event_type, data in book.transitions(now)]
    return CallbackSource("push", settings, transitions)


class CallbackSender:
    """Ticker + sender threads; started once some SdkAppId has a callback URL of some kind."""

    def __init__(
        self,
        book: TaskBook,
        stats: Stats,
        clock: Callable[[], float],
        closing: threading.Event,
        sources: Sequence[CallbackSource],
        warnings: WarningCallbackSettings,
        watch: WarningWatch,
    ) -> None:
        """``book`` holds the pushes the queue warnings watch; ``sources`` are the task kinds' events."""
        self._book = book
        self._stats = stats
        self._clock = clock
        self._closing = closing
        self._sources = tuple(sources)
        self._warnings = warnings
        self._watch = watch
        self._lock = threading.Lock()
        self._outbox: queue.Queue[_Outgoing | None] = queue.Queue()
        self._ticker = Periodic("tiw-sim-ticker", CALLBACK_TICK_SECONDS, self.tick)
        self._sender = threading.Thread(target=self._run_sender, name="tiw-sim-callbacks", daemon=True)
        self._started = False

    @property
    def configured(self) -> bool:
        return self._warnings.any_configured() or any(s.settings.any_configured() for s in self._sources)

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
        for source in self._sources:
            for sdk_app_id, event_type, data in source.transitions(now):
                url, key = source.settings.destination(sdk_app_id)
                if url:
                    body = callback_body(sdk_app_id, event_type, data, now, key)
                    self._outbox.put(_Outgoing(url, body, source.kind))
        for warning in self._watch.check(self._book.queued(now), now):
            url, key = self._warnings.destination(warning[0])
            if url:
                self._outbox.put(_Outgoing(url, self._watch.limits.body(warning, now, key), "warning"))

    def _run_sender(self) -> None:
        with requests.Session() as session:
            while (outgoing := self._outbox.get()) is not None and not self._closing.is_set():
                self._stats.callback(outgoing.kind, self._post(session, outgoing))

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
