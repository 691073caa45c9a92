"""Discovery of running push tasks through ``DescribeRunningTasks``, inside that action's budget.

Every ``--discover-interval`` it pages through the running ``WhiteboardPush`` tasks of each
``--discover-sdk-app-id`` and starts tracking new ones. Each page takes a slot from the
``DescribeRunningTasks`` limiter (shared with liveness; with ``--shared-rate-limit`` also with polling).
A task that leaves the running list is not dropped: it is polled until it reports STOPPED.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from exporter.errors import DiscoveryAction, disposition
from exporter.logs import counted, task_fields
from exporter.model import InvalidTaskRef, RunningTask, validate_task_id
from exporter.periodic import Periodic
from exporter.ratelimit import PacedLimiter
from exporter.store import TaskStore
from exporter.tencentcloud.errors import CallFailure

log = logging.getLogger(__name__)

PAGE_SIZE = 500  # the API's maximum Limit
MAX_PAGES = 200  # 100k tasks: a runaway Total never loops forever

ListPage = Callable[[int, int, int], tuple[list[RunningTask], int]]


class Discoverer:
    """One discovery loop per SdkAppId, so one app's failures never hold up another's."""

    def __init__(self, store: TaskStore, list_page: ListPage, limiter: PacedLimiter, sdk_app_ids: Sequence[int],
                 interval: float = 60.0, on_api_error: Callable[[int, str], None] = lambda app, code: None) -> None:
        self.store = store
        self.list_page = list_page
        self.limiter = limiter
        self.sdk_app_ids = tuple(sdk_app_ids)
        self.interval = interval
        self.on_api_error = on_api_error
        self._loops = {app: Periodic(f"discovery-{app}", interval, lambda app=app: self.discover(app),
                                     run_first=True) for app in self.sdk_app_ids}

    def start(self) -> None:
        for loop in self._loops.values():
            loop.start()

    def stop(self) -> None:
        for loop in self._loops.values():
            loop.stopping.set()
        for loop in self._loops.values():
            loop.stop()

    def discover(self, sdk_app_id: int) -> int:
        """One pass over the running tasks of ``sdk_app_id``; returns how many were new."""
        loop = self._loops.get(sdk_app_id)
        stop = loop.stopping if loop else threading.Event()  # a shutdown interrupts a wait for budget
        try:
            running = list_running(self.list_page, self.limiter, sdk_app_id, stop)
        except CallFailure as failure:
            self.on_api_error(sdk_app_id, failure.code)
            if disposition(failure.code).discovery is DiscoveryAction.THROTTLE:
                self.limiter.throttled()
            log.warning("discovery of SdkAppId %s failed: %s", sdk_app_id, failure,
                        extra=task_fields(sdk_app_id, code=failure.code))
            return 0
        new = 0
        for task in running or ():
            if task.ended:
                continue
            try:
                key = (sdk_app_id, validate_task_id(task.task_id))
            except InvalidTaskRef as exc:
                log.warning("discovery skipped a task: %s", exc)
                continue
            new += self.store.add(key, "discovery")
        if new:
            log.info("discovered %s of SdkAppId %s", counted(new, "new push task"), sdk_app_id,
                     extra=task_fields(sdk_app_id))
        return new


def list_running(list_page: ListPage, limiter: PacedLimiter, sdk_app_id: int,
                 stop: threading.Event) -> list[RunningTask] | None:
    """Every page of ``sdk_app_id``'s running tasks, each page paced by ``limiter``.

    None when ``stop`` was set while waiting for budget (the list is incomplete); raises the
    ``CallFailure`` of a failed page. Shared by discovery and liveness: one way to page.
    """
    running: list[RunningTask] = []
    offset = 0
    for _ in range(MAX_PAGES):
        if not limiter.acquire(stop):
            return None
        tasks, total = list_page(sdk_app_id, offset, PAGE_SIZE)
        running.extend(tasks)
        offset += len(tasks)
        if not tasks or offset >= total:
            break
    return running
