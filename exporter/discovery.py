"""Discovery of running tasks through ``DescribeRunningTasks``, inside that action's budget.

One ``Discoverer`` per watched kind. Every ``--discover-interval`` it pages through the running tasks of
its kind's TaskTypes (``WhiteboardPush``; ``OnlineRecord``; ``TranscodeH5`` and ``TranscodeJPG``) of each
``--discover-sdk-app-id`` and starts tracking new ones. Each page takes a slot from the
``DescribeRunningTasks`` limiter (shared with liveness; with ``--shared-rate-limit`` also with polling).
A task that leaves the running list is not dropped: it is polled until it reports STOPPED.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from functools import partial

from exporter.errors import DiscoveryAction, disposition
from exporter.kinds import KINDS
from exporter.logs import counted, task_fields
from exporter.model import PUSH, InvalidTaskRef, RunningTask, task_key, validate_task_id
from exporter.periodic import Periodic
from exporter.ratelimit import PacedLimiter
from exporter.store import TaskStore
from exporter.tencentcloud.errors import CallFailure

log = logging.getLogger(__name__)

PAGE_SIZE = 500  # the API's maximum Limit
PAGE_OVERLAP = 25  # pages start this many places before the last one ended (``list_running``)
PAGE_STEP = PAGE_SIZE - PAGE_OVERLAP
MAX_PAGES = 200  # ~95k tasks: a runaway Total never loops forever

ListPage = Callable[[int, int, int], tuple[list[RunningTask], int]]  # (SdkAppId, Offset, Limit) of one TaskType
ListPages = ListPage | Sequence[ListPage]  # one per TaskType of a kind (transcodes have two)
REPROBE_SECONDS = 600.0  # a permanent refusal (no such action, CAM denial) is asked again this rarely


class ListRefusals:
    """SdkAppIds whose ``DescribeRunningTasks`` is refused for good (the error table's POLL_INSTEAD:
    no such action on international accounts, a CAM policy without the action): asked again only every
    ``REPROBE_SECONDS``, and each refusal said once, not on every pass."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._refused: dict[int, tuple[str, float]] = {}  # SdkAppId -> (code, when to ask again)
        self._lock = threading.Lock()

    def may_ask(self, sdk_app_id: int) -> bool:
        with self._lock:
            refused = self._refused.get(sdk_app_id)
            return refused is None or self.clock() >= refused[1]

    def refused(self, sdk_app_id: int, code: str) -> bool:
        """Remember the refusal; True when it is news (log it), False for a re-probe refused again."""
        with self._lock:
            news = sdk_app_id not in self._refused
            self._refused[sdk_app_id] = (code, self.clock() + REPROBE_SECONDS)
            return news

    def answered(self, sdk_app_id: int) -> bool:
        """The list answered: True when it had been refused (say it works again)."""
        with self._lock:
            return self._refused.pop(sdk_app_id, None) is not None

    def current(self) -> dict[int, str]:
        with self._lock:
            return {app: code for app, (code, _) in self._refused.items()}


class Discoverer:
    """One discovery loop per SdkAppId, so one app's failures never hold up another's."""

    def __init__(self, store: TaskStore, list_page: ListPages, limiter: PacedLimiter, sdk_app_ids: Sequence[int],
                 interval: float = 60.0, on_api_error: Callable[[int, str], None] = lambda app, code: None,
                 credential_paused: Callable[[], bool] = lambda: False, kind: str = PUSH) -> None:
        self.store = store
        self.kind = kind
        self.credential_paused = credential_paused  # the collector found the key refused: ask nothing
        self.refusals = ListRefusals()
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
        if self.credential_paused() or not self.refusals.may_ask(sdk_app_id):
            return 0
        try:
            running = list_running_types(self.list_page, self.limiter, sdk_app_id, stop)
        except CallFailure as failure:
            self._failed(sdk_app_id, failure)
            return 0
        if running is not None and self.refusals.answered(sdk_app_id):
            log.info("discovery of SdkAppId %s works again", sdk_app_id, extra=task_fields(sdk_app_id))
        new = 0
        for task in running or ():
            if task.ended:
                continue
            try:
                key = task_key(sdk_app_id, validate_task_id(task.task_id), self.kind)
            except InvalidTaskRef as exc:
                log.warning("discovery skipped a task: %s", exc)
                continue
            new += self.store.add(key, "discovery")
        if new:
            log.info("discovered %s of SdkAppId %s", counted(new, f"new {KINDS[self.kind].noun} task"), sdk_app_id,
                     extra=task_fields(sdk_app_id))
        return new

    def _failed(self, sdk_app_id: int, failure: CallFailure) -> None:
        self.on_api_error(sdk_app_id, failure.code)
        action = disposition(failure.code).discovery
        if action is DiscoveryAction.THROTTLE:
            self.limiter.throttled()
        if action is DiscoveryAction.POLL_INSTEAD:
            if self.refusals.refused(sdk_app_id, failure.code):
                log.warning("discovery of SdkAppId %s is not possible: DescribeRunningTasks answers %s (no such "
                            "action on international accounts, or a CAM policy without it); its tasks come from "
                            "callbacks, the task API and the tasks file. Asked again every %.0f minutes",
                            sdk_app_id, failure.code, REPROBE_SECONDS / 60,
                            extra=task_fields(sdk_app_id, code=failure.code))
            return
        log.warning("discovery of SdkAppId %s failed: %s", sdk_app_id, failure,
                    extra=task_fields(sdk_app_id, code=failure.code))


def list_running_types(list_pages: ListPages, limiter: PacedLimiter, sdk_app_id: int, stop: threading.Event,
                       pages: Executor | None = None) -> list[RunningTask] | None:
    """``list_running`` of each TaskType's pager in turn (a kind may have several), concatenated."""
    found: list[RunningTask] = []
    for list_page in (list_pages,) if callable(list_pages) else list_pages:
        part = list_running(list_page, limiter, sdk_app_id, stop, pages)
        if part is None:
            return None
        found += part
    return found


def list_running(list_page: ListPage, limiter: PacedLimiter, sdk_app_id: int, stop: threading.Event,
                 pages: Executor | None = None) -> list[RunningTask] | None:
    """Every running task of ``sdk_app_id`` (each once), each page paced by ``limiter``.

    The first page tells the total; with ``pages`` (a thread pool) the others are fetched at once,
    each still waiting for its own slot, so a pass takes the budget's time rather than the sum of
    the answers' latencies. Pages overlap by ``PAGE_OVERLAP``: a task that ends while the pass runs
    moves every later task up one place, and without the overlap the task at a page's edge would be
    missed and taken for one that left the list.

    None when ``stop`` was set while waiting for budget (the list is incomplete); raises the
    ``CallFailure`` of a failed page. Shared by discovery and liveness: one way to page.
    """
    first = _page(list_page, limiter, sdk_app_id, 0, stop)
    if first is None:
        return None
    found = {task.task_id: task for task in first[0]}
    served, total = len(first[0]), first[1]  # a page holds what the API serves, PAGE_SIZE at most
    step = served - min(PAGE_OVERLAP, served // 4)
    offset, asked = step, 1
    fetch = partial(_page, list_page, limiter, sdk_app_id, stop=stop)
    while served and offset < total and asked < MAX_PAGES:
        offsets = range(offset, total, step)[: MAX_PAGES - asked]
        answers = pages.map(fetch, offsets) if pages is not None and len(offsets) > 1 else map(fetch, offsets)
        for answer in list(answers):
            if answer is None:
                return None
            found.update((task.task_id, task) for task in answer[0])
            total = max(total, answer[1])  # tasks started during the pass: ask on
        offset, asked = offsets[-1] + step, asked + len(offsets)
    return list(found.values())


def _page(list_page: ListPage, limiter: PacedLimiter, sdk_app_id: int, offset: int,
          stop: threading.Event) -> tuple[list[RunningTask], int] | None:
    """One page once its slot comes; None if ``stop`` was set while waiting."""
    if not limiter.acquire(stop):
        return None
    return list_page(sdk_app_id, offset, PAGE_SIZE)
