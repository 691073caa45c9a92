"""Liveness from ``DescribeRunningTasks``: one list query confirms up to 500 running tasks at once.

Every ``--liveness-interval`` (default 5 s) it pages through the running push tasks of each SdkAppId
this account tracks (and each ``--discover-sdk-app-id``) on the ``DescribeRunningTasks`` budget:

* a tracked task on the list is alive: its liveness time is refreshed (kept here, not in the store,
  so 10,000 confirmations every 5 s cost no store writes, no re-render and no state save), and a
  PREPARED task the list shows PROCESSING becomes PUSHING;
* a tracked task seen before that is no longer listed has stopped or failed: the collector queries
  it at once (``urgent``), ahead of every other task, to learn its final state;
* a task never seen on the list (older than the API's 3-day window, or not listed yet) and every task
  of an account without the action (``InvalidAction``, international accounts) are *polled instead*,
  as without liveness: ``tiw_exporter_liveness_tasks{mode="polled"}`` counts them,
  ``tiw_exporter_liveness_unsupported{sdk_app_id}`` names such apps, and one log line says why.

The collector asks ``covered(key)`` to stretch a covered task's detail polling to what the budget allows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from exporter.discovery import ListPage, list_running
from exporter.errors import DiscoveryAction, disposition
from exporter.lifecycle import seen_running
from exporter.model import TaskKey
from exporter.periodic import Periodic
from exporter.ratelimit import PacedLimiter
from exporter.store import TaskStore
from exporter.tencentcloud.errors import CallFailure

log = logging.getLogger(__name__)

STALE_AFTER_PASSES = 3  # a task not confirmed for this many intervals is polled as if uncovered
COUNT_REUSE_SECONDS = 1.0  # covered_count is asked on every detail poll; a count this old is still good


class Liveness:
    """One loop over the SdkAppIds of this account's active tasks; ``covered``/``last_seen`` for the rest."""

    def __init__(self, store: TaskStore, list_page: ListPage, limiter: PacedLimiter, *, interval: float = 5.0,
                 in_account: Callable[[TaskKey], bool] = lambda key: True,
                 urgent: Callable[[TaskKey], None] = lambda key: None,
                 on_api_error: Callable[[int, str], None] = lambda app, code: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.list_page = list_page
        self.limiter = limiter
        self.interval = interval
        self.in_account = in_account  # which tracked tasks are this account's
        self.urgent = urgent
        self.on_api_error = on_api_error
        self.clock = clock
        self._seen: dict[TaskKey, float] = {}  # last time each task was on the running list
        self._covered: tuple[int, float] | None = None  # (covered_count, when counted); None when _seen changed
        self._unsupported: dict[int, str] = {}  # SdkAppId -> code: the account has no such action
        self._lock = threading.Lock()
        self._loop = Periodic("liveness", interval, self.run_pass, run_first=True)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    # --- what the collector and the metrics read ----------------------------------------------
    def last_seen(self, key: TaskKey) -> float | None:
        return self._seen.get(key)

    def covered(self, key: TaskKey) -> bool:
        """Confirmed running recently enough that detail polling may wait (``STALE_AFTER_PASSES``)."""
        seen = self._seen.get(key)
        return seen is not None and self.clock() - seen <= STALE_AFTER_PASSES * self.interval

    def _horizon(self) -> float:
        """Seen at or after this: covered."""
        return self.clock() - STALE_AFTER_PASSES * self.interval

    def seen_and_covered(self) -> tuple[dict[TaskKey, float], set[TaskKey]]:
        """A copy of ``last_seen`` for every task, and the keys ``covered`` says yes to, at once."""
        horizon = self._horizon()
        with self._lock:
            seen = dict(self._seen)
        return seen, {key for key, at in seen.items() if at >= horizon}

    def covered_count(self) -> int:
        """As ``len(seen_and_covered()[1])``, counted at most once a second between passes: it is asked
        on every detail poll (18 a second), and counting 10,000 times cost ~1 % of a core."""
        now = self.clock()
        with self._lock:
            if self._covered is not None and 0 <= now - self._covered[1] < COUNT_REUSE_SECONDS:
                return self._covered[0]
            horizon = now - STALE_AFTER_PASSES * self.interval
            count = sum(1 for seen in self._seen.values() if seen >= horizon)
            self._covered = (count, now)
            return count

    def unsupported(self) -> dict[int, str]:
        with self._lock:
            return dict(self._unsupported)

    # --- one pass --------------------------------------------------------------------------------
    def run_pass(self) -> None:
        by_app: dict[int, list[TaskKey]] = {}
        for record in self.store.snapshot():
            if record.pollable and self.in_account(record.key):
                by_app.setdefault(record.sdk_app_id, []).append(record.key)
        with self._lock:
            tracked = {key for keys in by_app.values() for key in keys}
            for key in [k for k in self._seen if k not in tracked]:
                del self._seen[key]  # final or removed: no longer ours to confirm
            self._covered = None
        for app, keys in sorted(by_app.items()):
            if app not in self._unsupported and not self._loop.stopping.is_set():
                self.check_app(app, keys)

    def check_app(self, sdk_app_id: int, keys: list[TaskKey]) -> None:
        """Confirm ``keys`` (tracked tasks of ``sdk_app_id``) against its running list."""
        try:
            running = list_running(self.list_page, self.limiter, sdk_app_id, self._loop.stopping)
        except CallFailure as failure:
            self._failed(sdk_app_id, failure)
            return
        if running is None:
            return  # stopping
        now = self.clock()
        listed = {task.task_id: task.status.upper() for task in running}
        left: list[TaskKey] = []
        with self._lock:
            self._covered = None
            for key in keys:
                status = listed.get(key[1])
                if status is not None and status not in ("FINISHED", "STOPPED", "CANCELED"):
                    self._seen[key] = now
                    if status == "PROCESSING":
                        self._promote(key)
                elif self._seen.pop(key, None) is not None:
                    left.append(key)
        for key in left:
            self.urgent(key)  # it stopped or failed: learn how, now

    def _promote(self, key: TaskKey) -> None:
        record = self.store.get(key)
        if record is not None and record.latest is not None and record.latest.status == "PREPARED":
            self.store.update(key, seen_running)

    def _failed(self, sdk_app_id: int, failure: CallFailure) -> None:
        self.on_api_error(sdk_app_id, failure.code)
        action = disposition(failure.code).discovery
        if action is DiscoveryAction.THROTTLE:
            self.limiter.throttled()
        elif action is DiscoveryAction.POLL_INSTEAD:
            with self._lock:
                self._unsupported[sdk_app_id] = failure.code
                for key in [k for k in self._seen if k[0] == sdk_app_id]:
                    del self._seen[key]
                self._covered = None
            log.warning("SdkAppId %s: %s answers %s; its tasks are polled one by one instead (no liveness)",
                        sdk_app_id, "DescribeRunningTasks", failure.code)
            return
        log.warning("liveness of SdkAppId %s failed: %s (its tasks are polled until the list answers)",
                    sdk_app_id, failure)
