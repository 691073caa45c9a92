"""The poll scheduler: lifecycle, error classes, fairness and pacing (fake API, real threads)."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict

import pytest

from exporter.collector import Collector
from exporter.model import PushTask
from exporter.ratelimit import HEADROOM, PacedLimiter
from exporter.scheduler import Scheduler
from exporter.store import TaskStore
from exporter.tencentcloud.errors import ApiError, TimeoutFailure
from tests.constants import APP
from tests.fakes import FakeClock
from tests.harness import eventually


class FakeApi:
    """Answers per task from a script: a list of PushTask statuses or exceptions, last one repeating."""

    def __init__(self) -> None:
        self.scripts: dict[str, list] = {}
        self.calls: Counter[str] = Counter()
        self.times: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, sdk_app_id: int, task_id: str) -> PushTask:
        with self.lock:
            self.calls[task_id] += 1
            self.times.append(time.monotonic())
            script = self.scripts.get(task_id, ["PUSHING"])
            step = script[min(self.calls[task_id], len(script)) - 1]
        if isinstance(step, Exception):
            raise step
        return PushTask(sdk_app_id, task_id, step, finish_reason="AUTO" if step == "STOPPED" else "")


def make(api=None, rate=1000.0, clock=None, **kwargs):
    store = TaskStore(clock=clock or time.time)
    collector = Collector(store, api or FakeApi(), PacedLimiter(rate), clock=clock or time.time, **kwargs)
    return store, collector


def run_fleet(api: FakeApi, tasks: int, seconds: float, **kwargs) -> Collector:
    """Track ``tasks`` tasks and let the collector poll them for ``seconds``."""
    store, collector = make(api, **kwargs)
    for i in range(tasks):
        store.add((APP, f"t{i}"), "api")
    collector.start()
    try:
        time.sleep(seconds)  # kept: the assertions count the polls of this window
    finally:
        collector.stop()
    return collector


def test_stopped_task_is_not_polled_again():
    api = FakeApi()
    api.scripts["t"] = ["PREPARED", "PUSHING", "STOPPED"]
    store, collector = make(api, interval=0.05)
    store.add((APP, "t"), "api")
    collector.start()
    try:
        assert eventually(lambda: store.get((APP, "t")).status == "STOPPED")
        time.sleep(0.3)  # kept: nothing may happen in six 0.05 s intervals (no further poll)
        assert api.calls["t"] == 3
        assert (APP, "t") not in collector.scheduler
    finally:
        collector.stop()


def test_stopped_task_is_dropped_after_retention_and_configured_ones_are_retired():
    clock = FakeClock()
    api = FakeApi()
    api.scripts = {"a": ["STOPPED"], "b": ["STOPPED"]}
    store, collector = make(api, clock=clock, finished_retention=60)
    store.add((APP, "a"), "api")
    store.add((APP, "b"), "flag")
    collector.poll((APP, "a"), clock.now)
    collector.poll((APP, "b"), clock.now)
    clock.now += 59
    assert collector.expire_finished() == 0
    clock.now += 2
    assert collector.expire_finished() == 2
    assert store.get((APP, "a")) is None
    assert store.get((APP, "b")).retired


def test_task_level_errors_back_off_exponentially_up_to_the_cap():
    clock = FakeClock()
    api = FakeApi()
    api.scripts["t"] = [ApiError("InvalidParameterValue", "no such value", "r1")]
    store, collector = make(api, clock=clock, interval=15, max_backoff=300)
    store.add((APP, "t"), "api")
    delays = []
    for _ in range(7):
        collector.poll((APP, "t"), clock.now)
        delays.append(collector.scheduler.earliest() - clock.now)
    assert delays == [15, 30, 60, 120, 240, 300, 300]
    assert store.get((APP, "t")).last_error.code == "InvalidParameterValue"


def test_account_level_error_pauses_the_whole_sdk_app_id():
    clock = FakeClock()
    api = FakeApi()
    api.scripts["t1"] = [ApiError("AuthFailure.SecretIdNotFound", "who?", "r")]
    errors = []
    store, collector = make(api, clock=clock, interval=10, on_api_error=lambda app, code: errors.append((app, code)))
    store.add((APP, "t1"), "api")
    store.add((APP, "t2"), "api")
    collector.poll((APP, "t1"), clock.now)
    assert collector.paused_sdk_app_ids() == {APP: "AuthFailure.SecretIdNotFound"}
    assert errors == [(APP, "AuthFailure.SecretIdNotFound")]
    assert collector.pauses.gate(APP, clock.now, probe_wait=1.0) == clock.now + 10  # t2 waits too
    clock.now += 11
    assert collector.pauses.gate(APP, clock.now, probe_wait=1.0) is None  # the first task after the pause is the probe
    assert collector.pauses.gate(APP, clock.now, probe_wait=1.0) == clock.now + 1  # the others wait for its answer
    collector.poll((APP, "t2"), clock.now)  # the probe succeeds: the account works again
    assert collector.paused_sdk_app_ids() == {}


def test_throttling_slows_the_limiter_and_keeps_the_task_first_in_line():
    clock = FakeClock()
    api = FakeApi()
    api.scripts["t"] = [ApiError("RequestLimitExceeded", "slow down", "r"), "PUSHING"]
    store, collector = make(api, clock=clock)
    store.add((APP, "t"), "api")
    before = collector.limiter.current_rate
    collector.poll((APP, "t"), clock.now - 5)
    assert collector.limiter.current_rate == pytest.approx(before / 2)
    assert collector.scheduler.earliest() == clock.now - 5
    assert store.get((APP, "t")).last_error is None  # throttling is not the task's fault


def test_transient_failure_keeps_last_good_values_and_retries_soon():
    clock = FakeClock()
    api = FakeApi()
    api.scripts["t"] = ["PUSHING", TimeoutFailure("ClientError.Timeout", "read timeout")]
    store, collector = make(api, clock=clock, interval=15)
    store.add((APP, "t"), "api")
    collector.poll((APP, "t"), clock.now)
    collector.poll((APP, "t"), clock.now)
    record = store.get((APP, "t"))
    assert record.status == "PUSHING" and record.last_error.code == "ClientError.Timeout"
    assert collector.scheduler.earliest() - clock.now == 5


def test_unexpected_exception_in_a_poll_does_not_stop_the_loop():
    api = FakeApi()
    api.scripts["bad"] = [RuntimeError("bug")]
    store, collector = make(api, interval=0.05)
    store.add((APP, "bad"), "api")
    store.add((APP, "good"), "api")
    collector.start()
    try:
        assert eventually(lambda: api.calls["good"] >= 3 and api.calls["bad"] >= 2)
    finally:
        collector.stop()


@pytest.mark.slow
def test_budget_short_of_tasks_serves_most_overdue_first_and_starves_none():
    api = FakeApi()
    collector = run_fleet(api, 100, 3, rate=100, interval=0.5, concurrency=4)  # needs 200 req/s, has ~96
    counts = [api.calls[f"t{i}"] for i in range(100)]
    assert min(counts) >= 1
    assert max(counts) - min(counts) <= 1, counts
    assert collector.lag() > 0


@pytest.mark.slow
def test_requests_are_paced_evenly_within_the_rate():
    api = FakeApi()
    run_fleet(api, 30, 2.2, rate=50, interval=0.01, concurrency=8)
    times = sorted(api.times)
    per_window = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert per_window <= 50
    assert len(times) >= 80  # it does use the budget


def test_scheduler_pops_most_overdue_and_skips_discarded():
    scheduler = Scheduler()
    scheduler.schedule((1, "late"), 5)
    scheduler.schedule((1, "later"), 7)
    scheduler.schedule((1, "gone"), 1)
    scheduler.discard((1, "gone"))
    scheduler.schedule((1, "later"), 3)  # rescheduled earlier: the old entry is stale
    assert scheduler.pop_due(10) == ((1, "later"), 3)
    assert scheduler.pop_due(10) == ((1, "late"), 5)
    assert scheduler.pop_due(10) is None


def test_limiter_recovers_after_throttling():
    now = [0.0]
    limiter = PacedLimiter(20, clock=lambda: now[0])
    limiter.throttled()
    assert limiter.current_rate == pytest.approx(20 * HEADROOM / 2)
    now[0] += 30
    assert limiter.current_rate == pytest.approx(20 * HEADROOM)


def test_removed_task_is_not_polled():
    api = FakeApi()
    store, collector = make(api, interval=0.05)
    store.add((APP, "t"), "api")
    collector.start()
    try:
        assert eventually(lambda: api.calls["t"] >= 1)
        store.remove((APP, "t"))
        time.sleep(0.1)  # kept: a poll already handed to a worker may still land
        calls = api.calls["t"]
        time.sleep(0.3)  # kept: nothing may happen in six 0.05 s intervals (no further poll)
        assert api.calls["t"] == calls
    finally:
        collector.stop()


def test_poll_counts_by_task_stay_balanced_with_many_workers():
    api = FakeApi()
    run_fleet(api, 40, 1.5, rate=400, interval=0.2, concurrency=8)
    by_count = defaultdict(int)
    for i in range(40):
        by_count[api.calls[f"t{i}"]] += 1
    assert min(by_count) >= 5


@pytest.mark.slow
def test_a_paused_account_costs_no_request_slots_and_probes_with_one_request():
    api = FakeApi()
    for i in range(40):
        api.scripts[f"bad{i}"] = [ApiError("ResourceUnavailable.ServiceExpired", "pay the bill", "r")]
    store, collector = make(api, rate=20, interval=0.5, concurrency=4)
    bad_app = APP + 1
    for i in range(40):
        store.add((bad_app, f"bad{i}"), "api")
    for i in range(5):
        store.add((APP, f"good{i}"), "api")
    collector.start()
    try:
        time.sleep(3)  # kept: the assertions count the polls of this window (pauses of 0.5 s, 1 s, 2 s)
    finally:
        collector.stop()
    bad_calls = sum(api.calls[f"bad{i}"] for i in range(40))
    assert bad_calls <= 4 + 4  # the first in-flight batch, then one probe per pause (0.5 s, 1 s, 2 s)
    assert all(api.calls[f"good{i}"] >= 4 for i in range(5))


def test_stop_lets_a_poll_in_flight_land_and_ignores_failures_caused_by_stopping():
    """The last state save after stop() must hold a poll that was answering; a connection closed by the
    stop itself is not the task's error."""
    answering, release = threading.Event(), threading.Event()

    def describe(sdk_app_id: int, task_id: str) -> PushTask:
        answering.set()
        release.wait(5)
        if task_id == "closing":
            raise TimeoutFailure("ClientError.Timeout", "connection closed while stopping")
        return PushTask(sdk_app_id, task_id, "STOPPED", finish_reason="AUTO")

    for task_id, landed in (("answering", lambda r: r.final), ("closing", lambda r: r.last_error is None)):
        answering.clear()
        release.clear()
        store, collector = make(describe, interval=60.0)
        store.add((APP, task_id), "api")
        collector.start()
        assert answering.wait(5)
        threading.Timer(0.2, release.set).start()  # the answer arrives while stop() is under way
        collector.stop(timeout=5.0)
        assert landed(store.get((APP, task_id))), task_id
