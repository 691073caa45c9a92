"""Paused SdkAppIds and credentials: after an app-level or credential-level error, tasks wait.

An app-level error (``PAUSE_SDK_APP_ID`` in the error table) pauses one SdkAppId; a credential or
setup error (``PAUSE_CREDENTIAL``: a refused key, a wrong region or endpoint) pauses every SdkAppId
of the account at once and is logged once, loudly. A pause lasts an exponential backoff step per
consecutive failure. When it ends, one task's request probes while the others keep waiting;
success lifts the pause, another failure lengthens it. Waiting tasks are rescheduled before
pacing, so they cost no request slot.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from exporter.backoff import exponential_backoff
from exporter.logs import task_fields

log = logging.getLogger(__name__)


@dataclass
class _Pause:
    failures: int = 0
    until: float = 0.0
    code: str = ""
    probing: bool = False  # after the pause one request probes the SdkAppId; the rest wait for it


CREDENTIAL = 0  # the key of the account-wide pause (SdkAppIds are positive)


class SdkAppIdPauses:
    """The pause state of every SdkAppId one collector polls, and of its credential; thread-safe."""

    def __init__(self, base: float, cap: float, account: str = "default") -> None:
        self.base = base
        self.cap = cap
        self.account = account
        self._pauses: dict[int, _Pause] = {}
        self._lock = threading.Lock()

    def gate(self, sdk_app_id: int, now: float, probe_wait: float) -> float | None:
        """None to poll now; else when to try again, while the credential or SdkAppId is paused or probed."""
        with self._lock:
            for key in (CREDENTIAL, sdk_app_id):
                state = self._pauses.get(key)
                if state is None:
                    continue
                if state.until > now:
                    return state.until
                if state.probing:
                    return now + probe_wait
                state.probing = True  # this task's request is the probe
                return None
            return None

    def pause(self, sdk_app_id: int, code: str, now: float) -> float:
        """Pause the SdkAppId (one backoff step per probe); returns when the pause ends."""
        until, failures = self._step(sdk_app_id, code, now)
        if failures:
            log.error("SdkAppId %s paused for %.1fs after %s", sdk_app_id, until - now, code,
                      extra=task_fields(sdk_app_id, code=code))
        return until

    def pause_credential(self, code: str, now: float) -> float:
        """Pause every SdkAppId of the account; the first step is logged once, loudly."""
        until, failures = self._step(CREDENTIAL, code, now)
        if failures == 1:
            log.error("account %s: the API refuses this credential or setup (%s); all its polling is paused and "
                      "probed with backoff. Check the SecretId/SecretKey, --region and --endpoint", self.account, code,
                      extra=task_fields(code=code, account=self.account))
        return until

    def _step(self, key: int, code: str, now: float) -> tuple[float, int]:
        """One more backoff step for ``key``: (until, failures), failures 0 when already paused."""
        with self._lock:
            current = self._pauses.get(key) or _Pause()
            if current.until > now:
                return current.until, 0  # several in-flight requests failed together: one pause step
            failures = current.failures + 1
            until = now + exponential_backoff(self.base, failures - 1, self.cap)
            self._pauses[key] = _Pause(failures, until, code)
            return until, failures

    def lift(self, sdk_app_id: int) -> bool:
        """The API answered for the SdkAppId (a success, or an error about one task only): no pause.
        True when a pause ended."""
        with self._lock:
            app = self._pauses.pop(sdk_app_id, None)
        credential = self.lift_credential()  # an answer is also the key at work
        return app is not None or credential

    def probe_done(self, sdk_app_id: int) -> None:
        """Whatever the probe found, the next probe may go."""
        with self._lock:
            for key in (CREDENTIAL, sdk_app_id):
                state = self._pauses.get(key)
                if state is not None:
                    state.probing = False

    def current(self) -> dict[int, str]:
        """SdkAppIds paused (or probing after a pause), with the error code that paused them."""
        with self._lock:
            return {app: state.code for app, state in self._pauses.items() if app != CREDENTIAL}

    def credential_waits_until(self) -> float | None:
        """Until when the paused credential waits before its next probe (None: not paused)."""
        with self._lock:
            state = self._pauses.get(CREDENTIAL)
            return state.until if state else None

    def lift_credential(self) -> bool:
        """Another action answered with this key: the credential works. True when a pause ended."""
        with self._lock:
            lifted = self._pauses.pop(CREDENTIAL, None) is not None
        if lifted:
            log.info("account %s: the API accepts this credential again; polling resumes", self.account)
        return lifted

    def credential_pause(self) -> str | None:
        """The code that paused the whole credential, while it is paused or probed."""
        with self._lock:
            state = self._pauses.get(CREDENTIAL)
            return state.code if state else None
