"""Temporary keys of a CVM instance role, from the instance metadata service (``--cvm-role``).

``GET {base}/latest/meta-data/cam/security-credentials/{role}`` answers
``{"TmpSecretId", "TmpSecretKey", "Token", "ExpiredTime", "Expiration", "Code": "Success"}``.
Keys are cached and refreshed ``refresh_margin`` seconds before they expire, so a request is never
signed with a key about to lapse. A failed refresh backs off exponentially and, while the old key is
still valid, is invisible to callers; only once the key has expired does ``get()`` raise
``CredentialError`` (which the client counts as ``ClientError.Credential``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from exporter.backoff import exponential_backoff
from exporter.tencentcloud.credentials import Credential, CredentialError, CredentialProvider

log = logging.getLogger(__name__)

DEFAULT_METADATA_URL = "http://metadata.tencentyun.com"
METADATA_URL_ENV = "TIW_EXPORTER_METADATA_URL"
CREDENTIALS_PATH = "/latest/meta-data/cam/security-credentials/"
MAX_ANSWER_BYTES = 64 * 1024
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)  # CAM role names


class _RefreshFailed(Exception):
    """One failed fetch; the message names the cause and never a secret."""


@dataclass(frozen=True)
class _Lease:
    credential: Credential
    expires_at: float
    refresh_at: float


class CvmRoleCredentials(CredentialProvider):
    """A ``CredentialProvider`` for the role attached to this CVM instance; thread-safe."""

    def __init__(
        self,
        role: str,
        base_url: str | None = None,
        *,
        refresh_margin: float = 300.0,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not _ROLE_NAME.fullmatch(role or ""):
            raise CredentialError(f"--cvm-role {role!r} is not a valid CAM role name")
        base = (base_url or os.environ.get(METADATA_URL_ENV) or DEFAULT_METADATA_URL).rstrip("/")
        self.role = role
        self.url = f"{base}{CREDENTIALS_PATH}{quote(role, safe='')}"
        self.description = f"CVM role {role}"
        self._margin = refresh_margin
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._timeout = (connect_timeout, read_timeout)
        self._clock = clock
        self._session = requests.Session()
        self._session.trust_env = False  # never send the instance's token through an HTTP(S)_PROXY
        self._lock = threading.Lock()
        self._lease: _Lease | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._last_problem = "no key fetched yet"

    def __repr__(self) -> str:
        return f"CvmRoleCredentials(role={self.role!r}, url={self.url!r})"

    __str__ = __repr__

    def close(self) -> None:
        self._session.close()

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
    def _usable(lease: _Lease | None, now: float) -> Credential | None:
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
        except _RefreshFailed as exc:
            self._failures += 1
            self._retry_at = now + exponential_backoff(self._min_backoff, self._failures - 1, self._max_backoff)
            self._last_problem = str(exc)
            if self._failures == 1:
                left = f"the current key is valid {lease.expires_at - now:.0f}s more" if lease and usable else "no key"
                log.warning("CVM role %s: refreshing the temporary key failed (%s); %s; retrying with backoff",
                            self.role, exc, left)
            if usable is not None:
                return usable
            raise self._expired_error() from None
        if self._failures:
            log.info("CVM role %s: temporary key refreshed after %d failed attempt(s)", self.role, self._failures)
        self._lease, self._failures, self._retry_at = fresh, 0, 0.0
        log.debug("CVM role %s: temporary key %s valid until %.0f", self.role, fresh.credential.secret_id,
                  fresh.expires_at)
        return fresh.credential

    def _expired_error(self) -> CredentialError:
        return CredentialError(f"CVM role {self.role}: no valid temporary key from the metadata service "
                               f"({self._last_problem})")

    def _fetch(self, now: float) -> _Lease:
        document = self._get_json()
        code = document.get("Code", "Success")
        if code != "Success":
            raise _RefreshFailed(f"metadata service answered Code {str(code)[:64]!r}")
        values = {}
        for name in ("TmpSecretId", "TmpSecretKey", "Token"):
            value = document.get(name)
            if not isinstance(value, str) or not value.strip():
                raise _RefreshFailed(f"metadata answer lacks a string {name}")
            values[name] = value.strip()
        expires_at = _expiry(document)
        if expires_at <= now:
            raise _RefreshFailed(f"metadata service handed out a key that expired {now - expires_at:.0f}s ago "
                                 "(is the local clock right?)")
        # A lifetime shorter than the margin would mean a refetch per request: refresh halfway instead.
        refresh_at = max(expires_at - self._margin, now + (expires_at - now) / 2)
        credential = Credential(values["TmpSecretId"], values["TmpSecretKey"], values["Token"])
        return _Lease(credential, expires_at, refresh_at)

    def _get_json(self) -> dict[str, Any]:
        try:
            with self._session.get(self.url, timeout=self._timeout, stream=True) as answer:
                status = answer.status_code
                raw = answer.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
        except requests.RequestException as exc:
            raise _RefreshFailed(f"metadata service unreachable: {type(exc).__name__}") from None
        except OSError as exc:  # urllib3 errors raised while reading the body
            raise _RefreshFailed(f"metadata service read failed: {type(exc).__name__}") from None
        if status == 404:
            raise _RefreshFailed("metadata service answered HTTP 404 (is the role attached to this instance?)")
        if status != 200:
            raise _RefreshFailed(f"metadata service answered HTTP {status}")
        if len(raw) > MAX_ANSWER_BYTES:
            raise _RefreshFailed(f"metadata answer larger than {MAX_ANSWER_BYTES} bytes")
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _RefreshFailed("metadata answer is not JSON") from None
        if not isinstance(document, dict):
            raise _RefreshFailed("metadata answer is not a JSON object")
        return document


def _expiry(document: dict[str, Any]) -> float:
    """``ExpiredTime`` (unix seconds), else the ISO 8601 ``Expiration``."""
    expired_time = document.get("ExpiredTime")
    if isinstance(expired_time, (int, float)) and not isinstance(expired_time, bool) and expired_time > 0:
        return float(expired_time)
    expiration = document.get("Expiration")
    if isinstance(expiration, str):
        try:
            parsed = datetime.fromisoformat(expiration.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed.timestamp()
    raise _RefreshFailed("metadata answer lacks a usable ExpiredTime or Expiration")
