"""The callback settings TIW keeps per SdkAppId and task kind, and the body of a task callback.

Each kind has its own URL and key per SdkAppId: ``Set<Kind>Callback`` and ``Set<Kind>CallbackKey``
store them, ``Describe<Kind>Callback`` answers them (``Callback``, ``CallbackKey``), as the SDK's
models have them for the kinds ``WhiteboardPush``, ``OnlineRecord`` and ``Transcode``. The callback
sender reads the same settings for each callback it sends (``destination``), so what Describe
answers is always where, and with which key, the simulator actually sends; the simulator's own
configuration (``Simulator(callback_url=...)``, ``configure_callbacks``) is recorded here too, as if
the Set actions had been called.

Decisions where the documentation leaves room: an empty ``Callback`` turns callbacks off; a URL that is
not http(s) gets ``InvalidParameter.CallbackAddressFormatError`` (the code the Go SDK lists for
SetWhiteboardPushCallback); a key is at most 64 characters (the documented limit) of printable ASCII,
else ``InvalidParameterValue``; with a URL but no key, callbacks are sent unsigned (the callback
overview: without a key there is no ``ExpireTime`` or ``Sign``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from exporter.callbacks import sign
from exporter.simulator.protocol import SimulatedError, param, reject_unknown

MAX_KEY_LENGTH = 64
CALLBACK_TTL_SECONDS = 3600
_URL = re.compile(r"https?://[^\s/]+(/\S*)?")
_KEY = re.compile(r"[\x21-\x7e]{1,64}")


def callback_body(sdk_app_id: int, event_type: str, data: dict[str, Any], now: float, key: str) -> dict[str, Any]:
    """A task callback's body (callback overview 1137/40257): ``ExpireTime`` and ``Sign`` only with a key.

    Every kind's events share it (the push, recording and transcode event pages show the same envelope).

    Signing uses the product's ``exporter.callbacks.sign``, so the simulator and the receiver cannot
    disagree on TIW's rule (``md5(key + str(ExpireTime))``).
    """
    body: dict[str, Any] = {"Timestamp": int(now), "SdkAppId": sdk_app_id}
    if key:
        expire = int(now) + CALLBACK_TTL_SECONDS
        body |= {"ExpireTime": expire, "Sign": sign(key, expire)}
    return body | {"EventType": event_type, "EventData": data}


def check_url(url: str) -> None:
    """A callback URL as TIW accepts it: empty (turns callbacks off) or http(s)."""
    if url and not _URL.fullmatch(url):
        raise SimulatedError(
            "InvalidParameter.CallbackAddressFormatError",
            "The callback address must start with http:// or https://, or be empty.",
        )


def check_key(key: str) -> None:
    if key and not _KEY.fullmatch(key):
        raise SimulatedError("InvalidParameterValue", f"CallbackKey must be 1-{MAX_KEY_LENGTH} printable ASCII.")


class CallbackSettings:
    """A callback URL and key per SdkAppId; thread-safe. ``on_change`` runs after a URL is set."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self._urls: dict[int, str] = {}
        self._keys: dict[int, str] = {}
        self._on_change = on_change
        self._lock = threading.Lock()

    def record(self, sdk_app_id: int, url: str | None = None, key: str | None = None) -> None:
        """Store what a Set action (or the simulator's own configuration) says for ``sdk_app_id``."""
        with self._lock:
            if url is not None:
                self._urls[sdk_app_id] = url
            if key is not None:
                self._keys[sdk_app_id] = key
            configured = bool(self._urls.get(sdk_app_id))
        if configured:
            self._on_change()

    def destination(self, sdk_app_id: int) -> tuple[str, str]:
        """(URL, key) the callbacks of ``sdk_app_id`` go to now; URL "" means none are sent."""
        with self._lock:
            return self._urls.get(sdk_app_id, ""), self._keys.get(sdk_app_id, "")

    def any_configured(self) -> bool:
        with self._lock:
            return any(self._urls.values())

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        """``Describe*Callback``: ``{Callback, CallbackKey}``, "" for what was never set."""
        reject_unknown(params, ("SdkAppId",))
        url, key = self.destination(param(params, "SdkAppId", int))
        return {"Callback": url, "CallbackKey": key}


class KindCallbackSettings(CallbackSettings):
    """A task kind's ``Set<Kind>Callback`` and ``Set<Kind>CallbackKey`` (two actions, one setting each)."""

    def set_callback(self, params: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(params, ("SdkAppId", "Callback"))
        sdk_app_id, url = param(params, "SdkAppId", int), param(params, "Callback", str)
        check_url(url)
        self.record(sdk_app_id, url=url)
        return {}

    def set_key(self, params: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(params, ("SdkAppId", "CallbackKey"))
        sdk_app_id, key = param(params, "SdkAppId", int), param(params, "CallbackKey", str)
        check_key(key)
        self.record(sdk_app_id, key=key)
        return {}
