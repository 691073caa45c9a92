"""Temporary keys that expire: cached, refreshed before they lapse, failures backed off.

Shared by the CVM role (``cvm_role.py``, metadata service) and TKE OIDC (``tke_oidc.py``, STS
``AssumeRoleWithWebIdentity``). Keys are refreshed ``refresh_margin`` seconds before they expire, so
a request is never signed with a key about to lapse. A failed refresh backs off exponentially and,
while the old key is still valid, is invisible to callers; only once the key has expired does
``get()`` raise ``CredentialError`` (which the client counts as ``ClientError.Credential``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from exporter.backoff import exponential_backoff
from exporter.tencentcloud.credentials import Credential, CredentialError, CredentialProvider


class RefreshFailed(Exception):
    """One failed fetch; the message names the cause and never a secret."""


@dataclass(frozen=True)
class Lease:
    credential: Credential
    expires_at: float
    refresh_at: float


class RefreshingCredentials(CredentialProvider):
    """A thread-safe ``CredentialProvider`` of expiring keys; subclasses say how one key is fetched."""

    log: logging.Logger  # the subclass module's logger, so log levels are set where users expect them
    source = "the key service"  # named in errors: "no valid temporary key from <source>"

    def __init__(self, label: str, *, refresh_margin: float = 300.0, min_backoff: float = 1.0,
                 max_backoff: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.label = label  # "CVM role NAME": starts every log line and error
        self.description = label
        self._margin = refresh_margin
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._clock = clock
        self._lock = threading.Lock()
        self._lease: Lease | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_problem = "no key fetched yet"

    def _fetch(self, now: float) -> Lease:
        """One fresh key; raises ``RefreshFailed``."""
        raise NotImplementedError

    def lease(self, credential: Credential, expires_at: float, now: float) -> Lease:
        """A lease refreshed ``refresh_margin`` early (halfway when the key lives shorter than that)."""
        if expires_at <= now:
            raise RefreshFailed(f"{self.source} handed out a key that expired {now - expires_at:.0f}s ago "
                                "(is the local clock right?)")
        return Lease(credential, expires_at, max(expires_at - self._margin, now + (expires_at - now) / 2))

    @property
    def consecutive_failures(self) -> int:
        """Failed refreshes since the last success: for a gauge, since a valid key hides them from callers."""
        return self._failures

    @property
    def expires_at(self) -> float | None:
        """Unix time the cached key expires (None before the first fetch)."""
        lease = self._lease
        return lease.expires_at if lease else None

    def get(self) -> Credential:
        """The cached key, refreshed by one caller at a time; others keep using the valid cached key."""
        lease, now = self._lease, self._clock()
        if lease is not None and now < lease.refresh_at:
            return lease.credential
        usable = self._usable(lease, now)
        if usable is not None and (now < self._retry_at or not self._lock.acquire(blocking=False)):
            return usable  # backing off, or another thread is refreshing
        if usable is None:
            self._lock.acquire()
        try:
            return self._refresh_locked()
        finally:
            self._lock.release()

    @staticmethod
    def _usable(lease: Lease | None, now: float) -> Credential | None:
        return lease.credential if lease is not None and now < lease.expires_at else None

    def _refresh_locked(self) -> Credential:
        lease, now = self._lease, self._clock()
        if lease is not None and now < lease.refresh_at:
            return lease.credential  # refreshed by the thread we waited for
        usable = self._usable(lease, now)
        if now < self._retry_at:  # backing off
            if usable is not None:
                return usable
            raise self._expired_error()
        try:
            fresh = self._fetch(now)
        except RefreshFailed as exc:
            self._failures += 1
            self._retry_at = now + exponential_backoff(self._min_backoff, self._failures - 1, self._max_backoff)
            self._last_problem = str(exc)
            if self._failures == 1:
                left = f"the current key is valid {lease.expires_at - now:.0f}s more" if lease and usable else "no key"
                self.log.warning("%s: refreshing the temporary key failed (%s); %s; retrying with backoff",
                                 self.label, exc, left)
            if usable is not None:
                return usable
            raise self._expired_error() from None
        if self._failures:
            self.log.info("%s: temporary key refreshed after %d failed attempt(s)", self.label, self._failures)
        self._lease, self._failures, self._retry_at = fresh, 0, 0.0
        self.log.debug("%s: temporary key %s valid until %.0f", self.label, fresh.credential.secret_id,
                       fresh.expires_at)
        return fresh.credential

    def _expired_error(self) -> CredentialError:
        return CredentialError(f"{self.label}: no valid temporary key from {self.source} ({self._last_problem})")
