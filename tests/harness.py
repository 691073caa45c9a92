"""The test harness: wait for a condition, run an exporter in-process, read its /metrics.

- ``eventually``: poll a condition instead of sleeping a fixed time.
- ``running_exporter``: an in-process exporter on a free port.
- ``scrape``/``metric``/``series``: samples of /metrics by name and labels.

Subprocesses (the exporter or simulator as a real process) are in ``tests/procs.py``; external
binaries (promtool, prometheus, ...) in ``tests/tools.py``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import build_settings
from exporter.runtime import Exporter
from exporter.tencentcloud.credentials import Credential, StaticCredentials

T = TypeVar("T")

# What a condition may raise while the system under test is not there yet; anything else fails at once.
NOT_YET = (requests.RequestException, AssertionError, KeyError, ValueError)


def eventually(condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.1,
               explain: Callable[[], str] | None = None) -> T:
    """Poll ``condition`` until it returns something truthy and return that value.

    A condition that raises one of ``NOT_YET`` counts as "not yet". After ``timeout`` seconds fail
    with the last such error and, if given, ``explain()`` (say what was seen instead).
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except NOT_YET as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    message = f"condition not met within {timeout}s (last error: {last_error!r})"
    if explain is not None:
        message += "\n" + explain()
    raise AssertionError(message)


Labels = frozenset[tuple[str, str]]
Samples = dict[tuple[str, Labels], float]


def scrape(url: str) -> Samples:
    """Every sample of ``url``/metrics; fails unless the exporter answers 200."""
    answer = requests.get(f"{url}/metrics", timeout=5)
    assert answer.status_code == 200, f"/metrics answered HTTP {answer.status_code}"
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def _wanted(labels: dict[str, object]) -> Labels:
    return frozenset((name, str(value)) for name, value in labels.items())


def metric(found: Samples, name: str, **labels: object) -> float | None:
    """The value of the sample with exactly these labels, or None."""
    return found.get((name, _wanted(labels)))


def series(found: Samples, name: str, **labels: object) -> dict[Labels, float]:
    """Every sample of ``name`` whose labels include ``labels``."""
    wanted = _wanted(labels)
    return {key[1]: value for key, value in found.items() if key[0] == name and wanted <= key[1]}


@contextmanager
def running_exporter(endpoint: str, credential: Credential, **flags: Any) -> Iterator[Exporter]:
    """An in-process exporter on a free port polling ``endpoint``; stopped on exit."""
    settings = build_settings({"listen": "127.0.0.1:0", "endpoint": endpoint, **flags})
    exporter = Exporter(settings, credentials=StaticCredentials(credential)).start()
    try:
        yield exporter
    finally:
        exporter.stop()


def common_free_port(hosts: list[str]) -> int:
    """A port free on every one of ``hosts`` (loopback addresses standing in for replicas)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
            return port
        except OSError:
            continue
    raise AssertionError("no common free port")
