"""Wiring: ``Settings`` -> store, client, collector, exposition, HTTP server; start and stop.

Kept apart from ``cli.py`` (parsing) so tests and ``demo`` build the same exporter in-process.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from types import FrameType

from exporter import statefile
from exporter.accounts import Accounts
from exporter.callbacks import CallbackEndpoint
from exporter.collector import Collector
from exporter.config import Settings
from exporter.credentials import CredentialProvider
from exporter.metrics import (
    CredentialsCollector,
    ExporterMetrics,
    Exposition,
    PausedAccountsCollector,
    self_registry,
)
from exporter.ratelimit import PacedLimiter
from exporter.server import App, ExporterHTTPServer, RequestContext, Response, json_response
from exporter.sharding import Shard
from exporter.tasks import TasksFileWatcher, TaskStore
from exporter.tencentcloud import TencentCloudClient
from exporter.webconfig import WebSecurity

log = logging.getLogger(__name__)


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
        self.shard = Shard(s.shard_index, s.shard_count, s.shard_peer_url)
        self.accounts = Accounts(s, self.store, self.metrics, self.shard.owns, self.credentials)
        self.registry.register(PausedAccountsCollector(self.accounts.paused))  # type: ignore[arg-type]
        self.registry.register(CredentialsCollector(  # type: ignore[arg-type]
            lambda: [(a.name, a.client.credentials) for a in self.accounts]))
        self.metrics.poll_lag.set_function(self.accounts.lag)
        self.callbacks = CallbackEndpoint(self.store, lambda: s.callback_key, self.metrics.count_callback,
                                          shard=self.shard)
        callback_route = {("POST", "/callbacks/tiw"): self._callback}
        self.exposition = Exposition(self.store, self.registry)
        self.web = WebSecurity(s.web_config_file)  # raises WebConfigError: a broken file is a startup error
        self.app = App(self.store, self.exposition, ready=self.accounts.ready, api_token=lambda: s.api_token,
                       extra_routes=callback_route, authorize=self.web.authorize, shard=self.shard)
        self.server = ExporterHTTPServer(s.listen, self.app, ssl_context=self.web.ssl_context)
        # TIW cannot send basic auth: the callback-only listener has TLS from the web config, no basic auth.
        self.callback_server = (
            ExporterHTTPServer(s.callback_listen, App(self.store, self.exposition, ready=lambda: True,
                                                      extra_routes=callback_route, only_extra_routes=True),
                               ssl_context=self.web.ssl_context)
            if s.callback_listen else None
        )
        self.state_writer = (statefile.StateWriter(s.state_file, self.store, s.state_save_interval)
                             if s.state_file else None)
        self.tasks_watcher = (
            TasksFileWatcher(s.tasks_file, self.store, self.metrics.tasks_file_reload_success.set,
                             accept=self.shard.owns)
            if s.tasks_file else None
        )
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return self.server.url

    # The first (often only) account's parts, for tests and tools that look inside.
    @property
    def client(self) -> TencentCloudClient:
        return next(iter(self.accounts)).client

    @property
    def limiter(self) -> PacedLimiter:
        return next(iter(self.accounts)).limiter

    @property
    def collector(self) -> Collector:
        return next(iter(self.accounts)).collector

    def _callback(self, ctx: RequestContext) -> Response:
        status, document = self.callbacks.handle(ctx.read_body(), ctx.headers)
        return json_response(status, document)

    def start(self) -> Exporter:
        s = self.settings
        for key in filter(self.shard.owns, s.tasks):
            self.store.add(key, "flag")
        if self.tasks_watcher:
            self.tasks_watcher.reload()
            self.tasks_watcher.start()
        if s.state_file:  # after the configured tasks, so their saved results are restored too
            restored = self.store.restore(r for r in statefile.load(s.state_file) if self.shard.owns(r.key))
            log.info("state file %s: %d tasks restored", s.state_file, restored)
        for account in self.accounts:
            account.start()
        if self.state_writer:
            self.state_writer.start()
        self.server.start()
        if self.callback_server:
            self.callback_server.start()
            log.info("TIW callbacks accepted on %s/callbacks/tiw", self.callback_server.url)
        log.info("tiw-exporter listening on %s, tracking %d tasks (shard %d of %d, accounts: %s)", self.url,
                 len(self.store), s.shard_index, s.shard_count, ", ".join(a.name for a in self.accounts))
        return self

    def reload(self) -> None:
        """SIGHUP: re-read the tasks file and the web config (each keeps its last good version on error)."""
        if self.tasks_watcher:
            self.tasks_watcher.reload()
        self.metrics.web_config_reload_success.set(1 if self.web.reload() else 0)

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.server.stop()
        if self.callback_server:
            self.callback_server.stop()
        for account in self.accounts:
            account.stop()
        if self.tasks_watcher:
            self.tasks_watcher.stop()
        if self.state_writer:
            self.state_writer.stop()
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
