"""Property tests: no input ends in a traceback, a 500 or a dead collector loop.

Surfaces, each checked by one method of ``Probes`` that fails when a single input breaks it:

(a) API answers (status, body, framing, ``Date``, ``Content-Encoding``) served by ``CannedApi`` into
    ``describe_whiteboard_push`` (``TencentCloudClient.call`` + ``parse_push_task``): a ``PushTask``
    or a ``CallFailure``, nothing else;
(b) ``POST /api/v1/tasks`` bodies on a running server: 200/201/400/401/413 with a JSON error, never a
    500; the store gains only the valid task named by a 201;
(c) callback bodies, signed or not, into ``CallbackEndpoint.handle``: 200/400/403, no exception; a
    refused callback changes nothing; the store gains only valid ids;
(d) tasks files into ``load_tasks_file``: valid keys or ``TasksFileError``;
(e) config files into ``build_settings({}, path)``: ``Settings`` or ``ConfigError``;
(f) the collector loop under any sequence of answers, failures and unexpected exceptions.

The inputs that broke a surface when these tests were written (each bug since fixed) stay at the end
of the file as regression cases, ``REGRESSIONS``, with the bug they found.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from exporter.callbacks import KNOWN_EVENTS, STARTED, STOPPED, CallbackEndpoint, sign
from exporter.collector import Collector
from exporter.config import OPTION_NAMES, ConfigError, build_settings
from exporter.exposition import Exposition
from exporter.kinds import PUSH_KIND
from exporter.model import KIND_NAMES, MAX_SDK_APP_ID, PUSH, PushTask, TaskKey
from exporter.ratelimit import PacedLimiter
from exporter.store import TaskStore
from exporter.tasksfile import TasksFileError, load_tasks_file
from exporter.tencentcloud.client import MAX_RESPONSE_BYTES, RetryPolicy, TencentCloudClient
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from exporter.tencentcloud.errors import (
    BAD_RESPONSE,
    ERROR,
    NETWORK_ERROR,
    SUCCESS,
    THROTTLED,
    ApiError,
    BadResponse,
    CallFailure,
    CredentialFailure,
    HttpStatusFailure,
    NetworkFailure,
    StaleConnection,
    TimeoutFailure,
)
from exporter.tiw import describe_whiteboard_push
from exporter.web.http import MAX_BODY_BYTES, ExporterHTTPServer, HttpError, RequestContext
from exporter.web.routes import Routes
from tests.constants import APP
from tests.fakes import FakeClock
from tests.harness import eventually

TASK_ID = "fuzzed_task"
TRACKED = (APP, "tracked")
TOKEN = "fuzz-api-token"
CALLBACK_KEY = "fuzz-callback-key"
NOW = 1_700_000_000
OUTCOMES = {SUCCESS, ERROR, THROTTLED, NETWORK_ERROR, BAD_RESPONSE}
TASK_API_STATUSES = {200, 201, 400, 401, 413}
CALLBACK_STATUSES = {200, 400, 403}
VALID_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_keys(keys: Iterable[TaskKey]) -> None:
    """Every key names a possible task: SdkAppId a positive int64, TaskId 1-64 of [A-Za-z0-9_-], and a kind
    beside pushes as a third item (a push's key stays the 2-tuple)."""
    for key in keys:
        app, task = key[0], key[1]
        assert type(app) is int and 0 < app <= MAX_SDK_APP_ID, app
        assert isinstance(task, str) and VALID_TASK_ID.fullmatch(task), task
        assert len(key) == 2 or (len(key) == 3 and key[2] in KIND_NAMES and key[2] != PUSH), key


# --------------------------------------------------------------------------- a server answering anything


@dataclass(frozen=True)
class Canned:
    """One HTTP answer of ``CannedApi``."""

    status: int = 200
    body: bytes = b"{}"
    date: str | None = None  # the Date header; None: the real time
    encoding: str | None = None  # Content-Encoding header
    compress: bool = False  # gzip the body (whatever the header says)
    short_by: int = 0  # Content-Length claims this many bytes more than are sent; then the connection closes


class _CannedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CannedApi

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        answer = self.server.answer
        body = gzip.compress(answer.body) if answer.compress else answer.body
        self.send_response(answer.status)
        if answer.encoding:
            self.send_header("Content-Encoding", answer.encoding)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) + answer.short_by))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def date_time_string(self, timestamp: float | None = None) -> str:
        return self.server.answer.date or super().date_time_string(timestamp)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CannedApi(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CannedHandler)
        self.answer = Canned()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


def envelope(**response: Any) -> bytes:
    return json.dumps({"Response": {**response, "RequestId": "fuzz"}}).encode()


# --------------------------------------------------------------------------- one probe per surface


class Probes:
    """Checks one input of each surface; raises AssertionError (or the unexpected exception) when it breaks."""

    def __init__(self, canned: CannedApi, app: Routes, server: ExporterHTTPServer, directory: Path) -> None:
        self.canned, self.app, self.server, self.directory = canned, app, server, directory

    def client(self, clock: Callable[[], float] = time.time) -> TencentCloudClient:
        return TencentCloudClient(StaticCredentials(Credential("AKIDfuzz", "fuzz-key")), endpoint=self.canned.url,
                                  connect_timeout=2, read_timeout=2, retry=RetryPolicy(attempts=1), clock=clock)

    def api_answer(self, answer: Canned) -> None:
        self.canned.answer = answer
        client = self.client()
        try:
            task = describe_whiteboard_push(client, APP, TASK_ID)
        except CallFailure as failure:
            assert failure.code and failure.outcome in OUTCOMES
        else:
            assert isinstance(task, PushTask) and task.status and task.task_id == TASK_ID
        finally:
            client.close()

    def task_api(self, body: bytes, token: str | None = TOKEN) -> None:
        store = self.app.store
        before = {record.key for record in store.snapshot()}
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        # requests.post: a fresh connection each time, so one answer cannot leak into the next
        answer = requests.post(f"{self.server.url}/api/v1/tasks", data=body, headers=headers, timeout=5)
        gained = {record.key for record in store.snapshot()} - before
        for key in gained:
            store.remove(key)
        if answer.status_code == 500:
            self._replay(body, headers)
        assert answer.status_code in TASK_API_STATUSES, answer.status_code
        assert answer.headers["Content-Type"] == "application/json"
        document = answer.json()
        assert (answer.status_code >= 400) == ("error" in document)
        check_keys(gained)
        if answer.status_code in (200, 201):  # 201: newly tracked; 200: tracked already
            named = (document["sdk_app_id"], document["task_id"])
            assert gained == ({named} if answer.status_code == 201 else set()) and (named in before) == (
                answer.status_code == 200)
        else:
            assert not gained

    def _replay(self, body: bytes, headers: dict[str, str]) -> None:
        """Raise the exception behind a 500 by sending the request to a fresh copy of the app in-process."""
        app = replace(self.app, store=TaskStore())
        with suppress(HttpError):
            app.handle(RequestContext("POST", "/api/v1/tasks", headers, lambda: body))

    def callback(self, body: bytes) -> None:
        store = TaskStore()
        endpoint = CallbackEndpoint(store, lambda: CALLBACK_KEY, clock=lambda: NOW)
        status, document = endpoint.handle(body)
        gained = {record.key for record in store.snapshot()}
        assert status in CALLBACK_STATUSES and document["error_code"] == (0 if status == 200 else 1)
        assert status == 200 or not gained
        check_keys(gained)
        assert len(gained) <= 1

    def tasks_file(self, data: bytes) -> None:
        path = self.directory / "tasks.yaml"
        path.write_bytes(data)
        try:
            keys = load_tasks_file(path)
        except TasksFileError as error:
            assert str(error) and "\n" not in str(error)
        else:
            check_keys(keys)
            assert len(set(keys)) == len(keys)

    def config_file(self, data: bytes) -> None:
        path = self.directory / "config.yaml"
        path.write_bytes(data)
        try:
            loaded = build_settings({}, path)
        except ConfigError as error:
            assert error.problems and all(error.problems)
        else:
            check_keys(loaded.sources.tasks)
            api = loaded.api
            assert min(loaded.polling.interval, api.read_timeout, api.connect_timeout, api.rate_limit) > 0
            assert 1 <= api.concurrency <= 256


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probes]:
    canned = CannedApi()
    threading.Thread(target=canned.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    store = TaskStore()
    store.add(TRACKED, "api")
    app = Routes(store, Exposition(store, CollectorRegistry()), ready=lambda: True, api_token=lambda: TOKEN)
    server = ExporterHTTPServer(("127.0.0.1", 0), app).start()
    try:
        yield Probes(canned, app, server, tmp_path_factory.mktemp("fuzz"))
    finally:
        server.stop()
        canned.shutdown()
        canned.server_close()


# --------------------------------------------------------------------------- strategies
# Documents are mostly valid with a few fields replaced or removed (``mutated``), so every branch is
# reached, the accepting ones included; the rest is arbitrary JSON, YAML-ish text and bytes.

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
digit_texts = st.text(alphabet="0123456789 \t+-.²①٣", min_size=1, max_size=6)
int_likes = st.integers(-3, 2**64) | st.integers(-3, 2**64).map(str) | digit_texts | json_values
good_task_ids = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z") | st.just(TRACKED[1])
task_ids = good_task_ids | st.sampled_from(["", "a" * 65, "bad id", "ü"]) | st.text(max_size=70) | json_values
good_sdk_app_ids = st.sampled_from([APP, 1, MAX_SDK_APP_ID, str(APP), " 42 "]) | st.integers(1, MAX_SDK_APP_ID)
sdk_app_ids = st.sampled_from([0, -1, MAX_SDK_APP_ID + 1, True]) | int_likes
latin1_texts = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]],
            wild: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """A document of ``base`` with up to three of the ``wild`` keys replaced by wild values or removed."""
    document = dict(draw(base))
    for name in draw(st.lists(st.sampled_from(sorted(wild)), max_size=3, unique=True)):
        if draw(st.booleans()):
            document[name] = draw(wild[name])
        else:
            document.pop(name, None)
    return document


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


ERROR_CODES = ["AuthFailure.SignatureExpire", "AuthFailure.SecretIdNotFound", "RequestLimitExceeded", "InternalError",
               "InvalidParameter.TaskNotFound", "FailedOperation.WhiteboardPush", "ResourceUnavailable.NotRegistered",
               ""]
INT_FIELDS = ["RoomId", "PushStartTime", "PushStopTime", "ExceptionCnt", "IMSyncTime"]
STR_FIELDS = ["TaskId", "FinishReason", "GroupId", "PushUserId", "RequestId"]
push_responses = mutated(
    st.fixed_dictionaries({"Status": st.sampled_from(PUSH_KIND.statuses)}, optional={
        **dict.fromkeys(INT_FIELDS, st.integers(0, 2**40)), **dict.fromkeys(STR_FIELDS, st.text(max_size=20)),
        "Backup": st.sampled_from(["", "null", "{}", '{"Status": "PUSHING", "ExceptionCnt": 2}', "{not json"])}),
    {"Status": json_values, **dict.fromkeys(INT_FIELDS, int_likes), **dict.fromkeys(STR_FIELDS, json_values),
     "Backup": json_values, "Error": json_values | st.fixed_dictionaries({}, optional={
         "Code": st.sampled_from(ERROR_CODES) | json_values, "Message": st.text(max_size=30) | json_values})})
envelopes = push_responses.map(lambda response: _dumps({"Response": response}))
answer_bodies = st.one_of(
    envelopes,
    envelopes.flatmap(lambda body: st.integers(0, len(body)).map(lambda cut: body[:cut])),
    json_values.map(_dumps),
    st.binary(max_size=100),
)
http_dates = st.none() | latin1_texts | st.datetimes().map(
    lambda moment: format_datetime(moment.replace(tzinfo=timezone.utc), usegmt=True))
api_answers = st.one_of(
    st.builds(Canned, status=st.sampled_from([200, 200, 200, 400, 401, 403, 404, 429, 500, 502, 503]),
              body=answer_bodies, date=http_dates, encoding=st.sampled_from([None, None, "gzip", "deflate", "br"]),
              compress=st.booleans(), short_by=st.sampled_from([0, 0, 0, 1, 100])),
    st.just(Canned(body=b" " * (MAX_RESPONSE_BYTES + 1))),
    st.just(Canned(body=b"{" + b" " * (3 << 20) + b"}", encoding="gzip", compress=True)),  # 3 KiB on the wire
)

task_documents = mutated(st.fixed_dictionaries({"sdk_app_id": good_sdk_app_ids, "task_id": good_task_ids}),
                         {"sdk_app_id": sdk_app_ids, "task_id": task_ids, "extra": json_values})
task_api_bodies = st.one_of(
    task_documents.map(_dumps),
    task_documents.map(_dumps),
    json_values.map(_dumps),
    st.binary(max_size=100),
    st.integers(-40, 40).map(lambda delta: b"{}" + b" " * (MAX_BODY_BYTES - 2 + delta)),
)
api_tokens = st.sampled_from([TOKEN, TOKEN, TOKEN, None, "wrong", ""])

EVENT_INTS = ["RoomId", "PushStartTime", "PushStopTime", "IMSyncTime", "ExceptionCnt"]
event_data = mutated(
    st.fixed_dictionaries({"TaskId": good_task_ids}, optional={
        **dict.fromkeys(EVENT_INTS, st.integers(0, 2**40)), "PushUserId": st.text(max_size=10),
        "GroupId": st.text(max_size=10), "FinishReason": st.sampled_from(["AUTO", "USER_CALL", "EXCEPTION"]),
        "Error": st.fixed_dictionaries({"Code": st.sampled_from(ERROR_CODES), "Message": st.text(max_size=20)})}),
    {"TaskId": task_ids, **dict.fromkeys(EVENT_INTS, int_likes), "PushUserId": json_values, "GroupId": json_values,
     "FinishReason": json_values, "Error": json_values | st.fixed_dictionaries(
         {"Code": st.text(max_size=20) | json_values, "Message": st.text(max_size=20) | json_values})})


@st.composite
def callback_bodies(draw: st.DrawFn) -> bytes:
    """Callbacks, mostly signed with a future ExpireTime, with some fields wild; sometimes no JSON object at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=60) | json_values.map(_dumps))
    base = st.fixed_dictionaries({
        "Timestamp": st.just(NOW), "SdkAppId": good_sdk_app_ids, "ExpireTime": st.just(NOW + 600),
        "EventType": st.sampled_from(KNOWN_EVENTS), "EventData": event_data})
    body = draw(mutated(base, {
        "Timestamp": int_likes, "SdkAppId": sdk_app_ids, "EventData": json_values, "Sign": st.text(max_size=32),
        "ExpireTime": st.sampled_from([NOW, NOW - 1]) | st.integers(-(2**40), 2**70) | json_values,
        "EventType": st.text(max_size=20) | json_values}))
    expire = body.get("ExpireTime")
    if "Sign" not in body and type(expire) is int and draw(st.integers(0, 7)):
        body["Sign"] = sign(CALLBACK_KEY, expire)
    return _dumps(body)


YAML_TOKENS = ["- ", "sdk_app_id: ", "task_id: ", "tasks:", "\n", "  ", "{", "}", "[", "]", ", ", ": ", "'", '"',
               "&a ", "*a", "!!str ", "!!int ", "!!float ", "!!binary ", "!!timestamp ", "!!set ", "? ", "<<: ",
               "|\n", ">\n", "# c", "---\n", "...\n", str(APP), "0x1F", "1_000", "abc", "~", "null", "yes", ".inf",
               "2020-02-30", "12:30:00", "\t", "%YAML 1.1\n", "!<tag:yaml.org,2002:python/none> ", "interval: ",
               "listen: ", "task: ", "tasks: "]
yaml_texts = st.lists(st.sampled_from(YAML_TOKENS) | st.text(max_size=4), max_size=25).map(
    lambda parts: "".join(parts).encode())


def _yaml(document: Any) -> bytes:
    return yaml.safe_dump(document, allow_unicode=True).encode()


tasks_documents = st.one_of(st.lists(task_documents, max_size=4), st.lists(task_documents | json_values, max_size=3),
                            st.lists(task_documents, max_size=3).map(lambda tasks: {"tasks": tasks}), json_values)
tasks_files = st.one_of(tasks_documents.map(_yaml), tasks_documents.map(_yaml), yaml_texts, st.binary(max_size=80))

good_options = st.fixed_dictionaries({}, optional={
    "interval": st.sampled_from(["15s", "500ms", "2m", 3, 0.5]), "listen": st.sampled_from(["127.0.0.1:0", ":9877"]),
    "endpoint": st.just("http://127.0.0.1:1"), "task": st.lists(good_task_ids.map(lambda task: f"{APP}:{task}")),
    "sdk-app-id": good_sdk_app_ids, "tasks": st.lists(good_task_ids, max_size=2), "rate_limit": st.integers(1, 50),
    "concurrency": st.integers(1, 256), "log_level": st.sampled_from(["debug", "INFO"]),
    "discover_sdk_app_id": st.lists(good_sdk_app_ids, max_size=2), "state_file": st.just("~/state.json"),
})
option_names = st.sampled_from([*OPTION_NAMES, "task", "discover_sdk_app_id", "secret-id", "rate-limit"]) | st.text(
    max_size=10)
option_values = st.one_of(json_values, int_likes, st.lists(st.text(max_size=12), max_size=3), st.sampled_from([
    "15s", "0s", "-1s", "1e3", "nan", "[::1]:0", ":99999", "ftp://x", "~/x", "~no-such-user-tiw/x",
    "/nonexistent/secret", f"{APP}:abc", "1:a b",
]))
config_documents = st.one_of(
    mutated(good_options, dict.fromkeys(["interval", "listen", "endpoint", "task", "sdk-app-id", "tasks",
                                         "concurrency", "rate_limit", "api_token_file", "state_file"], option_values)),
    st.dictionaries(option_names, option_values, max_size=6))
config_files = st.one_of(config_documents.map(_yaml), config_documents.map(_yaml), yaml_texts, st.binary(max_size=60))


# --------------------------------------------------------------------------- (a)-(e): one property per surface


def surface_property(check: Callable[[Probes, Any], None], cases: st.SearchStrategy[Any],
                     examples: int) -> Callable[..., None]:
    """A test that ``check`` holds for every case drawn from ``cases``."""

    @pytest.mark.slow  # hundreds of examples each
    @settings(max_examples=examples, deadline=None)
    @given(case=cases)
    def test(probes: Probes, case: Any) -> None:
        check(probes, case)

    return test


test_any_api_answer_gives_a_push_task_or_a_call_failure = surface_property(Probes.api_answer, api_answers, 300)
test_any_task_api_body_gets_a_documented_status_and_adds_only_valid_tasks = surface_property(
    lambda probes, case: probes.task_api(*case), st.tuples(task_api_bodies, api_tokens), 300)
test_any_callback_gets_200_400_or_403_and_only_accepted_ones_add_valid_tasks = surface_property(
    Probes.callback, callback_bodies(), 1000)
test_any_tasks_file_gives_valid_tasks_or_a_tasks_file_error = surface_property(Probes.tasks_file, tasks_files, 500)
test_any_config_file_gives_settings_or_a_config_error = surface_property(Probes.config_file, config_files, 500)


# --------------------------------------------------------------------------- (f): the collector loop


class ScriptedApi:
    """Answers polls from a script, in order, whichever task asks; a good PUSHING answer once it is used up."""

    def __init__(self, script: list[Any]) -> None:
        self.script = deque(script)
        self.lock = threading.Lock()

    def __call__(self, sdk_app_id: int, task_id: str) -> PushTask:
        with self.lock:
            step = self.script.popleft() if self.script else ("PUSHING", 0)
        if isinstance(step, Exception):
            raise step
        status, exceptions = step
        return PushTask(sdk_app_id, task_id, status, exception_cnt=exceptions)


failure_messages = st.text(max_size=20)
poll_steps = st.one_of(
    st.tuples(st.sampled_from(PUSH_KIND.statuses) | st.text(max_size=8), st.integers(0, 10**6)),
    st.builds(ApiError, st.sampled_from(ERROR_CODES) | st.text(max_size=20), failure_messages),
    st.builds(lambda cls, message: cls("ClientError.Network", message),
              st.sampled_from([NetworkFailure, TimeoutFailure, StaleConnection, BadResponse, HttpStatusFailure,
                               CredentialFailure]), failure_messages),
    st.builds(lambda cls, message: cls(message),
              st.sampled_from([RuntimeError, ValueError, KeyError, TypeError, ZeroDivisionError, RecursionError,
                               AttributeError]), failure_messages),
)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(script=st.lists(poll_steps, max_size=25), tasks=st.integers(1, 3))
def test_the_collector_loop_survives_any_sequence_of_answers_and_applies_the_next_good_one(
        script: list[Any], tasks: int) -> None:
    api, store = ScriptedApi(script), TaskStore()
    collector = Collector(store, api, PacedLimiter(2000), interval=0.01, concurrency=4, max_backoff=0.02)
    for index in range(tasks):
        store.add((APP + index % 2, f"scripted_{index}"), "api")
    collector.start()
    try:
        eventually(lambda: not api.script or not any(record.active for record in store.snapshot()), timeout=10,
                   interval=0.005)
        api.script.clear()  # whatever was not used (every task stopped): the next answers are good ones
        store.add((APP, "after_the_script"), "api")
        eventually(lambda: store.get((APP, "after_the_script")).last_success is not None, timeout=10, interval=0.005)
        assert store.get((APP, "after_the_script")).status == "PUSHING"
        assert collector._dispatcher.is_alive() and collector._housekeeping.alive  # neither loop died
    finally:
        collector.stop()


# --------------------------------------------------------------------------- regressions: inputs that once broke us


def _signed_callback(event_type: str = STARTED, sdk_app_id: object = APP, **data: object) -> bytes:
    expire = NOW + 600
    return _dumps({"Timestamp": NOW, "SdkAppId": sdk_app_id, "ExpireTime": expire, "Sign": sign(CALLBACK_KEY, expire),
                   "EventType": event_type, "EventData": {"TaskId": "pinned", **data}})


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# The bugs: int_text - str.isdigit() took "²" and 4400-digit runs, then int() raised; task_id_newline - "$"
# matched before a final newline; deep_nesting - RecursionError from json/yaml went uncaught; yaml_constructors -
# PyYAML constructors raise ValueError/IndexError/AttributeError, not YAMLError; float_overflow - float() of a
# huge int; unknown_home - "~nobody/x".expanduser(); refused_callback_tracks_task - a 400 callback still tracked
# its task because the store was written before validation.
REGRESSIONS: list[tuple[str, str, Any]] = [  # (the bug it found, probe, input)
    ("int_text", "task_api", _dumps({"sdk_app_id": "²", "task_id": "pinned"})),
    ("int_text", "callback", _signed_callback(sdk_app_id="①")),
    ("int_text", "tasks_file", "- {sdk_app_id: '²', task_id: pinned}\n".encode()),
    ("int_text", "api_answer", Canned(body=envelope(Status="PUSHING", RoomId="²"))),
    ("int_text", "api_answer", Canned(body=envelope(Status="PUSHING", ExceptionCnt="1" * 4400))),
    ("task_id_newline", "task_api", _dumps({"sdk_app_id": APP, "task_id": "pinned\n"})),
    ("task_id_newline", "callback", _signed_callback(TaskId="pinned\n")),
    ("task_id_newline", "tasks_file", b'- {sdk_app_id: 1400000001, task_id: "pinned\\n"}\n'),
    ("deep_nesting", "api_answer", Canned(body=_nested(5000))),
    ("deep_nesting", "task_api", _nested(5000)),
    ("deep_nesting", "callback", _nested(5000)),
    ("deep_nesting", "tasks_file", _nested(5000)),
    ("deep_nesting", "config_file", b"interval: " + _nested(5000)),
    ("yaml_constructors", "tasks_file", b"- {sdk_app_id: 2020-13-45, task_id: pinned}\n"),
    ("yaml_constructors", "tasks_file", b"!!int \n"),
    ("yaml_constructors", "tasks_file", b"!!timestamp \n"),
    ("yaml_constructors", "config_file", b"interval: 2020-02-30\n"),
    ("yaml_constructors", "config_file", b"concurrency: " + b"1" * 4400 + b"\n"),
    ("yaml_constructors", "config_file", b"rate_limit: !!float \n"),
    ("float_overflow", "config_file", b"interval: 1" + b"0" * 400 + b"\n"),
    ("float_overflow", "config_file", b"rate_limit: 1" + b"0" * 400 + b"\n"),
    ("unknown_home", "config_file", b"state_file: ~no-such-user-tiw/state.json\n"),
    ("refused_callback_tracks_task", "callback", _signed_callback(RoomId="x")),
    ("refused_callback_tracks_task", "callback", _signed_callback(STOPPED, Error={"Code": ["x"]})),
]


SLOW_REGRESSIONS = {("deep_nesting", "tasks_file"), ("deep_nesting", "config_file")}  # YAML 5000 levels deep: ~2 s


@pytest.mark.parametrize(("bug", "probe", "case"), [
    pytest.param(bug, probe, case, id=f"{bug}-{probe}-{index}",
                 marks=pytest.mark.slow if (bug, probe) in SLOW_REGRESSIONS else ())
    for index, (bug, probe, case) in enumerate(REGRESSIONS)
])
def test_input_that_once_broke_a_surface_is_handled(probes: Probes, bug: str, probe: str, case: Any) -> None:
    getattr(probes, probe)(case)


# Found by (a): _resync_clock trusted any Date header, so a Date in year 9999 made every later signing fail.
def test_a_date_header_at_the_end_of_time_cannot_break_later_calls(probes: Probes) -> None:
    probes.canned.answer = Canned(body=envelope(Error={"Code": "AuthFailure.SignatureExpire", "Message": "late"}),
                                  date="Fri, 31 Dec 9999 23:59:59 GMT")
    clock = FakeClock(NOW)
    client = probes.client(clock=clock)
    try:
        with pytest.raises(ApiError):
            client.call("DescribeWhiteboardPush", {})
        clock.advance(2)
        with pytest.raises(CallFailure):
            client.call("DescribeWhiteboardPush", {})
    finally:
        client.close()


# Found by (b): an error answered before the body was read left the body on a keep-alive connection,
# where it was parsed as the next request (request smuggling behind a proxy).
def test_the_body_of_a_refused_request_is_never_served_as_a_request(probes: Probes) -> None:
    smuggled = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    request = (b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
               b"Content-Length: %d\r\n\r\n" % len(smuggled)) + smuggled
    received = b""
    with socket.create_connection(probes.server.server_address[:2], timeout=2) as connection:
        connection.sendall(request)
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    assert received.startswith(b"HTTP/1.1 401")
    assert received.count(b"HTTP/1.1 ") == 1, received.decode(errors="replace")


@pytest.mark.parametrize("code", ["not a code", "<script>", "A" * 81, "", 7])
def test_an_error_code_that_cannot_be_a_label_is_a_bad_response(probes: Probes, code: object) -> None:
    probes.canned.answer = Canned(body=envelope(Error={"Code": code, "Message": "m"}))
    client = probes.client(clock=FakeClock(NOW))
    try:
        with pytest.raises(BadResponse) as caught:
            client.call("DescribeWhiteboardPush", {})
    finally:
        client.close()
    assert caught.value.code == "ClientError.BadResponse"
