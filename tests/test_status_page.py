"""The status page at /: broken tasks first with their reason, counts, a filter, pages, escaping.

The triage rules and the HTML are checked directly; ``test_status_page_in_a_real_browser`` renders the
page in headless Chromium (Debian's ``chromium``, driven by Playwright) at phone width.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from exporter.exposition import Exposition
from exporter.lifecycle import FAILED, NOT_FOUND, TaskError, TaskRecord, end, merge_error, merge_result
from exporter.model import PushTask
from exporter.store import TaskStore
from exporter.web.http import ExporterHTTPServer
from exporter.web.landing import landing_page
from exporter.web.routes import Routes
from exporter.web.status import PAGE_SIZE, select, why_broken
from tests.constants import APP

NOW = 1_700_000_000.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def record(task_id: str, status: str = "PUSHING", reason: str = "", **fields) -> TaskRecord:
    task = PushTask(APP, task_id, status, reason, room_id=4242, push_start_time=int(NOW) - 600,
                    push_stop_time=int(NOW) - 60 if status == "STOPPED" else 0, **fields)
    return merge_result(TaskRecord(APP, task_id, frozenset({"api"}), NOW - 700), task, NOW - 30)


def fleet() -> list[TaskRecord]:
    """One task per reason, plus healthy ones (named so that id order is not the broken-first order)."""
    error = TaskError("InternalError", "boom", "r", NOW - 10)
    failure = TaskError("FailedOperation.WhiteboardPush", "TRTC onError, code: -70003", "r", NOW - 10)
    rising = record("a-rising", exception_cnt=1)
    rising = merge_result(rising, replace(rising.latest, exception_cnt=4), NOW - 20)
    return [
        record("a-healthy"),
        record("b-stopped-auto", "STOPPED", "AUTO"),
        record("z-ended-exception", "STOPPED", "EXCEPTION"),
        merge_error(record("y-query-error"), error),
        end(merge_error(TaskRecord(APP, "x-failed", frozenset({"flag"}), NOW - 700), failure), FAILED, NOW - 5),
        end(TaskRecord(APP, "w-not-found", frozenset({"file"}), NOW - 700), NOT_FOUND, NOW - 5),
        rising,
        TaskRecord(APP, "v-no-answer", frozenset({"callback"}), NOW - 100),
        record("u-stuck-prepared", "PREPARED"),  # tracked for 700 s, still PREPARED
        replace(record("a-just-prepared", "PREPARED"), added_at=NOW - 120),
    ]


def test_each_broken_task_has_its_reason_and_healthy_ones_none() -> None:
    why = {r.task_id: why_broken(r, NOW) for r in fleet()}
    assert why == {
        "a-healthy": "", "b-stopped-auto": "",
        "z-ended-exception": "ended with EXCEPTION",
        "y-query-error": "query error: InternalError",
        "x-failed": "push failed: FailedOperation.WhiteboardPush",
        "w-not-found": "not found",
        "a-rising": "exceptions rising",
        "v-no-answer": "no answer yet",
        "u-stuck-prepared": "stuck PREPARED for 5m+",
        "a-just-prepared": "",
    }
    old_rise = replace(fleet()[6], exceptions_rose_at=NOW - 3600)
    assert why_broken(old_rise, NOW) == ""  # exceptions that stopped rising an hour ago


def test_broken_tasks_come_first_then_the_rest_with_counts() -> None:
    selection = select(fleet(), NOW)
    ids = [row.task_id for row in selection.rows]
    assert set(ids[:7]) == {"z-ended-exception", "y-query-error", "x-failed", "w-not-found", "a-rising",
                            "v-no-answer", "u-stuck-prepared"}
    assert ids[7:] == ["a-just-prepared", "a-healthy", "b-stopped-auto"]  # the rest by status, then id
    assert selection.broken == 7 and selection.total == 10
    assert selection.by_status == {"UNKNOWN": 1, "PREPARED": 2, "PUSHING": 3, "STOPPED": 4}


def test_the_filter_matches_ids_reasons_and_rooms_and_broken_only() -> None:
    assert [r.task_id for r in select(fleet(), NOW, "ended with").rows] == ["z-ended-exception"]
    assert [r.task_id for r in select(fleet(), NOW, "exception").rows] == ["z-ended-exception", "a-rising"]
    assert {r.task_id for r in select(fleet(), NOW, "", broken_only=True).rows} == {
        "z-ended-exception", "y-query-error", "x-failed", "w-not-found", "a-rising", "v-no-answer",
        "u-stuck-prepared"}
    assert select(fleet(), NOW, "4242").matching == 7  # the room of every answered task


def test_no_silent_cap_pages_say_how_many_are_shown() -> None:
    many = [TaskRecord(APP, f"t{n:04d}", frozenset({"api"}), NOW) for n in range(PAGE_SIZE + 50)]
    first = landing_page(many, NOW).decode()
    assert f"Showing 1&ndash;{PAGE_SIZE} of {PAGE_SIZE + 50} matching tasks" in first
    assert "page=2" in first and first.count("<tr class=") == PAGE_SIZE
    second = landing_page(many, NOW, "page=2").decode()
    assert f"Showing {PAGE_SIZE + 1}&ndash;{PAGE_SIZE + 50} of {PAGE_SIZE + 50}" in second
    assert second.count("<tr class=") == 50


def test_everything_from_tasks_and_the_query_is_escaped() -> None:
    hostile = merge_error(record("t1"), TaskError('<img src=x onerror="alert(1)">', "m", "r", NOW))
    page = landing_page([hostile], NOW, "q=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22").decode()
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in page


# --------------------------------------------------------------------------- a real browser


@pytest.fixture
def status_server() -> Iterator[str]:
    store = TaskStore()
    for item in fleet():
        store.add(item.key, "api")
        store.update(item.key, lambda _r, item=item: item)
    routes = Routes(store, Exposition(store, CollectorRegistry()), ready=lambda: True, clock=lambda: NOW)
    http = ExporterHTTPServer(("127.0.0.1", 0), routes).start()
    yield http.url
    http.stop()


def browser_page(width: int):
    """A Playwright page in Debian's headless Chromium; skips locally, fails under CI, without them."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package (pip install '.[test]')")
    if not shutil.which(CHROMIUM):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        message = "missing " + ", ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": width, "height": 800}, java_script_enabled=False)
    return playwright, browser, page


@pytest.mark.slow
def test_status_page_in_a_real_browser(status_server: str) -> None:
    playwright, browser, page = browser_page(400)
    try:
        page.goto(status_server + "/")
        rows = page.locator("tbody tr")
        assert rows.count() == 10
        first = rows.nth(0)
        assert first.get_attribute("class") == "broken"
        # Its id sorts last: it is first because it is broken, with the reason in the first column.
        assert first.locator("td").nth(0).inner_text() == "ended with EXCEPTION"
        assert first.locator("td").nth(2).inner_text() == "z-ended-exception"
        assert "Broken 7 of 10 tracked" in page.locator("p.counts").inner_text()
        # Nothing overflows at phone width: the page is no wider than the viewport.
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
        # The filter is a plain GET form: no JavaScript needed.
        page.fill("input[name=q]", "ended with")
        page.click("button[type=submit]")
        page.wait_for_url("**/?q=ended+with**")
        assert rows.count() == 1
        assert "z-ended-exception" in rows.nth(0).inner_text()
        assert "ended with EXCEPTION" in rows.nth(0).inner_text()
    finally:
        browser.close()
        playwright.stop()


@pytest.mark.parametrize(("status", "stop_time", "expected"), [
    ("STOPPED", int(NOW) - 60, 540.0),  # PushStopTime - PushStartTime
    ("STOPPED", 0, None),  # TIW gave no stop time: no duration is made up
    ("PUSHING", 0, 570.0),  # up to the last answer
    ("PREPARED", 0, None),  # not pushing yet
])
def test_the_status_page_and_metrics_show_one_duration(status, stop_time, expected):
    task = PushTask(APP, "t", status, "AUTO" if status == "STOPPED" else "", push_start_time=int(NOW) - 600,
                    push_stop_time=stop_time)
    answered = merge_result(TaskRecord(APP, "t", frozenset({"api"}), NOW - 700), task, NOW - 30)
    store = TaskStore()
    store.restore([answered])
    registry = CollectorRegistry()
    registry.register(Exposition(store, CollectorRegistry()).task_collector)
    exported = registry.get_sample_value("tiw_push_task_duration_seconds", {"sdk_app_id": str(APP), "task_id": "t"})
    (row,) = select([answered], NOW).rows
    assert exported == row.duration == expected
