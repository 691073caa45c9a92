"""Helpers for tests that run an exporter and read its /metrics: samples by name and labels, and an
in-process exporter on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import build_settings
from exporter.runtime import Exporter
from exporter.tencentcloud.credentials import Credential, StaticCredentials

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
