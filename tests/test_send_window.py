"""The send-time window: no one second holds more sends than the cap, whatever the threads that send did."""

from __future__ import annotations

import itertools
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.accounts import Accounts
from exporter.config import build_settings
from exporter.ratelimit import HEADROOM, PacedLimiter, SendWindow, send_cap
from exporter.selfmetrics import ExporterMetrics, self_registry
from exporter.store import TaskStore
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from exporter.tiw import DESCRIBE_PUSH, DESCRIBE_RUNNING
from tests.constants import SECRET_ID, SECRET_KEY


class FakeClock:
    """A monotonic clock that moves only when someone sleeps on it; safe to share between threads."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "a send waits only while the window is full"
        with self._lock:
            self.now += seconds

    def arrive(self, at: float) -> None:
        with self._lock:
            self.now = max(self.now, at)


def busiest_second(times: list[float], span: float = 1.0) -> int:
    """The most sends in any half-open window of ``span`` (the API's strict sliding window)."""
    ordered = sorted(times)
    return max((sum(1 for t in ordered[i:] if t < start + span) for i, start in enumerate(ordered)), default=0)


@given(cap=st.integers(1, 25), gap=st.sampled_from([0.0, 0.027, 0.1]), gaps=st.lists(st.floats(0.0, 0.3), max_size=120))
def test_no_second_holds_more_sends_than_the_cap_none_are_closer_than_the_gap_and_none_wait_needlessly(cap, gap, gaps):
    clock = FakeClock()
    window = SendWindow(cap, gap=gap, clock=clock, sleep=clock.sleep)
    arrivals, admitted = [], []
    at = clock()
    for pause in gaps:
        at += pause
        clock.arrive(at)  # the sending thread gets here at ``at`` (or later, if the last send waited)
        arrivals.append(clock())
        admitted.append(window.admit())
    assert busiest_second(admitted) <= cap
    assert all(later - earlier >= gap - 1e-9 for earlier, later in itertools.pairwise(admitted))
    for k, (arrived, sent) in enumerate(zip(arrivals, admitted, strict=True)):
        spaced = admitted[k - 1] + gap if k else arrived
        earliest = max(arrived, spaced, admitted[k - cap] + 1.0 if k >= cap else arrived)
        assert sent == pytest.approx(earliest, abs=1e-9)  # it waits only for the gap or the oldest to leave


@pytest.mark.parametrize("threads", [2, 19, 60])
def test_threads_sending_at_once_never_exceed_the_cap_nor_come_closer_than_the_gap(threads):
    clock = FakeClock()
    window = SendWindow(18, gap=0.027, clock=clock, sleep=clock.sleep)
    start = threading.Barrier(threads)
    admitted: list[float] = []

    def send() -> None:
        start.wait()
        for _ in range(3):
            admitted.append(window.admit())

    workers = [threading.Thread(target=send) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ordered = sorted(admitted)
    assert len(ordered) == 3 * threads
    assert busiest_second(ordered) == min(18, 3 * threads)
    assert all(later - earlier >= 0.027 - 1e-9 for earlier, later in itertools.pairwise(ordered))


def test_a_limiters_window_is_the_paced_share_of_the_limit_spaced_at_the_pace_on_its_clock():
    assert send_cap(20.0, HEADROOM) == 18  # 20 req/s paced at 92 %: 18 sends in any second
    assert send_cap(1.0, HEADROOM) == 1
    clock = FakeClock()
    limiter = PacedLimiter(20.0, clock=clock, sleep=clock.sleep)
    sent = [limiter.before_send() for _ in range(19)]
    spacing = 1.0 / (20.0 * HEADROOM)
    assert sent[:18] == pytest.approx([1000.0 + k * spacing for k in range(18)])
    assert sent[18] == pytest.approx(1001.0)  # the 19th waits for the first to leave the second


def build_accounts(tmp_path, shared: bool) -> Accounts:
    config = tmp_path / "config.yml"
    config.write_text(f"shared_rate_limit: {str(shared).lower()}\naccounts:\n"
                      "  - {name: a, sdk_app_ids: [1400000001]}\n  - {name: b, sdk_app_ids: [1400000002]}\n")
    settings = build_settings({"liveness_interval": "5s", "discover_sdk_app_ids": ("1400000001",)}, config)
    return Accounts(settings, TaskStore(), ExporterMetrics(self_registry()),
                    StaticCredentials(Credential(SECRET_ID, SECRET_KEY)))


class CountingWindow:
    def __init__(self) -> None:
        self.sends = 0

    def admit(self) -> float:
        self.sends += 1
        return 0.0


@pytest.mark.parametrize("shared", [False, True], ids=["per-action", "shared"])
def test_every_describe_and_list_passes_its_accounts_window_for_that_action(tmp_path, monkeypatch, shared):
    monkeypatch.setattr("exporter.accounts.describe_task", lambda client, kind, app, task: "answer")
    monkeypatch.setattr("exporter.accounts.describe_running_tasks",
                        lambda client, app, offset, limit, task_type: ([], 0))
    accounts = build_accounts(tmp_path, shared)
    try:
        for account in accounts:
            for action in (DESCRIBE_PUSH, DESCRIBE_RUNNING):
                limiter = account.budgets.for_action(action)
                if not isinstance(limiter.sends, CountingWindow):  # shared: one limiter for both actions
                    limiter.sends = CountingWindow()
        windows = {(account.name, action): account.budgets.for_action(action).sends
                   for account in accounts for action in (DESCRIBE_PUSH, DESCRIBE_RUNNING)}
        a = accounts.by_name["a"]
        push = a.kinds["push"]
        assert push.collector.describe(1400000001, "t") == "answer"
        assert push.liveness is not None and push.liveness.list_page[0](1400000001, 0, 500) == ([], 0)
        assert push.discoverer.list_page[0](1400000001, 500, 500) == ([], 0)
        if shared:  # one window for both actions of the account
            assert windows["a", DESCRIBE_PUSH].sends == 3
        else:
            assert (windows["a", DESCRIBE_PUSH].sends, windows["a", DESCRIBE_RUNNING].sends) == (1, 2)
        assert windows["b", DESCRIBE_PUSH].sends == windows["b", DESCRIBE_RUNNING].sends == 0  # per account
    finally:
        for account in accounts:
            account.stop()
