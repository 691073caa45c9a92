"""``Simulator``: the facade that wires the task books (pushes, recordings, transcodes), API, faults,
callbacks and HTTP server together.

Clocks: lifecycles, signature timestamps, ``Date`` headers and callbacks use the injectable
``clock``; the rate limiter and delays use ``time.monotonic``, so a frozen fake clock does not
throttle every request.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from exporter.periodic import Periodic
from exporter.simulator.api import Credentials, RateWindow, TiwApi
from exporter.simulator.callbacks import CallbackSender, CallbackSource, push_source
from exporter.simulator.control import ControlEndpoints
from exporter.simulator.faults import FaultPlan, FaultSpec
from exporter.simulator.http import SimulatorServer, url_for
from exporter.simulator.kind_api import RecordActions, TranscodeActions
from exporter.simulator.kind_book import KindBook
from exporter.simulator.lifecycle import TaskScript, check_non_negative
from exporter.simulator.mixes import (
    demo_records,
    demo_scripts,
    demo_transcodes,
    populated_task,
    random_user_suffix,
    spawned_script,
)
from exporter.simulator.protocol import DEFAULT_REGIONS
from exporter.simulator.record_lifecycle import RECORD_STATUSES, RecordScript, SimRecord
from exporter.simulator.stats import Stats
from exporter.simulator.task_callbacks import KindCallbackSettings
from exporter.simulator.tasks import TaskBook
from exporter.simulator.transcode_lifecycle import DEFAULT_URL, TRANSCODE_STATUSES, SimTranscode, TranscodeScript
from exporter.simulator.warning_callbacks import (
    DEFAULT_QUEUED_AMOUNT_LIMIT,
    DEFAULT_QUEUED_SECONDS_LIMIT,
    WarningCallbackSettings,
    WarningLimits,
    WarningWatch,
)

DEMO_SECRET_ID = "AKIDsimulator"
DEMO_SECRET_KEY = "simulator-secret-key"  # public on purpose: the only key the simulate command prints
DEFAULT_SDK_APP_ID = 1400000001
JOIN_TIMEOUT_SECONDS = 5.0
_DEFAULT_SCRIPT = TaskScript()
_DEFAULT_RECORD = RecordScript()
_DEFAULT_TRANSCODE = TranscodeScript()
CALLBACK_KINDS = ("push", "record", "transcode")  # whose callbacks configure_callbacks sets


class Simulator:
    """The TIW API simulator: a real HTTP server (``url``) answering like ``tiw.tencentcloudapi.com``.

    It serves pushes, real-time recordings and document transcodes, each kind with its own book,
    callback settings and actions. ``callback_url``/``callback_key`` (together) set every SdkAppId's
    push callbacks from the start, as
    ``SetWhiteboardPushCallback(Key)`` would. ``regions`` are the ``X-TC-Region`` values served (None:
    any). ``warning_queued_amount``/``warning_queued_seconds`` are the warning callbacks' thresholds and
    ``warning_envelope`` their body ("documented" or "push"; see ``warning_callbacks``).
    """

    def __init__(
        self,
        *,
        credentials: Mapping[str, str] | None = None,
        tokens: Mapping[str, str] | None = None,
        sdk_app_ids: Iterable[int] = (DEFAULT_SDK_APP_ID,),
        unregistered_sdk_app_ids: Iterable[int] = (),
        expired_sdk_app_ids: Iterable[int] = (),
        rate_limit: float = 20.0,
        latency: float = 0.0,
        seed: int = 0,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        callback_url: str | None = None,
        callback_key: str | None = None,
        clock: Callable[[], float] = time.time,
        max_skew: int = 300,
        regions: Iterable[str] | None = DEFAULT_REGIONS,
        warning_queued_amount: int = DEFAULT_QUEUED_AMOUNT_LIMIT,
        warning_queued_seconds: float = DEFAULT_QUEUED_SECONDS_LIMIT,
        warning_envelope: str = "documented",
    ) -> None:
        check_non_negative("latency", latency)
        if bool(callback_url) != bool(callback_key):
            raise ValueError("callback_url and callback_key must be given together")
        self.latency = float(latency)
        self.clock = clock
        self._closing = threading.Event()
        self._stats = Stats()
        self._book = TaskBook(seed, sdk_app_ids, unregistered_sdk_app_ids, expired_sdk_app_ids)
        self._records = KindBook[SimRecord](seed, "record", RECORD_STATUSES)
        self._transcodes = KindBook[SimTranscode](seed, "transcode", TRANSCODE_STATUSES)
        self.push_callbacks = KindCallbackSettings(on_change=self._start_callbacks)
        self.record_callbacks = KindCallbackSettings(on_change=self._start_callbacks)
        self.transcode_callbacks = KindCallbackSettings(on_change=self._start_callbacks)
        self.warning_callbacks = WarningCallbackSettings(on_change=self._start_callbacks)
        watch = WarningWatch(WarningLimits(warning_queued_amount, warning_queued_seconds, warning_envelope))
        sources = (push_source(self._book, self.push_callbacks),
                   CallbackSource("record", self.record_callbacks, self._records.transitions),
                   CallbackSource("transcode", self.transcode_callbacks, self._transcodes.transitions))
        self._callbacks = CallbackSender(self._book, self._stats, clock, self._closing, sources,
                                         self.warning_callbacks, watch)
        keys = {DEMO_SECRET_ID: DEMO_SECRET_KEY} if credentials is None else credentials
        self._credentials = Credentials(keys, tokens or {}, clock, max_skew)
        self._window = RateWindow(rate_limit, self._stats)
        self._faults = FaultPlan(seed)
        kinds = (RecordActions(self._records, self.record_callbacks, clock),
                 TranscodeActions(self._transcodes, self.transcode_callbacks, clock))
        self.api = TiwApi(self._book, self._credentials, self._window, self._faults, self._stats, clock,
                          self.push_callbacks, self.warning_callbacks, None if regions is None else frozenset(regions),
                          kinds)
        self.control = ControlEndpoints(self)
        self._closed = False
        self._started = False
        self._lock = threading.Lock()
        self._spawner: Periodic | None = None
        self._server = SimulatorServer(listen, self)
        self._http_thread = threading.Thread(
            target=lambda: self._server.serve_forever(poll_interval=0.05), name="tiw-sim-http", daemon=True
        )
        self.url = url_for(self._server.server_address)
        if callback_url and callback_key:
            self.configure_callbacks(callback_url, callback_key)

    @property
    def rate_limit(self) -> float:
        """Requests per second per (SecretId, action); 0 turns the limit off."""
        return self._window.rate_limit

    @rate_limit.setter
    def rate_limit(self, value: float) -> None:
        self._window.rate_limit = float(value)

    # ----------------------------------------------------------------- running

    def start(self) -> Simulator:
        """Serve in background threads; returns self (idempotent)."""
        if self._closed:
            raise RuntimeError("the simulator is closed")
        if self._started:
            return self
        self._started = True
        self._http_thread.start()
        self._callbacks.start()
        return self

    def configure_callbacks(self, url: str, key: str, kind: str = "push") -> None:
        """Send ``kind``'s callbacks to ``url`` signed with ``key`` from now on (e.g. once the receiver's port
        is known); ``kind`` is ``push``, ``record`` or ``transcode``.

        As if ``Set<Kind>Callback`` and ``Set<Kind>CallbackKey`` (e.g. ``SetWhiteboardPushCallback(Key)``) had
        been called for every SdkAppId of the simulator, so ``Describe<Kind>Callback`` answers exactly where
        callbacks go. An empty ``key`` sends them unsigned (as TIW does without a key); an empty ``url`` stops them.
        """
        settings = {"push": self.push_callbacks, "record": self.record_callbacks,
                    "transcode": self.transcode_callbacks}.get(kind)
        if settings is None:
            raise ValueError(f"kind must be one of {CALLBACK_KINDS}, got {kind!r}")
        for sdk_app_id in sorted(self._book.known_app_ids):
            settings.record(sdk_app_id, url=url, key=key)

    def configure_warning_callbacks(self, url: str, key: str = "") -> None:
        """Send the task warning callbacks to ``url`` from now on, as ``SetWarningCallback`` would for every
        SdkAppId (``DescribeWarningCallback`` answers it). ``key`` signs them only with ``warning_envelope="push"``."""
        for sdk_app_id in sorted(self._book.known_app_ids):
            self.warning_callbacks.record(sdk_app_id, url=url, key=key)

    def _start_callbacks(self) -> None:
        if self._started:
            self._callbacks.start()

    @property
    def regions(self) -> frozenset[str] | None:
        """The ``X-TC-Region`` values served (None: any); other regions get ``UnsupportedRegion``."""
        return self.api.regions

    def close(self) -> None:
        """Stop serving, abort pending delays, close connections and the socket, join threads."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._callbacks.stop_soon()
        if self._spawner is not None:
            self._spawner.stopping.set()
        if self._started:
            self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._started:
            self._http_thread.join(JOIN_TIMEOUT_SECONDS)
        self._callbacks.join(JOIN_TIMEOUT_SECONDS)
        if self._spawner is not None:
            self._spawner.stop(JOIN_TIMEOUT_SECONDS)
        self._server.join_handlers(JOIN_TIMEOUT_SECONDS)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def pause(self, seconds: float) -> bool:
        """Sleep unless closing; False when the simulator is closing."""
        if seconds > 0:
            return not self._closing.wait(seconds)
        return not self._closing.is_set()

    # ----------------------------------------------------------------- tasks

    def add_task(
        self,
        sdk_app_id: int,
        script: TaskScript = _DEFAULT_SCRIPT,
        task_id: str | None = None,
        *,
        created_at: float | None = None,
    ) -> str:
        """Create a task (ids drawn from the seeded RNG when not given); ``created_at`` backdates it."""
        return self._book.add(sdk_app_id, script, task_id, created_at, self.clock())

    def add_record(
        self,
        sdk_app_id: int,
        script: RecordScript = _DEFAULT_RECORD,
        task_id: str | None = None,
        *,
        created_at: float | None = None,
    ) -> str:
        """Create a real-time recording (a room and RecordUserId drawn from the recordings' seeded RNG)."""
        now, created = self._created(sdk_app_id, created_at)

        def make(new_id: str, rng: random.Random) -> SimRecord:
            room = rng.randint(10000, 999999)
            user = f"tic_record_user_{room}_{random_user_suffix(rng)}"
            return SimRecord(sdk_app_id, new_id, script, created, room, str(room), user)

        return self._records.create(make, task_id, now).task_id

    def add_transcode(
        self,
        sdk_app_id: int,
        script: TranscodeScript = _DEFAULT_TRANSCODE,
        task_id: str | None = None,
        *,
        created_at: float | None = None,
        url: str = DEFAULT_URL,
        static_ppt: bool = False,
    ) -> str:
        """Create a document transcode of ``url`` (``TranscodeH5`` for a PowerPoint file unless ``static_ppt``)."""
        now, created = self._created(sdk_app_id, created_at)

        def make(new_id: str, _: random.Random) -> SimTranscode:
            return SimTranscode(sdk_app_id, new_id, script, created, url, static_ppt)

        return self._transcodes.create(make, task_id, now).task_id

    def _created(self, sdk_app_id: int, created_at: float | None) -> tuple[float, float]:
        """(now, creation time) of a task ``add_*`` creates; ValueError for an SdkAppId the simulator lacks."""
        if sdk_app_id not in self._book.known_app_ids:
            raise ValueError(f"SdkAppId {sdk_app_id} is not one of the simulator's SdkAppIds")
        now = self.clock()
        return now, now if created_at is None else created_at

    def populate(self, count: int, sdk_app_id: int = DEFAULT_SDK_APP_ID) -> list[str]:
        """``count`` tasks of a fleet seen mid-life: preparing, pushing, stopped, failing, with backups."""
        now = self.clock()
        ids = []
        for _ in range(count):
            age, script = self._book.draw(populated_task)
            ids.append(self.add_task(sdk_app_id, script, created_at=now - age))
        return ids

    def populate_demo(self) -> list[str]:
        """The demo mix (see ``mixes.demo_scripts``) under the first SdkAppId; returns the task ids."""
        app = min(self._book.sdk_app_ids) if self._book.sdk_app_ids else DEFAULT_SDK_APP_ID
        now = self.clock()
        return [self.add_task(app, script, created_at=now - age) for age, script in demo_scripts()]

    def populate_demo_kinds(self) -> list[str]:
        """The demo's recordings and transcodes (``mixes.demo_records``, ``demo_transcodes``) under the first
        SdkAppId, beside ``populate_demo``'s pushes; returns their ids, recordings first."""
        app = min(self._book.sdk_app_ids) if self._book.sdk_app_ids else DEFAULT_SDK_APP_ID
        now = self.clock()
        ids = [self.add_record(app, script, created_at=now - age) for age, script in demo_records()]
        return ids + [self.add_transcode(app, script, created_at=now - age, url=url)
                      for age, script, url in demo_transcodes()]

    def spawn_every(self, seconds: float) -> None:
        """Keep creating short demo-like tasks every ``seconds`` (seeded) until close()."""
        if not seconds > 0 or not self._book.sdk_app_ids:
            raise ValueError("spawn_every needs a positive number of seconds and an SdkAppId")
        with self._lock:
            if self._spawner is not None:
                self._spawner.period = seconds
                return
            self._spawner = Periodic("tiw-sim-spawner", seconds, self._spawn)
        self._spawner.start()

    def _spawn(self) -> None:
        self.add_task(min(self._book.sdk_app_ids), self._book.draw(spawned_script))

    def script(self, task_id: str) -> TaskScript:
        """The script of a task (for tests and the demo); KeyError when unknown."""
        return self._book.script(task_id)

    # ----------------------------------------------------------------- faults and credentials

    def set_fault(self, kind: str, **options: Any) -> None:
        """Inject a fault; ``options`` are FaultSpec's ``count``, ``ratio``, ``seconds`` and ``action``.

        A fault replaces any earlier fault of the same kind and action.
        """
        self._faults.set(FaultSpec(kind, **options))

    def clear_faults(self) -> None:
        self._faults.clear()

    def revoke(self, secret_id: str) -> None:
        """Forget a SecretId: its requests now get AuthFailure.SecretIdNotFound."""
        self._credentials.revoke(secret_id)

    def set_credential(self, secret_id: str, secret_key: str) -> None:
        """Add or rotate a key pair."""
        self._credentials.set(secret_id, secret_key)

    def stats(self) -> dict[str, Any]:
        """Counters for tests and benchmarks (a snapshot; see ``simulator.stats`` for the keys)."""
        now = self.clock()
        return self._stats.snapshot({"push": self._book.statuses(now), "record": self._records.statuses(now),
                                     "transcode": self._transcodes.statuses(now)})
