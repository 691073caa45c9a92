"""How /metrics is made fast: per-task text rendered once per change, format negotiation, gzip.

``Exposition`` keeps each task's exposition text in a ``RenderCache`` and re-renders only the tasks
the store's change feed names, every second on its own thread (``catch_up``) — at 10k tasks that is
what keeps a scrape at joining and sending bytes instead of the ~1 s a registry of labelled
``Gauge``s spends re-formatting every sample. What the samples are is ``metrics.py``'s business; the
text here is byte-identical to prometheus_client's (tests compare them).
"""

from __future__ import annotations

import threading
import zlib
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.lifecycle import TaskRecord
from exporter.metrics import (
    EXPORTS,
    TRACKED_FAMILY,
    Family,
    Labels,
    TaskCollector,
    TaskProblemLog,
    renderable_samples,
    tasks_by_status_samples,
)
from exporter.model import PUSH, TaskKey, key_kind
from exporter.store import TaskStore


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def format_sample(name: str, labels: Labels, value: float) -> str:
    """One exposition line, exactly as prometheus_client writes it (labels sorted by name)."""
    inner = ",".join([f'{k}="{_escape(v)}"' for k, v in sorted(labels)])
    return f"{name}{{{inner}}} {floatToGoString(value)}\n"


def family_header(family: Family) -> str:
    return f"# HELP {family.name} {family.help}\n# TYPE {family.name} {family.kind}\n"


def render_task(record: TaskRecord, problems: TaskProblemLog) -> tuple[bytes, ...] | None:
    """The task's exposition text (UTF-8), one chunk per family of its kind (``metrics.EXPORTS``); None if
    unrenderable."""
    samples = renderable_samples(record, problems)
    if samples is None:
        return None
    families = EXPORTS[record.kind].families
    parts: list[str] = [""] * len(families)
    for index, labels, value in samples:
        parts[index] += format_sample(families[index].name, labels, value)
    return tuple(p.encode("utf-8") for p in parts)


def _gzip_compressor() -> Any:
    """A gzip stream (wbits 31: gzip framing) at level 1: a scrape's speed matters more than its size."""
    return zlib.compressobj(1, zlib.DEFLATED, 31)


class _RegistryAsCollector(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return self.registry.collect()


class RenderCache:
    """Per-family lists of rendered task text of one kind, updated in place for changed tasks only.

    A removed task leaves an empty chunk in its slot, reused by the next new task, so a scrape
    is one ``"".join`` per family however large the fleet.
    """

    def __init__(self, families: int) -> None:
        self.slots: dict[TaskKey, int] = {}
        self.columns: list[list[bytes]] = [[] for _ in range(families)]
        self.groups: list[tuple[int, str] | None] = []  # (sdk_app_id, status) per slot, for <prefix>_tasks
        self.tally: Tally[tuple[int, str]] = Tally()
        self.free: list[int] = []

    def put(self, key: TaskKey, chunks: tuple[bytes, ...], group: tuple[int, str]) -> None:
        slot = self.slots.get(key)
        if slot is None:
            slot = self.free.pop() if self.free else self._grow()
            self.slots[key] = slot
        else:
            self._untally(slot)
        for column, chunk in zip(self.columns, chunks):
            column[slot] = chunk
        self.groups[slot] = group
        self.tally[group] += 1

    def drop(self, key: TaskKey) -> None:
        slot = self.slots.pop(key, None)
        if slot is None:
            return
        self._untally(slot)
        for column in self.columns:
            column[slot] = b""
        self.groups[slot] = None
        self.free.append(slot)

    def _grow(self) -> int:
        for column in self.columns:
            column.append(b"")
        self.groups.append(None)
        return len(self.groups) - 1

    def _untally(self, slot: int) -> None:
        group = self.groups[slot]
        if group is not None:
            self.tally[group] -= 1
            if not self.tally[group]:
                del self.tally[group]


class Exposition:
    """Serves /metrics: incrementally maintained per-task text plus the exporter's own registry."""

    def __init__(self, store: TaskStore, own: CollectorRegistry):
        self.store = store
        self.own = own  # the exporter's own metrics (and process/python): rendered by prometheus_client
        self.problems = TaskProblemLog()
        self.task_collector = TaskCollector(store, self.problems)
        self.openmetrics_registry = CollectorRegistry(auto_describe=True)  # own + tasks, for OpenMetrics
        self.openmetrics_registry.register(_RegistryAsCollector(own))
        self.openmetrics_registry.register(self.task_collector)
        self._caches = self._new_caches()  # one per kind, pushes first
        self._cursor = 0  # our place in the store's change feed
        self._lock = threading.Lock()  # serialises scrapes; the collector never takes it
        self._headers = {kind: tuple(family_header(f).encode("utf-8") for f in export.families)
                         for kind, export in EXPORTS.items()}
        self._generation = 0  # of the task text: bumped when a task changed
        self._stale = True  # a task changed since the generation was last bumped
        self._gzipped: tuple[int, list[bytes], Any] | None = None  # (generation, compressed task text, compressor)

    @staticmethod
    def _new_caches() -> dict[str, RenderCache]:
        return {kind: RenderCache(len(export.families)) for kind, export in EXPORTS.items()}

    def catch_up(self) -> bool:
        """Render the tasks changed since the last catch-up into the cache; True when any changed.

        The exporter calls it every second on a thread of its own, so a scrape finds at most a
        second of changes left to render (rendering is per change, not per scrape)."""
        with self._lock:
            changes = self.store.changed_since(self._cursor)
            self._cursor = changes.cursor
            if not changes.records and not changes.resync:
                return False
            if changes.resync:
                self._caches = self._new_caches()
            caches = self._caches
            for key, record in changes.records.items():
                if record is None:
                    self.problems.forget(key)  # removed: a task tracked again later may log its problems again
                exported = record is not None and not record.retired
                chunks = render_task(record, self.problems) if exported else None
                columns = caches[key_kind(key)]
                if chunks is None:
                    columns.drop(key)  # removed, retired, or unrenderable (logged): no other task is affected
                else:
                    columns.put(key, chunks, (record.sdk_app_id, record.status))
            self._stale = True
            return True

    def _task_text(self) -> list[bytes]:
        """Per-task families as rendered, a list of chunks (joining 10 MB once more costs more than
        sending it). Not kept between scrapes: 1 KB per task of memory for a join of ~3 ms."""
        with self._lock:
            out: list[bytes] = []
            for kind, columns in self._caches.items():
                for header, column in zip(self._headers[kind], columns.columns):
                    body = b"".join(column)
                    if body:
                        out.append(header)
                        out.append(body)
            tail = []
            for kind, columns in self._caches.items():
                family = EXPORTS[kind].aggregate
                aggregates = tasks_by_status_samples(columns.tally, EXPORTS[kind].statuses)
                if aggregates:
                    tail.append(family_header(family))
                    tail.extend(format_sample(family.name, labels, value) for labels, value in aggregates)
            tail.append(family_header(TRACKED_FAMILY))
            tail.append(f"{TRACKED_FAMILY.name} {floatToGoString(float(len(self._caches[PUSH].slots)))}\n")
            out.append("".join(tail).encode("utf-8"))
            return out

    def _current_generation(self) -> int:
        """Catch up, then the task text's generation: it moves only when a task changed (the gzip of
        the text is reused until then)."""
        self.catch_up()
        with self._lock:
            if self._stale:
                self._generation += 1
                self._stale = False
            return self._generation

    def render_text(self) -> list[bytes]:
        """Prometheus text format 0.0.4, as chunks to write in order: the task families, then the
        exporter's own (so the compressed task text can be reused while only the latter changed)."""
        self.catch_up()
        return [*self._task_text(), generate_latest(self.own)]

    def _render_gzip(self) -> list[bytes]:
        """``render_text`` gzipped, one gzip stream. The task text is compressed once per generation:
        the compressor's state after it is kept and copied for each scrape, which adds only the
        exporter's own families (a second scraper, or a scrape with no answer since, pays no gzip)."""
        cached, generation = self._gzipped, self._current_generation()
        if cached is None or cached[0] != generation:
            compressor = _gzip_compressor()
            cached = self._gzipped = (generation, [compressor.compress(c) for c in self._task_text()], compressor)
        compressor = cached[2].copy()
        return [*cached[1], compressor.compress(generate_latest(self.own)), compressor.flush()]

    def render_openmetrics(self) -> list[bytes]:
        return [openmetrics.generate_latest(self.openmetrics_registry)]

    def render(self, accept: str, accept_encoding: str) -> tuple[list[bytes], str, bool]:
        """Body chunks, content type and whether they are gzipped, negotiated from request headers."""
        gzipped = "gzip" in accept_encoding
        if "application/openmetrics-text" in accept:
            chunks, content_type = self.render_openmetrics(), openmetrics.CONTENT_TYPE_LATEST
            if gzipped:
                compressor = _gzip_compressor()
                chunks = [*(compressor.compress(c) for c in chunks), compressor.flush()]
            return chunks, content_type, gzipped
        content_type = "text/plain; version=0.0.4; charset=utf-8"
        return (self._render_gzip() if gzipped else self.render_text()), content_type, gzipped
