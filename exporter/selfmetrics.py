"""The exporter's own metrics: what it instruments in place, and what it reads at scrape time.

``ExporterMetrics`` is incremented by the collector, client and callbacks as things happen. The
scrape-time collectors build their families from immutable state at each scrape: the accounts'
published ``PollState`` (pauses, lag, liveness), credentials and secret files. None of them calls a
poller or the API. What is exported per task is ``metrics.py``.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.freshness import FreshnessSnapshots
from exporter.kind_sli import kind_counters
from exporter.lifecycle import ANOMALY_KINDS, Milestones, TaskRecord
from exporter.pollstate import PollStates
from exporter.secretfile import WatchedSecret


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
            "tiw_exporter_callbacks", "TIW callbacks received (every task kind), by event type and outcome.",
            ["event_type", "outcome"], registry=registry)
        self.queue_warnings = Counter(
            "tiw_push_queue_warnings", "TIW's task warning callbacks about pushes waiting for capacity "
            "(TaskQueuedAmountLimitWarning, TaskQueuedTimeLimitWarning), by SdkAppId and event type.",
            ["sdk_app_id", "event_type"], registry=registry)
        self.answer_anomalies = Counter(
            "tiw_exporter_answer_anomalies", "Answers with values that cannot be true as answered (kept honest: "
            "exceptions never decrease, durations never negative), by kind.", ["kind"], registry=registry)
        for kind in ANOMALY_KINDS:
            self.answer_anomalies.labels(kind)
        # The SLI of every kind: each task counted once (lifecycle.take_milestones), so rates over days are
        # honest where the per-task gauges vanish after --finished-retention (kind_sli.py).
        self.kinds = kind_counters(registry)
        self.state_write_failures = Counter(
            "tiw_exporter_state_file_write_failures", "Saves of --state-file that failed or were skipped, by reason: "
            "error (SQLite or the file system refused the write) or symlink (the path became a symbolic link: the "
            "save is skipped rather than written through it).", ["reason"], registry=registry)

    def observe_attempt(self, action: str, outcome: str, seconds: float) -> None:
        self.api_requests.labels(action, outcome).inc()
        self.api_request_duration.labels(action).observe(seconds)

    def count_anomaly(self, kind: str) -> None:
        self.answer_anomalies.labels(kind).inc()

    def count_callback(self, event_type: str, outcome: str) -> None:
        self.callbacks.labels(event_type, outcome).inc()

    def count_queue_warning(self, sdk_app_id: int, event_type: str) -> None:
        self.queue_warnings.labels(str(sdk_app_id), event_type).inc()

    def count_milestones(self, record: TaskRecord, milestones: Milestones) -> None:
        """Count what ``record`` just reached, in its kind's SLI counters."""
        self.kinds[record.kind].count(record, milestones)

    def count_api_error(self, sdk_app_id: int, code: str) -> None:
        self.api_errors.labels(str(sdk_app_id), code).inc()

    def expect_state_write_failures(self, reasons: Iterable[str]) -> None:
        """With a state file, each reason starts at 0 (``increase()`` then sees the first failure too)."""
        for reason in reasons:
            self.state_write_failures.labels(reason)

    def count_state_write_failure(self, reason: str) -> None:
        self.state_write_failures.labels(reason).inc()


class ScrapeTimeCollector(Collector):
    """Families built fresh from live state at each scrape; ``describe`` names the same (empty) ones."""

    @staticmethod
    def _families() -> tuple[Metric, ...]:
        raise NotImplementedError

    def describe(self) -> list[Metric]:
        return list(self._families())


class PausedAccountsCollector(ScrapeTimeCollector):
    """``tiw_exporter_account_paused`` (SdkAppIds) and ``tiw_exporter_credential_paused`` (whole accounts)
    whose polling is paused, read at scrape time."""

    def __init__(self, states: PollStates) -> None:
        self.states = states

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
        for sdk_app_id, code in sorted(self.states.paused_sdk_app_ids().items()):
            apps.add_metric([str(sdk_app_id), code], 1)
        for account, code in sorted(self.states.paused_credentials().items()):
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


class QueueCollector(ScrapeTimeCollector):
    """``tiw_push_tasks_queued``: push tasks each SdkAppId's running list showed QUEUED (waiting for TIW's
    capacity: a class without its whiteboard) at the last liveness pass, read at scrape time.

    Example output::

        tiw_push_tasks_queued{sdk_app_id="1400000001"} 2.0
    """

    def __init__(self, states: PollStates) -> None:
        self.states = states

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily]:
        return (GaugeMetricFamily("tiw_push_tasks_queued",
                                  "Push tasks DescribeRunningTasks showed QUEUED (waiting for TIW's capacity) at the "
                                  "last liveness pass, by SdkAppId.", labels=["sdk_app_id"]),)

    def collect(self) -> Iterator[Metric]:
        (queued,) = self._families()
        for sdk_app_id, count in sorted(self.states.queued().items()):
            queued.add_metric([str(sdk_app_id)], count)
        yield queued


class FreshnessCollector(ScrapeTimeCollector):
    """Data age per kind, tasks per liveness mode, coverage, and apps without liveness; read at scrape time
    from the last measured freshness (``FreshnessSnapshots``) and the accounts' published liveness."""

    def __init__(self, snapshots: FreshnessSnapshots) -> None:
        self.snapshots = snapshots
        self.states = snapshots.states

    @staticmethod
    def _families() -> tuple[Metric, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            # A summary, so that its "quantile" label is legal (promtool rejects it on a gauge). Quantiles only:
            # _count and _sum are counters by definition (OpenMetrics makes both optional), and a count of
            # tasks or a sum of ages goes down as tasks end.
            Metric("tiw_exporter_data_age_seconds",
                   "Age of the latest answer of active tasks, as quantiles over tasks: kind=liveness "
                   "(the running list confirmed it) or detail (DescribeWhiteboardPush).", "summary"),
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
        freshness = self.snapshots.current()
        for kind, values in sorted(freshness.ages.items()):
            for q, age in values.items():
                ages.add_sample(ages.name, {"kind": kind, "quantile": f"{q:g}"}, age)
        modes.add_metric(["listed"], freshness.listed)
        modes.add_metric(["polled"], freshness.polled)
        coverage.add_metric([], freshness.coverage)
        for sdk_app_id, code in sorted(self.states.liveness_unsupported().items()):
            unsupported.add_metric([str(sdk_app_id), code], 1)
        yield from (ages, modes, coverage, unsupported)



def self_registry() -> CollectorRegistry:
    """A registry with the standard process/python collectors, for the exporter's own metrics."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
