"""Test doubles shared by several test modules (kept out of the runtime package).

Clocks: ``FakeClock`` is a hand-moved clock for code that takes a ``clock`` callable (share one
between a simulator and a client so signatures agree); ``OffsetClock`` follows real time shifted by
an offset (a server whose clock runs ahead or behind). ``CallbackReceiver`` records the callbacks a
simulator sends, as a TIW callback receiver would answer them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from exporter.freshness import Freshness, FreshnessIndex
from exporter.lifecycle import TaskRecord
from exporter.model import TaskKey


class FakeClock:
    """A clock that only moves when told: ``clock()`` is ``clock.now``; ``advance`` or set ``now``. Thread-safe."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self._now = now
        self._lock = threading.Lock()

    @property
    def now(self) -> float:
        with self._lock:
            return self._now

    @now.setter
    def now(self, value: float) -> None:
        with self._lock:
            self._now = value

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


class OffsetClock:
    """Real time plus ``offset`` seconds (a server whose clock runs ahead)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


def save_legacy_state(path: Path, records: Iterable[TaskRecord]) -> None:
    """A JSON state file as versions before SQLite wrote it (``exporter.legacy_statefile`` migrates it)."""
    document = {"version": 1, "saved_at": time.time(), "tasks": [r.to_json() for r in records]}
    path.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")


def freshness_of(records: Iterable[TaskRecord], seen: Mapping[TaskKey, float], covered: AbstractSet[TaskKey],
                 now: float, detail_fresh_within: float) -> Freshness:
    """Freshness of ``records`` measured as the exporter does (a ``FreshnessIndex``), without a store."""
    index = FreshnessIndex()
    for record in records:
        index.put(record.key, record)
    return index.measure(seen, covered, now, detail_fresh_within)


class CallbackReceiver:
    """A local HTTP server recording callback bodies (answers ``{"error_code": 0}`` like a TIW receiver)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                assert self.headers["Content-Type"] == "application/json"  # as TIW sends them
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                answer = b'{"error_code": 0}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callbacks/tiw"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [body for body in list(self.bodies) if event_type in (None, body["EventType"])]

    def wait_for(self, count: int, event_type: str | None = None, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.events(event_type)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events(event_type)

    def settle(self) -> list[dict[str, Any]]:
        """Everything received once the ticker has had a few passes (for "nothing more arrives")."""
        time.sleep(0.8)
        return self.events()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
