"""What is exported: metric families, their names, labels and values (the contract of DESIGN §6).

Every per-task sample comes from one function, ``per_task_samples``. Two consumers share it:

* ``TaskCollector.collect()`` yields prometheus_client families (OpenMetrics output, tests);
* ``exposition.Exposition`` formats each task's samples once per change of that task (how it is
  made fast lives there).

Both produce byte-identical text (tests compare them), so the fast path cannot drift.
"""

from __future__ import annotations

import logging
import platform
import threading
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
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample as ClientSample

from exporter import __version__
from exporter.freshness import Freshness
from exporter.lifecycle import ANOMALY_KINDS, ENDINGS, FAILED, Milestones, TaskRecord, trtc_code
from exporter.model import FINISH_REASONS, STATUSES, TaskKey, backup_exception_cnt, parse_backup
from exporter.secretfile import WatchedSecret
from exporter.store import TaskStore

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
    Family("tiw_push_task_finish_reason", "gauge", "Why a final push ended, as a state set (final tasks only): "
           "TIW's AUTO, USER_CALL, EXCEPTION, or FAILED (a failed push), NOT_FOUND (no such task)."),
    Family("tiw_push_task_duration_seconds", "gauge",
           "Push duration: stop minus start when stopped, last successful poll minus start while pushing."),
    Family("tiw_push_task_start_timestamp_seconds", "gauge", "PushStartTime as a Unix timestamp."),
    Family("tiw_push_task_stop_timestamp_seconds", "gauge", "PushStopTime as a Unix timestamp."),
    Family("tiw_push_task_exceptions_total", "counter", "ExceptionCnt: exceptions during pushing."),
    Family("tiw_push_task_error", "gauge", "1 with the error code the task's latest query returned."),
    Family("tiw_push_task_last_success_timestamp_seconds", "gauge", "When the task was last queried successfully."),
    Family("tiw_push_task_backup_status", "gauge", "Status of the backup push task, as a state set."),
    Family("tiw_push_task_backup_exceptions_total", "counter", "ExceptionCnt of the backup push task."),
    Family("tiw_push_task_failure_info", "gauge", "1 for a push that failed (final): the error code, and TRTC's "
           "error code from the message where it has one."),
)
(INFO, STATUS, FINISH, DURATION, START, STOP, EXCEPTIONS, ERROR, LAST_SUCCESS, BACKUP_STATUS,
 BACKUP_EXCEPTIONS, FAILURE_INFO) = range(len(TASK_FAMILIES))
FINISH_STATES = (*FINISH_REASONS, *ENDINGS)

AGGREGATE_STATUSES = (*STATUSES, "UNKNOWN")
TASKS_FAMILY = Family("tiw_push_tasks", "gauge", "Tracked push tasks by SdkAppId and status (UNKNOWN before the "
                      "first answer).")
TRACKED_FAMILY = Family("tiw_exporter_tracked_tasks", "gauge", "Push tasks tracked by this exporter.")

Sample = tuple[int, Labels, float]


class TaskProblemLog:
    """Logs a problem of a task's data once per task and kind, not on every scrape."""

    def __init__(self) -> None:
        self._seen: set[tuple[TaskKey, str]] = set()
        self._lock = threading.Lock()

    def once(self, record: TaskRecord, problem: str, error: Exception) -> None:
        with self._lock:
            if (record.key, problem) in self._seen:
                return
            self._seen.add((record.key, problem))
        log.warning("task %s:%s: %s (%s)", record.sdk_app_id, record.task_id, problem, type(error).__name__)


def _state_set(family: int, base: Labels, label: str, states: Iterable[str], current: str) -> list[Sample]:
    return [(family, (*base, (label, state)), 1.0 if state == current else 0.0) for state in states]


def per_task_samples(record: TaskRecord, problems: TaskProblemLog | None = None) -> list[Sample]:
    """Every sample of one task, as (family index, labels, value)."""
    base: Labels = (("sdk_app_id", str(record.sdk_app_id)), ("task_id", record.task_id))
    task = record.latest
    samples: list[Sample] = []
    if task is not None:
        samples.append((INFO, (*base, ("room_id", str(task.room_id)), ("group_id", task.group_id),
                                ("push_user_id", task.push_user_id)), 1.0))
    samples += _state_set(STATUS, base, "status", STATUSES, record.status)
    if record.final:
        samples += _state_set(FINISH, base, "reason", FINISH_STATES, record.finish_reason)
    if task is not None:
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
        samples += _backup_samples(record, base, task.backup, problems)
    if record.ended == FAILED and record.last_error is not None:
        samples.append((FAILURE_INFO, (*base, ("code", record.last_error.code),
                                       ("trtc_code", trtc_code(record.last_error.message))), 1.0))
    return samples


def _duration(record: TaskRecord) -> float | None:
    task = record.latest
    if task is None or not task.push_start_time:
        return None
    if task.stopped:  # never negative: a stop before the start is an anomaly, counted where it is answered
        return max(0.0, float(task.push_stop_time - task.push_start_time)) if task.push_stop_time else None
    if task.status == "PUSHING" and record.last_success is not None:
        return max(0.0, record.last_success - task.push_start_time)
    return None


def _backup_samples(record: TaskRecord, base: Labels, text: str, problems: TaskProblemLog | None) -> list[Sample]:
    try:
        backup = parse_backup(text)
    except ValueError as exc:
        if problems is not None:
            problems.once(record, "unparseable Backup; backup metrics skipped", exc)
        return []
    if backup is None:
        return []
    samples: list[Sample] = []
    status = backup.get("Status")
    if isinstance(status, str):
        samples += _state_set(BACKUP_STATUS, base, "status", STATUSES, status)
    count = backup_exception_cnt(backup)
    if count is not None:
        samples.append((BACKUP_EXCEPTIONS, base, float(count)))
    return samples


def renderable_samples(record: TaskRecord, problems: TaskProblemLog) -> list[Sample] | None:
    """``per_task_samples``, or None when one of them cannot be exposed (logged once per task).

    The second line of defence behind the parse boundary (``model``): one task that cannot be
    rendered is left out of the scrape, never the whole scrape with every other task.
    """
    try:
        samples = per_task_samples(record, problems)
        for _, labels, value in samples:
            for _, text in labels:
                text.encode("utf-8")
            float(value)
    except Exception as exc:  # whatever it is, it must not fail the scrape
        problems.once(record, "a value cannot be exposed; the task is left out of /metrics", exc)
        return None
    return samples


def _new_family(family: Family) -> Metric:
    if family.kind == "counter":
        return CounterMetricFamily(family.name, family.help)
    return GaugeMetricFamily(family.name, family.help)


def tasks_by_status_samples(tally: Mapping[tuple[int, str], int]) -> list[tuple[Labels, float]]:
    """``tiw_push_tasks``: every status (0 included) for every SdkAppId in ``tally``."""
    return [
        ((("sdk_app_id", str(app)), ("status", status)), float(tally.get((app, status), 0)))
        for app in sorted({app for app, _ in tally})
        for status in AGGREGATE_STATUSES
    ]


def aggregate_samples(records: Iterable[TaskRecord]) -> tuple[list[tuple[Labels, float]], int]:
    """``tiw_push_tasks`` samples and the tracked count, counted from ``records``."""
    tally = Tally((record.sdk_app_id, record.status) for record in records)
    return tasks_by_status_samples(tally), sum(tally.values())


def not_retired(records: Iterable[TaskRecord]) -> list[TaskRecord]:
    return [r for r in records if not r.retired]


class TaskCollector(Collector):
    """prometheus_client collector over the store; never calls the API.

    Example output::

        tiw_push_task_status{sdk_app_id="1400000001",status="PUSHING",task_id="ghucnligqtgtvk2624mb"} 1.0
        tiw_push_tasks{sdk_app_id="1400000001",status="PUSHING"} 12.0
    """

    def __init__(self, store: TaskStore, problems: TaskProblemLog | None = None) -> None:
        self.store = store
        self.problems = problems or TaskProblemLog()

    def describe(self) -> list[Metric]:
        return [_new_family(f) for f in (*TASK_FAMILIES, TASKS_FAMILY, TRACKED_FAMILY)]

    def collect(self) -> Iterator[Metric]:
        records = list(not_retired(self.store.snapshot()))
        families = [_new_family(f) for f in TASK_FAMILIES]
        for record in records:
            for index, labels, value in renderable_samples(record, self.problems) or ():
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
        self.answer_anomalies = Counter(
            "tiw_exporter_answer_anomalies", "Answers with values that cannot be true as answered (kept honest: "
            "exceptions never decrease, durations never negative), by kind.", ["kind"], registry=registry)
        for kind in ANOMALY_KINDS:
            self.answer_anomalies.labels(kind)
        # The SLI: each task counted once (lifecycle.take_milestones), so rates over days are honest
        # where the per-task gauges vanish after --finished-retention.
        self.tasks_started = Counter(
            "tiw_push_tasks_started", "Push tasks seen for the first time (first answer, or ending unanswered), "
            "counted once per task, by SdkAppId.", ["sdk_app_id"], registry=registry)
        self.tasks_finished = Counter(
            "tiw_push_tasks_finished", "Push tasks that became final, counted once per task, by SdkAppId and "
            "finish reason (AUTO, USER_CALL, EXCEPTION, FAILED, NOT_FOUND; OTHER for a reason TIW did not "
            "document).", ["sdk_app_id", "reason"],
            registry=registry)

    def observe_attempt(self, action: str, outcome: str, seconds: float) -> None:
        self.api_requests.labels(action, outcome).inc()
        self.api_request_duration.labels(action).observe(seconds)

    def count_anomaly(self, kind: str) -> None:
        self.answer_anomalies.labels(kind).inc()

    def count_callback(self, event_type: str, outcome: str) -> None:
        self.callbacks.labels(event_type, outcome).inc()

    def count_milestones(self, record: TaskRecord, milestones: Milestones) -> None:
        """Count what ``record`` just reached; every reason of its SdkAppId starts at 0 so that
        ``increase()`` sees the first EXCEPTION too."""
        app = str(record.sdk_app_id)
        started = self.tasks_started.labels(app)
        for reason in FINISH_STATES:
            self.tasks_finished.labels(app, reason)
        if milestones.started:
            started.inc()
        if milestones.finished:
            reason = record.finish_reason if record.finish_reason in FINISH_STATES else "OTHER"  # bounded labels
            self.tasks_finished.labels(app, reason).inc()

    def count_api_error(self, sdk_app_id: int, code: str) -> None:
        self.api_errors.labels(str(sdk_app_id), code).inc()


class ScrapeTimeCollector(Collector):
    """Families built fresh from live state at each scrape; ``describe`` names the same (empty) ones."""

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        raise NotImplementedError

    def describe(self) -> list[Metric]:
        return list(self._families())


class PausedAccountsCollector(ScrapeTimeCollector):
    """``tiw_exporter_account_paused`` (SdkAppIds) and ``tiw_exporter_credential_paused`` (whole accounts)
    whose polling is paused, read at scrape time."""

    def __init__(self, paused: Callable[[], dict[int, str]],
                 paused_credentials: Callable[[], dict[str, str]] = dict) -> None:
        self.paused = paused
        self.paused_credentials = paused_credentials

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily("tiw_exporter_account_paused",
                                  "1 while polling of an SdkAppId is paused after an app-level or credential error.",
                                  labels=["sdk_app_id", "code"]),
                GaugeMetricFamily("tiw_exporter_credential_paused",
                                  "1 while all polling of an account is paused: the API refuses its credential or "
                                  "setup (key, region, endpoint).", labels=["account", "code"]))

    def collect(self) -> Iterator[Metric]:
        apps, credentials = self._families()
        for sdk_app_id, code in sorted(self.paused().items()):
            apps.add_metric([str(sdk_app_id), code], 1)
        for account, code in sorted(self.paused_credentials().items()):
            credentials.add_metric([account, code], 1)
        yield apps
        yield credentials


class CredentialsCollector(ScrapeTimeCollector):
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


class SecretsCollector(ScrapeTimeCollector):
    """Reload health of every secret kept in a file, read at scrape time; the value itself never appears."""

    def __init__(self, secrets: Callable[[], Iterable[tuple[str, WatchedSecret]]]) -> None:
        self.secrets = secrets

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("tiw_exporter_secret_reload_success",
                              "Whether the last read of a secret file worked (1) or not (0; the previous value "
                              "stays in use).", labels=["secret"]),
            GaugeMetricFamily("tiw_exporter_secret_last_reload_timestamp_seconds",
                              "When a secret file was last read (at start or after it changed).", labels=["secret"]),
        )

    def collect(self) -> Iterator[Metric]:
        success, last = self._families()
        for label, secret in self.secrets():
            if secret.path is None:
                continue  # a value from the environment never reloads
            secret.get()  # a scrape notices a change even when no request used the secret yet
            success.add_metric([label], 1 if secret.last_success else 0)
            last.add_metric([label], secret.last_reload)
        yield success
        yield last


class FreshnessCollector(ScrapeTimeCollector):
    """Data age per kind, tasks per liveness mode, coverage, and apps without liveness; read at scrape time."""

    def __init__(self, measure: Callable[[], Freshness], unsupported: Callable[[], dict[int, str]]) -> None:
        self.measure = measure
        self.unsupported = unsupported

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("tiw_exporter_data_age_seconds",
                              "Age of the latest answer of active tasks, as quantiles over tasks: kind=liveness "
                              "(the running list confirmed it) or detail (DescribeWhiteboardPush).",
                              labels=["kind", "quantile"]),
            GaugeMetricFamily("tiw_exporter_liveness_tasks",
                              "Active tasks by how their liveness is known: listed (DescribeRunningTasks) or polled "
                              "(one by one: never listed, older than the list's 3 days, or no such action).",
                              labels=["mode"]),
            GaugeMetricFamily("tiw_exporter_coverage_ratio",
                              "Share of active tracked tasks with a fresh answer (liveness or detail)."),
            GaugeMetricFamily("tiw_exporter_liveness_unsupported",
                              "1 for an SdkAppId whose account has no DescribeRunningTasks: its tasks are polled.",
                              labels=["sdk_app_id", "code"]),
        )

    def collect(self) -> Iterator[Metric]:
        ages, modes, coverage, unsupported = self._families()
        freshness = self.measure()
        for kind, values in sorted(freshness.ages.items()):
            for q, age in values.items():
                ages.add_metric([kind, f"{q:g}"], age)
        modes.add_metric(["listed"], freshness.listed)
        modes.add_metric(["polled"], freshness.polled)
        coverage.add_metric([], freshness.coverage)
        for sdk_app_id, code in sorted(self.unsupported().items()):
            unsupported.add_metric([str(sdk_app_id), code], 1)
        yield from (ages, modes, coverage, unsupported)



def self_registry() -> CollectorRegistry:
    """A registry with the standard process/python collectors, for the exporter's own metrics."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


