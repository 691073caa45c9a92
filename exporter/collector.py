"""The poller: one dispatcher hands due tasks to ``concurrency`` workers, most overdue first.

Each request is paced by the account's ``PacedLimiter``; results go into the ``TaskStore``. What a
failed query does is decided by the error table (``exporter.errors``):

* ``THROTTLE``: the limiter slows down; the task keeps its place;
* ``PAUSE_SDK_APP_ID``: the whole SdkAppId pauses with backoff (``pauses.py``); visible in metrics;
* ``PAUSE_CREDENTIAL``: every SdkAppId of the account pauses (a refused key, a wrong region...);
* ``RETRY``: transient; recorded, queried again at the next interval (sooner when the client may
  retry it) — the last good values stay exported;
* ``TASK_FAILED`` / ``TASK_NOT_FOUND``: queried once more at the next interval; confirmed, the task
  is final (``lifecycle.py``) and never polled again;
* ``TASK_BACKOFF``: recorded on the task, retried with exponential backoff capped at ``max_backoff``.

With liveness (``liveness.py``) the detail budget is spent adaptively: a task that just left the
running list is queried first (``urgent``); how soon each task is due again is ``cadence.py``.

Nothing a single request does can stop the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any

from exporter.backoff import exponential_backoff
from exporter.cadence import Cadence, LivenessView
from exporter.errors import UNKNOWN, CollectorAction, disposition
from exporter.kinds import KINDS
from exporter.lifecycle import (
    FAILED,
    NOT_FOUND,
    TaskError,
    TaskRecord,
    answer_anomalies,
    end,
    merge_error,
    merge_result,
)
from exporter.logs import task_fields
from exporter.model import Answer, TaskKey, key_kind
from exporter.pauses import SdkAppIdPauses
from exporter.periodic import Periodic
from exporter.ratelimit import PacedLimiter
from exporter.retention import expire_finished
from exporter.scheduler import Scheduler
from exporter.store import TaskStore
from exporter.tencentcloud.errors import CallFailure

log = logging.getLogger(__name__)

Describe = Callable[[int, str], Answer]  # (SdkAppId, TaskId): the Describe action of this collector's kind

MAX_DEFERRED_PER_SLOT = 1000  # paused tasks put back before a request slot is given up
NOT_FOUND_GRACE = 120.0  # a task just started may not be visible yet: TaskNotFound is final only after this


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
        on_anomaly: Callable[[str], None] = lambda kind: None,
        clock: Callable[[], float] = time.time,
        in_account: Callable[[TaskKey], bool] = lambda key: True,
        account: str = "default",
        not_found_grace: float = NOT_FOUND_GRACE,
        publish: Callable[..., Any] = lambda **changes: None,
    ) -> None:
        self.store = store
        self.in_account = in_account  # which tracked tasks are this collector's account's: it polls and expires those
        self.describe = describe
        self.limiter = limiter
        self.interval = interval
        self.concurrency = concurrency
        self.finished_retention = finished_retention
        self.max_backoff = max_backoff
        self.on_api_error = on_api_error
        self.on_anomaly = on_anomaly
        self.clock = clock
        self.not_found_grace = not_found_grace
        self.publish = publish  # this account's PollState: pauses and lag, each housekeeping tick
        self.scheduler = Scheduler()
        self.cadence = Cadence(interval, limiter, self.scheduler)
        self.pauses = SdkAppIdPauses(interval, max_backoff, account)
        self._task_backoff: dict[TaskKey, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._slots = threading.Semaphore(concurrency)
        self._executor: ThreadPoolExecutor | None = None
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="dispatcher", daemon=True)
        self._housekeeping = Periodic("housekeeping", 1.0, self._housekeep)
        store.subscribe(self._on_membership)

    # --- membership ------------------------------------------------------------------------
    def _on_membership(self, added: list[TaskKey], removed: list[TaskKey]) -> None:
        now = self.clock()
        for key in filter(self.in_account, added):
            record = self.store.get(key)
            if record is not None and record.pollable:
                self.scheduler.schedule(key, now)
        for key in removed:
            self.scheduler.discard(key)
            self.cadence.forget(key)
            with self._lock:
                self._task_backoff.pop(key, None)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._schedule_all_restored()
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="poll")
        self._dispatcher.start()
        self._housekeeping.start()

    def _schedule_all_restored(self) -> None:
        now = self.clock()
        restored = [r for r in self.store.snapshot() if r.pollable and self.in_account(r.key)]
        steady = self._restored_steady_interval(sum(1 for r in restored if r.steady))
        for record in restored:
            self._schedule_restored(record, now, steady)

    def _restored_steady_interval(self, steady: int) -> float:
        """What a restored steady task's (PUSHING, RECORDING) detail interval will most likely be: the
        cadence's steady interval once liveness confirms them (without liveness, the interval)."""
        if self.cadence.liveness is None:
            return self.interval
        return self.cadence.stretched(steady, 0)

    def _schedule_restored(self, record: TaskRecord, now: float, steady: float) -> None:
        """Due from its last answer, as if the exporter had never stopped: a restart re-polls what is
        due, not all N tasks at once (543 s of the budget at 10,000). Never answered: due now. A task
        that stopped meanwhile is found by liveness' first pass, which asks it first."""
        if record.last_success is None:
            self.scheduler.schedule(record.key, now)
            return
        self._schedule_after(record.key, record.last_success, steady if record.steady else self.interval)

    def _schedule_after(self, key: TaskKey, answered_at: float, interval: float) -> None:
        """Due ``interval`` after an answer; a steady task stretched past the interval may be polled
        early, from an interval after its answer on, when a request slot would idle."""
        early = answered_at + self.interval if interval > self.interval else None
        self.scheduler.schedule(key, answered_at + interval, early=early)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self.scheduler.cond:
            self.scheduler.cond.notify_all()
        self._housekeeping.stop(timeout)
        if self._dispatcher.is_alive():
            self._dispatcher.join(timeout=timeout)
        if self._executor is not None:  # polls in flight finish (bounded), so the last state save has them
            executor = self._executor
            drain = threading.Thread(target=lambda: executor.shutdown(wait=True, cancel_futures=True),
                                     name="collector-drain", daemon=True)
            drain.start()
            drain.join(timeout=timeout)

    # --- the loop --------------------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._dispatch_one()
            except Exception:  # the loop must survive anything; log and go on
                log.exception("collector dispatcher error (continuing)")
                self._stop.wait(1.0)

    def _dispatch_one(self) -> None:
        if not self.scheduler.wait_work(self.clock, self._stop):
            return
        self._slots.acquire()
        handed_over = False
        try:
            # the request slot first, then the task: the choice is made when the request can leave
            if self.limiter.acquire(self._stop):
                popped = self._next_task()
                if popped is not None:
                    assert self._executor is not None
                    self._executor.submit(self._poll_guarded, *popped)
                    handed_over = True
        finally:
            if not handed_over:
                self._slots.release()

    def _next_task(self) -> tuple[TaskKey, float] | None:
        """The most overdue task (urgent ones first), else the stalest steady one ahead of its time
        (the budget's spare share); tasks of a paused SdkAppId are put back at their pause's end."""
        for _ in range(MAX_DEFERRED_PER_SLOT):
            now = self.clock()
            popped = self.scheduler.pop_due(now) or self.scheduler.pop_ahead(now)
            if popped is None:
                return None
            deferred_until = self.pauses.gate(popped[0][0], now, probe_wait=min(self.interval, 1.0))
            if deferred_until is None:
                return popped
            self.scheduler.schedule(popped[0], deferred_until)  # costs no request: checked before sending
        return None

    def _poll_guarded(self, key: TaskKey, due: float) -> None:
        try:
            self.poll(key, due)
        except Exception:
            log.exception("unexpected error polling task %s:%s (continuing)", key[0], key[1])
            if self.store.get(key) is not None:
                self.scheduler.schedule(key, self.clock() + self.interval)
        finally:
            self._slots.release()
            self.pauses.probe_done(key[0])

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
        sdk_app_id = key[0]
        try:
            task = self.describe(sdk_app_id, key[1])
        except CallFailure as failure:
            if not self._stop.is_set():  # a failure while stopping is ours (connections closing), not the task's
                self._on_failure(key, due, failure)
            return
        now = self.clock()
        for kind in answer_anomalies(record.latest, task, now):
            self.on_anomaly(kind)
        updated = self.store.update(key, lambda r: merge_result(r, task, now))
        with self._lock:
            self._task_backoff.pop(key, None)
        if record.latest is not None and task.exception_cnt > record.latest.exception_cnt:
            self.cadence.exceptions_rose(key, now)
        left = self.cadence.answered(key)
        self._lift(sdk_app_id)
        if updated is not None and updated.active:
            if left and updated.status not in updated.spec.reason_statuses:  # a STOPPED recording left as it should
                log.info("%s %s:%s left the running list but is still %s (created over 3 days ago?); "
                         "polled one by one instead", updated.spec.noun, sdk_app_id, key[1], updated.status)
            self._schedule_after(key, now, self.cadence.next_interval(key, updated, now))

    # --- adaptive detail polling -----------------------------------------------------------------
    def urgent(self, key: TaskKey) -> None:
        """Query ``key`` before anything else (it just left the running list)."""
        record = self.store.get(key)
        if record is None or not record.pollable or not self.in_account(key):
            return
        self.cadence.left_the_list(key)
        self.scheduler.schedule(key, self.clock(), urgent=True)

    @property
    def liveness(self) -> LivenessView | None:
        return self.cadence.liveness

    @liveness.setter
    def liveness(self, view: LivenessView | None) -> None:
        """Set by accounts when liveness runs: steady covered tasks then stretch their detail polls."""
        self.cadence.liveness = view

    def _on_failure(self, key: TaskKey, due: float, failure: CallFailure) -> None:
        sdk_app_id = key[0]
        now = self.clock()
        self.on_api_error(sdk_app_id, failure.code)
        meaning = disposition(failure.code)
        if meaning.collector is CollectorAction.TASK_FAILED and not KINDS[key_kind(key)].failed_by(failure.code):
            meaning = UNKNOWN  # another kind's failure code: a problem of this task alone
        if meaning.collector is CollectorAction.THROTTLE:
            self.limiter.throttled()
            self.scheduler.schedule(key, due)  # keep its place at the front of the queue
            return
        error = TaskError(failure.code, failure.message[:500], failure.request_id, now)
        record = self.store.update(key, lambda r: merge_error(r, error))
        if record is None:
            return
        # A task not found yet answers so on every poll of its grace period: said once, not each time
        repeated = meaning.collector is CollectorAction.TASK_NOT_FOUND and record.error_streak > 1
        log.log(logging.DEBUG if repeated else logging.WARNING, "%s %s:%s query failed: %s", record.spec.noun,
                sdk_app_id, key[1], failure, extra=task_fields(sdk_app_id, key[1], failure.code))
        if meaning.collector is CollectorAction.PAUSE_CREDENTIAL:
            self.scheduler.schedule(key, self.pauses.pause_credential(failure.code, now))
            self.publish_state()  # a pause shows in the next scrape, not a housekeeping tick later
            return
        if meaning.collector is CollectorAction.PAUSE_SDK_APP_ID:
            self.scheduler.schedule(key, self.pauses.pause(sdk_app_id, failure.code, now))
            self.publish_state()
            return
        self._lift(sdk_app_id)  # the SdkAppId answered: only this task has a problem
        if meaning.collector is CollectorAction.RETRY:
            retry_in = min(self.interval, 5.0) if meaning.client_retry else self.interval
            self.scheduler.schedule(key, now + retry_in)
            return
        if meaning.collector in (CollectorAction.TASK_FAILED, CollectorAction.TASK_NOT_FOUND):
            if not self._ended(record, meaning.collector, now):
                self.scheduler.schedule(key, now + self.interval)  # the next answer confirms it (or not)
            return
        with self._lock:
            failures = self._task_backoff.get(key, 0) + 1
            self._task_backoff[key] = failures
        self.scheduler.schedule(key, now + exponential_backoff(self.interval, failures - 1, self.max_backoff))

    def _ended(self, record: TaskRecord, action: CollectorAction, now: float) -> bool:
        """Make the task final when its error answer is confirmed (see ``lifecycle``); True if it is."""
        confirmed = record.error_streak >= 2
        if action is CollectorAction.TASK_NOT_FOUND:
            confirmed = confirmed and now - (record.error_since or now) >= self.not_found_grace
        if not confirmed:
            return False
        ending = FAILED if action is CollectorAction.TASK_FAILED else NOT_FOUND
        self.store.update(record.key, lambda r: end(r, ending, now))
        code = record.last_error.code if record.last_error else ""
        log.warning("%s %s:%s is final: %s (%s)", record.spec.noun, record.sdk_app_id, record.task_id, ending, code,
                    extra=task_fields(record.sdk_app_id, record.task_id, code))
        return True

    def paused_sdk_app_ids(self) -> dict[int, str]:
        """SdkAppIds paused (or probing after a pause), with the error code that paused them.

        While the whole credential is paused, every SdkAppId this collector has tasks of is paused too.
        """
        paused = self.pauses.current()
        code = self.pauses.credential_pause()
        if code is not None:
            for record in self.store.snapshot():
                if self.in_account(record.key):
                    paused.setdefault(record.sdk_app_id, code)
        return paused

    def credential_pause(self) -> str | None:
        """The code that paused this account's whole credential, if it is paused."""
        return self.pauses.credential_pause()

    # --- the credential, as the account's other loops (liveness, discovery) see it --------------------
    def credential_waiting(self) -> bool:
        """The key was refused and its pause has not run out: ask the API nothing meanwhile."""
        until = self.pauses.credential_waits_until()
        return until is not None and until > self.clock()

    def credential_refused(self, code: str) -> None:
        """Another action was refused the key: pause (with backoff) as a refused poll would."""
        self.pauses.pause_credential(code, self.clock())
        self.publish_state()

    def credential_answered(self) -> None:
        """Another action answered with the key: it works again."""
        if self.pauses.lift_credential():
            self.publish_state()

    # --- retention ---------------------------------------------------------------------------
    def _housekeep(self) -> None:
        self.expire_finished()
        self.scheduler.compact()
        self.publish_state()

    def _lift(self, sdk_app_id: int) -> None:
        if self.pauses.lift(sdk_app_id):
            self.publish_state()

    def publish_state(self) -> None:
        """What scrapes read of this collector (``pollstate.PollState``), as of now."""
        self.publish(credential_pause=self.pauses.credential_pause(),
                     paused_sdk_app_ids=MappingProxyType(self.paused_sdk_app_ids()), lag=self.lag())

    def expire_finished(self) -> int:
        """Drop stopped tasks past ``finished_retention``; configured ones are retired, not removed."""
        return expire_finished(self.store, self.clock() - self.finished_retention, self.in_account)
