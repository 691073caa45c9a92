"""Our API client (exporter.tencentcloud + exporter.tiw) against the simulator over real HTTP.

Every error code of the seed and every fault kind must reach callers as the right ``CallFailure``
class, ``code`` and ``outcome``, retried only when that is safe; lifecycles run on a shared manual
clock so nothing sleeps. The official SDK's ``TiwClient`` parses every answer of the other task kinds
(recordings, transcodes), each checked field by field against the SDK's models: names, types, nulls.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.tiw.v20190919 import models, tiw_client

from exporter import tiw
from exporter.errors import client_retry
from exporter.kinds import PUSH_KIND
from exporter.model import PushTask, parse_backup
from exporter.simulator import (
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    FAULT_KINDS,
    SEED_FAILURE_MESSAGE,
    RecordScript,
    Simulator,
    TaskScript,
    TranscodeScript,
)
from exporter.tencentcloud.client import RetryPolicy, TencentCloudClient
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from exporter.tencentcloud.errors import (
    ApiError,
    BadResponse,
    CallFailure,
    CredentialFailure,
    HttpStatusFailure,
    StaleConnection,
    TimeoutFailure,
)
from tests.constants import APP
from tests.fakes import FakeClock

OTHER_APP = 1400000002
DESCRIBE = "DescribeWhiteboardPush"
ATTEMPTS = 3


@dataclass
class Harness:
    """A running simulator on a manual clock, and clients that sign with the same clock."""

    sim: Simulator
    clock: FakeClock
    clients: list[TencentCloudClient] = field(default_factory=list)

    def client(
        self,
        secret_id: str = DEMO_SECRET_ID,
        secret_key: str = DEMO_SECRET_KEY,
        token: str = "",
        *,
        skew: float = 0.0,
        clock: Callable[[], float] | None = None,
        read_timeout: float = 5.0,
        attempts: int = ATTEMPTS,
        region: str = "ap-guangzhou",
    ) -> TencentCloudClient:
        """A client signing with the simulator's clock, ``skew`` seconds off, or with ``clock``."""
        client = TencentCloudClient(
            StaticCredentials(Credential(secret_id, secret_key, token)),
            endpoint=self.sim.url,
            region=region,
            read_timeout=read_timeout,
            retry=RetryPolicy(attempts=attempts, base_seconds=0.001, cap_seconds=0.005, retryable=client_retry),
            clock=clock or ((lambda: self.clock() + skew) if skew else self.clock),
        )
        self.clients.append(client)
        return client

    def task(self, script: TaskScript | None = None, **options: Any) -> str:
        return self.sim.add_task(options.pop("sdk_app_id", APP), script or TaskScript(), **options)

    def describe(
        self, task_id: str, sdk_app_id: int = APP, client: TencentCloudClient | None = None, **options: Any
    ) -> PushTask:
        return tiw.describe_whiteboard_push(client or self.client(**options), sdk_app_id, task_id)

    def answers(self, action: str = DESCRIBE) -> dict[str, int]:
        """How the simulator answered ``action`` so far, by outcome: proves (no) retries."""
        return self.sim.stats()["requests"].get(action, {})

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.sim.close()


@pytest.fixture
def make_harness() -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**sim_options: Any) -> Harness:
        clock = FakeClock(1_700_000_000.0)
        made.append(Harness(Simulator(clock=clock, **sim_options).start(), clock))
        return made[-1]

    yield make
    for harness in made:
        harness.close()


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()


# --------------------------------------------------------------------------- error codes of the seed


def _failing_task(h: Harness) -> str:
    return h.task(TaskScript(prepare_seconds=0, fail_with="FailedOperation.WhiteboardPush"))  # failed already


SEED_ERRORS: list[tuple[str, dict[str, Any], Callable[[Harness], object]]] = [
    ("AuthFailure.SignatureFailure", {}, lambda h: h.describe(h.task(), secret_key="wrong")),
    ("AuthFailure.SecretIdNotFound", {}, lambda h: h.describe(h.task(), secret_id="AKIDnobody")),
    ("AuthFailure.SignatureExpire", {}, lambda h: h.describe(h.task(), skew=301)),
    (
        "AuthFailure.TokenFailure",
        {"tokens": {DEMO_SECRET_ID: "tok"}},
        lambda h: h.describe(h.task(), token="old"),
    ),
    ("FailedOperation.WhiteboardPush", {}, lambda h: h.describe(_failing_task(h))),
    (
        "InvalidParameter.BodyParameterTypeUnmatched",
        {},
        lambda h: h.client().call(DESCRIBE, {"SdkAppId": str(APP), "TaskId": h.task()}),
    ),
    ("InvalidParameter.TaskNotFound", {}, lambda h: h.describe("ghucnligqtgtvk2624mb")),
    (
        "ResourceUnavailable.NotRegistered",
        {"unregistered_sdk_app_ids": [OTHER_APP]},
        lambda h: h.describe("ghucnligqtgtvk2624mb", OTHER_APP),
    ),
    (
        "ResourceUnavailable.ServiceExpired",
        {"expired_sdk_app_ids": [OTHER_APP]},
        lambda h: h.describe(h.task(sdk_app_id=OTHER_APP), OTHER_APP),
    ),
    ("UnauthorizedOperation.SdkAppId", {}, lambda h: h.describe("ghucnligqtgtvk2624mb", OTHER_APP)),
]


@pytest.mark.parametrize(("code", "sim_options", "call"), SEED_ERRORS, ids=[case[0] for case in SEED_ERRORS])
def test_every_seed_error_code_reaches_the_caller_as_an_api_error_without_retry(
    make_harness: Callable[..., Harness],
    code: str,
    sim_options: dict[str, Any],
    call: Callable[[Harness], object],
) -> None:
    h = make_harness(**sim_options)
    with pytest.raises(ApiError) as caught:
        call(h)
    assert (caught.value.code, caught.value.outcome, client_retry(code)) == (code, "error", False)
    assert caught.value.request_id
    assert h.answers() == {code: 1}


def test_a_failed_push_answers_with_the_seed_message(h: Harness) -> None:
    with pytest.raises(ApiError) as caught:
        h.describe(_failing_task(h))
    assert caught.value.message == SEED_FAILURE_MESSAGE


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Expected:
    failure: type[CallFailure]
    code: str
    outcome: str
    retryable: bool
    sends_per_attempt: int = 1  # a connection closed without an answer is resent once at once (read-only)


FAULTS: dict[str, Expected] = {
    "http500": Expected(HttpStatusFailure, "ClientError.HttpStatus", "bad_response", True),
    "http502_empty": Expected(HttpStatusFailure, "ClientError.HttpStatus", "bad_response", True),
    "http404": Expected(BadResponse, "ClientError.BadResponse", "bad_response", False),
    "malformed_json": Expected(BadResponse, "ClientError.BadResponse", "bad_response", False),
    "truncated_json": Expected(BadResponse, "ClientError.BadResponse", "bad_response", False),
    "wrong_shape": Expected(BadResponse, "ClientError.BadResponse", "bad_response", False),
    "wrong_types": Expected(BadResponse, "ClientError.BadResponse", "bad_response", False),
    "internal_error": Expected(ApiError, "InternalError", "error", True),
    "request_limit": Expected(ApiError, "RequestLimitExceeded", "throttled", True),
    "slow": Expected(TimeoutFailure, "ClientError.Timeout", "network_error", True),
    "trickle": Expected(TimeoutFailure, "ClientError.Timeout", "network_error", True),
    "drop": Expected(StaleConnection, "ClientError.Network", "network_error", True, sends_per_attempt=2),
    "oversized": Expected(BadResponse, "ClientError.ResponseTooLarge", "bad_response", False),
    "signature_expire": Expected(ApiError, "AuthFailure.SignatureExpire", "error", False),
    "service_unavailable": Expected(ApiError, "ServiceUnavailable", "error", True),
    "unsupported_region": Expected(ApiError, "UnsupportedRegion", "error", False),
    "sdk_app_id_not_found": Expected(ApiError, "InvalidParameter.SdkAppIdNotFound", "error", False),
    "invalid_action": Expected(ApiError, "InvalidAction", "error", False),
}
RETRYABLE = [kind for kind, expected in FAULTS.items() if expected.retryable]


def test_the_fault_table_covers_every_fault_kind() -> None:
    assert set(FAULTS) == set(FAULT_KINDS)


@pytest.mark.parametrize("kind", list(FAULTS))
def test_a_persistent_fault_fails_the_call_with_its_exact_failure(h: Harness, kind: str) -> None:
    expected = FAULTS[kind]
    task_id = h.task()
    h.sim.set_fault(kind, seconds=5)
    with pytest.raises(CallFailure) as caught:
        h.describe(task_id, read_timeout=0.3)
    failure = caught.value
    assert type(failure) is expected.failure
    assert (failure.code, failure.outcome, client_retry(failure.code)) == (
        expected.code,
        expected.outcome,
        expected.retryable,
    )
    attempts = ATTEMPTS if expected.retryable else 1
    assert sum(h.answers().values()) == attempts * expected.sends_per_attempt


@pytest.mark.parametrize("kind", RETRYABLE)
def test_a_single_retryable_fault_is_retried_and_the_call_succeeds(h: Harness, kind: str) -> None:
    task_id = h.task()
    h.sim.set_fault(kind, count=1, seconds=5)
    assert h.describe(task_id, read_timeout=0.3).task_id == task_id
    assert sum(h.answers().values()) == 2
    assert h.sim.stats()["describes_by_task"] == {task_id: 2}


# --------------------------------------------------------------------------- lifecycles on a manual clock


@pytest.mark.parametrize("reason", PUSH_KIND.finish_reasons)
def test_a_task_moves_prepared_pushing_stopped_and_reports_its_finish_reason(h: Harness, reason: str) -> None:
    created = h.clock()
    task_id = h.task(TaskScript(prepare_seconds=2, push_seconds=10, finish_reason=reason))
    client = h.client()
    preparing = h.describe(task_id, client=client)
    assert (preparing.status, preparing.push_start_time, preparing.finish_reason) == ("PREPARED", 0, "")
    h.clock.advance(3)
    pushing = h.describe(task_id, client=client)
    assert (pushing.status, pushing.push_start_time, pushing.push_stop_time) == (
        "PUSHING",
        int(created + 2),
        0,
    )
    h.clock.advance(10)
    stopped = h.describe(task_id, client=client)
    assert (stopped.status, stopped.finish_reason) == ("STOPPED", reason)
    assert (stopped.push_start_time, stopped.push_stop_time) == (int(created + 2), int(created + 12))
    assert stopped.room_id and stopped.group_id == str(stopped.room_id)
    assert stopped.push_user_id.startswith(f"tic_push_user_{stopped.room_id}_")


def test_exception_count_grows_while_pushing_and_freezes_once_stopped(h: Harness) -> None:
    task_id = h.task(TaskScript(prepare_seconds=0, push_seconds=60, exceptions_per_minute=6))
    client = h.client()
    counts = []
    for _ in range(4):
        counts.append(h.describe(task_id, client=client).exception_cnt)
        h.clock.advance(25)
    assert counts == [0, 2, 5, 6]
    assert h.describe(task_id, client=client).exception_cnt == 6


def _start(client: TencentCloudClient, script: dict[str, Any] | None = None) -> str:
    params = {
        "SdkAppId": APP,
        "RoomId": 880528,
        "PushUserId": "tic_push_user_880528_test1",
        "PushUserSig": "s",
    }
    if script is not None:
        params["ExtraData"] = json.dumps({"simulator": script})
    task_id = client.call("StartWhiteboardPush", params).response.get("TaskId")
    assert isinstance(task_id, str) and task_id
    return task_id


def _stop(client: TencentCloudClient, task_id: str) -> None:
    client.call("StopWhiteboardPush", {"SdkAppId": APP, "TaskId": task_id})


def test_stopped_task_reports_user_call_after_stop_api(h: Harness) -> None:
    client = h.client()
    task_id = _start(client, {"prepare_seconds": 1})
    h.clock.advance(5)
    assert h.describe(task_id, client=client).status == "PUSHING"
    _stop(client, task_id)
    stopped = h.describe(task_id, client=client)
    assert (stopped.status, stopped.finish_reason, stopped.push_stop_time) == (
        "STOPPED",
        "USER_CALL",
        int(h.clock()),
    )
    assert (stopped.room_id, stopped.push_user_id) == (880528, "tic_push_user_880528_test1")
    with pytest.raises(ApiError) as again:
        _stop(client, task_id)
    assert again.value.code == "UnsupportedOperation.TaskHasAlreadyStopped"
    with pytest.raises(ApiError) as unknown:
        _stop(client, "ghucnligqtgtvk2624mb")
    assert unknown.value.code == "InvalidParameter.TaskNotFound"


def test_start_with_an_invalid_simulator_script_is_rejected(h: Harness) -> None:
    with pytest.raises(ApiError) as caught:
        _start(h.client(), {"finish_reason": "NEVER"})
    assert caught.value.code == "InvalidParameter.InvalidExtra"


def test_started_tasks_get_the_same_ids_and_scripts_from_the_same_seed(
    make_harness: Callable[..., Harness],
) -> None:
    first, second = make_harness(seed=9), make_harness(seed=9)
    ids = [_start(first.client()) for _ in range(5)]
    assert ids == [_start(second.client()) for _ in range(5)]
    assert [first.sim.script(i) for i in ids] == [second.sim.script(i) for i in ids]


def test_backup_text_passes_through_verbatim(h: Harness) -> None:
    backup = '{"Status": "PUSHING", "ExceptionCnt": 2}'
    task = h.describe(h.task(TaskScript(backup=backup)))
    assert task.backup == backup
    assert parse_backup(task.backup) == {"Status": "PUSHING", "ExceptionCnt": 2}


# ------------------------------------------------------------------ running tasks, limits, credentials


def test_running_tasks_page_through_unstopped_tasks_of_the_last_three_days(h: Harness) -> None:
    now = h.clock()
    running = [h.task(created_at=now - 60 * (10 - i)) for i in range(7)]
    h.task(TaskScript(prepare_seconds=0, push_seconds=1), created_at=now - 30)
    h.task(TaskScript(prepare_seconds=0, push_seconds=1), created_at=now - 3600)
    h.task(created_at=now - 3 * 86400 - 1)
    client = h.client()
    pages = [tiw.describe_running_tasks(client, APP, offset, 3) for offset in (0, 3, 6)]
    assert [total for _, total in pages] == [7, 7, 7]
    assert [len(tasks) for tasks, _ in pages] == [3, 3, 1]
    assert [task.task_id for tasks, _ in pages for task in tasks] == running
    assert {task.status for tasks, _ in pages for task in tasks} == {"PROCESSING"}


def test_a_concurrent_burst_over_the_limit_is_partly_throttled(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(rate_limit=5)
    task_id = h.task()
    client = h.client(attempts=1)

    def outcome(_: int) -> str:
        try:
            h.describe(task_id, client=client)
        except CallFailure as failure:
            return failure.outcome
        return "success"

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(outcome, range(12)))
    assert set(outcomes) == {"success", "throttled"}
    assert h.sim.stats()["max_requests_in_any_second"][DESCRIBE] <= 5
    assert h.answers()["RequestLimitExceeded"] == outcomes.count("throttled")


def test_the_client_learns_the_server_clock_after_signature_expire(h: Harness) -> None:
    task_id = h.task()
    client = h.client(skew=900)
    with pytest.raises(ApiError) as caught:
        h.describe(task_id, client=client)
    assert caught.value.code == "AuthFailure.SignatureExpire"
    assert h.describe(task_id, client=client).task_id == task_id


def test_the_client_forgets_a_learned_clock_offset_once_its_clock_is_fixed(h: Harness) -> None:
    task_id = h.task()
    skew = {"seconds": 900.0}
    client = h.client(clock=lambda: h.clock() + skew["seconds"], attempts=1)
    with pytest.raises(ApiError):
        h.describe(task_id, client=client)  # learns -900 s
    assert h.describe(task_id, client=client).task_id == task_id
    skew["seconds"] = 0.0  # NTP steps the local clock back to the truth
    with pytest.raises(ApiError):
        h.describe(task_id, client=client)  # expected: this SignatureExpire resets the offset...
    assert h.describe(task_id, client=client).task_id == task_id  # ...so this one succeeds


def test_revoked_and_rotated_credentials_take_effect_mid_run(h: Harness) -> None:
    task_id = h.task()
    client = h.client()
    assert h.describe(task_id, client=client).task_id == task_id
    h.sim.set_credential(DEMO_SECRET_ID, "rotated-key")
    with pytest.raises(ApiError, match=r"AuthFailure\.SignatureFailure"):
        h.describe(task_id, client=client)
    assert h.describe(task_id, secret_key="rotated-key").task_id == task_id
    h.sim.revoke(DEMO_SECRET_ID)
    with pytest.raises(ApiError, match=r"AuthFailure\.SecretIdNotFound"):
        h.describe(task_id, secret_key="rotated-key")


def test_temporary_credentials_with_the_right_token_are_accepted(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(tokens={DEMO_SECRET_ID: "session-token"})
    task_id = h.task()
    assert h.describe(task_id, token="session-token").task_id == task_id


def test_a_token_that_cannot_be_a_header_fails_the_call_without_showing_the_token(h: Harness) -> None:
    with pytest.raises(CredentialFailure) as caught:
        h.describe(h.task(), token="s3cret-token\r\nX-Injected: 1")
    assert caught.value.code == "ClientError.Credential" and "s3cret" not in str(caught.value)
    assert h.answers() == {}


# ------------------------------------------------------------------ what TIW documents (fidelity audit)


def test_the_running_list_says_queued_only_for_pushes_waiting_for_capacity(h: Harness) -> None:
    queued = h.task(TaskScript(queued_seconds=60, prepare_seconds=5))
    preparing = h.task(TaskScript(prepare_seconds=60))
    pushing = h.task(TaskScript(prepare_seconds=0))
    tasks, total = tiw.describe_running_tasks(h.client(), APP)
    assert total == 3
    assert {task.task_id: task.status for task in tasks} == {
        queued: "QUEUED", preparing: "PROCESSING", pushing: "PROCESSING"}
    assert h.describe(queued).status == "PREPARED"  # the push status has no queued value


def test_a_push_failing_at_start_leaves_the_running_list_but_keeps_failing(h: Harness) -> None:
    task_id = h.task(TaskScript(prepare_seconds=1, fail_with="FailedOperation.WhiteboardPush"))
    client = h.client()
    assert [task.task_id for task in tiw.describe_running_tasks(client, APP)[0]] == [task_id]
    h.clock.advance(3600)
    assert tiw.describe_running_tasks(client, APP) == ([], 0)
    with pytest.raises(ApiError) as caught:
        h.describe(task_id, client=client)
    assert caught.value.code == "FailedOperation.WhiteboardPush"


def test_a_region_the_simulator_does_not_serve_fails_the_call_without_retry(h: Harness) -> None:
    with pytest.raises(ApiError) as caught:
        h.describe(h.task(), region="ap-nowhere")
    assert (caught.value.code, client_retry(caught.value.code)) == ("UnsupportedRegion", False)
    assert h.answers() == {"UnsupportedRegion": 1}
    assert h.describe(h.task(), region="ap-singapore").status == "PREPARED"  # the international site's region


def test_the_warning_callback_actions_answer_what_was_set(h: Harness) -> None:
    client = h.client()
    client.call("SetWarningCallback", {"SdkAppId": APP, "Callback": "https://cb.example/warn", "CallbackKey": "k"})
    answer = client.call("DescribeWarningCallback", {"SdkAppId": APP}).response
    assert (answer["Callback"], answer["CallbackKey"]) == ("https://cb.example/warn", "k")
    with pytest.raises(ApiError) as caught:
        client.call("SetWarningCallback", {"SdkAppId": APP, "Callback": "ftp://x", "CallbackKey": ""})
    assert caught.value.code == "InvalidParameter.CallbackAddressFormatError"



# ------------------------------------------------------------- the official SDK parses the other kinds' answers


class SdkClient(tiw_client.TiwClient):
    """The official ``TiwClient``, keeping the raw answer of each call beside the model it parsed."""

    raw: dict[str, Any] = {}

    def call(self, action: str, params: Any, options: Any = None, headers: Any = None) -> Any:
        body = super().call(action, params, options, headers)
        self.raw = json.loads(body)["Response"]
        return body


def sdk_client(h: Harness) -> SdkClient:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=h.sim.url.removeprefix("http://")))
    return SdkClient(credential.Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY), "ap-guangzhou", profile)


@pytest.fixture
def sdk_h(make_harness: Callable[..., Harness]) -> Harness:
    """A harness whose simulator accepts the SDK's real-time signatures on the manual clock."""
    return make_harness(max_skew=10**10)


def _sdk_type_problems(rtype: str, value: Any, where: str) -> list[str]:
    """How ``value`` differs from the SDK's ``:rtype:`` (``int``, ``str``, ``list of X``, a model name)."""
    if rtype.startswith("list of "):
        if not isinstance(value, list):
            return [f"{where} is not a list"]
        return [p for i, item in enumerate(value) for p in _sdk_type_problems(rtype[8:], item, f"{where}[{i}]")]
    python = {"int": int, "str": str, "bool": bool, "float": (int, float)}.get(rtype)
    if python is not None:
        wrong = not isinstance(value, python) or (rtype == "int" and isinstance(value, bool))
        return [f"{where} is {value!r}, not {rtype}"] if wrong else []
    if not isinstance(value, dict):
        return [f"{where} is not a {rtype} object"]
    return sdk_shape_problems(getattr(models, rtype.split(".")[-1].strip("`")), value, f"{where}.")


def sdk_shape_problems(model: type, answer: dict[str, Any], where: str = "") -> list[str]:
    """What in ``answer`` the SDK's ``model`` does not have, lacks, types otherwise or does not allow as null."""
    names = {name[1:] for name in vars(model())} - {"RequestId"}
    problems = [f"{where}{name} is unknown to the SDK" for name in set(answer) - names - {"RequestId"}]
    problems += [f"{where}{name} is missing" for name in names - set(answer)]
    for name in names & set(answer):
        doc = getattr(model, name).__doc__ or ""
        rtype = re.search(r":rtype: (.+)", doc)
        assert rtype, f"no :rtype: for {model.__name__}.{name}"
        if answer[name] is None:
            problems += [] if "null" in doc else [f"{where}{name} is null, which the SDK does not allow"]
        else:
            problems += _sdk_type_problems(rtype[1].strip(), answer[name], f"{where}{name}")
    return problems


def sdk_call(client: SdkClient, action: str, **fields: Any) -> Any:
    """``action`` through the official client; its raw answer must match the SDK's response model exactly."""
    request = getattr(models, f"{action}Request")()
    request.from_json_string(json.dumps(fields))
    parsed = getattr(client, action)(request)
    assert sdk_shape_problems(type(parsed), client.raw) == []
    return parsed


def test_the_official_sdk_parses_a_recording_from_start_to_its_videos(sdk_h: Harness) -> None:
    client = sdk_client(sdk_h)
    script = {"simulator": {"prepare_seconds": 1, "finish_seconds": 10, "interrupts_per_minute": {"teacher": 3}}}
    started = sdk_call(client, "StartOnlineRecord", SdkAppId=APP, RoomId=880528,
                       RecordUserId="tic_record_user_880528_a", RecordUserSig="sig", ExtraData=json.dumps(script))
    task = {"SdkAppId": APP, "TaskId": started.TaskId}
    assert sdk_call(client, "DescribeOnlineRecord", **task).Interrupts is None  # null until it records
    statuses = []
    for action, seconds in (("PauseOnlineRecord", 20), ("ResumeOnlineRecord", 30), ("StopOnlineRecord", 40)):
        sdk_h.clock.advance(seconds)
        sdk_call(client, action, **task)
        statuses.append(sdk_call(client, "DescribeOnlineRecord", **task).Status)
    assert statuses == ["PAUSED", "RECORDING", "STOPPED"]
    sdk_h.clock.advance(10)
    done = sdk_call(client, "DescribeOnlineRecord", **task)
    assert (done.Status, done.FinishReason, done.TotalTime, len(done.OmittedDurations)) == (
        "FINISHED", "USER_CALL", 59_000, 1)
    assert [(video.VideoType, video.UserId) for video in done.VideoInfos] == [(2, ""), (0, "teacher")]
    assert [(one.UserId, one.Count) for one in done.Interrupts] == [("teacher", 2)]


def test_the_official_sdk_parses_a_transcode_with_its_nulls_and_times(sdk_h: Harness) -> None:
    client = sdk_client(sdk_h)
    script = {"simulator": {"queued_seconds": 10, "processing_seconds": 40, "pages": 9}}
    created = sdk_call(client, "CreateTranscode", SdkAppId=APP, Url="https://x.example.com/deck.pptx",
                       IsStaticPPT=False, ThumbnailResolution="200x200", ExtraData=json.dumps(script))
    task = {"SdkAppId": APP, "TaskId": created.TaskId}
    seen = []
    for seconds in (0, 30, 20):
        sdk_h.clock.advance(seconds)
        answer = sdk_call(client, "DescribeTranscode", **task)
        seen.append((answer.Status, answer.Progress, answer.Pages, answer.AssignTime, answer.FinishedTime))
    start = int(sdk_h.clock()) - 50
    assert seen == [("QUEUED", 0, 0, None, None), ("PROCESSING", 50, 9, start + 10, None),
                    ("FINISHED", 100, 9, start + 10, start + 50)]
    assert answer.ResultUrl and answer.ThumbnailUrl and answer.ResourceListUrl is None


@pytest.mark.parametrize("task_type", ["WhiteboardPush", "OnlineRecord", "TranscodeH5", "TranscodeJPG"])
def test_the_official_sdk_parses_the_running_list_of_each_task_type(sdk_h: Harness, task_type: str) -> None:
    sdk_h.task(TaskScript(prepare_seconds=0))
    sdk_h.sim.add_record(APP, RecordScript(queued_seconds=5))
    sdk_h.sim.add_transcode(APP, TranscodeScript(queued_seconds=0))
    sdk_h.sim.add_transcode(APP, url="https://x.example.com/notes.pdf")
    listed = sdk_call(sdk_client(sdk_h), "DescribeRunningTasks", SdkAppID=APP, TaskType=task_type, Limit=10)
    assert listed.Total == 1 and [item.TaskType for item in listed.Tasks] == [task_type]


@pytest.mark.parametrize("kind", ["OnlineRecord", "Transcode"])
def test_the_official_sdk_sets_and_describes_each_kinds_callback(sdk_h: Harness, kind: str) -> None:
    client = sdk_client(sdk_h)
    sdk_call(client, f"Set{kind}Callback", SdkAppId=APP, Callback=f"https://cb.example.com/{kind}")
    sdk_call(client, f"Set{kind}CallbackKey", SdkAppId=APP, CallbackKey=f"{kind}-key")
    described = sdk_call(client, f"Describe{kind}Callback", SdkAppId=APP)
    assert (described.Callback, described.CallbackKey) == (f"https://cb.example.com/{kind}", f"{kind}-key")


@pytest.mark.parametrize("code", ["FailedOperation.Record", "FailedOperation.Transcode",
                                  "LimitExceeded.TranscodePagesLimitation"])
def test_the_official_sdk_and_our_client_see_a_failed_task_as_its_error(sdk_h: Harness, code: str) -> None:
    if code == "FailedOperation.Record":
        action, task_id = "DescribeOnlineRecord", sdk_h.sim.add_record(APP, RecordScript(0, fail_with=code))
    else:
        action, task_id = "DescribeTranscode", sdk_h.sim.add_transcode(APP, TranscodeScript(0, 0, fail_with=code))
    with pytest.raises(TencentCloudSDKException) as caught:
        sdk_call(sdk_client(sdk_h), action, SdkAppId=APP, TaskId=task_id)
    assert caught.value.get_code() == code and caught.value.get_request_id()
    with pytest.raises(ApiError) as ours:
        sdk_h.client().call(action, {"SdkAppId": APP, "TaskId": task_id})
    assert ours.value.code == code


# --------------------------------------------------------------------------- proxies from the environment


class ForwardingProxy:
    """A plain HTTP proxy (absolute-form requests, no CONNECT): notes each request's target and forwards it."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                proxy.targets.append(self.path)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                target = urlsplit(self.path)
                upstream = http.client.HTTPConnection(target.netloc, timeout=5)
                upstream.request("POST", target.path or "/", body,
                                 {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP})
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                self.send_response_only(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "transfer-encoding"}


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardingProxy]:
    """A proxy named by HTTP_PROXY, and no other proxy setting in the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    forwarding = ForwardingProxy()
    monkeypatch.setenv("HTTP_PROXY", forwarding.url)
    yield forwarding
    forwarding.close()


def test_calls_go_through_the_proxy_the_environment_names(h: Harness, proxy: ForwardingProxy) -> None:
    task = h.task()
    client = h.client()
    for _ in range(2):
        assert h.describe(task, client=client).status == "PREPARED"
    assert proxy.targets == [f"{h.sim.url}/"] * 2
    assert h.answers() == {"success": 2}


def test_no_proxy_sends_calls_to_the_endpoint_directly(
        h: Harness, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    task = h.task()
    assert h.describe(task).status == "PREPARED"
    assert proxy.targets == []
    assert h.answers() == {"success": 1}
