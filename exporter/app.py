"""Wiring: ``Settings`` -> store, client, collector, exposition, HTTP server; start and stop.

Kept apart from ``cli.py`` (parsing) so tests and ``demo`` build the same exporter in-process.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter import statefile
from exporter.collector import Collector
from exporter.config import Settings
from exporter.credentials import CredentialProvider, resolve_chain
from exporter.metrics import ExporterMetrics, Exposition, self_registry
from exporter.ratelimit import PacedLimiter
from exporter.server import App, ExporterHTTPServer
from exporter.tasks import TasksFileWatcher, TaskStore
from exporter.tencentcloud import CallObserver, RetryPolicy, TencentCloudClient
from exporter.tiw import describe_whiteboard_push

log = logging.getLogger(__name__)


class _PausedAccounts:
    """``tiw_exporter_account_paused``: read from the collector at scrape time."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def describe(self) -> list[Metric]:
        return [self._family()]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("tiw_exporter_account_paused",
                                 "1 while polling of an SdkAppId is paused after an account-level error.",
                                 labels=["sdk_app_id", "code"])

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for sdk_app_id, code in sorted(self.collector.paused_accounts().items()):
            family.add_metric([str(sdk_app_id), code], 1)
        yield family


@dataclass
class Exporter:
    """A running exporter; ``start()`` then ``wait()``/``stop()``."""

    settings: Settings
    credentials: CredentialProvider | None = None
    store: TaskStore = field(default_factory=TaskStore)

    def __post_init__(self) -> None:
        s = self.settings
        self.registry = self_registry()
        self.metrics = ExporterMetrics(self.registry)
        credentials = self.credentials or resolve_chain(s.secret_id, s.secret_key_file, cvm_role=s.cvm_role)
        self.client = TencentCloudClient(
            credentials, endpoint=s.endpoint, region=s.region, connect_timeout=s.connect_timeout,
            read_timeout=s.read_timeout, retry=RetryPolicy(attempts=1),  # the collector reschedules instead
            observer=CallObserver(after_attempt=self.metrics.observe_attempt), pool_size=s.concurrency + 4,
        )
        self.limiter = PacedLimiter(s.rate_limit)
        self.collector = Collector(
            self.store, lambda app, task: describe_whiteboard_push(self.client, app, task), self.limiter,
            interval=s.interval, concurrency=s.concurrency, finished_retention=s.finished_retention,
            on_api_error=self.metrics.count_api_error,
        )
        self.registry.register(_PausedAccounts(self.collector))  # type: ignore[arg-type]
        self.metrics.poll_lag.set_function(self.collector.lag)
        self.exposition = Exposition(self.store, self.registry)
        self.app = App(self.store, self.exposition, ready=self.collector.ready.is_set, api_token=lambda: s.api_token)
        self.server = ExporterHTTPServer(s.listen, self.app)
        self.state_writer = statefile.StateWriter(s.state_file, self.store) if s.state_file else None
        self.tasks_watcher = (
            TasksFileWatcher(s.tasks_file, self.store, self.metrics.tasks_file_reload_success.set)
            if s.tasks_file else None
        )
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Exporter:
        s = self.settings
        for key in s.tasks:
            self.store.add(key, "flag")
        if self.tasks_watcher:
            self.tasks_watcher.reload()
            self.tasks_watcher.start()
        if s.state_file:  # after the configured tasks, so their saved results are restored too
            restored = self.store.restore(statefile.load(s.state_file))
            log.info("state file %s: %d tasks restored", s.state_file, restored)
        self.collector.start()
        if self.state_writer:
            self.state_writer.start()
        self.server.start()
        log.info("tiw-exporter listening on %s, tracking %d tasks", self.url, len(self.store))
        return self

    def reload(self) -> None:
        """SIGHUP: re-read the tasks file."""
        if self.tasks_watcher:
            self.tasks_watcher.reload()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.server.stop()
        self.collector.stop()
        if self.tasks_watcher:
            self.tasks_watcher.stop()
        if self.state_writer:
            self.state_writer.stop()
        self.client.close()
        log.info("tiw-exporter stopped")

    def wait(self) -> None:
        """Block until SIGINT/SIGTERM (SIGHUP reloads), then stop cleanly."""
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self._stopped.set()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=self.reload, name="sighup", daemon=True).start()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, on_hup)
        while not self._stopped.wait(0.5):
            pass
        self._stopped.clear()
        self.stop()
