"""Discovery of running push tasks through ``DescribeRunningTasks``, inside the shared budget.

Every ``--discover-interval`` it pages through the running ``WhiteboardPush`` tasks of each
``--discover-sdk-app-id`` and starts tracking new ones. Each page takes a slot from the same
``PacedLimiter`` the poller uses, so discovery and polling together stay within the rate limit.
A task that leaves the running list is not dropped: it is polled until it reports STOPPED.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from exporter.ratelimit import PacedLimiter
from exporter.tasks import TaskStore
from exporter.tencentcloud import ApiError, CallFailure
from exporter.tiw import InvalidTaskRef, RunningTask, validate_task_id

log = logging.getLogger(__name__)

PAGE_SIZE = 500  # the API's maximum Limit
MAX_PAGES = 200  # 100k tasks: a runaway Total never loops forever

ListPage = Callable[[int, int, int], tuple[list[RunningTask], int]]


class Discoverer:
    def __init__(self, store: TaskStore, list_page: ListPage, limiter: PacedLimiter, sdk_app_ids: Sequence[int],
                 interval: float = 60.0, on_api_error: Callable[[int, str], None] = lambda app, code: None,
                 accept: Callable[[tuple[int, str]], bool] = lambda key: True) -> None:
        self.store = store
        self.accept = accept  # sharding: only this replica's share of what is running
        self.list_page = list_page
        self.limiter = limiter
        self.sdk_app_ids = tuple(sdk_app_ids)
        self.interval = interval
        self.on_api_error = on_api_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="discovery", daemon=True)

    def start(self) -> None:
        if self.sdk_app_ids:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for sdk_app_id in self.sdk_app_ids:
                try:
                    self.discover(sdk_app_id)
                except Exception:  # discovery must never die
                    log.exception("discovery of SdkAppId %s failed unexpectedly", sdk_app_id)
            self._stop.wait(self.interval)

    def discover(self, sdk_app_id: int) -> int:
        """One pass over the running tasks of ``sdk_app_id``; returns how many were new."""
        new = 0
        offset = 0
        for _ in range(MAX_PAGES):
            if not self.limiter.acquire(self._stop):
                break
            try:
                tasks, total = self.list_page(sdk_app_id, offset, PAGE_SIZE)
            except CallFailure as failure:
                self.on_api_error(sdk_app_id, failure.code)
                if isinstance(failure, ApiError) and failure.outcome == "throttled":
                    self.limiter.throttled()
                log.warning("discovery of SdkAppId %s failed: %s", sdk_app_id, failure)
                break
            for task in tasks:
                if task.status.upper() in ("STOPPED", "FINISHED", "CANCELED"):
                    continue
                try:
                    key = (sdk_app_id, validate_task_id(task.task_id))
                except InvalidTaskRef as exc:
                    log.warning("discovery skipped a task: %s", exc)
                    continue
                if self.accept(key):
                    new += self.store.add(key, "discovery")
            offset += len(tasks)
            if not tasks or offset >= total:
                break
        if new:
            log.info("discovered %d new push tasks of SdkAppId %s", new, sdk_app_id)
        return new
