"""The running exporter: ``Settings`` -> store, accounts, collectors, exposition, web; start, reload, stop.

Kept apart from ``cli.py`` (parsing) so tests and ``demo`` build the same exporter in-process.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

from exporter import statedb
from exporter.accounts import Accounts
from exporter.callbacks import CallbackEndpoint
from exporter.config import Settings
from exporter.exposition import Exposition
from exporter.metrics import (
    CredentialsCollector,
    ExporterMetrics,
    FreshnessCollector,
    PausedAccountsCollector,
    self_registry,
)
from exporter.replication import ShardSync
from exporter.sharding import Shard
from exporter.store import TaskStore
from exporter.tasksfile import TasksFileWatcher
from exporter.tencentcloud.credentials import CredentialProvider
from exporter.web.forwarding import ShardForwarder
from exporter.web.http import ExporterHTTPServer, RequestContext, Response, json_response
from exporter.web.routes import Routes
from exporter.web.webconfig import WebSecurity

log = logging.getLogger(__name__)


@dataclass
class Exporter:
    """A running exporter; ``start()`` then ``wait()``/``stop()``."""

    settings: Settings
    credentials: CredentialProvider | None = None
    store: TaskStore = field(default_factory=TaskStore)

    def __post_init__(self) -> None:
        settings = self.settings
        self.registry = self_registry()
        self.metrics = ExporterMetrics(self.registry)
        self.shard = Shard(settings.shard_index, settings.shard_count)
        forwarder = ShardForwarder(self.shard, settings.shard_peer_url) if self.shard.sharded else None
        self.accounts = Accounts(settings, self.store, self.metrics, self.shard.owns, self.credentials)
        self.registry.register(PausedAccountsCollector(self.accounts.paused_sdk_app_ids,
                                                       self.accounts.paused_credentials))
        self.registry.register(CredentialsCollector(lambda: [(a.name, a.client.credentials) for a in self.accounts]))
        self.metrics.poll_lag.set_function(self.accounts.lag)
        self.registry.register(FreshnessCollector(
            lambda: self.accounts.freshness(self.store.snapshot(), time.time(), settings.interval),
            self.accounts.liveness_unsupported))
        self.callbacks = CallbackEndpoint(self.store, lambda: settings.callback_key, self.metrics.count_callback,
                                          forward=forwarder.forward_callback if forwarder else None)
        callback_route = {("POST", "/callbacks/tiw"): self._callback}
        self.exposition = Exposition(self.store, self.registry, owns=self.shard.owns)
        self.web = WebSecurity(settings.web_config_file)  # raises WebConfigError: a broken file is a startup error
        self._serving = threading.Event()  # ready means serving: the store is loaded and the listeners answer
        self.routes = Routes(self.store, self.exposition, ready=self._serving.is_set,
                             api_token=lambda: settings.api_token, extra_routes=callback_route,
                             authorize=self.web.authorize, forwarder=forwarder, owns=self.shard.owns)
        self.server = ExporterHTTPServer(settings.listen, self.routes, ssl_context=self.web.ssl_context)
        # TIW cannot send basic auth: the callback-only listener has TLS from the web config, no basic auth.
        self.callback_server = (
            ExporterHTTPServer(settings.callback_listen,
                               Routes(self.store, self.exposition, ready=lambda: True, extra_routes=callback_route,
                                      only_extra_routes=True),
                               ssl_context=self.web.ssl_context)
            if settings.callback_listen else None
        )
        self.state_writer: statedb.StateWriter | None = None
        self.tasks_watcher = (
            TasksFileWatcher(settings.tasks_file, self.store, self.metrics.tasks_file_reload_success.set,
                             shard_owns=self.shard.owns)
            if settings.tasks_file else None
        )
        self.shard_sync = (ShardSync(self.shard, settings.shard_peer_url, self.store, settings.shard_sync_interval)
                           if self.shard.sharded and settings.shard_peer_url else None)
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return self.server.url

    def _callback(self, ctx: RequestContext) -> Response:
        status, document = self.callbacks.handle(ctx.read_body(), ctx.headers)
        return json_response(status, document)

    def start(self) -> Exporter:
        settings = self.settings
        for key in filter(self.shard.owns, settings.tasks):
            self.store.add(key, "flag")
        if self.tasks_watcher:
            self.tasks_watcher.reload()
            self.tasks_watcher.start()
        if settings.state_file:  # after the configured tasks, so their saved results are restored too
            db, records = statedb.open_state(settings.state_file)
            # every task, not only this shard's: after a reshard another replica may own it (replication.py)
            restored = self.store.restore(records)
            log.info("state file %s: %d tasks restored", settings.state_file, restored)
            if db is not None:  # the database holds what was restored: only what differs is written
                self.state_writer = statedb.StateWriter(db, self.store, settings.state_save_interval,
                                                        loaded=records)
        for account in self.accounts:
            account.start()
        if self.shard_sync:
            self.shard_sync.start()
        if self.state_writer:
            self.state_writer.start()
        self.server.start()
        if self.callback_server:
            self.callback_server.start()
            log.info("TIW callbacks accepted on %s/callbacks/tiw", self.callback_server.url)
        self._serving.set()  # not "every task polled once": tiw_exporter_coverage_ratio says how fresh
        log.info("tiw-exporter listening on %s, tracking %d tasks (shard %d of %d, accounts: %s)", self.url,
                 len(self.store), settings.shard_index, settings.shard_count, ", ".join(a.name for a in self.accounts))
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
        self._serving.clear()
        self.server.stop()
        if self.callback_server:
            self.callback_server.stop()
        if self.shard_sync:
            self.shard_sync.stop()
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
