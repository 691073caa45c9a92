"""Liveness from DescribeRunningTasks, over real HTTP against the simulator; adaptive detail polling."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from exporter.collector import Collector
from exporter.discovery import PAGE_OVERLAP, PAGE_SIZE, REPROBE_SECONDS, list_running
from exporter.freshness import Freshness, FreshnessIndex, FreshnessSnapshots, quantiles
from exporter.lifecycle import TaskRecord, answer_anomalies, merge_result
from exporter.liveness import PAGE_CONCURRENCY, STALE_AFTER_PASSES, Liveness
from exporter.model import PushTask, RunningTask
from exporter.periodic import Periodic
from exporter.pollstate import PollStates
from exporter.ratelimit import HEADROOM, PacedLimiter
from exporter.simulator import Simulator, TaskScript
from exporter.store import TaskStore
from exporter.tencentcloud.credentials import Credential
from exporter.tencentcloud.errors import ApiError
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.fakes import FakeClock, freshness_of
from tests.harness import eventually, metric, running_exporter, scrape

DAY = 86400.0


@pytest.fixture
def simulator():
    with Simulator(credentials={SECRET_ID: SECRET_KEY}, rate_limit=20) as sim:
        yield sim


def exporter_for(simulator: Simulator, *task_ids: str, **flags):
    """Polling alone would see a change only after a minute: anything sooner is liveness' doing."""
    flags.setdefault("interval", "60s")
    flags.setdefault("liveness_interval", "0.3s")
    return running_exporter(simulator.url, Credential(SECRET_ID, SECRET_KEY),
                            tasks=tuple(f"{APP}:{t}" for t in task_ids), **flags)


@pytest.mark.slow
def test_a_task_leaving_the_running_list_is_queried_at_once_and_ends(simulator):
    steady = simulator.add_task(APP, TaskScript(prepare_seconds=0))
    stopping = simulator.add_task(APP, TaskScript(prepare_seconds=0, push_seconds=2, finish_reason="USER_CALL"))
    with exporter_for(simulator, steady, stopping) as exporter:
        liveness = exporter.accounts.by_name["default"].kinds["push"].liveness
        eventually(lambda: liveness.covered((APP, stopping)), timeout=10)  # seen on the list
        record = eventually(lambda: (r := exporter.store.get((APP, stopping))) and r.final and r, timeout=15)
        assert record.finish_reason == "USER_CALL"
        describes = simulator.stats()["describes_by_task"]
        assert describes[stopping] == 2  # the first query, then the one the list's change asked for
        assert describes[steady] == 1  # the steady one waits for its (adaptive) interval
        found = eventually(lambda: (text := scrape(exporter.url)) and  # measured once per liveness pass
                           metric(text, "tiw_exporter_liveness_tasks", mode="listed") == 1 and text, timeout=5)
        assert metric(found, "tiw_exporter_coverage_ratio") == 1
        assert metric(found, "tiw_exporter_data_age_seconds", kind="liveness", quantile="0.5") is not None


def test_tasks_older_than_the_lists_window_are_polled_one_by_one(simulator):
    old = simulator.add_task(APP, TaskScript(prepare_seconds=0), created_at=time.time() - 4 * DAY)
    with exporter_for(simulator, old, interval="0.5s") as exporter:
        eventually(lambda: simulator.stats()["describes_by_task"][old] >= 3, timeout=15)
        assert not exporter.accounts.by_name["default"].kinds["push"].liveness.covered((APP, old))
        assert metric(scrape(exporter.url), "tiw_exporter_liveness_tasks", mode="polled") == 1


@pytest.mark.slow
def test_an_account_without_the_action_falls_back_to_polling_visibly(simulator, caplog):
    simulator.set_fault("invalid_action", action="DescribeRunningTasks")
    task = simulator.add_task(APP, TaskScript(prepare_seconds=0, push_seconds=2))
    with caplog.at_level(logging.WARNING, logger="exporter.liveness"), \
            exporter_for(simulator, task, interval="0.5s") as exporter:
        eventually(lambda: (r := exporter.store.get((APP, task))) and r.final, timeout=15)
        found = scrape(exporter.url)
        assert metric(found, "tiw_exporter_liveness_unsupported", sdk_app_id=APP, code="InvalidAction") == 1
        # it is final now, from the next freshness measure on (once per liveness pass)
        eventually(lambda: metric(scrape(exporter.url), "tiw_exporter_liveness_tasks", mode="polled") == 0, timeout=5)
    fallbacks = [r for r in caplog.records if "polled one by one instead" in r.getMessage()]
    assert len(fallbacks) == 1  # one line, not one per pass


def test_liveness_can_be_turned_off(simulator):
    task = simulator.add_task(APP, TaskScript(prepare_seconds=0))
    with exporter_for(simulator, task, liveness_interval="0", interval="0.5s") as exporter:
        eventually(lambda: simulator.stats()["describes_by_task"][task] >= 2, timeout=10)
        assert all(loops.liveness is None for a in exporter.accounts for loops in a.kinds.values())
        assert simulator.stats()["requests"].get("DescribeRunningTasks") is None


class FakeLiveness:
    def __init__(self, covered: int) -> None:
        self.count = covered

    def covered(self, key) -> bool:
        return True

    def covered_count(self) -> int:
        return self.count


def test_steady_tasks_share_the_detail_budget_left_evenly():
    store = TaskStore()
    collector = Collector(store, lambda app, task: None, PacedLimiter(20.0), interval=15.0)
    assert collector.cadence.steady_interval() == 15.0  # no liveness: every task every interval
    collector.liveness = FakeLiveness(covered=10_000)
    assert collector.cadence.steady_interval() == pytest.approx(10_000 / (20 * HEADROOM * 0.9))  # ~10 min at 10k
    collector.liveness = FakeLiveness(covered=100)
    assert collector.cadence.steady_interval() == 15.0  # never more often than --interval


def test_exceptions_that_rose_keep_a_task_on_the_interval():
    store = TaskStore(clock=lambda: 0.0)
    key = (APP, "hot")
    store.add(key, "api")
    answers = iter([PushTask(APP, "hot", "PUSHING", exception_cnt=0), PushTask(APP, "hot", "PUSHING", exception_cnt=3),
                    PushTask(APP, "hot", "PUSHING", exception_cnt=3)])
    collector = Collector(store, lambda app, task: next(answers), PacedLimiter(20.0), interval=15.0,
                          clock=lambda: 100.0)
    collector.liveness = FakeLiveness(covered=10_000)
    collector.poll(key, 0.0)
    assert collector.scheduler.earliest() == pytest.approx(100.0 + collector.cadence.steady_interval())
    collector.poll(key, 0.0)
    assert collector.scheduler.earliest() == 115.0  # exceptions rose: hot, every interval
    collector.poll(key, 0.0)
    assert collector.scheduler.earliest() == 115.0  # still hot for HOT_PERIOD


def test_an_urgent_task_goes_before_overdue_ones():
    store = TaskStore()
    for name in ("late", "urgent"):
        store.add((APP, name), "api")
    collector = Collector(store, lambda app, task: None, PacedLimiter(20.0), clock=lambda: 50.0)
    collector.scheduler.schedule((APP, "late"), 1.0)
    collector.urgent((APP, "urgent"))
    assert collector.scheduler.pop_due(50.0) == ((APP, "urgent"), 50.0)
    assert collector.scheduler.pop_due(50.0) == ((APP, "late"), 1.0)


def test_freshness_index_follows_the_store_like_a_full_walk():
    store = TaskStore()
    for name in ("a", "b", "c", "d"):
        store.add((APP, name), "api")
    index = FreshnessIndex(store)
    seen = {(APP, "a"): 99.0, (APP, "d"): 50.0}
    covered = {(APP, "a")}

    def both() -> tuple[Freshness, Freshness]:
        walked = freshness_of(store.snapshot(), seen, covered, 100.0, 30.0)  # built afresh, not followed
        return index.measure(seen, covered, 100.0, 30.0), walked

    first, walked = both()
    assert first == walked and first.active == 4
    store.update((APP, "b"), lambda r: replace(r, last_success=95.0))
    store.update((APP, "c"), lambda r: replace(r, ended="FAILED"))  # final: no longer active
    store.remove((APP, "d"))
    second, walked = both()
    assert second == walked
    assert (second.active, second.listed, second.fresh) == (2, 1, 2)


def test_freshness_quantiles_and_coverage():
    assert quantiles([]) == {}
    assert quantiles([float(i) for i in range(1, 101)]) == {0.5: 50.0, 0.95: 95.0, 1.0: 100.0}
    fresh = TaskRecord(APP, "a", frozenset({"api"}), 0.0, last_success=95.0)
    stale = TaskRecord(APP, "b", frozenset({"api"}), 0.0, last_success=10.0)
    listed = TaskRecord(APP, "c", frozenset({"api"}), 0.0, last_success=10.0)
    seen = {listed.key: 99.0}
    result = freshness_of([fresh, stale, listed], seen, set(seen), 100.0, 30.0)
    assert (result.listed, result.polled, result.fresh, result.active) == (1, 2, 2, 3)
    assert result.coverage == pytest.approx(2 / 3)
    assert result.ages["liveness"] == {0.5: 1.0, 0.95: 1.0, 1.0: 1.0}
    assert result.ages["detail"][1.0] == 90.0


def test_the_covered_count_follows_each_pass_at_once_and_the_horizon_within_a_second():
    clock = FakeClock(1000.0)
    store = TaskStore()
    keys = [(APP, f"t{n}") for n in range(3)]
    for key in keys:
        store.add(key, "api")
    running = {"now": [RunningTask(APP, key[1], "PROCESSING") for key in keys]}
    liveness = Liveness(store, lambda app, offset, limit: (running["now"], len(running["now"])), PacedLimiter(1000.0),
                        interval=5.0, clock=clock)
    liveness.check_app(APP, keys)
    assert liveness.covered_count() == 3
    running["now"] = running["now"][:1]
    liveness.check_app(APP, keys)  # two left the list: not covered from this pass on, not a second later
    assert liveness.covered_count() == 1
    clock.advance(5.0 * STALE_AFTER_PASSES + 1)  # no pass for longer than the staleness limit
    assert liveness.covered_count() == 0


def test_the_running_list_is_liveness_never_status():
    """PROCESSING on the list most likely covers PREPARED too: a PREPARED task stays PREPARED, and the
    next PREPARED answer is no anomaly (the list once promoted it to PUSHING, then every answer was one)."""
    store = TaskStore()
    key = (APP, "preparing")
    store.add(key, "api")
    store.update(key, lambda r: merge_result(r, PushTask(APP, "preparing", "PREPARED"), 100.0))
    listed = [RunningTask(APP, "preparing", "PROCESSING")]
    liveness = Liveness(store, lambda app, offset, limit: (listed, 1), PacedLimiter(1000.0), clock=lambda: 101.0)
    liveness.check_app(APP, [key])
    assert liveness.covered(key)  # alive...
    record = store.get(key)
    assert record.status == "PREPARED" and record.latest.status == "PREPARED"  # ...and still what TIW said
    assert answer_anomalies(record.latest, PushTask(APP, "preparing", "PREPARED"), 102.0) == []


@pytest.mark.slow
def test_a_stuck_prepared_push_stays_prepared_with_liveness_on(simulator):
    stuck = simulator.add_task(APP, TaskScript(prepare_seconds=3600))
    with exporter_for(simulator, stuck, interval="0.5s") as exporter:
        liveness = exporter.accounts.by_name["default"].kinds["push"].liveness
        eventually(lambda: liveness.covered((APP, stuck)), timeout=10)  # on the running list
        eventually(lambda: simulator.stats()["describes_by_task"][stuck] >= 3, timeout=15)
        found = scrape(exporter.url)
        assert metric(found, "tiw_push_task_status", sdk_app_id=APP, task_id=stuck, status="PREPARED") == 1
        assert metric(found, "tiw_push_task_status", sdk_app_id=APP, task_id=stuck, status="PUSHING") == 0
        assert (metric(found, "tiw_exporter_answer_anomalies_total", kind="status_regressed") or 0) == 0


class RefusingList:
    """A DescribeRunningTasks that refuses with ``code`` until told to answer; counts the requests."""

    def __init__(self, code: str) -> None:
        self.code: str | None = code
        self.requests = 0

    def __call__(self, app: int, offset: int, limit: int) -> tuple[list[RunningTask], int]:
        self.requests += 1
        if self.code:
            raise ApiError(self.code, "refused", "r")
        return [RunningTask(APP, "t", "PROCESSING")], 1


@pytest.mark.parametrize("code", ["UnauthorizedOperation", "AuthFailure.UnauthorizedOperation", "InvalidAction"])
def test_a_permanent_refusal_falls_back_to_polling_is_said_once_and_asked_again_rarely(code, caplog):
    clock = FakeClock(1000.0)
    store = TaskStore()
    store.add((APP, "t"), "api")
    listing = RefusingList(code)
    liveness = Liveness(store, listing, PacedLimiter(1000.0), clock=clock)
    with caplog.at_level(logging.WARNING, logger="exporter.liveness"):
        for _ in range(5):
            liveness.run_pass()
            clock.advance(5.0)
    assert listing.requests == 1 and liveness.unsupported() == {APP: code}  # polled instead; metric label
    assert caplog.text.count("polled one by one instead") == 1
    clock.advance(REPROBE_SECONDS)
    listing.code = None  # e.g. the CAM policy now grants it
    liveness.run_pass()
    assert listing.requests == 2 and liveness.unsupported() == {} and liveness.covered((APP, "t"))


def test_liveness_asks_nothing_while_the_accounts_key_is_refused():
    clock = FakeClock(1000.0)
    store = TaskStore()
    store.add((APP, "t"), "api")
    collector = Collector(store, lambda app, task: None, PacedLimiter(20.0), clock=clock, interval=15.0)
    listing = RefusingList("AuthFailure.SecretIdNotFound")
    liveness = Liveness(store, listing, PacedLimiter(1000.0), clock=clock,
                        credential_paused=collector.credential_waiting,
                        credential_refused=collector.credential_refused,
                        credential_answered=collector.credential_answered)
    liveness.run_pass()
    assert collector.credential_pause() == "AuthFailure.SecretIdNotFound"  # paused, as a refused poll would
    for _ in range(2):  # within the pause (15 s): not every 5 s
        clock.advance(5.0)
        liveness.run_pass()
    assert listing.requests == 1
    listing.code = None
    clock.advance(10.0)  # the pause ran out: one probe, and the key works again
    liveness.run_pass()
    assert listing.requests == 2 and collector.credential_pause() is None


class ShiftingList:
    """A running list of ``count`` tasks in a fixed order, where ``ending`` tasks near the front end
    just after the first page is answered: every later task moves up, as on the real API."""

    def __init__(self, count: int, ending: int) -> None:
        self.tasks = [RunningTask(APP, f"t{n:05d}", "PROCESSING") for n in range(count)]
        self.ending = ending
        self.offsets: list[int] = []

    def __call__(self, app: int, offset: int, limit: int) -> tuple[list[RunningTask], int]:
        self.offsets.append(offset)
        page = self.tasks[offset: offset + limit]
        if offset == 0:
            del self.tasks[10: 10 + self.ending]
        return page, len(self.tasks)


@pytest.mark.parametrize("ending", [1, 7, PAGE_OVERLAP])
def test_tasks_that_end_during_a_pass_make_no_other_task_look_gone(ending):
    listing = ShiftingList(2600, ending)
    found = list_running(listing, PacedLimiter(1000.0), APP, threading.Event())
    names = {task.task_id for task in found}
    assert {task.task_id for task in listing.tasks} <= names  # every task still running was listed
    assert len(found) == len(names)  # the overlap lists a task twice: it is returned once


def test_a_list_longer_than_the_overlap_can_cover_says_so_by_a_missing_task():
    """The overlap is a bound, not magic: a shift past it loses the edge task (what the test above
    guards against is exactly this shift, up to ``PAGE_OVERLAP`` endings between two pages)."""
    listing = ShiftingList(1000, PAGE_OVERLAP + 5)
    found = {task.task_id for task in list_running(listing, PacedLimiter(1000.0), APP, threading.Event())}
    assert not {task.task_id for task in listing.tasks} <= found


def test_the_pages_after_the_first_are_asked_concurrently():
    """Each page waits for its own slot, but no page waits for another's answer: with a pool, the
    pages after the first meet at a barrier that sequential paging would never reach."""
    tasks = [RunningTask(APP, f"t{n}", "PROCESSING") for n in range(2 * PAGE_SIZE)]  # two pages after the first
    barrier = threading.Barrier(2, timeout=10)

    def page(app: int, offset: int, limit: int) -> tuple[list[RunningTask], int]:
        if offset:
            barrier.wait()  # two pages in flight at once, or BrokenBarrierError
        return tasks[offset: offset + limit], len(tasks)

    with ThreadPoolExecutor(max_workers=PAGE_CONCURRENCY) as pool:
        found = list_running(page, PacedLimiter(1000.0), APP, threading.Event(), pool)
    assert len(found) == len(tasks)


def test_a_restarted_exporter_asks_first_for_tasks_answered_before_it_started_and_no_longer_listed():
    clock = FakeClock(1000.0)
    store = TaskStore()
    for name in ("listed", "gone"):
        store.add((APP, name), "api")
        store.update((APP, name), lambda r, name=name: merge_result(r, PushTask(APP, name, "PUSHING"), 900.0))
    store.add((APP, "new"), "api")  # never answered: due now anyway, and not taken for gone
    urgent: list = []
    liveness = Liveness(store, lambda app, offset, limit: ([RunningTask(APP, "listed", "PROCESSING")], 1),
                        PacedLimiter(1000.0), urgent=urgent.append, clock=clock)
    liveness.run_pass()
    assert urgent == [(APP, "gone")]
    liveness.run_pass()  # the next pass compares with this one: "gone" is not news twice
    assert urgent == [(APP, "gone")]


def test_a_fixed_rate_loop_starts_every_period_however_long_its_work_takes():
    clock = FakeClock(100.0)
    loop = Periodic("p", 5.0, lambda: None, fixed_rate=True, clock=clock)
    clock.advance(1.5)  # the pass took 1.5 s: the next starts 3.5 s later, 5 s after this one began
    assert loop.wait_after(100.0) == 3.5
    clock.advance(10.0)  # overran: at once
    assert loop.wait_after(100.0) == 0.0
    assert Periodic("gap", 5.0, lambda: None, clock=clock).wait_after(100.0) == 5.0


def test_scrapes_read_the_freshness_measured_on_its_own_thread_and_measure_only_when_it_is_late():
    class CountingIndex(FreshnessIndex):
        measured = 0

        def measure(self, *args, **kwargs) -> Freshness:
            self.measured += 1
            return super().measure(*args, **kwargs)

    clock = FakeClock(1000.0)
    store = TaskStore()
    store.add((APP, "t"), "api")
    index = CountingIndex(store)
    snapshots = FreshnessSnapshots(index, PollStates(["default"]), 30.0, period=3600.0, clock=clock)
    snapshots.start()
    try:
        eventually(lambda: index.measured == 1, timeout=10)  # the thread's first measure
        assert all(snapshots.current().active == 1 for _ in range(20)) and index.measured == 1
        clock.advance(2 * 3600.0 + 1)  # the thread is late (stalled): a reader measures itself
        snapshots.current()
        assert index.measured == 2
    finally:
        snapshots.stop()


def test_a_spare_slot_polls_the_stalest_steady_task_ahead_of_time_but_never_before_the_interval():
    clock = FakeClock(1000.0)
    store = TaskStore()
    for name in ("due", "stale", "fresh", "recent"):
        store.add((APP, name), "api")
    collector = Collector(store, lambda app, task: None, PacedLimiter(20.0), interval=15.0, clock=clock)
    scheduler = collector.scheduler
    scheduler.schedule((APP, "fresh"), 1500.0, early=990.0)
    scheduler.schedule((APP, "stale"), 1200.0, early=900.0)
    scheduler.schedule((APP, "recent"), 1100.0, early=1010.0)  # answered 5 s ago: not before the interval
    scheduler.schedule((APP, "due"), 999.0)
    assert collector._next_task() == ((APP, "due"), 999.0)  # what is due goes first
    assert collector._next_task() == ((APP, "stale"), 1200.0)  # then the stalest, ahead of its time
    assert collector._next_task() == ((APP, "fresh"), 1500.0)
    assert collector._next_task() is None  # "recent" may not be polled ahead yet
    clock.advance(10.0)
    assert collector._next_task() == ((APP, "recent"), 1100.0)


def test_a_steady_task_answered_is_rescheduled_stretched_and_may_be_polled_early_after_the_interval():
    store = TaskStore()
    key = (APP, "steady")
    store.add(key, "api")
    collector = Collector(store, lambda app, task: PushTask(APP, "steady", "PUSHING"), PacedLimiter(20.0),
                          interval=15.0, clock=lambda: 100.0)
    collector.liveness = FakeLiveness(covered=10_000)
    collector.poll(key, 0.0)
    assert collector.scheduler.pop_ahead(114.0) is None
    assert collector.scheduler.pop_ahead(115.0) == (key, pytest.approx(100.0 + collector.cadence.steady_interval()))


def test_restored_tasks_are_due_from_their_last_answer_not_all_at_once():
    clock = FakeClock(10_000.0)
    store = TaskStore()
    answered = {"pushing-just-now": ("PUSHING", 9_990.0), "pushing-long-ago": ("PUSHING", 1_000.0),
                "prepared": ("PREPARED", 9_995.0)}
    for name, (status, at) in answered.items():
        store.add((APP, name), "api")
        store.update((APP, name), lambda r, n=name, s=status, t=at: merge_result(r, PushTask(APP, n, s), t))
    store.add((APP, "never-answered"), "api")
    collector = Collector(store, lambda app, task: None, PacedLimiter(20.0), interval=15.0, clock=clock)
    collector.liveness = FakeLiveness(covered=0)
    collector._schedule_all_restored()
    due = {key[1]: at for key, at in iter(lambda: collector.scheduler.pop_due(clock.now + 3600), None)}
    assert due["never-answered"] == 10_000.0
    assert due["prepared"] == 9_995.0 + 15.0  # not steady: the interval after its last answer
    assert due["pushing-long-ago"] < 10_000.0  # overdue: first in line
    assert due["pushing-just-now"] == 9_990.0 + max(15.0, 2 / (20 * HEADROOM * 0.9))
