"""Paused SdkAppIds: after an app-level error, an SdkAppId's tasks wait instead of spending requests.

A pause lasts an exponential backoff step per consecutive failure. When it ends, one task's
request probes the SdkAppId while the others keep waiting; success lifts the pause, another
failure lengthens it. Waiting tasks are rescheduled before pacing, so they cost no request slot.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from exporter.backoff import exponential_backoff

log = logging.getLogger(__name__)


@dataclass
class _Pause:
    failures: int = 0
    until: float = 0.0
    code: str = ""
    probing: bool = False  # after the pause one request probes the SdkAppId; the rest wait for it


class SdkAppIdPauses:
    """The pause state of every SdkAppId one collector polls; thread-safe."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self._pauses: dict[int, _Pause] = {}
        self._lock = threading.Lock()

    def gate(self, sdk_app_id: int, now: float, probe_wait: float) -> float | None:
        """None to poll now; else when to try again, while the SdkAppId is paused or being probed."""
        with self._lock:
            state = self._pauses.get(sdk_app_id)
            if state is None:
                return None
            if state.until > now:
                return state.until
            if state.probing:
                return now + probe_wait
            state.probing = True  # this task's request is the probe
            return None

    def pause(self, sdk_app_id: int, code: str, now: float) -> float:
        """Pause the SdkAppId (one backoff step per probe); returns when the pause ends."""
        with self._lock:
            current = self._pauses.get(sdk_app_id) or _Pause()
            if current.until > now:
                return current.until  # several in-flight requests failed together: one pause step
            failures = current.failures + 1
            until = now + exponential_backoff(self.base, failures - 1, self.cap)
            self._pauses[sdk_app_id] = _Pause(failures, until, code)
        log.error("SdkAppId %s paused for %.1fs after %s", sdk_app_id, until - now, code)
        return until

    def lift(self, sdk_app_id: int) -> None:
        """The SdkAppId answered (a success, or an error about one task only): no pause."""
        with self._lock:
            self._pauses.pop(sdk_app_id, None)

    def probe_done(self, sdk_app_id: int) -> None:
        """Whatever the probe found, the next probe may go."""
        with self._lock:
            state = self._pauses.get(sdk_app_id)
            if state is not None:
                state.probing = False

    def current(self) -> dict[int, str]:
        """SdkAppIds paused (or probing after a pause), with the error code that paused them."""
        with self._lock:
            return {app: state.code for app, state in self._pauses.items()}
