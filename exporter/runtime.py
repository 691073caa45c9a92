"""The running exporter: ``Settings`` -> store, accounts, collectors, exposition, web; start, reload, stop.

Kept apart from ``cli.py`` (parsing) so tests and ``demo`` build the same exporter in-process.
"""

from __future__ import annotations

import logging
import signal
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from exporter import statedb
from exporter.accounts import Accounts
from exporter.appinfo import SdkAppInfoCollector, configured_apps
from exporter.callbacks import CallbackEndpoint
from exporter.config import Settings
from exporter.exposition import Exposition
from exporter.fdlimit import raise_open_files_limit
from exporter.freshness import FreshnessIndex, FreshnessSnapshots
from exporter.logs import counted
from exporter.periodic import Periodic
from exporter.preflight import run_checks
from exporter.queue_warnings import WarningEndpoint
from exporter.secretfile import WatchedSecret
from exporter.selfmetrics import (
    CredentialsCollector,
    ExporterMetrics,
    FreshnessCollector,
    PausedAccountsCollector,
    QueueCollector,
    SecretsCollector,
    self_registry,
)
from exporter.store import TaskStore
from exporter.tasksfile import TasksFileWatcher
from exporter.tencentcloud.credentials import CredentialProvider
from exporter.web.http import ExporterHTTPServer, ListenError
from exporter.web.routes import Routes
from exporter.web.status import Health, exporter_health
from exporter.web.webconfig import WebSecurity

log = logging.getLogger(__name__)


def _listen(option: str, address: tuple[str, int], routes: Routes, ssl_context: ssl.SSLContext | None
            ) -> ExporterHTTPServer:
    try:
        return ExporterHTTPServer(address, routes, ssl_context=ssl_context)
    except OSError as exc:
        raise ListenError(option, address, exc) from None


def _app_callback_key(app: int, kind: str, path: Path, grace: float) -> WatchedSecret:
    """The key file of one SdkAppId's callbacks (``callback_keys:``): of one kind, or of every kind (kind "")."""
    if not kind:
        return WatchedSecret(f"callback_key/{app}", f"callback key of SdkAppId {app}", path, grace=grace)
    return WatchedSecret(f"callback_key/{app}/{kind}", f"{kind} callback key of SdkAppId {app}", path, grace=grace)


@dataclass
class Exporter:
    """A running exporter; ``install_signal_handlers()``, ``start()``, then ``wait()``/``stop()``."""

    settings: Settings
    credentials: CredentialProvider | None = None
    store: TaskStore = field(default_factory=TaskStore)

    def __post_init__(self) -> None:
        settings = self.settings
        self.registry = self_registry()
        self.metrics = ExporterMetrics(self.registry)
        self.store.on_milestone(self.metrics.count_milestones)
        self.accounts = Accounts(settings, self.store, self.metrics, self.credentials)
        # scrape-time collectors read the accounts' published poll states, never the pollers themselves
        states = self.accounts.states
        self.registry.register(PausedAccountsCollector(states))
        self.registry.register(QueueCollector(states))
        self.registry.register(CredentialsCollector(lambda: [(a.name, a.client.credentials) for a in self.accounts]))
        self.registry.register(SdkAppInfoCollector(self.store, self.accounts.name_for, configured_apps(settings)))
        self.metrics.poll_lag.set_function(states.lag)
        self.api_token = WatchedSecret("api_token", "API token", settings.web.api_token_file, settings.web.api_token)
        grace = settings.sources.callback_key_grace  # TIW's callbacks signed with a rotated key may be in flight
        self.callback_key = WatchedSecret("callback_key", "callback key", settings.sources.callback_key_file,
                                          settings.sources.callback_key, grace=grace)
        self.app_callback_keys = {(app, kind): _app_callback_key(app, kind, path, grace)
                                  for app, path, kind in settings.sources.callback_keys}
        self.warning_token = WatchedSecret("warning_callback_token", "warning callback token",
                                           settings.sources.warning_callback_token_file,
                                           settings.sources.warning_callback_token)
        self.registry.register(SecretsCollector(self._secrets))
        # follows the change feed, measured once per liveness pass on its own thread: a scrape only reads it
        self.freshness = FreshnessSnapshots(FreshnessIndex(self.store), states, 2 * settings.polling.interval,
                                            period=min(settings.polling.liveness_interval or 5.0, 5.0))
        self.registry.register(FreshnessCollector(self.freshness))
        self.callbacks = CallbackEndpoint(
            self.store, self.callback_key.get, self.metrics.count_callback,
            app_keys={k: s.get for k, s in self.app_callback_keys.items()}, previous_key=self.callback_key.previous,
            app_previous_keys={k: s.previous for k, s in self.app_callback_keys.items()},
            kinds=settings.polling.kinds)
        self.warnings = WarningEndpoint(self.store, self.warning_token.get, self.metrics.count_queue_warning)
        self.exposition = Exposition(self.store, self.registry)
        self.renderer = Periodic("render", 1.0, self.exposition.catch_up, fixed_rate=True)  # per change, not scrape
        self.web = WebSecurity(settings.web.web_config_file)  # raises WebConfigError: a broken file is a startup error
        self._serving = threading.Event()  # ready means serving: the store is loaded and the listeners answer
        self.routes = Routes(self.store, self.exposition, ready=self._serving.is_set,
                             api_token=self.api_token.get, callbacks=self.callbacks, warnings=self.warnings,
                             authorize=self.web.authorize, queued=self.accounts.states.queued,
                             kinds=settings.polling.kinds, health=self._health)
        self.server = _listen("--listen", settings.web.listen, self.routes, self.web.ssl_context)
        # TIW cannot send basic auth: the callback-only listener has TLS from the web config, no basic auth.
        try:
            self.callback_server = (
                _listen("--callback-listen", settings.web.callback_listen,
                        Routes(self.store, self.exposition, ready=lambda: True, callbacks=self.callbacks,
                               warnings=self.warnings, only_callbacks=True), self.web.ssl_context)
                if settings.web.callback_listen else None
            )
        except ListenError:
            self.server.stop()
            raise
        self.state_writer: statedb.StateWriter | None = None
        self.tasks_watcher = (
            TasksFileWatcher(settings.sources.tasks_file, self.store, self.metrics.tasks_file_reload_success.set,
                             watched=settings.polling.kinds)
            if settings.sources.tasks_file else None
        )
        self._stopped = threading.Event()

    def _health(self, now: float) -> Health:
        """The status page's banner, from published snapshots only."""
        return exporter_health(self.accounts.states, self.freshness, self.settings.polling.interval, now)

    def _secrets(self) -> list[tuple[str, WatchedSecret]]:
        """Every secret kept in a file, with its metric label."""
        found = [(s.name, s) for s in (self.api_token, self.callback_key, self.warning_token,
                                       *self.app_callback_keys.values())]
        for account in self.accounts:
            found += [(f"{s.name}/{account.name}", s) for s in getattr(account.client.credentials, "secrets", ())]
        return found

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Exporter:
        settings = self.settings
        raise_open_files_limit()
        # opened before anything runs: StateFileRefused (a symbolic link) stops the start with nothing to undo
        db, records = statedb.open_state(settings.state.state_file) if settings.state.state_file else (None, [])
        if db is not None:
            self.store.restore_ended(db.load_ended())  # first: an ended task never comes back as new
        for key in settings.sources.tasks:
            self.store.add(key, "flag")
        if self.tasks_watcher:
            self.tasks_watcher.reload()
            self.tasks_watcher.start()
        if settings.state.state_file:  # after the configured tasks, so their saved results are restored too
            restored = self.store.restore(records)
            log.info("state file %s: %s restored", settings.state.state_file, counted(restored, "task"))
            if db is not None:
                # the database holds what was restored: only what differs is written
                self.metrics.expect_state_write_failures(statedb.WRITE_FAILURE_REASONS)
                self.state_writer = statedb.StateWriter(db, self.store, settings.state.state_save_interval,
                                                        loaded=records,
                                                        on_failure=self.metrics.count_state_write_failure)
        for account in self.accounts:
            account.start()
        self.freshness.start()
        self.renderer.start()
        if self.state_writer:
            self.state_writer.start()
        self.server.start()
        if self.callback_server:
            self.callback_server.start()
            log.info("TIW callbacks accepted on %s/callbacks/tiw", self.callback_server.bound)
        self._serving.set()  # not "every task polled once": tiw_exporter_coverage_ratio says how fresh
        threading.Thread(target=self._preflight, name="preflight", daemon=True).start()
        hint = "" if len(self.store) or settings.sources.discover_sdk_app_ids or settings.sources.callback_key or \
            settings.sources.callback_keys else " (add --task, --tasks-file, --discover-sdk-app-id or TIW callbacks)"
        log.info("tiw-exporter listening on %s, tracking %s%s (accounts: %s)", self.server.bound,
                 counted(len(self.store), "task"), hint, ", ".join(a.name for a in self.accounts))
        return self

    def _preflight(self) -> None:
        """``tiw-exporter check`` once at start, each result one log line; a failure never stops the exporter."""
        settings = self.settings
        accounts = {a.name: a for a in self.accounts}

        def pace(name: str, action: str) -> bool:  # each probe spends a slot of that action's own budget
            return accounts[name].budgets.for_action(action).acquire(self._stopped)

        try:
            checks = run_checks(settings, providers={name: a.client.credentials for name, a in accounts.items()},
                                pace=pace,
                                callbacks=bool(settings.sources.callback_key or settings.sources.callback_keys
                                               or settings.sources.callback_public_url))
        except Exception:  # a preflight problem must never take the exporter down
            log.exception("preflight checks failed unexpectedly")
            return
        levels = {"ok": logging.INFO, "warn": logging.WARNING, "fail": logging.ERROR}
        for check in checks:
            log.log(levels[check.status], "preflight %s: %s: %s", check.status, check.name, check.detail)

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
        for account in self.accounts:
            account.stop()
        self.freshness.stop()
        self.renderer.stop()
        if self.tasks_watcher:
            self.tasks_watcher.stop()
        if self.state_writer:
            self.state_writer.stop()
        log.info("tiw-exporter stopped")

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM make ``wait()`` stop cleanly, SIGHUP reloads; main thread only.

        Call it before ``start()``: a signal sent while it starts, or the moment "listening" is logged,
        then still ends in ``stop()`` (and the final state flush) rather than the default action.
        """
        def on_stop(signum: int, frame: FrameType | None) -> None:
            self._stopped.set()

        def on_hup(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=self.reload, name="sighup", daemon=True).start()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, on_hup)

    def wait(self) -> None:
        """Block until SIGINT/SIGTERM (SIGHUP reloads), then stop cleanly; installs the handlers if not yet."""
        self.install_signal_handlers()  # again is harmless: a handler is replaced, never missing
        while not self._stopped.wait(0.5):
            pass
        self._stopped.clear()
        self.stop()
