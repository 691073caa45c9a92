"""The TIW API simulator, driven over real HTTP: raw signed requests, the official SDK, test hooks."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.tiw.v20190919 import models, tiw_client

from exporter.config import parse_listen
from exporter.simulator import (
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    Simulator,
    SimulatorClient,
    SimulatorOptions,
    TaskScript,
    parse_fault_spec,
    run,
    task_state,
)
from exporter.simulator.mixes import demo_scripts
from exporter.tencentcloud import signing
from tests.fakes import CallbackReceiver, FakeClock
from tests.harness import eventually
from tests.procs import Process, exporter_cmd

REPO = Path(__file__).resolve().parent.parent
APP = 1400000001
CALLBACK_KEY = "Xz4ZgayTr7rMgWQrH"




def post(
    sim: Simulator,
    action: str,
    params: Any = None,
    *,
    body: bytes | None = None,
    secret_id: str = DEMO_SECRET_ID,
    secret_key: str = DEMO_SECRET_KEY,
    timestamp: int | None = None,
    service: str = "tiw",
    signed_headers: tuple[str, ...] = ("content-type", "host"),
    headers: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
    send_body: bytes | None = None,
    stream: bool = False,
) -> requests.Response:
    """One TC3-signed request, built by hand so each part can be broken on purpose."""
    body = json.dumps(params if params is not None else {}).encode() if body is None else body
    timestamp = int(time.time()) if timestamp is None else timestamp
    all_headers = {
        "Content-Type": "application/json",
        "Host": sim.url.removeprefix("http://"),
        "X-TC-Action": action,
        "X-TC-Version": "2019-09-19",
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Region": "ap-guangzhou",
    }
    canonical = signing.canonical_request("POST", "/", "", all_headers, signed_headers, body)
    all_headers["Authorization"] = signing.authorization(
        secret_id, secret_key, timestamp, service, canonical, signed_headers
    )
    all_headers.update(headers or {})
    for name in drop:
        all_headers.pop(name)
    data = body if send_body is None else send_body
    return requests.post(sim.url + "/", data=data, headers=all_headers, timeout=5, stream=stream)


def response_of(http: requests.Response) -> dict[str, Any]:
    assert http.status_code == 200
    assert http.headers["Content-Type"] == "application/json"
    document = http.json()
    uuid.UUID(document["Response"]["RequestId"])
    return document["Response"]


def error_code(http: requests.Response) -> str:
    return response_of(http)["Error"]["Code"]


def outcome(http: requests.Response) -> str:
    """``success`` or the error code of an answer."""
    return response_of(http).get("Error", {}).get("Code", "success")


def describe(sim: Simulator, task_id: str, **options: Any) -> requests.Response:
    return post(sim, "DescribeWhiteboardPush", {"SdkAppId": APP, "TaskId": task_id}, **options)


# --------------------------------------------------------------------------- pure parts


def test_task_moves_from_prepared_to_pushing_to_stopped_on_its_script() -> None:
    script = TaskScript(
        prepare_seconds=2, push_seconds=10, finish_reason="EXCEPTION", exceptions_per_minute=6
    )
    assert task_state(script, 1000.0, None, 1001.9).status == "PREPARED"
    pushing = task_state(script, 1000.0, None, 1007.0)
    assert (pushing.status, pushing.push_start_time, pushing.exception_cnt) == ("PUSHING", 1002, 0)
    stopped = task_state(script, 1000.0, None, 5000.0)
    assert (stopped.status, stopped.finish_reason, stopped.push_stop_time) == ("STOPPED", "EXCEPTION", 1012)
    assert stopped.exception_cnt == 1 and stopped.im_sync_time == 1002


def test_task_stopped_by_user_while_preparing_never_started() -> None:
    state = task_state(TaskScript(prepare_seconds=5), 1000.0, 1003.0, 1010.0)
    assert (state.status, state.finish_reason, state.push_start_time, state.push_stop_time) == (
        "STOPPED",
        "USER_CALL",
        0,
        1003,
    )


def test_user_stop_after_natural_end_keeps_the_natural_reason() -> None:
    state = task_state(
        TaskScript(prepare_seconds=1, push_seconds=1, finish_reason="AUTO"), 1000.0, 1500.0, 2000.0
    )
    assert (state.finish_reason, state.push_stop_time) == ("AUTO", 1002)


@pytest.mark.parametrize(
    "fields",
    [
        {"finish_reason": "CRASHED"},
        {"prepare_seconds": -1},
        {"push_seconds": float("inf")},
        {"exceptions_per_minute": True},
        {"fail_with": "not a code!"},
        {"backup": 3},
        {"colour": "red"},
    ],
)
def test_task_script_rejects_bad_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TaskScript.from_mapping(fields)


def test_fault_specs_parse_into_set_fault_arguments() -> None:
    assert parse_fault_spec("http500") == {"kind": "http500"}
    assert parse_fault_spec("slow:seconds=2.5,count=3,action=DescribeWhiteboardPush") == {
        "kind": "slow",
        "seconds": 2.5,
        "count": 3,
        "action": "DescribeWhiteboardPush",
    }
    for bad in ("explode", "http500:ratio=2", "http500:count=x", "http500:color=red", "drop:action=Nope"):
        with pytest.raises(ValueError):
            parse_fault_spec(bad)
    with pytest.raises(ValueError, match="unknown fault kind"):
        run(SimulatorOptions(faults=[("explode", None)]))


def test_listen_addresses_parse_like_prometheus_exporters() -> None:
    assert parse_listen("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_listen(":9000") == ("0.0.0.0", 9000)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ValueError):
        parse_listen("localhost")


# --------------------------------------------------------------------------- the official SDK as a client


def sdk_client(sim: Simulator, secret_key: str = DEMO_SECRET_KEY) -> tiw_client.TiwClient:
    profile = ClientProfile(
        httpProfile=HttpProfile(protocol="http", endpoint=sim.url.removeprefix("http://"))
    )
    return tiw_client.TiwClient(credential.Credential(DEMO_SECRET_ID, secret_key), "ap-guangzhou", profile)


def sdk_request(model: type, **fields: Any) -> Any:
    request = model()
    request.from_json_string(json.dumps(fields))
    return request


def test_official_sdk_is_accepted_for_every_action(sim: Simulator) -> None:
    client = sdk_client(sim)
    script = json.dumps({"simulator": {"prepare_seconds": 0}})
    start = client.StartWhiteboardPush(
        sdk_request(
            models.StartWhiteboardPushRequest,
            SdkAppId=APP,
            RoomId=880528,
            PushUserId="tic_push_user_880528_test1",
            PushUserSig="sig",
            ExtraData=script,
        )
    )
    described = client.DescribeWhiteboardPush(
        sdk_request(models.DescribeWhiteboardPushRequest, SdkAppId=APP, TaskId=start.TaskId)
    )
    assert (described.Status, described.RoomId, described.GroupId) == ("PUSHING", 880528, "880528")
    running = client.DescribeRunningTasks(
        sdk_request(models.DescribeRunningTasksRequest, SdkAppID=APP, TaskType="WhiteboardPush", Limit=10)
    )
    assert running.Total == 1 and running.Tasks[0].TaskID == start.TaskId
    client.StopWhiteboardPush(
        sdk_request(models.StopWhiteboardPushRequest, SdkAppId=APP, TaskId=start.TaskId)
    )
    stopped = client.DescribeWhiteboardPush(
        sdk_request(models.DescribeWhiteboardPushRequest, SdkAppId=APP, TaskId=start.TaskId)
    )
    assert (stopped.Status, stopped.FinishReason) == ("STOPPED", "USER_CALL")


def test_official_sdk_with_a_wrong_key_gets_signature_failure(sim: Simulator) -> None:
    task_id = sim.add_task(APP)
    with pytest.raises(TencentCloudSDKException) as caught:
        sdk_client(sim, secret_key="wrong-key").DescribeWhiteboardPush(
            sdk_request(models.DescribeWhiteboardPushRequest, SdkAppId=APP, TaskId=task_id)
        )
    assert caught.value.get_code() == "AuthFailure.SignatureFailure"


# --------------------------------------------------------------------------- authentication and envelope


def test_answers_are_http_200_envelopes_with_a_request_id_and_the_sim_clock_date(
    make_sim: Callable[..., Simulator],
) -> None:
    clock = FakeClock(1_600_000_000)
    sim = make_sim(clock=clock)
    task_id = sim.add_task(APP)
    http = describe(sim, task_id, timestamp=1_600_000_000)
    assert response_of(http)["Status"] == "PREPARED"
    assert parsedate_to_datetime(http.headers["Date"]).timestamp() == 1_600_000_000
    assert error_code(describe(sim, task_id, timestamp=1_600_000_000, secret_key="x")).startswith(
        "AuthFailure"
    )


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"drop": ("Authorization",)}, "AuthFailure.InvalidAuthorization"),
        ({"headers": {"Authorization": "TC3-HMAC-SHA256 garbage"}}, "AuthFailure.InvalidAuthorization"),
        ({"signed_headers": ("content-type",)}, "AuthFailure.InvalidAuthorization"),
        ({"service": "cvm"}, "AuthFailure.SignatureFailure"),
        ({"secret_id": "AKIDunknown"}, "AuthFailure.SecretIdNotFound"),
        ({"timestamp": int(time.time()) - 301}, "AuthFailure.SignatureExpire"),
        ({"secret_key": "wrong"}, "AuthFailure.SignatureFailure"),
        ({"headers": {"Content-Type": "application/json; charset=utf-8"}}, "AuthFailure.SignatureFailure"),
        ({"drop": ("X-TC-Timestamp",)}, "MissingParameter"),
        ({"headers": {"X-TC-Timestamp": "soon"}}, "InvalidParameterValue"),
        ({"drop": ("X-TC-Region",)}, "MissingParameter"),
        ({"drop": ("X-TC-Action",)}, "MissingParameter"),
        ({"headers": {"X-TC-Version": "2017-03-12"}}, "NoSuchVersion"),
        ({"headers": {"X-TC-Action": "DescribeInstances"}}, "InvalidAction"),
    ],
)
def test_requests_that_fail_verification_get_the_documented_code(
    sim: Simulator, options: dict[str, Any], code: str
) -> None:
    assert error_code(describe(sim, sim.add_task(APP), **options)) == code


def test_signed_headers_beyond_the_minimum_are_verified(sim: Simulator) -> None:
    signed = ("content-type", "host", "x-tc-action")
    assert response_of(describe(sim, sim.add_task(APP), signed_headers=signed))["Status"] == "PREPARED"


def test_a_body_changed_after_signing_fails_the_signature(sim: Simulator) -> None:
    signed = json.dumps({"SdkAppId": APP, "TaskId": sim.add_task(APP)}).encode()
    sent = json.dumps({"SdkAppId": APP, "TaskId": sim.add_task(APP)}).encode()
    assert error_code(post(sim, "DescribeWhiteboardPush", body=signed, send_body=sent)) == (
        "AuthFailure.SignatureFailure"
    )


def test_a_secret_with_a_required_token_needs_the_right_x_tc_token(
    make_sim: Callable[..., Simulator],
) -> None:
    sim = make_sim(tokens={DEMO_SECRET_ID: "session-token"})
    task_id = sim.add_task(APP)
    assert error_code(describe(sim, task_id)) == "AuthFailure.TokenFailure"
    assert error_code(describe(sim, task_id, headers={"X-TC-Token": "stale"})) == "AuthFailure.TokenFailure"
    assert response_of(describe(sim, task_id, headers={"X-TC-Token": "session-token"}))["TaskId"] == task_id


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", "InvalidParameter"),
        (b"[1, 2]", "InvalidParameter"),
        (json.dumps({"SdkAppId": APP, "TaskId": "x", "Colour": 1}).encode(), "UnknownParameter"),
        (json.dumps({"SdkAppId": APP}).encode(), "MissingParameter"),
        (
            json.dumps({"SdkAppId": True, "TaskId": "x"}).encode(),
            "InvalidParameter.BodyParameterTypeUnmatched",
        ),
        (json.dumps({"SdkAppId": APP, "TaskId": 7}).encode(), "InvalidParameter.BodyParameterTypeUnmatched"),
    ],
)
def test_bad_parameters_get_parameter_errors(sim: Simulator, body: bytes, code: str) -> None:
    assert error_code(post(sim, "DescribeWhiteboardPush", body=body)) == code


def test_a_body_over_one_mebibyte_is_refused_unread(sim: Simulator) -> None:
    http = post(sim, "DescribeWhiteboardPush", body=b" " * ((1 << 20) + 1))
    assert error_code(http) == "RequestSizeLimitExceeded"


def test_get_on_the_api_path_is_an_invalid_request(sim: Simulator) -> None:
    assert error_code(requests.get(sim.url + "/", timeout=5)) == "InvalidRequest"


def test_running_tasks_validates_task_type_and_limit(sim: Simulator) -> None:
    def running(**params: Any) -> requests.Response:
        return post(sim, "DescribeRunningTasks", {"SdkAppID": APP, "TaskType": "WhiteboardPush", **params})

    sim.add_task(APP)
    assert error_code(running(Limit=0)) == "InvalidParameterValue"
    assert error_code(running(Limit=501)) == "InvalidParameterValue"
    assert error_code(running(TaskType="Recording")) == "InvalidParameterValue"
    assert response_of(running(TaskType="TranscodeH5")) | {"RequestId": ""} == {
        "Total": 0,
        "Tasks": [],
        "RequestId": "",
    }
    item = response_of(running())["Tasks"][0]
    assert set(item) == {
        "SdkAppID",
        "TaskID",
        "TaskType",
        "CreateTime",
        "CancelTime",
        "Status",
        "Progress",
    } | {
        "FileURL",
        "RoomID",
    }
    assert (item["TaskType"], item["Status"]) == ("WhiteboardPush", "PROCESSING")  # PREPARED is executing


def test_faults_never_hit_unauthenticated_requests(sim: Simulator) -> None:
    task_id = sim.add_task(APP)
    sim.set_fault("http500", count=1)
    assert error_code(describe(sim, task_id, secret_key="wrong")) == "AuthFailure.SignatureFailure"
    assert describe(sim, task_id).status_code == 500


def test_a_fault_restricted_to_one_action_spares_the_others(sim: Simulator) -> None:
    task_id = sim.add_task(APP)
    sim.set_fault("internal_error", action="DescribeRunningTasks")
    params = {"SdkAppID": APP, "TaskType": "WhiteboardPush"}
    assert outcome(describe(sim, task_id)) == "success"
    assert outcome(post(sim, "DescribeRunningTasks", params)) == "InternalError"
    sim.clear_faults()
    assert outcome(post(sim, "DescribeRunningTasks", params)) == "success"


def test_a_fault_ratio_applies_to_a_seeded_fraction_of_requests(make_sim: Callable[..., Simulator]) -> None:
    def statuses(seed: int) -> list[int]:
        sim = make_sim(seed=seed, rate_limit=0)
        sim.set_fault("http500", ratio=0.5)
        task_id = sim.add_task(APP)
        return [describe(sim, task_id).status_code for _ in range(20)]

    first = statuses(3)
    assert first == statuses(3)
    assert 2 <= first.count(500) <= 18


# --------------------------------------------------------------------------- rate limit and latency


def test_a_burst_over_the_limit_is_throttled_and_the_window_stays_within_it(
    make_sim: Callable[..., Simulator],
) -> None:
    sim = make_sim(rate_limit=5)
    task_id = sim.add_task(APP)
    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(lambda _: outcome(describe(sim, task_id)), range(12)))
    stats = sim.stats()
    assert set(codes) == {"success", "RequestLimitExceeded"}
    assert codes.count("RequestLimitExceeded") == stats["throttled"]
    assert stats["max_requests_in_any_second"]["DescribeWhiteboardPush"] == 5
    assert stats["max_arrivals_in_any_second"]["DescribeWhiteboardPush"] > 5
    assert stats["requests"]["DescribeWhiteboardPush"] == {
        "success": codes.count("success"),
        "RequestLimitExceeded": stats["throttled"],
    }


def test_the_window_slides_and_is_kept_per_action(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(rate_limit=2)
    task_id = sim.add_task(APP)
    assert [outcome(describe(sim, task_id)) for _ in range(4)] == ["success"] * 2 + [
        "RequestLimitExceeded"
    ] * 2
    assert (
        outcome(post(sim, "DescribeRunningTasks", {"SdkAppID": APP, "TaskType": "WhiteboardPush"}))
        == "success"
    )
    time.sleep(1.05)
    assert outcome(describe(sim, task_id)) == "success"


def test_a_rate_limit_of_zero_disables_throttling(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(rate_limit=0)
    task_id = sim.add_task(APP)
    assert {outcome(describe(sim, task_id)) for _ in range(30)} == {"success"}
    assert sim.stats()["max_requests_in_any_second"]["DescribeWhiteboardPush"] == 30


def test_latency_is_served_concurrently(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(latency=0.2, rate_limit=0)
    task_id = sim.add_task(APP)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: response_of(describe(sim, task_id)), range(16)))
    elapsed = time.monotonic() - started
    assert all(answer["TaskId"] == task_id for answer in answers)
    assert 0.4 <= elapsed < 1.5  # two rounds of 8; serially it would take 3.2 s


# --------------------------------------------------------------------------- tasks: determinism and mixes


def test_the_same_seed_gives_the_same_task_ids_and_scripts(make_sim: Callable[..., Simulator]) -> None:
    clock = FakeClock(1_700_000_000.0)
    first, second, other = (make_sim(seed=seed, clock=clock) for seed in (42, 42, 43))
    ids = first.populate(25)
    assert ids == second.populate(25)
    assert [first.script(i) for i in ids] == [second.script(i) for i in ids]
    assert set(ids).isdisjoint(other.populate(25))
    assert all(len(i) == 20 and i.isalnum() and i == i.lower() for i in ids)


def test_populate_gives_a_realistic_mix_of_states(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(seed=1)
    sim.populate(200)
    tasks = sim.stats()["tasks"]
    assert sum(tasks.values()) == 200
    assert all(count >= 10 for count in tasks.values()), tasks


def test_the_demo_mix_shows_every_state_and_finish_reason_within_two_minutes(
    make_sim: Callable[..., Simulator],
) -> None:
    clock = FakeClock(1_700_000_000.0)
    sim = make_sim(clock=clock, rate_limit=0)  # the demo mix is described twice within one second here
    ids = sim.populate_demo()
    now = int(clock())
    initially = [describe(sim, i, timestamp=now) for i in ids]
    assert {response_of(h).get("Status") for h in initially} >= {"PREPARED", "STOPPED"}
    assert sum(bool(sim.script(i).backup) for i in ids) == 1
    clock.advance(100)
    later = [response_of(describe(sim, i, timestamp=now + 100)) for i in ids]
    errors = [answer["Error"]["Code"] for answer in later if "Error" in answer]
    assert errors == ["FailedOperation.WhiteboardPush"] * 2  # one after pushing a while, one before it pushed
    reasons = {answer["FinishReason"] for answer in later if answer.get("Status") == "STOPPED"}
    assert reasons == {"AUTO", "USER_CALL", "EXCEPTION"}
    assert any(answer.get("Status") == "PUSHING" and answer["ExceptionCnt"] > 0 for answer in later)


def test_spawn_every_keeps_adding_tasks(sim: Simulator) -> None:
    sim.spawn_every(0.05)
    time.sleep(0.4)
    assert sum(sim.stats()["tasks"].values()) >= 3


# --------------------------------------------------------------------------- callbacks


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    receiver = CallbackReceiver()
    yield receiver
    receiver.close()


def test_callbacks_announce_start_and_stop_signed_with_the_callback_key(
    make_sim: Callable[..., Simulator], receiver: CallbackReceiver
) -> None:
    clock = FakeClock(1_588_036_509)
    sim = make_sim(clock=clock, callback_url=receiver.url, callback_key=CALLBACK_KEY)
    task_id = sim.add_task(APP, TaskScript(prepare_seconds=1, push_seconds=5, exceptions_per_minute=30))
    clock.advance(2)
    (started,) = receiver.wait_for(1)
    assert started["EventType"] == "WhiteboardPushStarted"
    assert started["ExpireTime"] == started["Timestamp"] + 3600 == 1_588_036_511 + 3600
    assert started["Sign"] == hashlib.md5(f"{CALLBACK_KEY}{started['ExpireTime']}".encode()).hexdigest()
    assert started["SdkAppId"] == APP
    assert set(started["EventData"]) == {"TaskId", "RoomId", "PushUserId", "PushStartTime"}
    assert started["EventData"]["TaskId"] == task_id
    clock.advance(10)
    stopped = receiver.wait_for(2)[1]
    assert stopped["EventType"] == "WhiteboardPushStopped"
    data = stopped["EventData"]
    assert (data["FinishReason"], data["PushStopTime"] - data["PushStartTime"], data["ExceptionCnt"]) == (
        "AUTO",
        5,
        2,
    )
    assert set(data) == set(started["EventData"]) | {
        "GroupId",
        "FinishReason",
        "PushStopTime",
        "IMSyncTime",
        "ExceptionCnt",
    }
    # The sender counts a callback once the receiver's answer is back, just after the body arrived.
    eventually(lambda: sim.stats()["callbacks_sent"] == 2, timeout=5)


def test_a_task_ending_in_exception_reports_an_error_in_its_stop_callback(
    make_sim: Callable[..., Simulator], receiver: CallbackReceiver
) -> None:
    clock = FakeClock(1_700_000_000.0)
    sim = make_sim(clock=clock, callback_url=receiver.url, callback_key=CALLBACK_KEY)
    sim.add_task(APP, TaskScript(prepare_seconds=0, push_seconds=1, finish_reason="EXCEPTION"))
    sim.add_task(
        APP, TaskScript(prepare_seconds=0, push_seconds=1, fail_with="FailedOperation.WhiteboardPush")
    )
    clock.advance(2)
    stops = [b["EventData"] for b in receiver.wait_for(4) if b["EventType"] == "WhiteboardPushStopped"]
    assert sorted(stop["Error"]["Code"] for stop in stops) == [
        "FailedOperation.Record",
        "FailedOperation.WhiteboardPush",
    ]


def test_the_stop_api_triggers_a_user_call_stop_callback(
    make_sim: Callable[..., Simulator], receiver: CallbackReceiver
) -> None:
    sim = make_sim(callback_url=receiver.url, callback_key=CALLBACK_KEY)
    task_id = sim.add_task(APP, TaskScript(prepare_seconds=0))
    receiver.wait_for(1)
    assert outcome(post(sim, "StopWhiteboardPush", {"SdkAppId": APP, "TaskId": task_id})) == "success"
    stopped = receiver.wait_for(2)[-1]
    assert (stopped["EventType"], stopped["EventData"]["FinishReason"]) == (
        "WhiteboardPushStopped",
        "USER_CALL",
    )


def test_backdated_tasks_do_not_replay_old_callbacks(
    make_sim: Callable[..., Simulator], receiver: CallbackReceiver
) -> None:
    sim = make_sim(callback_url=receiver.url, callback_key=CALLBACK_KEY)
    sim.add_task(APP, TaskScript(prepare_seconds=1, push_seconds=5), created_at=time.time() - 600)
    time.sleep(0.5)
    assert receiver.bodies == []


def test_an_unreachable_callback_receiver_is_counted_not_fatal(make_sim: Callable[..., Simulator]) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{placeholder.getsockname()[1]}/"
    sim = make_sim(callback_url=dead_url, callback_key=CALLBACK_KEY)
    sim.add_task(APP, TaskScript(prepare_seconds=0, push_seconds=0))
    deadline = time.monotonic() + 5
    while sim.stats()["callbacks_failed"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (sim.stats()["callbacks_failed"], sim.stats()["callbacks_sent"]) == (2, 0)


# --------------------------------------------------------------------------- HTTP control endpoints


def test_control_endpoints_drive_a_simulator_over_http(sim: Simulator) -> None:
    created = requests.post(
        sim.url + "/_sim/tasks", json={"sdk_app_id": APP, "prepare_seconds": 0}, timeout=5
    )
    assert created.status_code == 201
    task_id = created.json()["task_id"]
    assert response_of(describe(sim, task_id))["Status"] == "PUSHING"

    fault = {"kind": "http502_empty", "count": 1, "action": "DescribeWhiteboardPush"}
    assert requests.post(sim.url + "/_sim/faults", json=fault, timeout=5).status_code == 200
    assert describe(sim, task_id).status_code == 502
    requests.post(sim.url + "/_sim/faults", json={"kind": "drop"}, timeout=5)
    assert requests.delete(sim.url + "/_sim/faults", timeout=5).status_code == 200
    assert describe(sim, task_id).status_code == 200

    rotate = {"secret_id": "AKIDrotated", "secret_key": "new-key"}
    assert requests.post(sim.url + "/_sim/credentials", json=rotate, timeout=5).status_code == 200
    assert outcome(describe(sim, task_id, secret_id="AKIDrotated", secret_key="new-key")) == "success"
    revoke = {"secret_id": DEMO_SECRET_ID, "revoke": True}
    assert requests.post(sim.url + "/_sim/credentials", json=revoke, timeout=5).status_code == 200
    assert error_code(describe(sim, task_id)) == "AuthFailure.SecretIdNotFound"

    stats = requests.get(sim.url + "/_sim/stats", timeout=5).json()
    assert stats["requests"]["DescribeWhiteboardPush"]["fault:http502_empty"] == 1
    assert stats["describes_by_task"][task_id] == 4  # the unauthenticated one never reached the task


def test_simulator_client_drives_the_control_endpoints(sim: Simulator) -> None:
    client = SimulatorClient(sim.url)
    task_id = client.add_task(APP, "client_task", prepare_seconds=0)
    assert (task_id, sim.script(task_id).prepare_seconds) == ("client_task", 0)
    client.set_fault("http502_empty", count=1, action="DescribeWhiteboardPush")
    assert describe(sim, task_id).status_code == 502
    client.set_fault("drop")
    client.clear_faults()
    client.set_credential("AKIDclient", "client-key")
    assert outcome(describe(sim, task_id, secret_id="AKIDclient", secret_key="client-key")) == "success"
    client.revoke(DEMO_SECRET_ID)
    assert error_code(describe(sim, task_id)) == "AuthFailure.SecretIdNotFound"
    assert client.describes(task_id) == 2
    with pytest.raises(requests.HTTPError):
        client.set_fault("explode")


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_sim/faults", {"kind": "explode"}, 400),
        ("POST", "/_sim/faults", {"kind": "slow", "seconds": "long"}, 400),
        ("POST", "/_sim/faults", {"kind": "slow", "colour": "red"}, 400),
        ("POST", "/_sim/tasks", {"task_id": "x"}, 400),
        ("POST", "/_sim/tasks", {"sdk_app_id": 99, "prepare_seconds": 1}, 400),
        ("POST", "/_sim/tasks", {"sdk_app_id": APP, "finish_reason": "NEVER"}, 400),
        ("POST", "/_sim/credentials", {"secret_id": "AKIDx"}, 400),
        ("POST", "/_sim/credentials", [1], 400),
        ("GET", "/_sim/faults", None, 405),
        ("GET", "/_sim/nothing", None, 404),
        ("GET", "/elsewhere", None, 404),
    ],
)
def test_control_endpoints_answer_bad_requests_with_json_errors(
    sim: Simulator, method: str, path: str, body: Any, status: int
) -> None:
    http = requests.request(method, sim.url + path, json=body, timeout=5)
    assert http.status_code == status
    assert "error" in http.json()


# --------------------------------------------------------------------------- robustness


def _raw_exchange(sim: Simulator, payload: bytes) -> bytes:
    host, port = sim.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(payload)
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_garbage_and_broken_requests_never_crash_the_server_or_print_tracebacks(
    sim: Simulator, capfd: pytest.CaptureFixture[str]
) -> None:
    task_id = sim.add_task(APP)
    _raw_exchange(sim, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n")
    _raw_exchange(sim, b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"half":')
    _raw_exchange(sim, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\n")
    assert b"InvalidRequest" in _raw_exchange(
        sim, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    sim.set_fault("oversized", count=1)
    with describe(sim, task_id, stream=True) as http:
        http.raw.read(10)  # hang up mid-body
    assert response_of(describe(sim, task_id))["TaskId"] == task_id
    assert "Traceback" not in capfd.readouterr().err


def test_close_is_quick_and_idempotent_even_with_busy_connections(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim()
    task_id = sim.add_task(APP)
    sim.set_fault("slow", seconds=30)
    failures: list[Exception] = []

    def slow_request() -> None:
        try:
            describe(sim, task_id)
        except requests.RequestException as exc:
            failures.append(exc)

    with requests.Session() as session:
        session.get(sim.url + "/_sim/stats", timeout=5)  # leaves an idle keep-alive connection
        pending = threading.Thread(target=slow_request)
        pending.start()
        time.sleep(0.2)
        started = time.monotonic()
        sim.close()
        sim.close()
        assert time.monotonic() - started < 2
        pending.join(5)
    assert len(failures) == 1  # the slow request was cut off, not answered
    assert not [t for t in threading.enumerate() if t.name.startswith("tiw-sim")]


def test_main_simulate_runs_as_a_process_until_sigterm() -> None:
    code = "import exporter.simulator as s; s.run(s.SimulatorOptions(tasks=5, seed=3, demo=True))"
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        url = first.rsplit(" ", 1)[-1].strip()
        assert first.startswith("TIW API simulator listening on http://127.0.0.1:")
        assert process.stdout.readline().strip() == (
            f"credentials: secret id {DEMO_SECRET_ID}, secret key {DEMO_SECRET_KEY} (the built-in demo key)"
        )
        assert sum(SimulatorClient(url).stats()["tasks"].values()) == 5 + len(demo_scripts())
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0
    assert "Traceback" not in stderr


def test_simulate_stops_cleanly_on_a_sigterm_sent_the_moment_it_says_listening() -> None:
    process = Process(exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--tasks", "20"))
    try:
        process.wait_for("simulator listening on")
        process.proc.send_signal(signal.SIGTERM)  # the handlers are in before the line is printed
        assert process.proc.wait(timeout=10) == 0
    finally:
        process.stop()
    assert "simulator stopping" in process.output

def test_main_simulate_never_prints_a_key_the_user_chose() -> None:
    lines: list[str] = []
    stop = threading.Event()
    options = SimulatorOptions(
        ("127.0.0.1", 0), "AKIDmine", "my-real-secret", faults=[("http500", 0.5), "drop:count=1"]
    )
    runner = threading.Thread(target=run, args=(options,), kwargs={"stop": stop, "out": lines.append})
    runner.start()
    deadline = time.monotonic() + 5
    while len(lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    runner.join(5)
    assert lines[1] == "credentials: secret id AKIDmine"
    assert not any("my-real-secret" in line for line in lines)


# --------------------------------------------------------------------------- fidelity to TIW's own examples


def test_a_scripted_failure_comes_after_the_push_ran_for_a_while(make_sim: Callable[..., Simulator]) -> None:
    clock = FakeClock(1_700_000_000.0)
    sim = make_sim(clock=clock)
    task_id = sim.add_task(APP, TaskScript(2, 30, "EXCEPTION", fail_with="FailedOperation.WhiteboardPush"))
    now = int(clock())
    assert response_of(describe(sim, task_id, timestamp=now))["Status"] == "PREPARED"
    clock.advance(10)
    assert response_of(describe(sim, task_id, timestamp=now + 10))["Status"] == "PUSHING"
    clock.advance(30)
    failed = response_of(describe(sim, task_id, timestamp=now + 40))["Error"]
    assert failed["Code"] == "FailedOperation.WhiteboardPush" and "TRTC onError, code: -70003" in failed["Message"]


def test_running_tasks_carry_create_time_in_tiws_format_and_online_record_is_a_task_type(sim: Simulator) -> None:
    sim.add_task(APP, TaskScript(0))
    listed = response_of(post(sim, "DescribeRunningTasks", {"SdkAppID": APP,
                                                           "TaskType": "WhiteboardPush"}))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", listed["Tasks"][0]["CreateTime"])
    records = response_of(post(sim, "DescribeRunningTasks", {"SdkAppID": APP,
                                                            "TaskType": "OnlineRecord"}))
    assert (records["Total"], records["Tasks"]) == (0, [])


def test_start_and_stop_with_a_backup_answer_its_calls_as_json_text(sim: Simulator) -> None:
    params = {"SdkAppId": APP, "RoomId": 1, "PushUserId": "u", "PushUserSig": "s",
              "Backup": {"PushUserId": "b", "PushUserSig": "s"}}
    started = response_of(post(sim, "StartWhiteboardPush", params))
    backup = json.loads(started["Backup"])
    assert set(backup) == {"RequestId", "TaskId"} and backup["TaskId"] != started["TaskId"]
    stopped = response_of(post(sim, "StopWhiteboardPush", {"SdkAppId": APP,
                                                           "TaskId": started["TaskId"]}))
    assert set(json.loads(stopped["Backup"])) == {"RequestId"}
    plain = response_of(post(sim, "StartWhiteboardPush", {k: v for k, v in params.items() if k != "Backup"}))
    assert plain["Backup"] == ""


def test_push_callback_settings_are_set_and_described_per_sdk_app_id_like_tiw(sim: Simulator) -> None:
    assert response_of(post(sim, "DescribeWhiteboardPushCallback", {"SdkAppId": APP}))["Callback"] == ""
    response_of(post(sim, "SetWhiteboardPushCallback", {"SdkAppId": APP, "Callback": "https://x.example/cb"}))
    response_of(post(sim, "SetWhiteboardPushCallbackKey", {"SdkAppId": APP, "CallbackKey": "k" * 64}))
    described = response_of(post(sim, "DescribeWhiteboardPushCallback", {"SdkAppId": APP}))
    assert (described["Callback"], described["CallbackKey"]) == ("https://x.example/cb", "k" * 64)
    assert error_code(post(sim, "SetWhiteboardPushCallback", {"SdkAppId": APP, "Callback": "ftp://x"})) == (
        "InvalidParameter.CallbackAddressFormatError")  # the code the Go SDK lists for this action
    assert error_code(post(sim, "SetWhiteboardPushCallbackKey", {"SdkAppId": APP, "CallbackKey": "k" * 65})) == (
        "InvalidParameterValue")
    assert error_code(post(sim, "DescribeWhiteboardPushCallback", {"SdkAppId": 1})) == "UnauthorizedOperation.SdkAppId"
