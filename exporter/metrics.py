"""Metrics: the store snapshot -> Prometheus families, with a cached fast path for big fleets.

Every per-task sample comes from one function, ``task_samples``. Two consumers share it:

* ``TaskCollector.collect()`` yields prometheus_client families (OpenMetrics output, tests);
* ``Exposition.render_text()`` formats each task's samples once per change of that task and
  serves the concatenation — at 10k tasks that is what keeps a scrape in milliseconds instead of
  the ~1 s a registry of labelled ``Gauge``s spends re-formatting every sample.

Both produce byte-identical text (tests compare them), so the fast path cannot drift.
"""

from __future__ import annotations

import logging
import platform
import threading
import zlib
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.samples import Sample as ClientSample
from prometheus_client.utils import floatToGoString

from exporter import __version__
from exporter.tasks import TaskRecord, TaskStore
from exporter.tiw import FINISH_REASONS, STATUSES, parse_backup

log = logging.getLogger(__name__)
disable_created_metrics()  # *_created series double the output and nobody alerts on them

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Family:
    name: str  # the exposed name (counters include _total)
    kind: str  # "gauge" | "counter"
    help: str


# Per-task families, in exposition order. Indexes below refer to this tuple.
TASK_FAMILIES = (
    Family("tiw_push_task_info", "gauge", "Push task metadata (room, group, push user); always 1."),
    Family("tiw_push_task_status", "gauge", "Push task status as a state set: 1 for the current status."),
    Family("tiw_push_task_finish_reason", "gauge", "Why a stopped push ended, as a state set (stopped tasks only)."),
    Family("tiw_push_task_duration_seconds", "gauge",
           "Push duration: stop minus start when stopped, last successful poll minus start while pushing."),
    Family("tiw_push_task_start_timestamp_seconds", "gauge", "PushStartTime as a Unix timestamp."),
    Family("tiw_push_task_stop_timestamp_seconds", "gauge", "PushStopTime as a Unix timestamp."),
    Family("tiw_push_task_exceptions_total", "counter", "ExceptionCnt: exceptions during pushing."),
    Family("tiw_push_task_error", "gauge", "1 with the error code the task's latest query returned."),
    Family("tiw_push_task_last_success_timestamp_seconds", "gauge", "When the task was last queried successfully."),
    Family("tiw_push_task_backup_status", "gauge", "Status of the backup push task, as a state set."),
    Family("tiw_push_task_backup_exceptions_total", "counter", "ExceptionCnt of the backup push task."),
)
(INFO, STATUS, FINISH, DURATION, START, STOP, EXCEPTIONS, ERROR, LAST_SUCCESS, BACKUP_STATUS,
 BACKUP_EXCEPTIONS) = range(len(TASK_FAMILIES))

AGGREGATE_STATUSES = (*STATUSES, "UNKNOWN")
TASKS_FAMILY = Family("tiw_push_tasks", "gauge", "Tracked push tasks by SdkAppId and status (UNKNOWN before the "
                      "first answer).")
TRACKED_FAMILY = Family("tiw_exporter_tracked_tasks", "gauge", "Push tasks tracked by this exporter.")

Sample = tuple[int, Labels, float]


class BackupLog:
    """Remembers which tasks already logged an unparseable Backup, to log once per task."""

    def __init__(self) -> None:
        self._seen: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def once(self, record: TaskRecord, error: Exception) -> None:
        with self._lock:
            if record.key in self._seen:
                return
            self._seen.add(record.key)
        log.warning("task %s:%s has an unparseable Backup (%s); backup metrics skipped",
                    record.sdk_app_id, record.task_id, type(error).__name__)


def _state_set(family: int, base: Labels, label: str, states: Iterable[str], current: str) -> list[Sample]:
    return [(family, (*base, (label, state)), 1.0 if state == current else 0.0) for state in states]


def task_samples(record: TaskRecord, backup_log: BackupLog | None = None) -> list[Sample]:
    """Every sample of one task, as (family index, labels, value)."""
    base: Labels = (("sdk_app_id", str(record.sdk_app_id)), ("task_id", record.task_id))
    task = record.latest
    samples: list[Sample] = []
    if task is not None:
        samples.append((INFO, (*base, ("room_id", str(task.room_id)), ("group_id", task.group_id),
                                ("push_user_id", task.push_user_id)), 1.0))
    samples += _state_set(STATUS, base, "status", STATUSES, record.status)
    if task is not None:
        if task.stopped:
            samples += _state_set(FINISH, base, "reason", FINISH_REASONS, task.finish_reason)
        duration = _duration(record)
        if duration is not None:
            samples.append((DURATION, base, duration))
        if task.push_start_time:
            samples.append((START, base, float(task.push_start_time)))
        if task.push_stop_time:
            samples.append((STOP, base, float(task.push_stop_time)))
        samples.append((EXCEPTIONS, base, float(task.exception_cnt)))
    if record.last_error is not None:
        samples.append((ERROR, (*base, ("code", record.last_error.code)), 1.0))
    if record.last_success is not None:
        samples.append((LAST_SUCCESS, base, record.last_success))
    if task is not None and task.backup:
        samples += _backup_samples(record, base, task.backup, backup_log)
    return samples


def _duration(record: TaskRecord) -> float | None:
    task = record.latest
    if task is None or not task.push_start_time:
        return None
    if task.stopped:
        return float(task.push_stop_time - task.push_start_time) if task.push_stop_time else None
    if task.status == "PUSHING" and record.last_success is not None:
        return max(0.0, record.last_success - task.push_start_time)
    return None


def _backup_samples(record: TaskRecord, base: Labels, text: str, backup_log: BackupLog | None) -> list[Sample]:
    try:
        backup = parse_backup(text)
    except ValueError as exc:
        if backup_log is not None:
            backup_log.once(record, exc)
        return []
    if backup is None:
        return []
    samples: list[Sample] = []
    status = backup.get("Status")
    if isinstance(status, str):
        samples += _state_set(BACKUP_STATUS, base, "status", STATUSES, status)
    count = backup.get("ExceptionCnt")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        samples.append((BACKUP_EXCEPTIONS, base, float(count)))
    return samples


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


def render_task(record: TaskRecord, backup_log: BackupLog | None = None) -> tuple[bytes, ...]:
    """The task's exposition text (UTF-8), one chunk per family of ``TASK_FAMILIES``."""
    parts: list[str] = [""] * len(TASK_FAMILIES)
    for index, labels, value in task_samples(record, backup_log):
        parts[index] += format_sample(TASK_FAMILIES[index].name, labels, value)
    return tuple(p.encode("utf-8") for p in parts)


def _new_family(family: Family) -> Metric:
    if family.kind == "counter":
        return CounterMetricFamily(family.name, family.help)
    return GaugeMetricFamily(family.name, family.help)


def tasks_samples(tally: Mapping[tuple[int, str], int]) -> list[tuple[Labels, float]]:
    """``tiw_push_tasks``: every status (0 included) for every SdkAppId in ``tally``."""
    return [
        ((("sdk_app_id", str(app)), ("status", status)), float(tally.get((app, status), 0)))
        for app in sorted({app for app, _ in tally})
        for status in AGGREGATE_STATUSES
    ]


def aggregate_samples(records: Iterable[TaskRecord]) -> tuple[list[tuple[Labels, float]], int]:
    """``tiw_push_tasks`` samples and the tracked count, counted from ``records``."""
    tally = Tally((record.sdk_app_id, record.status) for record in records)
    return tasks_samples(tally), sum(tally.values())


def exported(records: Iterable[TaskRecord]) -> list[TaskRecord]:
    return [r for r in records if not r.retired]


class TaskCollector:
    """prometheus_client collector over the store; never calls the API.

    Example output::

        tiw_push_task_status{sdk_app_id="1400000001",status="PUSHING",task_id="ghucnligqtgtvk2624mb"} 1.0
        tiw_push_tasks{sdk_app_id="1400000001",status="PUSHING"} 12.0
    """

    def __init__(self, store: TaskStore, backup_log: BackupLog | None = None) -> None:
        self.store = store
        self.backup_log = backup_log or BackupLog()

    def describe(self) -> list[Metric]:
        return [_new_family(f) for f in (*TASK_FAMILIES, TASKS_FAMILY, TRACKED_FAMILY)]

    def collect(self) -> Iterator[Metric]:
        records = exported(self.store.snapshot())
        families = [_new_family(f) for f in TASK_FAMILIES]
        for record in records:
            for index, labels, value in task_samples(record, self.backup_log):
                family = families[index]
                family.samples.append(_sample(TASK_FAMILIES[index].name, labels, value))
        yield from (f for f in families if f.samples)
        aggregates, tracked = aggregate_samples(records)
        tasks = _new_family(TASKS_FAMILY)
        for labels, value in aggregates:
            tasks.samples.append(_sample(TASKS_FAMILY.name, labels, value))
        if tasks.samples:
            yield tasks
        yield GaugeMetricFamily(TRACKED_FAMILY.name, TRACKED_FAMILY.help, value=tracked)


def _sample(name: str, labels: Labels, value: float) -> ClientSample:
    return ClientSample(name, dict(labels), value, None, None)


class ExporterMetrics:
    """The exporter's own metrics, instrumented in place by the collector and client."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.api_requests = Counter(
            "tiw_exporter_api_requests", "Tencent Cloud API requests by action and outcome.",
            ["action", "outcome"], registry=registry)
        self.api_request_duration = Histogram(
            "tiw_exporter_api_request_duration_seconds", "Latency of Tencent Cloud API requests.",
            ["action"], registry=registry,
            buckets=(0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8))
        self.api_errors = Counter(
            "tiw_push_api_errors", "Error responses by SdkAppId and Tencent Cloud error code (ClientError.* "
            "for network and bad-response failures).", ["sdk_app_id", "code"], registry=registry)
        self.poll_lag = Gauge(
            "tiw_exporter_poll_lag_seconds", "How overdue the most overdue active task is (0 when the request "
            "budget keeps up).", registry=registry)
        self.build_info = Gauge(
            "tiw_exporter_build_info", "Exporter build information; always 1.", ["version", "python_version"],
            registry=registry)
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.tasks_file_reload_success = Gauge(
            "tiw_exporter_tasks_file_reload_success", "Whether the last reload of --tasks-file worked (1) or "
            "not (0).", registry=registry)
        self.tasks_file_reload_success.set(1)  # no tasks file is not a failed reload
        self.web_config_reload_success = Gauge(
            "tiw_exporter_web_config_last_reload_successful", "Whether the last reload of --web-config-file "
            "worked (1) or not (0).", registry=registry)
        self.web_config_reload_success.set(1)
        self.callbacks = Counter(
            "tiw_exporter_callbacks", "TIW push callbacks received, by event type and outcome.",
            ["event_type", "outcome"], registry=registry)

    def observe_attempt(self, action: str, outcome: str, seconds: float, code: str | None) -> None:
        self.api_requests.labels(action, outcome).inc()
        self.api_request_duration.labels(action).observe(seconds)

    def count_callback(self, event_type: str, outcome: str) -> None:
        self.callbacks.labels(event_type, outcome).inc()

    def count_api_error(self, sdk_app_id: int, code: str) -> None:
        self.api_errors.labels(str(sdk_app_id), code).inc()


class PausedAccountsCollector:
    """``tiw_exporter_account_paused``: SdkAppIds whose polling is paused, read at scrape time."""

    def __init__(self, paused: Callable[[], dict[int, str]]) -> None:
        self.paused = paused

    def describe(self) -> list[Metric]:
        return [self._family()]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("tiw_exporter_account_paused",
                                 "1 while polling of an SdkAppId is paused after an account-level error.",
                                 labels=["sdk_app_id", "code"])

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for sdk_app_id, code in sorted(self.paused().items()):
            family.add_metric([str(sdk_app_id), code], 1)
        yield family


class CredentialsCollector:
    """Refresh health of temporary credentials (CVM role), per account, read at scrape time.

    ``tiw_exporter_credential_refresh_failures`` counts consecutive failed refreshes: while the old
    key is still valid they cost no API errors, so this is where an expiring role shows first.
    """

    def __init__(self, providers: Callable[[], Iterable[tuple[str, object]]]) -> None:
        self.providers = providers

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("tiw_exporter_credential_refresh_failures",
                              "Consecutive failed refreshes of an account's temporary credentials.",
                              labels=["account"]),
            GaugeMetricFamily("tiw_exporter_credential_expiry_timestamp_seconds",
                              "When an account's current temporary credentials expire.", labels=["account"]),
        )

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        failures, expiry = self._families()
        for account, provider in self.providers():
            count = getattr(provider, "consecutive_failures", None)
            if count is None:
                continue  # long-lived keys: nothing to refresh
            failures.add_metric([account], count)
            expires_at = getattr(provider, "expires_at", None)
            if expires_at is not None:
                expiry.add_metric([account], expires_at)
        yield failures
        yield expiry


def self_registry() -> CollectorRegistry:
    """A registry with the standard process/python collectors, for the exporter's own metrics."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class _RegistryAsCollector:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return self.registry.collect()


class _Columns:
    """Per-family lists of rendered task text, updated in place for changed tasks only.

    A removed task leaves an empty chunk in its slot, reused by the next new task, so a scrape
    is one ``"".join`` per family however large the fleet.
    """

    def __init__(self) -> None:
        self.slots: dict[tuple[int, str], int] = {}
        self.columns: list[list[bytes]] = [[] for _ in TASK_FAMILIES]
        self.groups: list[tuple[int, str] | None] = []  # (sdk_app_id, status) per slot, for tiw_push_tasks
        self.tally: Tally[tuple[int, str]] = Tally()
        self.free: list[int] = []

    def put(self, key: tuple[int, str], chunks: tuple[bytes, ...], group: tuple[int, str]) -> None:
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

    def drop(self, key: tuple[int, str]) -> None:
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

    def __init__(self, store: TaskStore, own: CollectorRegistry, before_scrape: Callable[[], None] | None = None):
        self.store = store
        self.own = own
        self.before_scrape = before_scrape or (lambda: None)
        self.backup_log = BackupLog()
        self.task_collector = TaskCollector(store, self.backup_log)
        self.full = CollectorRegistry(auto_describe=True)
        self.full.register(_RegistryAsCollector(own))  # type: ignore[arg-type]
        self.full.register(self.task_collector)  # type: ignore[arg-type]
        self._columns = _Columns()
        self._lock = threading.Lock()  # serialises scrapes; the collector never takes it
        self._headers = tuple(family_header(f).encode("utf-8") for f in TASK_FAMILIES)

    def _task_text(self) -> list[bytes]:
        """Per-task families as a list of chunks: joining 10 MB once more costs more than sending it."""
        with self._lock:
            columns = self._columns
            for key, record in self.store.take_dirty().items():
                if record is None or record.retired:
                    columns.drop(key)
                else:
                    columns.put(key, render_task(record, self.backup_log), (record.sdk_app_id, record.status))
            out: list[bytes] = []
            for header, column in zip(self._headers, columns.columns):
                body = b"".join(column)
                if body:
                    out.append(header)
                    out.append(body)
            tail = []
            aggregates = tasks_samples(columns.tally)
            if aggregates:
                tail.append(family_header(TASKS_FAMILY))
                tail.extend(format_sample(TASKS_FAMILY.name, labels, value) for labels, value in aggregates)
            tail.append(family_header(TRACKED_FAMILY))
            tail.append(f"{TRACKED_FAMILY.name} {floatToGoString(float(len(columns.slots)))}\n")
            out.append("".join(tail).encode("utf-8"))
        return out

    def render_text(self) -> list[bytes]:
        """Prometheus text format 0.0.4, as chunks to write in order."""
        self.before_scrape()
        return [generate_latest(self.own), *self._task_text()]

    def render_openmetrics(self) -> list[bytes]:
        self.before_scrape()
        return [openmetrics.generate_latest(self.full)]

    def render(self, accept: str, accept_encoding: str) -> tuple[list[bytes], str, bool]:
        """Body chunks, content type and whether they are gzipped, negotiated from request headers."""
        if "application/openmetrics-text" in accept:
            chunks, content_type = self.render_openmetrics(), openmetrics.CONTENT_TYPE_LATEST
        else:
            chunks, content_type = self.render_text(), "text/plain; version=0.0.4; charset=utf-8"
        if "gzip" not in accept_encoding:
            return chunks, content_type, False
        compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip framing; level 1: speed
        return [*(compressor.compress(c) for c in chunks), compressor.flush()], content_type, True
