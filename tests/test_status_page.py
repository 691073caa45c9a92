"""The status page at /: the exporter-health banner, active problems first with their reason, counts, a
filter, pages, escaping.

The triage rules and the HTML are checked directly; the never-answered rule also end to end with a fake
clock, real ``PollStates`` and a real ``FreshnessIndex``. ``test_status_page_in_a_real_browser`` renders
the page in headless Chromium (Debian's ``chromium``, driven by Playwright) at 1280 and 400 px, checks
the layout from the DOM (ids and status chips on one line, the banner on top, no overflow) and saves a
screenshot of each width (into ``$STATUS_PAGE_SCREENSHOTS`` when set, to look at).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
import requests
from prometheus_client import CollectorRegistry

from exporter.exposition import Exposition
from exporter.freshness import FreshnessIndex, FreshnessSnapshots
from exporter.lifecycle import FAILED, NOT_FOUND, TaskError, TaskRecord, end, merge_error, merge_result
from exporter.model import PushTask
from exporter.pollstate import LivenessState, PollStates
from exporter.store import TaskStore
from exporter.web.http import ExporterHTTPServer
from exporter.web.landing import landing_page
from exporter.web.routes import Routes
from exporter.web.status import PAGE_SIZE, CredentialPause, Health, exporter_health, select, to_row, why_broken
from tests.constants import APP

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
OTHER_APP = 1400000222
TRTC_FAILURE = TaskError("FailedOperation.WhiteboardPush", "TRTC onError, code: -70003, illegal UserSig", "r",
                         NOW - 10)


def record(task_id: str, status: str = "PUSHING", reason: str = "", **fields) -> TaskRecord:
    task = PushTask(APP, task_id, status, reason, room_id=4242, push_start_time=int(NOW) - 600,
                    push_stop_time=int(NOW) - 60 if status == "STOPPED" else 0, **fields)
    return merge_result(TaskRecord(APP, task_id, frozenset({"api"}), NOW - 700), task, NOW - 30)


def from_callback(task_id: str, added_at: float, status: str = "PUSHING") -> TaskRecord:
    """A task learned from a WhiteboardPushStarted callback that the API has never answered."""
    return TaskRecord(APP, task_id, frozenset({"callback"}), added_at, latest=PushTask(APP, task_id, status, ""))


def fleet() -> list[TaskRecord]:
    """One task per reason, plus healthy ones (named so that id order is not the order on the page)."""
    error = TaskError("InternalError", "boom", "r", NOW - 10)
    rising = record("a-rising", exception_cnt=1)
    rising = merge_result(rising, replace(rising.latest, exception_cnt=4), NOW - 20)
    return [
        record("a-healthy"),
        record("b-stopped-auto", "STOPPED", "AUTO"),
        record("z-ended-exception", "STOPPED", "EXCEPTION"),
        merge_error(record("y-query-error"), error),
        end(merge_error(TaskRecord(APP, "x-failed", frozenset({"flag"}), NOW - 700), TRTC_FAILURE), FAILED, NOW - 5),
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
        "x-failed": "push failed: TRTC -70003",
        "w-not-found": "not found",
        "a-rising": "exceptions rising",
        "v-no-answer": "no answer yet",
        "u-stuck-prepared": "stuck PREPARED for 5m+",
        "a-just-prepared": "",
    }
    old_rise = replace(fleet()[6], exceptions_rose_at=NOW - 3600)
    assert why_broken(old_rise, NOW) == ""  # exceptions that stopped rising an hour ago


def test_a_failed_push_shows_trtcs_code_when_the_failure_names_one() -> None:
    bare = TaskRecord(APP, "t", frozenset({"api"}), NOW - 700)
    assert why_broken(end(merge_error(bare, TRTC_FAILURE), FAILED, NOW), NOW) == "push failed: TRTC -70003"
    no_code = TaskError("FailedOperation.WhiteboardPush", "the push failed", "r", NOW)
    failed = end(merge_error(bare, no_code), FAILED, NOW)
    assert why_broken(failed, NOW) == "push failed: FailedOperation.WhiteboardPush"
    assert why_broken(end(bare, FAILED, NOW), NOW) == "push failed"
    # the cause is searchable, and shown in the row
    assert [r.task_id for r in select(fleet(), NOW, "-70003").rows] == ["x-failed"]
    assert "push failed: TRTC -70003" in landing_page(fleet(), NOW).decode()


def test_active_problems_come_before_ended_ones_then_the_healthy() -> None:
    more = [
        from_callback("c-silent", NOW - 1300),  # no answer for 20m+
        merge_error(record("b-query-error"), TaskError("InternalError", "boom", "r", NOW - 10)),
        end(TaskRecord(APP, "a-not-found", frozenset({"file"}), NOW - 700), NOT_FOUND, NOW - 5),
        record("a-ended-exception", "STOPPED", "EXCEPTION"),
    ]
    selection = select(fleet() + more, NOW)
    ids = [row.task_id for row in selection.rows]
    assert ids == [
        # active problems, by urgency (rising, stuck, silent, query error, no answer yet), then id
        "a-rising", "u-stuck-prepared", "c-silent", "b-query-error", "y-query-error", "v-no-answer",
        # ended problems (FAILED, EXCEPTION, NOT_FOUND), then id
        "x-failed", "a-ended-exception", "z-ended-exception", "a-not-found", "w-not-found",
        # the rest by status, then id
        "a-just-prepared", "a-healthy", "b-stopped-auto",
    ]
    assert (selection.broken, selection.broken_active, selection.broken_ended) == (11, 6, 5)
    assert selection.total == 14 and selection.active == 8
    assert selection.by_status == {"UNKNOWN": 1, "PREPARED": 2, "PUSHING": 5, "STOPPED": 6}
    page = landing_page(fleet() + more, NOW).decode()
    classes = re.findall(r'<tr class="([^"]+)">', page)
    assert classes == ["broken"] * 6 + ["broken ended"] * 5 + ["ok"] * 3
    assert "Broken <b>11</b></span> of 14 tracked: 6 active, 5 ended" in page


def test_final_tasks_have_no_data_age_and_unanswered_ones_say_never() -> None:
    rows = {r.task_id: r for r in (to_row(item, NOW) for item in fleet())}
    assert rows["a-healthy"].data_age == 30.0  # answered 30 s ago
    for final in ("b-stopped-auto", "z-ended-exception", "x-failed", "w-not-found"):
        assert rows[final].final and rows[final].data_age is None, final
    page = landing_page(fleet(), NOW).decode()
    ages = dict(re.findall(r'data-label="Task"><span class="id">([^<]+)</span>.*?data-label="Data age">([^<]*)</td>',
                           page))
    assert ages["a-healthy"] == "30s"
    assert ages["b-stopped-auto"] == ages["z-ended-exception"] == ages["x-failed"] == ages["w-not-found"] == "&mdash;"
    assert ages["v-no-answer"] == "never"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_never_answered_is_flagged_only_when_it_is_news() -> None:
    """Discovery adds 304 tasks the running list shows alive: none is "no answer yet" in its first seconds
    (the review saw 166 of them); a callback-learned task unanswered for 20 minutes is broken."""
    clock = FakeClock(NOW)
    store = TaskStore(clock=clock)  # tasks are added at the fake "now"
    states = PollStates(["default"])
    discovered = [(APP, f"disc{n:04d}") for n in range(304)]
    for key in discovered:
        store.add(key, "discovery")
    store.add((APP, "cb-silent"), "callback")
    store.update((APP, "cb-silent"), lambda r: replace(r, latest=PushTask(APP, "cb-silent", "PUSHING", "")))

    def list_alive(at: float, keys: list[tuple[int, str]]) -> None:  # a liveness pass, as liveness.py publishes
        states.publish("default", liveness=LivenessState(stale_after=15.0).with_app(APP, {k: at for k in keys}))

    freshness = FreshnessSnapshots(FreshnessIndex(store), states, 30.0, clock=clock)
    routes = Routes(store, Exposition(store, CollectorRegistry()), ready=lambda: True, clock=clock,
                    health=lambda now: exporter_health(states, freshness, 15.0, now))
    http = ExporterHTTPServer(("127.0.0.1", 0), routes).start()

    def flagged() -> tuple[int, set[str], str]:
        """How many tasks the page calls broken, the reasons on its first page, and the callback task's."""
        page = requests.get(http.url + "/?broken=1", timeout=5).text
        count = int(re.search(r"Broken <b>(\d+)</b>", page).group(1))
        reasons = set(re.findall(r'<span class="chip bad why">([^<]+)</span>', page))
        silent = requests.get(http.url + "/?q=cb-silent", timeout=5).text
        why = re.findall(r'<span class="chip bad why">([^<]+)</span>', silent)
        return count, reasons, why[0] if why else ""

    try:
        list_alive(NOW, discovered)
        clock.now = NOW + 3
        assert flagged() == (0, set(), "")  # just added, just listed
        clock.now = NOW + 120  # 8 poll intervals later, still on the list 3 s ago: no news
        list_alive(NOW + 117, discovered)
        assert flagged() == (1, {"no answer yet"}, "no answer yet")  # the callback task is not on the list
        clock.now = NOW + 140
        list_alive(NOW + 137, discovered[:10])  # the rest left the list, still unanswered
        assert flagged() == (304 - 10 + 1, {"no answer yet"}, "no answer yet")
        clock.now = NOW + 20 * 60
        list_alive(NOW + 20 * 60 - 2, discovered)  # listed or not, 20 minutes without an answer is broken
        assert flagged() == (305, {"no answer for 20m+"}, "no answer for 20m+")
        # the banner counts them as the coverage metric does: listed tasks have a fresh answer, and the
        # never-answered task is red in its row (one in 305 is above the banner's 95 %)
        assert "coverage 99% of 305 active" in banner(requests.get(http.url + "/", timeout=5).text)
        list_alive(NOW + 20 * 60 - 2, discovered[:200])
        assert "Coverage 65%: only 200 of 305 active tasks have a fresh answer" in banner(
            requests.get(http.url + "/", timeout=5).text)
    finally:
        http.stop()


@pytest.mark.parametrize(("interval", "age", "listed_ago", "expected"), [
    (15.0, 5, None, ""),  # just added
    (15.0, 29, None, ""),  # within 2 poll intervals
    (15.0, 31, None, "no answer yet"),
    (60.0, 100, None, ""),  # the interval comes from the settings: 2 x 60 s
    (60.0, 121, None, "no answer yet"),
    (15.0, 600, 3.0, ""),  # the running list showed it alive 3 s ago
    (15.0, 600, 60.0, "no answer yet"),  # it left the list a minute ago
    (15.0, 1199, 3.0, ""),
    (15.0, 1200, 3.0, "no answer for 20m+"),  # listed or not
    (15.0, 1200, None, "no answer for 20m+"),
])
def test_the_never_answered_rule(interval, age, listed_ago, expected) -> None:
    task = from_callback("t", NOW - age)  # PUSHING by its callback, never answered by the API
    listed_at = None if listed_ago is None else NOW - listed_ago
    assert why_broken(task, NOW, listed_at, interval) == expected
    health = Health(listed=MappingProxyType({} if listed_at is None else {task.key: listed_at}),
                    poll_interval=interval)
    assert to_row(task, NOW, health).why == expected


def test_no_silent_cap_pages_say_how_many_are_shown() -> None:
    many = [TaskRecord(APP, f"t{n:04d}", frozenset({"api"}), NOW) for n in range(PAGE_SIZE + 50)]
    first = landing_page(many, NOW).decode()
    assert f"Showing 1&ndash;{PAGE_SIZE} of {PAGE_SIZE + 50} matching tasks" in first
    assert "page=2" in first and first.count("<tr class=") == PAGE_SIZE
    second = landing_page(many, NOW, "page=2").decode()
    assert f"Showing {PAGE_SIZE + 1}&ndash;{PAGE_SIZE + 50} of {PAGE_SIZE + 50}" in second
    assert second.count("<tr class=") == 50


def test_the_filter_matches_ids_reasons_and_rooms_and_broken_only() -> None:
    assert [r.task_id for r in select(fleet(), NOW, "ended with").rows] == ["z-ended-exception"]
    assert [r.task_id for r in select(fleet(), NOW, "exception").rows] == ["a-rising", "z-ended-exception"]
    assert {r.task_id for r in select(fleet(), NOW, "", broken_only=True).rows} == {
        "z-ended-exception", "y-query-error", "x-failed", "w-not-found", "a-rising", "v-no-answer",
        "u-stuck-prepared"}
    assert select(fleet(), NOW, "4242").matching == 7  # the room of every answered task


# --------------------------------------------------------------------------- the health banner


def banner(page: str) -> str:
    return re.search(r'<section class="health">(.*?)</section>', page).group(1)


def test_a_healthy_exporter_gets_one_short_green_line() -> None:
    health = Health(fresh=9, active=9, lag=0.4)
    page = landing_page(fleet(), NOW, health=health).decode()
    lines = re.findall(r'<p class="([^"]+)">(.*?)</p>', banner(page))
    assert lines == [("ok", "Exporter healthy: coverage 100% of 9 active &middot; poll lag 0s &middot; "
                            "last API answer 20s ago &middot; nothing paused or queued")]
    assert "as of 2023-11-14 22:13:20 UTC" in page


def test_the_banner_names_each_problem_with_its_code() -> None:
    health = Health(
        paused_credentials=(CredentialPause("default", "AuthFailure.SecretIdNotFound", (APP,)),),
        paused_sdk_app_ids=((OTHER_APP, "ResourceUnavailable.ServiceExpired"),),
        fresh=5, active=12, lag=75.0)
    records = [replace(r, last_success=NOW - 1000 if r.last_success else None) for r in fleet()]
    page = landing_page(records, NOW, queued={OTHER_APP: 2}, health=health).decode()
    lines = re.findall(r'<p class="([^"]+)">(.*?)</p>', banner(page))
    assert [level for level, _ in lines] == ["bad", "warn", "bad", "warn", "bad", "bad queued"]
    text = [re.sub(r"<[^>]+>", "", html) for _, html in lines]
    assert text[0] == ("Account default paused: the API refuses its credential or setup, "
                       f"AuthFailure.SecretIdNotFound. None of its tasks is polled (SdkAppId {APP}).")
    assert text[1] == f"SdkAppId paused, its tasks not polled: {OTHER_APP} ResourceUnavailable.ServiceExpired."
    assert text[2].startswith("Coverage 41%: only 5 of 12 active tasks have a fresh answer")
    assert text[3].startswith("Poll lag 1m 15s: ")
    assert text[4] == "Last API answer 16m 40s ago with 6 active task(s): their data is old."
    assert text[5] == f"Queued at TIW, waiting for capacity: 2 push task(s) (SdkAppId {OTHER_APP}: 2)"
    assert "Queued at TIW, waiting for capacity: <b>2</b>" in page  # as tests/test_queued.py reads it


@pytest.mark.parametrize(("last_success", "level", "text"), [
    (NOW - 20, "", "last API answer 20s ago"),
    (NOW - 90, "warn", "Last API answer 1m 30s ago with 1 active task(s)."),  # > 4 poll intervals
    (NOW - 600, "bad", "Last API answer 10m 0s ago with 1 active task(s): their data is old."),
    (None, "warn", "No successful API answer yet with 1 active task(s)."),  # tracked for 100 s
])
def test_the_banner_says_when_the_api_last_answered(last_success, level, text) -> None:
    task = replace(record("t"), last_success=last_success)
    if last_success is None:
        task = replace(task, added_at=NOW - 100, latest=None)
    lines = re.findall(r'<p class="([^"]+)">(.*?)</p>', banner(landing_page([task], NOW, health=Health()).decode()))
    if level:
        assert (level, text) in lines
    else:
        assert lines == [("ok", f"Exporter healthy: {text} &middot; nothing paused or queued")]
    # with nothing active, an old answer is no problem: an idle exporter asks nothing
    stopped = replace(record("s", "STOPPED", "AUTO"), last_success=NOW - 5000)
    assert '<p class="ok">' in landing_page([stopped], NOW).decode()


def test_the_health_comes_from_the_published_poll_states_and_the_freshness_index() -> None:
    store = TaskStore()
    for key in ((APP, "listed"), (APP, "answered"), (APP, "silent"), (OTHER_APP, "other")):
        store.add(key, "api")
        store.update(key, lambda r: replace(r, added_at=NOW - 900))
    store.update((APP, "answered"), lambda r: merge_result(r, PushTask(APP, "answered", "PUSHING", ""), NOW - 10))
    states = PollStates(["default", "second"])
    states.publish("default", credential_pause="AuthFailure.SecretIdNotFound",
                   paused_sdk_app_ids=MappingProxyType({APP: "AuthFailure.SecretIdNotFound"}), lag=3.0,
                   liveness=LivenessState(stale_after=15.0).with_app(APP, {(APP, "listed"): NOW - 2}))
    states.publish("second", paused_sdk_app_ids=MappingProxyType({OTHER_APP: "ResourceUnavailable.ServiceExpired"}),
                   lag=42.0)
    health = exporter_health(states, FreshnessSnapshots(FreshnessIndex(store), states, 30.0, clock=lambda: NOW), 15.0,
                             NOW)
    assert health.paused_credentials == (CredentialPause("default", "AuthFailure.SecretIdNotFound", (APP,)),)
    assert health.paused_sdk_app_ids == ((OTHER_APP, "ResourceUnavailable.ServiceExpired"),)
    assert (health.fresh, health.active, health.coverage) == (2, 4, 0.5)  # listed + answered, as the metric
    assert health.lag == 42.0
    assert health.listed == {(APP, "listed"): NOW - 2} and health.poll_interval == 15.0


def test_everything_from_tasks_accounts_and_the_query_is_escaped() -> None:
    hostile = '<img src=x onerror="alert(1)">'
    tasks = [
        merge_error(record("t1"), TaskError(hostile, "m", "r", NOW)),  # query error: <code>
        replace(record("t2", "STOPPED", hostile), sources=frozenset({hostile})),  # TIW's finish reason
        replace(record(hostile), task_id=hostile),  # never valid, escaped all the same
        end(merge_error(TaskRecord(APP, "t3", frozenset({"api"}), NOW - 700),
                        TaskError(hostile, f"TRTC onError, code: {hostile}", "r", NOW)), FAILED, NOW),
    ]
    health = Health(paused_credentials=(CredentialPause(hostile, hostile, (APP,)),),
                    paused_sdk_app_ids=((OTHER_APP, hostile),))
    page = landing_page(tasks, NOW, "q=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22", health=health).decode()
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in page
    unfiltered = landing_page(tasks, NOW, health=health).decode()
    assert "<img" not in unfiltered and unfiltered.count("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;") >= 7


# --------------------------------------------------------------------------- a real browser


def browser_fleet() -> list[TaskRecord]:
    """The fleet with ids as TIW makes them: 20-character task ids, 10-digit SdkAppIds, long reasons."""
    tiw_ids = {"a-healthy": "41fx7um8uow2iat7ywwr", "b-stopped-auto": "ru15rlq353g9wd09oylh",
               "z-ended-exception": "qcls7dtzt3t8vvqvnukg", "x-failed": "zz8a0q4ts1b7mvk2wd3x"}
    return [replace(r, task_id=tiw_ids.get(r.task_id, r.task_id)) for r in fleet()] + [
        merge_error(from_callback("c9y0vcn1j1x3n5bq1pzh", NOW - 1300), TaskError("AuthFailure.SecretIdNotFound",
                                                                                 "refused", "r", NOW - 30)),
        replace(record("hk2jq3wz0m8r7t6y5x4v", "STOPPED", "USER_CALL"), sources=frozenset({"callback", "discovery"})),
    ]


@pytest.fixture
def status_server() -> Iterator[str]:
    store = TaskStore()
    for item in browser_fleet():
        store.add(item.key, "api")
        store.update(item.key, lambda _r, item=item: item)
    health = Health(paused_sdk_app_ids=((OTHER_APP, "ResourceUnavailable.ServiceExpired"),), fresh=6, active=7,
                    lag=2.0)
    routes = Routes(store, Exposition(store, CollectorRegistry()), ready=lambda: True, clock=lambda: NOW,
                    queued=lambda: {OTHER_APP: 2}, health=lambda now: health)
    http = ExporterHTTPServer(("127.0.0.1", 0), routes).start()
    yield http.url
    http.stop()


def browser(request: pytest.FixtureRequest):
    """Playwright and Debian's headless Chromium; skips locally, fails under CI, without them."""
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
    request.addfinalizer(playwright.stop)
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    request.addfinalizer(chromium.close)
    return chromium


ONE_LINE = "els => els.map(e => e.getClientRects().length)"
FITS = "els => els.map(e => e.scrollWidth <= e.clientWidth)"


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 400])
def test_status_page_in_a_real_browser(status_server: str, width: int, request: pytest.FixtureRequest,
                                       tmp_path: Path) -> None:
    page = browser(request).new_page(viewport={"width": width, "height": 900}, java_script_enabled=False)
    page.goto(status_server + "/")
    shots = Path(os.environ.get("STATUS_PAGE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / f"status-{width}.png"), full_page=True)
    page.screenshot(path=str(shots / f"status-{width}-first-screen.png"))  # what one sees on opening it

    rows = page.locator("tbody tr")
    assert rows.count() == 12
    first = rows.nth(0)
    assert first.get_attribute("class") == "broken"
    # Its id sorts late: it is first because it is an active problem, with the reason in the first column.
    assert first.locator("td").nth(0).inner_text() == "exceptions rising"
    assert first.locator("td").nth(2).inner_text().endswith("a-rising")
    assert "Broken 8 of 12 tracked: 5 active, 3 ended" in page.locator("p.counts").inner_text()
    assert "as of 2023-11-14 22:13:20 UTC" in page.locator("p.asof").inner_text()

    # The banner is on top, visible, with its problems.
    health = page.locator("section.health")
    assert health.is_visible()
    assert health.bounding_box()["y"] + health.bounding_box()["height"] <= first.bounding_box()["y"]
    assert health.bounding_box()["y"] < 200  # above the fold at either width
    banner_text = health.inner_text()
    assert "1400000222 ResourceUnavailable.ServiceExpired" in banner_text
    assert "Coverage 85%" in banner_text and "Queued at TIW" in banner_text

    # Ids, status and finish-reason chips are on one line each, whole and unclipped, at this width.
    ids = page.locator("td span.id")
    chips = page.locator("td[data-label='Status'] .chip, td[data-label='Finish reason'] .chip")
    assert ids.count() == 24 and chips.count() == 12 + 5
    assert set(ids.evaluate_all(ONE_LINE)) == {1} and set(chips.evaluate_all(ONE_LINE)) == {1}
    id_cells = page.locator("td[data-label='Task'], td[data-label='SdkAppId'], td[data-label='Status']")
    assert all(id_cells.evaluate_all(FITS))
    assert page.locator("td[data-label='Status'] .chip.s-pushing").first.evaluate(
        "e => getComputedStyle(e).backgroundColor") == "rgb(206, 234, 214)"  # green
    # Nothing overflows: the page is no wider than the viewport; rows are cards below 600 px.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.locator("div.scroll").evaluate("e => e.scrollWidth <= e.clientWidth")  # no column cut off
    assert page.locator("thead").is_visible() == (width > 600)

    # The filter is a plain GET form: no JavaScript needed.
    page.fill("input[name=q]", "ended with")
    page.click("button[type=submit]")
    page.wait_for_url("**/?q=ended+with**")
    assert rows.count() == 1
    assert "qcls7dtzt3t8vvqvnukg" in rows.nth(0).inner_text()
    assert "ended with EXCEPTION" in rows.nth(0).inner_text()


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


@pytest.mark.slow
def test_the_running_exporter_passes_its_health_to_the_page() -> None:
    """Wired in ``runtime``: green while the simulator answers; a revoked key is a red line with its code."""
    from exporter.simulator import Simulator, TaskScript
    from exporter.tencentcloud.credentials import Credential
    from tests.constants import SECRET_ID, SECRET_KEY
    from tests.harness import eventually, running_exporter

    with Simulator(credentials={SECRET_ID: SECRET_KEY}) as simulator:
        task = simulator.add_task(APP, TaskScript())
        with running_exporter(simulator.url, Credential(SECRET_ID, SECRET_KEY), tasks=(f"{APP}:{task}",),
                              interval="1s", liveness_interval="0.5s") as exporter:
            def health() -> str:
                return banner(requests.get(exporter.url + "/", timeout=5).text)

            eventually(lambda: '<p class="ok">Exporter healthy: coverage 100% of 1 active' in health())
            simulator.revoke(SECRET_ID)
            eventually(lambda: "paused: the API refuses its credential or setup, <code>AuthFailure." in health())
