"""The real Alertmanager (and Prometheus) around a test: configs with short waits, a webhook receiver
that records every notification, free ports, and a start that waits for ``/-/ready``.

Shared by the end-to-end test (the whole stack on the demo) and the inhibition test (Alertmanager alone).
"""

from __future__ import annotations

import json
import socket
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml

from tests.harness import eventually
from tests.monitoring import ALERTMANAGER_FILE, load_yaml
from tests.procs import Process

# Alertmanager's waits: notifications within a second instead of minutes.
SHORT_WAITS = {"group_wait": "1s", "group_interval": "1s"}
# Debian's Alertmanager reads its default notification template from here, not from the binary.
DEBIAN_ALERTMANAGER_TEMPLATE = Path("/usr/share/prometheus/alertmanager/default.tmpl")



def fast_alertmanager_config(webhook_url: str, source: Path = ALERTMANAGER_FILE) -> dict[str, Any]:
    """The example config with SHORT_WAITS on every route and the webhooks sent to ``webhook_url``."""
    config = load_yaml(source)
    routes = [config["route"]]
    config["route"].update(SHORT_WAITS)
    while routes:
        route = routes.pop()
        route.update({key: value for key, value in SHORT_WAITS.items() if key in route})
        routes += route.get("routes", [])
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            webhook["url"] = webhook_url + urlsplit(webhook["url"]).path
    return config


def write_yaml(path: Path, document: Any) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def free_port() -> int:
    """A port nobody listens on right now (the only way to give Go binaries a free port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Delivery:
    path: str
    receiver: str
    status: str
    labels: dict[str, str]
    group_labels: dict[str, str]


class WebhookReceiver:
    """Records every notification Alertmanager POSTs: (path, JSON body)."""

    def __init__(self) -> None:
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        lock = threading.Lock()
        notifications = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    notifications.append((self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._lock = lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def deliveries(self) -> list[Delivery]:
        """One entry per alert per notification."""
        with self._lock:
            received = list(self.notifications)
        return [
            Delivery(path, body["receiver"], alert["status"], alert["labels"], body["groupLabels"])
            for path, body in received
            for alert in body["alerts"]
        ]


def start_service(stack: ExitStack, name: str, args: list[str], url: str) -> Process:
    """Start a server that knows its port, wait until ``url``/-/ready answers; stopped with ``stack``."""
    process = Process(args)
    stack.callback(process.stop)

    def ready() -> bool:
        if process.proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.proc.returncode}:\n{process.output[-3000:]}")
        return requests.get(f"{url}/-/ready", timeout=1).status_code == 200

    try:
        eventually(ready, timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{name} not ready: {exc}\n{process.output[-3000:]}") from None
    return process
