"""Liveness from ``DescribeRunningTasks``: one list query confirms up to 500 running tasks at once.

One ``Liveness`` per watched kind of an account (its TaskTypes: ``WhiteboardPush``; ``OnlineRecord``;
``TranscodeH5`` and ``TranscodeJPG``). Every ``--liveness-interval`` (default 5 s, from one pass's start to
the next) it pages through the running tasks of its kind of each SdkAppId this account tracks (and each
``--discover-sdk-app-id``) on the
``DescribeRunningTasks`` budget, up to ``PAGE_CONCURRENCY`` pages in flight (``discovery.list_running``):

* a tracked task on the list is alive: its liveness time is refreshed (published as an immutable
  ``pollstate.LivenessState``, not in the store, so 10,000 confirmations every 5 s cost no store
  writes, no re-render and no state save). That is all the list says: its PROCESSING ("executing")
  most likely covers PREPARED ("entering the room, starting the push service") as well as PUSHING, so
  a task's status, finish reason and exceptions come only from ``DescribeWhiteboardPush`` and callbacks;
* a tracked task seen before that is no longer listed has stopped or failed: the collector queries
  it at once (``urgent``), ahead of every other task, to learn its final state;
* a task never seen on the list (older than the API's 3-day window, or not listed yet) and every task
  of an account without the action (``InvalidAction``, international accounts) are *polled instead*,
  as without liveness: ``tiw_exporter_liveness_tasks{mode="polled"}`` counts them,
  ``tiw_exporter_liveness_unsupported{sdk_app_id}`` names such apps, and one log line says why.

The collector's cadence asks ``covered(key)`` to stretch a covered task's detail polling to what the budget
allows; scrapes read the published state (``pollstate.PollStates``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from exporter.discovery import REPROBE_SECONDS, ListPages, ListRefusals, list_running_types
from exporter.errors import CollectorAction, DiscoveryAction, disposition
from exporter.model import TaskKey
from exporter.periodic import Periodic
from exporter.pollable import PollableByApp
from exporter.pollstate import EMPTY, LivenessState
from exporter.ratelimit import PacedLimiter
from exporter.store import TaskStore
from exporter.tencentcloud.errors import CallFailure

log = logging.getLogger(__name__)

STALE_AFTER_PASSES = 3  # a task not confirmed for this many intervals is polled as if uncovered
PAGE_CONCURRENCY = 4  # pages of one list in flight at once, each on its own slot of the list's budget
COUNT_REUSE_SECONDS = 1.0  # covered_count is asked on every detail poll; a count this old is still good


class Liveness:
    """One loop over the SdkAppIds of this account's active tasks; ``covered`` for the cadence.

    The one home of the seen-times is ``state``, an immutable ``LivenessState`` this loop replaces
    (and ``publish``es) after each SdkAppId it checks; nobody else writes it.
    """

    def __init__(self, store: TaskStore, list_page: ListPages, limiter: PacedLimiter, *, interval: float = 5.0,
                 in_account: Callable[[TaskKey], bool] = lambda key: True,
                 urgent: Callable[[TaskKey], None] = lambda key: None,
                 on_api_error: Callable[[int, str], None] = lambda app, code: None,
                 publish: Callable[..., Any] = lambda **changes: None,
                 credential_paused: Callable[[], bool] = lambda: False,
                 credential_refused: Callable[[str], None] = lambda code: None,
                 credential_answered: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.list_page = list_page
        self.limiter = limiter
        self.interval = interval
        self.in_account = in_account  # which tracked tasks are this account's
        self.urgent = urgent
        self.on_api_error = on_api_error
        self.publish = publish
        self.credential_paused = credential_paused  # the collector's credential pause: ask nothing meanwhile
        self.credential_refused = credential_refused  # a refused key: the collector pauses and probes it
        self.credential_answered = credential_answered  # the key works: a pause ends
        self.clock = clock
        self.refusals = ListRefusals(clock)
        self.state = LivenessState(stale_after=STALE_AFTER_PASSES * interval)
        self._covered: tuple[LivenessState, int, float] | None = None  # covered_count's last count
        self._lock = threading.Lock()  # one writer at a time (the loop, or a test calling check_app)
        self.pollable = PollableByApp(store, in_account)
        self.started_at = clock()
        self._checked: set[int] = set()  # SdkAppIds checked since the start
        self._pages = ThreadPoolExecutor(max_workers=PAGE_CONCURRENCY, thread_name_prefix="liveness-page")
        self._loop = Periodic("liveness", interval, self.run_pass, run_first=True, fixed_rate=True)
        publish(liveness=self.state)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        self._pages.shutdown(wait=False, cancel_futures=True)

    # --- what the cadence reads -------------------------------------------------------------------
    def covered(self, key: TaskKey) -> bool:
        """Confirmed running recently enough that detail polling may wait (``STALE_AFTER_PASSES``)."""
        return self.state.covered(key, self.clock())

    def covered_count(self) -> int:
        """How many tasks are covered, counted at most once a second for one state: it is asked on
        every detail poll (18 a second), and counting 10,000 times cost ~1 % of a core."""
        now = self.clock()
        state, cached = self.state, self._covered
        if cached is not None and cached[0] is state and 0 <= now - cached[2] < COUNT_REUSE_SECONDS:
            return cached[1]
        horizon = now - state.stale_after
        count = sum(1 for by_task in state.seen.values() for at in by_task.values() if at >= horizon)
        self._covered = (state, count, now)
        return count

    def unsupported(self) -> dict[int, str]:
        return dict(self.state.unsupported)

    def _with_refusals(self, state: LivenessState) -> LivenessState:
        """``state`` naming the SdkAppIds whose list is refused for good (``refusals`` is their one home)."""
        return replace(state, unsupported=MappingProxyType(self.refusals.current()))

    def _replace(self, state: LivenessState) -> None:
        self.state = state
        self.publish(liveness=state)

    # --- one pass --------------------------------------------------------------------------------
    def run_pass(self) -> None:
        by_app = self.pollable.current()
        with self._lock:  # final or removed tasks, and apps without tasks: no longer ours to confirm
            state = self.state
            for app, by_task in state.seen.items():
                tracked = by_app.get(app, EMPTY)
                if any(key[1] not in tracked for key in by_task):
                    state = state.with_app(app, {k: at for k, at in by_task.items() if k[1] in tracked})
            if state is not self.state:
                self._replace(state)
        if self.credential_paused():
            return  # the key is refused and its pause runs: 5-second retries here would only add noise
        for app in sorted(by_app):
            if self.refusals.may_ask(app) and not self._loop.stopping.is_set():
                self._check(app, by_app[app])

    def check_app(self, sdk_app_id: int, keys: Iterable[TaskKey]) -> None:
        """Confirm ``keys`` (tracked tasks of ``sdk_app_id``) against its running list."""
        self._check(sdk_app_id, {key[1]: key for key in keys})

    def _check(self, sdk_app_id: int, tracked: Mapping[str, TaskKey]) -> None:
        try:
            running = list_running_types(self.list_page, self.limiter, sdk_app_id, self._loop.stopping, self._pages)
        except CallFailure as failure:
            self._failed(sdk_app_id, failure)
            return
        if running is None:
            return  # stopping
        now = self.clock()
        alive = {task.task_id for task in running if not task.ended}
        self.credential_answered()
        if self.refusals.answered(sdk_app_id):
            log.info("SdkAppId %s: DescribeRunningTasks answers again; liveness resumes", sdk_app_id)
        with self._lock:
            before = self.state.seen.get(sdk_app_id, EMPTY)
            # alive, never a status (see the module docstring); compared as sets of TaskIDs, in C
            seen = dict.fromkeys(map(tracked.__getitem__, alive & tracked.keys()), now)
            left = [key for key in before if key not in seen and key[1] in tracked]
            if sdk_app_id not in self._checked:
                self._checked.add(sdk_app_id)
                left += self._gone_while_away(tracked, seen)
            queued = sum(1 for task in running if task.status.upper() == "QUEUED")
            self._replace(self._with_refusals(self.state.with_app(sdk_app_id, seen, queued)))
        for key in left:
            self.urgent(key)  # it stopped or failed: learn how, now

    def _gone_while_away(self, tracked: Mapping[str, TaskKey], seen: Mapping[TaskKey, float]) -> list[TaskKey]:
        """On an SdkAppId's first pass, its tasks last answered before this process started and not
        on the list: most stopped while the exporter was down (a restart has no earlier pass to
        compare with), the rest are older than the list's 3 days. Either way, ask them first."""
        gone = []
        for key in tracked.values():
            record = None if key in seen else self.store.get(key)
            if record is not None and record.last_success is not None and record.last_success < self.started_at:
                gone.append(key)
        return gone

    def _failed(self, sdk_app_id: int, failure: CallFailure) -> None:
        self.on_api_error(sdk_app_id, failure.code)
        meaning = disposition(failure.code)
        if meaning.discovery is DiscoveryAction.THROTTLE:
            self.limiter.throttled()
        elif meaning.discovery is DiscoveryAction.POLL_INSTEAD:
            news = self.refusals.refused(sdk_app_id, failure.code)
            with self._lock:
                self._replace(self._with_refusals(self.state.with_app(sdk_app_id, {})))
            if news:
                log.warning("SdkAppId %s: DescribeRunningTasks answers %s (no such action on international "
                            "accounts, or a CAM policy without it); its tasks are polled one by one instead (no "
                            "liveness), and the list is asked again every %.0f minutes", sdk_app_id, failure.code,
                            REPROBE_SECONDS / 60)
            return
        elif meaning.collector is CollectorAction.PAUSE_CREDENTIAL:
            self.credential_refused(failure.code)  # paused and probed by the collector, logged there once
            return
        log.warning("liveness of SdkAppId %s failed: %s (its tasks are polled until the list answers)",
                    sdk_app_id, failure)
