"""No answer and no callback can blank /metrics: arbitrary values go through the one parse boundary and
the renderer, and every scrape stays 200 and valid (prometheus_client's parsers and promtool)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from exporter.callbacks import STARTED, STOPPED, CallbackEndpoint, sign
from exporter.exposition import Exposition
from exporter.kind_answers import parse_record_task, parse_transcode_task
from exporter.kinds import KINDS
from exporter.lifecycle import FAILED, TaskError, end, merge_error, merge_result
from exporter.model import PushTask, task_key
from exporter.store import TaskStore
from exporter.tencentcloud.errors import BadResponse
from exporter.tiw import parse_push_task
from exporter.web.http import ExporterHTTPServer
from exporter.web.routes import Routes
from tests.constants import APP
from tests.tools import find_tool

NOW = 1_700_000_000
KEY = "callback-key"

# Text as JSON can carry it: any code point, lone surrogates ("\ud800" escapes) included, and often.
surrogates = st.sampled_from(["\ud800", "room\udfff", "\udc00\ud83d"])
any_text = st.text(st.characters(blacklist_categories=()), max_size=12) | surrogates
huge_ints = st.sampled_from([2**63 - 1, 2**63, 2**64, 10**30, 10**400]) | st.integers(0, 2**300)
scalars = st.none() | st.booleans() | huge_ints | st.floats() | any_text | huge_ints.map(str)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
                      max_leaves=10)
deep = st.integers(10, 40).map(lambda depth: json.loads("[" * depth + "]" * depth))
hostile = scalars | values | deep

INT_FIELDS = ("RoomId", "PushStartTime", "PushStopTime", "ExceptionCnt", "IMSyncTime")
STR_FIELDS = ("FinishReason", "GroupId", "PushUserId", "RequestId", "TaskId")
VALID_ANSWER = {"Status": "STOPPED", "FinishReason": "AUTO", "RoomId": 880528, "GroupId": "880528",
                "PushUserId": "tic_push_user_880528", "PushStartTime": NOW - 60, "PushStopTime": NOW,
                "ExceptionCnt": 2, "IMSyncTime": NOW - 60, "Backup": "", "RequestId": "r", "TaskId": "t"}
VALID_EVENT = {"TaskId": "cb_task", "RoomId": 880528, "PushUserId": "u", "GroupId": "880528",
               "PushStartTime": NOW - 60, "PushStopTime": NOW, "IMSyncTime": NOW - 60, "ExceptionCnt": 1,
               "FinishReason": "EXCEPTION", "Error": {"Code": "FailedOperation.Record", "Message": "m"}}


def _mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with one to three fields replaced by hostile values: the rest valid, so they get through."""
    names = sorted(base)
    return st.dictionaries(st.sampled_from(names), hostile, min_size=1, max_size=3).map(lambda bad: {**base, **bad})


answers = _mutated(VALID_ANSWER) | st.fixed_dictionaries(
    {"Status": st.sampled_from(["PREPARED", "PUSHING", "STOPPED"]) | any_text},
    optional={name: hostile for name in (*INT_FIELDS, *STR_FIELDS, "Backup")})
event_data = _mutated(VALID_EVENT)


def _checked(text: str, openmetrics: str) -> None:
    """Both formats parse; promtool has nothing to say about the text format."""
    list(text_string_to_metric_families(text))
    list(openmetrics_families(openmetrics))
    result = subprocess.run([find_tool("promtool"), "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def _render(store: TaskStore) -> tuple[str, str]:
    exposition = Exposition(store, CollectorRegistry())
    return (b"".join(exposition.render_text()).decode("utf-8"),
            b"".join(exposition.render_openmetrics()).decode("utf-8"))


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.lists(answers, min_size=1, max_size=4))
def test_any_answer_is_a_task_or_a_bad_response_and_the_scrape_stays_valid(batch: list[dict[str, Any]]) -> None:
    store = TaskStore()
    for index, answer in enumerate(batch):
        key = (APP, f"task_{index}")
        try:
            task = parse_push_task(*key, answer)
        except BadResponse:
            continue
        store.add(key, "api")
        store.update(key, lambda r, task=task: merge_result(r, task, NOW))
        if index % 2:  # some also carry an error, or ended failed
            error = TaskError("FailedOperation.WhiteboardPush", str(answer.get("GroupId"))[:50], "", NOW)
            store.update(key, lambda r, error=error: end(merge_error(r, error), FAILED, NOW))
    _checked(*_render(store))


VALID_RECORD = {"Status": "FINISHED", "FinishReason": "FORCE_STOP", "RoomId": 880528, "GroupId": "880528",
                "RecordUserId": "tic_record_user", "RecordStartTime": NOW - 60, "RecordStopTime": NOW,
                "TotalTime": 60000, "ExceptionCnt": 2, "OmittedDurations": [{"VideoTime": 1, "PauseTime": 5,
                                                                              "ResumeTime": 9}],
                "VideoInfos": [{"VideoUrl": "u", "VideoType": 2}], "Interrupts": [{"UserId": "u", "Count": 3}],
                "ReplayUrl": None, "RequestId": "r", "TaskId": "t"}
VALID_TRANSCODE = {"Status": "PROCESSING", "Progress": 40, "Pages": 12, "Title": "lesson.pptx",
                   "Resolution": "1024x768", "CreateTime": NOW - 60, "AssignTime": NOW - 50, "FinishedTime": None,
                   "ResultUrl": "", "RequestId": "r", "TaskId": "t"}
KIND_PARSERS = {"record": parse_record_task, "transcode": parse_transcode_task}


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(KIND_PARSERS)), _mutated(VALID_RECORD) | _mutated(VALID_TRANSCODE)),
                min_size=1, max_size=4))
def test_any_recording_or_transcode_answer_is_a_task_or_a_bad_response(batch: list[tuple[str, dict]]) -> None:
    store = TaskStore()
    for index, (kind, answer) in enumerate(batch):
        key = task_key(APP, f"task_{index}", kind)
        try:
            task = KIND_PARSERS[kind](APP, key[1], answer)
        except BadResponse:
            continue
        store.add(key, "api")
        store.update(key, lambda r, task=task: merge_result(r, task, NOW))
        if index % 2:
            error = TaskError(KINDS[kind].failure_codes[0], str(answer.get("Title"))[:50], "", NOW)
            store.update(key, lambda r, error=error: end(merge_error(r, error), FAILED, NOW))
    _checked(*_render(store))


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([STARTED, STOPPED]), event_data), min_size=1, max_size=4))
def test_any_signed_callback_is_applied_or_refused_and_the_scrape_stays_valid(events: list[tuple[str, dict]]) -> None:
    store = TaskStore()
    endpoint = CallbackEndpoint(store, lambda: KEY, clock=lambda: NOW)
    for event_type, data in events:
        body = {"SdkAppId": APP, "ExpireTime": NOW + 60, "Sign": sign(KEY, NOW + 60), "EventType": event_type,
                "EventData": data}
        status, _ = endpoint.handle(json.dumps(body).encode())
        assert status in (200, 400)
    _checked(*_render(store))


@pytest.fixture
def served() -> Iterator[tuple[TaskStore, str]]:
    store = TaskStore()
    routes = Routes(store, Exposition(store, CollectorRegistry()), ready=lambda: True)
    server = ExporterHTTPServer(("127.0.0.1", 0), routes).start()
    try:
        yield store, server.url
    finally:
        server.stop()


def test_a_task_that_cannot_be_rendered_is_left_out_and_no_other_task_is_lost(served, caplog) -> None:
    store, url = served
    for task_id in ("good", "broken"):
        store.add((APP, task_id), "api")
        store.update((APP, task_id), lambda r: merge_result(r, PushTask(APP, r.task_id, "PUSHING"), NOW))
    assert requests.get(f"{url}/metrics", timeout=5).status_code == 200
    # Past the parse boundary (as a bug could): a label that cannot be encoded, a value no float holds.
    store.update((APP, "broken"), lambda r: replace(r, latest=replace(r.latest, group_id="\ud800",
                                                                          exception_cnt=10**400)))
    store.update((APP, "good"), lambda r: replace(r, latest=replace(r.latest, exception_cnt=3)))
    for _ in range(2):  # the next scrape too: the broken task stays out, nothing is retried into a 500
        answer = requests.get(f"{url}/metrics", timeout=5)
        assert answer.status_code == 200
        assert 'tiw_push_task_exceptions_total{sdk_app_id="1400000001",task_id="good"} 3.0' in answer.text
        assert 'task_id="broken"' not in answer.text
        om = requests.get(f"{url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=5)
        assert om.status_code == 200 and 'task_id="broken"' not in om.text
    assert sum("cannot be exposed" in r.getMessage() for r in caplog.records) == 1  # logged once per task
    store.update((APP, "broken"), lambda r: replace(r, latest=PushTask(APP, "broken", "PUSHING")))
    assert 'task_id="broken"' in requests.get(f"{url}/metrics", timeout=5).text  # back once it is sane
