"""The push-callback settings TIW keeps per SdkAppId: Set/DescribeWhiteboardPushCallback(Key).

What ``SetWhiteboardPushCallback`` and ``SetWhiteboardPushCallbackKey`` store,
``DescribeWhiteboardPushCallback`` answers (``Callback``, ``CallbackKey``), as the SDK's models
have them. When an SdkAppId has both a URL and a key, the simulator's callback sender follows them
(``on_change``), so a preflight check can change the settings and see callbacks arrive.

Decisions where the documentation leaves room: an empty ``Callback`` turns callbacks off; a URL must
be http(s); a key is at most 64 characters (the documented limit) of printable ASCII.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from exporter.simulator.protocol import SimulatedError, param, reject_unknown

MAX_KEY_LENGTH = 64
_URL = re.compile(r"https?://[^\s/]+(/\S*)?")
_KEY = re.compile(r"[\x21-\x7e]{1,64}")


class PushCallbackSettings:
    """Callback URL and key per SdkAppId; thread-safe."""

    def __init__(self, on_change: Callable[[str, str], None] = lambda url, key: None) -> None:
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

    def describe(self, params: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(params, ("SdkAppId",))
        sdk_app_id = param(params, "SdkAppId", int)
        with self._lock:
            return {"Callback": self._urls.get(sdk_app_id, ""), "CallbackKey": self._keys.get(sdk_app_id, "")}

    def set_callback(self, params: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(params, ("SdkAppId", "Callback"))
        sdk_app_id, url = param(params, "SdkAppId", int), param(params, "Callback", str)
        if url and not _URL.fullmatch(url):
            raise SimulatedError("InvalidParameterValue", "Callback must be an http(s) URL or empty.")
        self.record(sdk_app_id, url=url)
        self._notify(sdk_app_id)
        return {}

    def set_key(self, params: dict[str, Any]) -> dict[str, Any]:
        reject_unknown(params, ("SdkAppId", "CallbackKey"))
        sdk_app_id, key = param(params, "SdkAppId", int), param(params, "CallbackKey", str)
        if key and not _KEY.fullmatch(key):
            raise SimulatedError("InvalidParameterValue", f"CallbackKey must be 1-{MAX_KEY_LENGTH} printable ASCII.")
        self.record(sdk_app_id, key=key)
        self._notify(sdk_app_id)
        return {}

    def _notify(self, sdk_app_id: int) -> None:
        with self._lock:
            url, key = self._urls.get(sdk_app_id, ""), self._keys.get(sdk_app_id, "")
        if url and key:
            self._on_change(url, key)
