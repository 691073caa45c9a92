"""The poll scheduler: which task to query next, when, and what to do with the answer.

One dispatcher thread hands due tasks to ``concurrency`` workers, most overdue first, each request
paced by the shared ``PacedLimiter``. Results go into the ``TaskStore``. Failures are classified:

* task-level (``InvalidParameter.*``, ``FailedOperation.*``, anything unknown): recorded on the
  task, retried with exponential backoff capped at ``max_backoff``;
* account-level (``AuthFailure*`` but SignatureExpire, ``ResourceUnavailable*``,
  ``UnauthorizedOperation*``): the whole SdkAppId pauses with backoff; visible in metrics;
* throttling (``RequestLimitExceeded*``): the limiter slows down; the task keeps its place;
* transient (network, timeouts, 5xx, bad responses, ``InternalError``): recorded, retried at the
  normal interval — the last good values stay exported.

Nothing a single request does can stop the loop.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from exporter.ratelimit import PacedLimiter
from exporter.tasks import (
    CONFIG_SOURCES,
    TaskError,
    TaskKey,
    TaskRecord,
    TaskStore,
    merge_error,
    merge_result,
)
from exporter.tencentcloud import ApiError, CallFailure
from exporter.tiw import PushTask

log = logging.getLogger(__name__)

Describe = Callable[[int, str], PushTask]


class Scheduler:
    """Due times of active tasks; a heap with lazy deletion, so updates are O(log n)."""

    def __init__(self) -> None:
        self._due: dict[TaskKey, float] = {}
        self._heap: list[tuple[float, int, TaskKey]] = []
        self._seq = itertools.count()
        self.cond = threading.Condition()

    def schedule(self, key: TaskKey, due: float) -> None:
        with self.cond:
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._seq), key))
            self.cond.notify()

    def discard(self, key: TaskKey) -> None:
        with self.cond:
            self._due.pop(key, None)

    def __contains__(self, key: TaskKey) -> bool:
        return key in self._due

    def __len__(self) -> int:
        return len(self._due)

    def _clean_top(self) -> tuple[float, int, TaskKey] | None:
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) == due:
                return self._heap[0]
            heapq.heappop(self._heap)
        return None

    def earliest(self) -> float | None:
        with self.cond:
            top = self._clean_top()
            return top[0] if top else None

    def wait_due(self, now_fn: Callable[[], float], stop: threading.Event, max_wait: float = 1.0) -> bool:
        """Block until some task is due (True) or ``max_wait`` passed / stop was set (False)."""
        with self.cond:
            top = self._clean_top()
            now = now_fn()
            if top is not None and top[0] <= now:
                return True
            wait = max_wait if top is None else min(max_wait, top[0] - now)
            self.cond.wait(timeout=max(wait, 0.001))
            top = self._clean_top()
            return top is not None and top[0] <= now_fn() and not stop.is_set()

    def pop_due(self, now: float) -> tuple[TaskKey, float] | None:
        """The most overdue task, removed from the schedule until rescheduled."""
        with self.cond:
            top = self._clean_top()
            if top is None or top[0] > now:
                return None
            due, _, key = heapq.heappop(self._heap)
            del self._due[key]
            return key, due

    def compact(self) -> None:
        """Drop stale heap entries when they outnumber live ones (long-running churn)."""
        with self.cond:
            if len(self._heap) > 2 * len(self._due) + 1024:
                self._heap = [(d, s, k) for d, s, k in self._heap if self._due.get(k) == d]
                heapq.heapify(self._heap)


@dataclass
class _Backoff:
    failures: int = 0
    until: float = 0.0
    code: str = ""
    probing: bool = False  # after the pause one request probes the account; the rest wait for it


def backoff_delay(base: float, failures: int, cap: float) -> float:
    return min(cap, base * (2 ** max(0, failures - 1)))


class Collector:
    """Polls every active tracked task and keeps the store current."""

    def __init__(
        self,
        store: TaskStore,
        describe: Describe,
        limiter: PacedLimiter,
        *,
        interval: float = 15.0,
        concurrency: int = 8,
        finished_retention: float = 3600.0,
        max_backoff: float = 300.0,
        on_api_error: Callable[[int, str], None] = lambda sdk_app_id, code: None,
        clock: Callable[[], float] = time.time,
        owns: Callable[[TaskKey], bool] = lambda key: True,
    ) -> None:
        self.store = store
        self.owns = owns  # which tracked tasks this collector (its account) polls
        self.describe = describe
        self.limiter = limiter
        self.interval = interval
        self.concurrency = concurrency
        self.finished_retention = finished_retention
        self.max_backoff = max_backoff
        self.on_api_error = on_api_error
        self.clock = clock
        self.scheduler = Scheduler()
        self.ready = threading.Event()
        self.paused: dict[int, _Backoff] = {}
        self._task_backoff: dict[TaskKey, int] = {}
        self._first_pass: set[TaskKey] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._slots = threading.Semaphore(concurrency)
        self._executor: ThreadPoolExecutor | None = None
        self._threads: list[threading.Thread] = []
        store.subscribe(self._on_membership)

    # --- membership ------------------------------------------------------------------------
    def _on_membership(self, added: list[TaskKey], removed: list[TaskKey]) -> None:
        now = self.clock()
        for key in filter(self.owns, added):
            record = self.store.get(key)
            if record is not None and record.pollable:
                self.scheduler.schedule(key, now)
        for key in removed:
            self.scheduler.discard(key)
            with self._lock:
                self._task_backoff.pop(key, None)
                self._first_pass.discard(key)
        self._check_ready()

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        now = self.clock()
        for record in self.store.snapshot():
            if record.pollable and self.owns(record.key):
                self.scheduler.schedule(record.key, now)
                self._first_pass.add(record.key)
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="poll")
        self._check_ready()
        for target, name in ((self._dispatch_loop, "dispatcher"), (self._housekeeping_loop, "housekeeping")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self.scheduler.cond:
            self.scheduler.cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def _check_ready(self) -> None:
        with self._lock:
            if self._executor is not None and not self._first_pass:
                self.ready.set()

    # --- the loop --------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._dispatch_one()
            except Exception:  # the loop must survive anything; log and go on
                log.exception("collector dispatcher error (continuing)")
                self._stop.wait(1.0)

    def _dispatch_one(self) -> None:
        if not self.scheduler.wait_due(self.clock, self._stop):
            return
        popped = self.scheduler.pop_due(self.clock())
        if popped is None:
            return
        key, due = popped
        deferred_until = self._account_gate(key[0])
        if deferred_until is not None:
            self.scheduler.schedule(key, deferred_until)  # costs no request slot: checked before pacing
            return
        self._slots.acquire()
        handed_over = False
        try:
            if self.limiter.acquire(self._stop):
                assert self._executor is not None
                self._executor.submit(self._poll_guarded, key, due)
                handed_over = True
        finally:
            if not handed_over:
                self._slots.release()
                self.scheduler.schedule(key, due)

    def _account_gate(self, sdk_app_id: int) -> float | None:
        """None to poll now; else when to try again, while the SdkAppId is paused or being probed."""
        now = self.clock()
        with self._lock:
            state = self.paused.get(sdk_app_id)
            if state is None:
                return None
            if state.until > now:
                return state.until
            if state.probing:
                return now + min(self.interval, 1.0)
            state.probing = True  # this task's request is the probe
            return None

    def _poll_guarded(self, key: TaskKey, due: float) -> None:
        try:
            self.poll(key, due)
        except Exception:
            log.exception("unexpected error polling task %s:%s (continuing)", *key)
            if self.store.get(key) is not None:
                self.scheduler.schedule(key, self.clock() + self.interval)
        finally:
            self._slots.release()
            with self._lock:
                self._first_pass.discard(key)
                state = self.paused.get(key[0])
                if state is not None:
                    state.probing = False  # whatever the probe found, the next one may go
            self._check_ready()

    def lag(self) -> float:
        """How overdue the most overdue active task is (0 when the budget keeps up)."""
        earliest = self.scheduler.earliest()
        if earliest is None:
            return 0.0
        return max(0.0, self.clock() - earliest)

    # --- one poll ----------------------------------------------------------------------------
    def poll(self, key: TaskKey, due: float) -> None:
        record = self.store.get(key)
        if record is None or not record.pollable:
            return
        sdk_app_id, task_id = key
        try:
            task = self.describe(sdk_app_id, task_id)
        except CallFailure as failure:
            self._on_failure(key, due, failure)
            return
        now = self.clock()
        updated = self.store.update(key, lambda r: merge_result(r, task, now))
        with self._lock:
            self._task_backoff.pop(key, None)
            self.paused.pop(sdk_app_id, None)
        if updated is not None and updated.active:
            self.scheduler.schedule(key, now + self.interval)

    def _on_failure(self, key: TaskKey, due: float, failure: CallFailure) -> None:
        sdk_app_id = key[0]
        now = self.clock()
        self.on_api_error(sdk_app_id, failure.code)
        if isinstance(failure, ApiError) and failure.outcome == "throttled":
            self.limiter.throttled()
            self.scheduler.schedule(key, due)  # keep its place at the front of the queue
            return
        error = TaskError(failure.code, failure.message[:500], failure.request_id, now)
        if self.store.update(key, lambda r: merge_error(r, error)) is None:
            return
        log.warning("task %s:%s query failed: %s", sdk_app_id, key[1], failure)
        if isinstance(failure, ApiError) and failure.account_level and failure.code != "AuthFailure.SignatureExpire":
            self.scheduler.schedule(key, self._pause_account(sdk_app_id, failure.code, now))
            return
        with self._lock:
            self.paused.pop(sdk_app_id, None)  # the account answered: only this task has a problem
        transient = not isinstance(failure, ApiError) or failure.code.startswith(
            ("InternalError", "AuthFailure.SignatureExpire")
        )
        if transient:
            retry_in = min(self.interval, 5.0) if failure.retryable else self.interval
            self.scheduler.schedule(key, now + retry_in)
            return
        with self._lock:
            failures = self._task_backoff.get(key, 0) + 1
            self._task_backoff[key] = failures
        self.scheduler.schedule(key, now + backoff_delay(self.interval, failures, self.max_backoff))

    def _pause_account(self, sdk_app_id: int, code: str, now: float) -> float:
        """Pause the SdkAppId (one backoff step per probe); returns when the pause ends."""
        with self._lock:
            current = self.paused.get(sdk_app_id) or _Backoff()
            if current.until > now:
                return current.until  # several in-flight requests failed together: one pause step
            failures = current.failures + 1
            until = now + backoff_delay(self.interval, failures, self.max_backoff)
            self.paused[sdk_app_id] = _Backoff(failures, until, code)
        log.error("SdkAppId %s paused for %.1fs after %s", sdk_app_id, until - now, code)
        return until

    def paused_accounts(self) -> dict[int, str]:
        """SdkAppIds paused (or probing after a pause), with the error code that paused them."""
        with self._lock:
            return {app: b.code for app, b in self.paused.items()}

    # --- retention ---------------------------------------------------------------------------
    def _housekeeping_loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.expire_finished()
                self.scheduler.compact()
            except Exception:
                log.exception("collector housekeeping error (continuing)")

    def expire_finished(self) -> int:
        """Drop stopped tasks past ``finished_retention``; configured ones are retired, not removed."""
        cutoff = self.clock() - self.finished_retention
        expired = 0
        for record in self.store.snapshot():
            if record.retired or record.stopped_seen_at is None or record.stopped_seen_at > cutoff:
                continue
            if not self.owns(record.key):
                continue
            expired += 1
            if record.sources & CONFIG_SOURCES:
                self.store.update(record.key, _retire)
            else:
                self.store.remove(record.key)
        return expired


def _retire(record: TaskRecord) -> TaskRecord:
    return replace(record, retired=True)
