"""The unauthenticated ``/_sim/`` test hooks, and ``SimulatorClient``, their one HTTP client.

``GET /_sim/stats``, ``POST /_sim/faults``, ``DELETE /_sim/faults``, ``POST /_sim/tasks``,
``POST /_sim/credentials`` and ``POST /_sim/callbacks`` drive a simulator running in another process
(tests, benchmarks, end-to-end runs). They are why the simulator binds to 127.0.0.1 by default.
``/_sim/tasks`` and ``/_sim/callbacks`` take a ``kind``: ``push`` (the default), ``record`` or
``transcode`` (and ``warning`` for callbacks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import requests

from exporter.simulator.lifecycle import TaskScript
from exporter.simulator.protocol import json_object
from exporter.simulator.record_lifecycle import RecordScript
from exporter.simulator.transcode_lifecycle import TranscodeScript

Answer = tuple[int, dict[str, Any]]


class Controllable(Protocol):
    """What the control endpoints drive (``core.Simulator``): named here so control.py needs no import of core."""

    def stats(self) -> dict[str, Any]: ...
    def clear_faults(self) -> None: ...
    def set_fault(self, kind: str, **options: Any) -> None: ...
    def add_task(self, sdk_app_id: int, script: TaskScript = ..., task_id: str | None = None) -> str: ...
    def add_record(self, sdk_app_id: int, script: RecordScript = ..., task_id: str | None = None) -> str: ...
    def add_transcode(self, sdk_app_id: int, script: TranscodeScript = ..., task_id: str | None = None, *,
                      url: str = ..., static_ppt: bool = ...) -> str: ...
    def revoke(self, secret_id: str) -> None: ...
    def set_credential(self, secret_id: str, secret_key: str) -> None: ...
    def configure_callbacks(self, url: str, key: str, kind: str = "push") -> None: ...
    def configure_warning_callbacks(self, url: str, key: str = "") -> None: ...


class ControlEndpoints:
    """Maps ``/_sim/`` requests onto a Simulator's methods; answers (HTTP status, JSON document)."""

    def __init__(self, simulator: Controllable) -> None:
        self._sim = simulator

    def answer(self, method: str, path: str, body: bytes) -> Answer:
        plain: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
            ("GET", "/_sim/stats"): self._sim.stats,
            ("DELETE", "/_sim/faults"): self._clear_faults,
        }
        posts: dict[str, Callable[[dict[str, Any]], Answer]] = {
            "/_sim/faults": self._fault,
            "/_sim/tasks": self._task,
            "/_sim/credentials": self._credentials,
            "/_sim/callbacks": self._callbacks,
        }
        if (method, path) in plain:
            return 200, plain[(method, path)]()
        if method != "POST" or path not in posts:
            if path in posts or any(path == known_path for _, known_path in plain):
                return 405, {"error": f"{method} is not allowed on {path}"}
            return 404, {"error": "no such endpoint"}
        data = json_object(body)
        if data is None:
            return 400, {"error": "the body must be a JSON object"}
        try:
            return posts[path](data)
        except (TypeError, ValueError) as exc:
            return 400, {"error": str(exc)}

    def _clear_faults(self) -> dict[str, Any]:
        self._sim.clear_faults()
        return {"ok": True}

    def _fault(self, data: dict[str, Any]) -> Answer:
        self._sim.set_fault(**data)
        return 200, {"ok": True}

    def _task(self, data: dict[str, Any]) -> Answer:
        """``{"sdk_app_id", "task_id"?, "kind"?, <script fields>}``; a transcode also takes ``url``, ``static_ppt``."""
        data = dict(data)
        sdk_app_id = data.pop("sdk_app_id", None)
        task_id = data.pop("task_id", None)
        kind = data.pop("kind", "push")
        if isinstance(sdk_app_id, bool) or not isinstance(sdk_app_id, int):
            raise ValueError("sdk_app_id must be an integer")
        if task_id is not None and not isinstance(task_id, str):
            raise ValueError("task_id must be a string")
        if kind == "push":
            return 201, {"task_id": self._sim.add_task(sdk_app_id, TaskScript.from_mapping(data), task_id)}
        if kind == "record":
            return 201, {"task_id": self._sim.add_record(sdk_app_id, RecordScript.from_mapping(data), task_id)}
        if kind != "transcode":
            raise ValueError("kind must be push, record or transcode")
        source = {name: data.pop(name) for name in ("url", "static_ppt") if name in data}
        if not isinstance(source.get("url", ""), str) or not isinstance(source.get("static_ppt", False), bool):
            raise ValueError("url must be a string and static_ppt true or false")
        task_id = self._sim.add_transcode(sdk_app_id, TranscodeScript.from_mapping(data), task_id, **source)
        return 201, {"task_id": task_id}

    def _credentials(self, data: dict[str, Any]) -> Answer:
        secret_id = data.get("secret_id")
        if not isinstance(secret_id, str) or not secret_id:
            raise ValueError("secret_id must be a non-empty string")
        if data.get("revoke") is True:
            self._sim.revoke(secret_id)
        elif isinstance(data.get("secret_key"), str):
            self._sim.set_credential(secret_id, data["secret_key"])
        else:
            raise ValueError("give secret_key, or revoke: true")
        return 200, {"ok": True}


    def _callbacks(self, data: dict[str, Any]) -> Answer:
        """``{"kind": "push" | "record" | "transcode" | "warning", "url": ..., "key": ...}``: as the kind's
        Set*Callback actions for every SdkAppId."""
        kind, url, key = data.get("kind", "push"), data.get("url"), data.get("key", "")
        if not isinstance(url, str) or not isinstance(key, str):
            raise ValueError("url and key must be strings")
        if kind == "warning":
            self._sim.configure_warning_callbacks(url, key)
        elif kind in ("push", "record", "transcode"):
            self._sim.configure_callbacks(url, key, kind)
        else:
            raise ValueError("kind must be push, record, transcode or warning")
        return 200, {"ok": True}


class SimulatorClient:
    """Drives a simulator's ``/_sim/`` endpoints over HTTP; every call raises for a non-2xx answer.

    ``session`` lets a caller reuse connections (benchmarks); without one, each call has its own
    connection, so an idle client never holds a keep-alive connection open. The simulator validates.
    """

    def __init__(self, url: str, *, session: requests.Session | None = None, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._session = session
        self._timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        send = self._session.request if self._session is not None else requests.request
        answer = send(method, f"{self.url}/_sim/{path}", json=body, timeout=self._timeout)
        answer.raise_for_status()
        return answer.json()

    def stats(self) -> dict[str, Any]:
        """``GET /_sim/stats``."""
        return self._call("GET", "stats")

    def describes(self, task_id: str) -> int:
        """How many DescribeWhiteboardPush requests reached ``task_id``."""
        return self.stats()["describes_by_task"].get(task_id, 0)

    def add_task(self, sdk_app_id: int, task_id: str | None = None, **script: Any) -> str:
        """``POST /_sim/tasks``: a push with TaskScript fields ``script``; returns its id."""
        return self._add("push", sdk_app_id, task_id, script)

    def add_record(self, sdk_app_id: int, task_id: str | None = None, **script: Any) -> str:
        """``POST /_sim/tasks``: a real-time recording with RecordScript fields ``script``; returns its id."""
        return self._add("record", sdk_app_id, task_id, script)

    def add_transcode(self, sdk_app_id: int, task_id: str | None = None, **script: Any) -> str:
        """``POST /_sim/tasks``: a transcode with TranscodeScript fields (and ``url``, ``static_ppt``)."""
        return self._add("transcode", sdk_app_id, task_id, script)

    def _add(self, kind: str, sdk_app_id: int, task_id: str | None, script: dict[str, Any]) -> str:
        body: dict[str, Any] = {"sdk_app_id": sdk_app_id, **script}
        if kind != "push":
            body["kind"] = kind
        if task_id is not None:
            body["task_id"] = task_id
        return self._call("POST", "tasks", body)["task_id"]

    def set_fault(self, kind: str, **options: Any) -> None:
        """``POST /_sim/faults`` with ``count``/``ratio``/``seconds``/``action`` options."""
        self._call("POST", "faults", {"kind": kind, **options})

    def clear_faults(self) -> None:
        """``DELETE /_sim/faults``."""
        self._call("DELETE", "faults")

    def set_credential(self, secret_id: str, secret_key: str) -> None:
        """``POST /_sim/credentials``: add or rotate a key pair."""
        self._call("POST", "credentials", {"secret_id": secret_id, "secret_key": secret_key})

    def revoke(self, secret_id: str) -> None:
        """``POST /_sim/credentials`` with ``revoke``: the SecretId's requests now fail authentication."""
        self._call("POST", "credentials", {"secret_id": secret_id, "revoke": True})

    def configure_callbacks(self, url: str, key: str, kind: str = "push") -> None:
        """``POST /_sim/callbacks``: every SdkAppId's ``kind`` (push, record, transcode) callbacks go to ``url``,
        signed with ``key``."""
        self._call("POST", "callbacks", {"kind": kind, "url": url, "key": key})

    def configure_warning_callbacks(self, url: str, key: str = "") -> None:
        """``POST /_sim/callbacks``: every SdkAppId's task warning callbacks go to ``url``."""
        self._call("POST", "callbacks", {"kind": "warning", "url": url, "key": key})
