"""Temporary keys of a CVM instance role, from the instance metadata service (``--cvm-role``).

``GET {base}/latest/meta-data/cam/security-credentials/{role}`` answers
``{"TmpSecretId", "TmpSecretKey", "Token", "ExpiredTime", "Expiration", "Code": "Success"}``;
the same path without a role names the role attached to the instance (``discover_role``), as the
official SDKs' default chain asks it. Caching, early refresh and backoff are ``refreshing.py``'s.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from exporter.tencentcloud.credentials import Credential, CredentialError
from exporter.tencentcloud.refreshing import Lease, RefreshFailed, RefreshingCredentials

log = logging.getLogger(__name__)

DEFAULT_METADATA_URL = "http://metadata.tencentyun.com"
METADATA_URL_ENV = "TIW_EXPORTER_METADATA_URL"
CREDENTIALS_PATH = "/latest/meta-data/cam/security-credentials/"
MAX_ANSWER_BYTES = 64 * 1024
_ROLE_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)  # CAM role names


class CvmRoleCredentials(RefreshingCredentials):
    """The temporary keys of the role attached to this CVM instance; thread-safe."""

    log = log
    source = "the metadata service"

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
        super().__init__(f"CVM role {role}", refresh_margin=refresh_margin, min_backoff=min_backoff,
                         max_backoff=max_backoff, clock=clock)
        self.role = role
        self.url = f"{metadata_base(base_url)}{CREDENTIALS_PATH}{quote(role, safe='')}"
        self._timeout = (connect_timeout, read_timeout)
        self._session = metadata_session()

    def __repr__(self) -> str:
        return f"CvmRoleCredentials(role={self.role!r}, url={self.url!r})"

    __str__ = __repr__

    def close(self) -> None:
        self._session.close()

    def _fetch(self, now: float) -> Lease:
        document = self._get_json()
        code = document.get("Code", "Success")
        if code != "Success":
            raise RefreshFailed(f"metadata service answered Code {str(code)[:64]!r}")
        values = {}
        for name in ("TmpSecretId", "TmpSecretKey", "Token"):
            value = document.get(name)
            if not isinstance(value, str) or not value.strip():
                raise RefreshFailed(f"metadata answer lacks a string {name}")
            values[name] = value.strip()
        credential = Credential(values["TmpSecretId"], values["TmpSecretKey"], values["Token"])
        return self.lease(credential, _expiry(document), now)

    def _get_json(self) -> dict[str, Any]:
        raw = _get(self._session, self.url, self._timeout)
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise RefreshFailed("metadata answer is not JSON") from None
        if not isinstance(document, dict):
            raise RefreshFailed("metadata answer is not a JSON object")
        return document


def metadata_base(base_url: str | None = None) -> str:
    return (base_url or os.environ.get(METADATA_URL_ENV) or DEFAULT_METADATA_URL).rstrip("/")


def metadata_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # never send the instance's token through an HTTP(S)_PROXY
    return session


def _get(session: requests.Session, url: str, timeout: tuple[float, float]) -> bytes:
    """A bounded 200 answer of the metadata service; raises ``RefreshFailed`` naming the cause."""
    try:
        with session.get(url, timeout=timeout, stream=True) as answer:
            status = answer.status_code
            raw = answer.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise RefreshFailed(f"metadata service unreachable: {type(exc).__name__}") from None
    except OSError as exc:  # urllib3 errors raised while reading the body
        raise RefreshFailed(f"metadata service read failed: {type(exc).__name__}") from None
    if status == 404:
        raise RefreshFailed("metadata service answered HTTP 404 (is the role attached to this instance?)")
    if status != 200:
        raise RefreshFailed(f"metadata service answered HTTP {status}")
    if len(raw) > MAX_ANSWER_BYTES:
        raise RefreshFailed(f"metadata answer larger than {MAX_ANSWER_BYTES} bytes")
    return raw


def discover_role(base_url: str | None = None, timeout: tuple[float, float] = (1.0, 1.0)) -> str | None:
    """The role attached to this instance, as the metadata service names it; None off CVM or without one."""
    with metadata_session() as session:
        try:
            raw = _get(session, metadata_base(base_url) + CREDENTIALS_PATH, timeout)
        except RefreshFailed as exc:
            log.debug("no CVM role discovered: %s", exc)
            return None
    names = raw.decode("utf-8", errors="replace").split()
    if not names or not _ROLE_NAME.fullmatch(names[0]):
        log.debug("no CVM role discovered: the metadata service named none")
        return None
    return names[0]


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
    raise RefreshFailed("metadata answer lacks a usable ExpiredTime or Expiration")
