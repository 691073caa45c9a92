"""The simulator behaves as Tencent's documents and SDK say TIW does, and says so where they are silent.

Pinned here (the fidelity audit's items): the running list is liveness, never status (PREPARED and
PUSHING are both PROCESSING; QUEUED is for pushes waiting for capacity); a push that fails at start
never pushes and leaves the list; the Describe ``Backup`` is what the API page shows; a final task can
be kept listed on purpose; the warning callbacks and their settings actions; the callback settings the
simulator reports are where it sends; unknown regions and bad callback URLs get TIW's codes. The
official ``tencentcloud-sdk-python-tiw`` client parses every new answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.tiw.v20190919 import models, tiw_client

from exporter.simulator import (
    DEFAULT_REGIONS,
    DEMO_SECRET_ID,
    DEMO_SECRET_KEY,
    DOCUMENTED_DESCRIBE_BACKUP,
    SEED_FAILURE_MESSAGE,
    Simulator,
    SimulatorClient,
    TaskScript,
    task_state,
)
from exporter.simulator.mixes import demo_scripts
from exporter.simulator.protocol import ACTIONS
from tests.fakes import CallbackReceiver as Receiver
from tests.fakes import FakeClock
from tests.simcalls import call, code

APP = 1400000001
OTHER_APP = 1400000002
KEY = "Xz4ZgayTr7rMgWQrH"
T0 = 1_700_000_000.0
FAILED_AT_START = TaskScript(prepare_seconds=2, fail_with="FailedOperation.WhiteboardPush")


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def sim_options() -> dict[str, Any]:
    """Every simulator here runs on a manual clock (``FakeClock(T0)`` unless given) and without a rate limit."""
    return {"clock": FakeClock(T0), "rate_limit": 0}


def describe(sim: Simulator, task_id: str, sdk_app_id: int = APP) -> dict[str, Any]:
    return call(sim, "DescribeWhiteboardPush", {"SdkAppId": sdk_app_id, "TaskId": task_id})


def listed(sim: Simulator, sdk_app_id: int = APP) -> dict[str, str]:
    """The running list as TaskID -> Status."""
    answer = call(sim, "DescribeRunningTasks", {"SdkAppID": sdk_app_id, "TaskType": "WhiteboardPush", "Limit": 500})
    return {item["TaskID"]: item["Status"] for item in answer["Tasks"]}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def sdk(sim: Simulator, region: str = "ap-guangzhou") -> tiw_client.TiwClient:
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=sim.url.removeprefix("http://")))
    return tiw_client.TiwClient(credential.Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY), region, profile)


def sdk_request(model: type, **fields: Any) -> Any:
    request = model()
    request.from_json_string(json.dumps(fields))
    return request


# --------------------------------------------------------------------------- 1. the running list is liveness


def test_prepared_and_pushing_tasks_are_both_listed_processing(sim: Simulator) -> None:
    preparing = sim.add_task(APP, TaskScript(prepare_seconds=3600))
    pushing = sim.add_task(APP, TaskScript(prepare_seconds=0))
    assert (describe(sim, preparing)["Status"], describe(sim, pushing)["Status"]) == ("PREPARED", "PUSHING")
    assert listed(sim) == {preparing: "PROCESSING", pushing: "PROCESSING"}


def test_a_queued_push_is_listed_queued_and_described_prepared_until_it_leaves_the_queue(
    make_sim: Callable[..., Simulator],
) -> None:
    clock = FakeClock(T0)
    sim = make_sim(clock=clock)
    task_id = sim.add_task(APP, TaskScript(queued_seconds=30, prepare_seconds=5, push_seconds=60))
    waiting = describe(sim, task_id)
    assert (waiting["Status"], waiting["PushStartTime"], waiting["FinishReason"]) == ("PREPARED", 0, "")
    assert listed(sim) == {task_id: "QUEUED"}
    clock.advance(31)  # out of the queue, preparing
    assert (describe(sim, task_id)["Status"], listed(sim)) == ("PREPARED", {task_id: "PROCESSING"})
    clock.advance(5)
    pushing = describe(sim, task_id)
    assert (pushing["Status"], pushing["PushStartTime"]) == ("PUSHING", int(T0 + 35))
    assert listed(sim) == {task_id: "PROCESSING"}
    clock.advance(60)
    assert (describe(sim, task_id)["Status"], listed(sim)) == ("STOPPED", {})


def test_a_queued_push_stopped_by_the_user_never_started_and_leaves_the_list(sim: Simulator) -> None:
    task_id = sim.add_task(APP, TaskScript(queued_seconds=600))
    assert call(sim, "StopWhiteboardPush", {"SdkAppId": APP, "TaskId": task_id}) | {"RequestId": ""} == {
        "Backup": "", "RequestId": ""}
    stopped = describe(sim, task_id)
    assert (stopped["Status"], stopped["FinishReason"], stopped["PushStartTime"]) == ("STOPPED", "USER_CALL", 0)
    assert listed(sim) == {}


def test_queued_seconds_is_checked_like_every_duration() -> None:
    for bad in (-1, float("nan"), "soon"):
        with pytest.raises(ValueError):
            TaskScript(queued_seconds=bad)  # type: ignore[arg-type]
    assert task_state(TaskScript(queued_seconds=10, prepare_seconds=1), 0.0, None, 5.0).queued
    assert not task_state(TaskScript(queued_seconds=10, prepare_seconds=1), 0.0, None, 10.0).queued


# --------------------------------------------------------------------------- 2. a push that fails at start


def test_a_push_failing_at_start_never_pushes_and_ends_exception() -> None:
    assert task_state(FAILED_AT_START, 1000.0, None, 1001.0).status == "PREPARED"
    ended = task_state(FAILED_AT_START, 1000.0, None, 1500.0)
    assert (ended.status, ended.finish_reason, ended.push_start_time, ended.push_stop_time, ended.im_sync_time) == (
        "STOPPED", "EXCEPTION", 0, 1002, 0)
    stopped_first = task_state(FAILED_AT_START, 1000.0, 1001.0, 1500.0)
    assert (stopped_first.finish_reason, stopped_first.push_stop_time) == ("USER_CALL", 1001)


def test_a_push_failing_at_start_leaves_the_list_and_describe_keeps_answering_the_failure(
    make_sim: Callable[..., Simulator],
) -> None:
    clock = FakeClock(T0)
    sim = make_sim(clock=clock)
    task_id = sim.add_task(APP, FAILED_AT_START)
    assert (describe(sim, task_id)["Status"], listed(sim)) == ("PREPARED", {task_id: "PROCESSING"})
    for later in (2, 60, 86400):
        clock.now = T0 + later
        failure = describe(sim, task_id)["Error"]
        assert (failure["Code"], failure["Message"]) == ("FailedOperation.WhiteboardPush", SEED_FAILURE_MESSAGE)
        assert listed(sim) == {}  # not listed at all: it is not running
    assert sim.stats()["tasks"]["STOPPED"] == 1


def test_a_push_failing_at_start_sends_no_started_callback_only_a_stopped_one_with_the_error(
    make_sim: Callable[..., Simulator], receiver: Receiver,
) -> None:
    clock = FakeClock(T0)
    sim = make_sim(clock=clock, callback_url=receiver.url, callback_key=KEY)
    task_id = sim.add_task(APP, FAILED_AT_START)
    clock.advance(3)
    (stopped,) = receiver.wait_for(1)
    assert stopped["EventType"] == "WhiteboardPushStopped"
    data = stopped["EventData"]
    assert (data["TaskId"], data["FinishReason"], data["PushStartTime"], data["PushStopTime"]) == (
        task_id, "EXCEPTION", 0, int(T0 + 2))
    assert data["Error"] == {"Code": "FailedOperation.WhiteboardPush", "Message": SEED_FAILURE_MESSAGE}
    assert [body["EventType"] for body in receiver.settle()] == ["WhiteboardPushStopped"]


def test_a_push_failing_after_a_while_still_starts_then_stops_with_the_error(
    make_sim: Callable[..., Simulator], receiver: Receiver,
) -> None:
    clock = FakeClock(T0)
    sim = make_sim(clock=clock, callback_url=receiver.url, callback_key=KEY)
    sim.add_task(APP, TaskScript(0, 10, "EXCEPTION", fail_with="FailedOperation.WhiteboardPush"))
    receiver.wait_for(1)
    clock.advance(11)
    started, stopped = receiver.wait_for(2)
    assert (started["EventType"], stopped["EventType"]) == ("WhiteboardPushStarted", "WhiteboardPushStopped")
    assert stopped["EventData"]["Error"]["Code"] == "FailedOperation.WhiteboardPush"


def test_a_push_stopped_before_its_scripted_failure_reports_no_error(
    make_sim: Callable[..., Simulator], receiver: Receiver,
) -> None:
    clock = FakeClock(T0)
    sim = make_sim(clock=clock, callback_url=receiver.url, callback_key=KEY)
    task_id = sim.add_task(APP, TaskScript(0, 60, "EXCEPTION", fail_with="FailedOperation.WhiteboardPush"))
    receiver.wait_for(1)
    assert code(call(sim, "StopWhiteboardPush", {"SdkAppId": APP, "TaskId": task_id})) == "success"
    stopped = receiver.wait_for(1, "WhiteboardPushStopped")[0]["EventData"]
    assert stopped["FinishReason"] == "USER_CALL" and "Error" not in stopped
    clock.advance(120)
    assert describe(sim, task_id)["FinishReason"] == "USER_CALL"


# --------------------------------------------------------------------------- 3. Describe Backup


def test_describe_backup_is_empty_without_a_backup_push_and_the_documented_text_with_one(sim: Simulator) -> None:
    params = {"SdkAppId": APP, "RoomId": 880528, "PushUserId": "tic_push_user_880528_a", "PushUserSig": "s"}
    plain = call(sim, "StartWhiteboardPush", params)["TaskId"]
    backed = call(sim, "StartWhiteboardPush", params | {"Backup": {"PushUserId": "b", "PushUserSig": "s"}})["TaskId"]
    assert describe(sim, plain)["Backup"] == ""  # the API page's example 1
    assert describe(sim, backed)["Backup"] == DOCUMENTED_DESCRIBE_BACKUP == "{}"  # the field's example value


def test_an_explicit_backup_text_is_answered_verbatim(sim: Simulator) -> None:
    text = '{"Status": "PUSHING", "ExceptionCnt": 2}'
    assert describe(sim, sim.add_task(APP, TaskScript(0, backup=text)))["Backup"] == text


def test_no_mix_invents_a_backup_result_shape(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(seed=4)
    ids = sim.populate(300) + sim.populate_demo()
    backups = {sim.script(task_id).backup for task_id in ids}
    assert backups == {None, DOCUMENTED_DESCRIBE_BACKUP}
    assert [script.backup for _, script in demo_scripts() if script.backup] == [DOCUMENTED_DESCRIBE_BACKUP]


# --------------------------------------------------------------------------- 4. a final task kept on the list


def test_listed_after_end_keeps_a_failed_push_listed_processing_for_the_lists_three_days(
    make_sim: Callable[..., Simulator],
) -> None:
    clock = FakeClock(T0)
    sim = make_sim(clock=clock)
    kept = sim.add_task(APP, TaskScript(prepare_seconds=0, fail_with="FailedOperation.WhiteboardPush",
                                        listed_after_end=True))
    gone = sim.add_task(APP, TaskScript(prepare_seconds=0, fail_with="FailedOperation.WhiteboardPush"))
    clock.advance(60)
    assert code(describe(sim, kept)) == code(describe(sim, gone)) == "FailedOperation.WhiteboardPush"
    assert listed(sim) == {kept: "PROCESSING"}
    clock.advance(3 * 86400)
    assert listed(sim) == {}


def test_listed_after_end_keeps_a_user_stopped_push_listed_with_its_cancel_time(sim: Simulator) -> None:
    task_id = sim.add_task(APP, TaskScript(prepare_seconds=0, listed_after_end=True))
    call(sim, "StopWhiteboardPush", {"SdkAppId": APP, "TaskId": task_id})
    (item,) = call(sim, "DescribeRunningTasks", {"SdkAppID": APP, "TaskType": "WhiteboardPush"})["Tasks"]
    assert (item["Status"], item["CancelTime"]) == ("PROCESSING", item["CreateTime"])
    assert describe(sim, task_id)["Status"] == "STOPPED"


def test_listed_after_end_can_be_asked_for_over_the_control_endpoint(sim: Simulator) -> None:
    task_id = SimulatorClient(sim.url).add_task(APP, prepare_seconds=0, push_seconds=0, listed_after_end=True)
    assert (describe(sim, task_id)["Status"], listed(sim)) == ("STOPPED", {task_id: "PROCESSING"})
    with pytest.raises(ValueError):
        TaskScript(listed_after_end="yes")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- 5. warning callbacks


def test_warning_callback_settings_are_set_and_described_per_sdk_app_id(sim: Simulator) -> None:
    assert call(sim, "DescribeWarningCallback", {"SdkAppId": APP}) | {"RequestId": ""} == {
        "Callback": "", "CallbackKey": "", "RequestId": ""}
    assert code(call(sim, "SetWarningCallback", {"SdkAppId": APP, "Callback": "https://x.example/warn",
                                                 "CallbackKey": "123456"})) == "success"
    described = call(sim, "DescribeWarningCallback", {"SdkAppId": APP})
    assert (described["Callback"], described["CallbackKey"]) == ("https://x.example/warn", "123456")
    assert call(sim, "DescribeWarningCallback", {"SdkAppId": OTHER_APP})["Error"]["Code"] == (
        "UnauthorizedOperation.SdkAppId")
    assert call(sim, "DescribeWhiteboardPushCallback", {"SdkAppId": APP})["Callback"] == ""  # its own setting


@pytest.mark.parametrize(("params", "expected"), [
    ({"Callback": "ftp://x.example/warn", "CallbackKey": ""}, "InvalidParameter.CallbackAddressFormatError"),
    ({"Callback": "https://x.example/warn", "CallbackKey": "k" * 65}, "InvalidParameterValue"),
    ({"Callback": "https://x.example/warn"}, "MissingParameter"),  # all three are required (api.json)
    ({"Callback": "https://x.example/warn", "CallbackKey": "", "Colour": 1}, "UnknownParameter"),
])
def test_set_warning_callback_refuses_what_tiw_refuses(sim: Simulator, params: dict[str, Any], expected: str) -> None:
    assert code(call(sim, "SetWarningCallback", {"SdkAppId": APP, **params})) == expected


def test_empty_strings_delete_the_warning_settings(sim: Simulator) -> None:
    call(sim, "SetWarningCallback", {"SdkAppId": APP, "Callback": "http://x.example/w", "CallbackKey": "k"})
    call(sim, "SetWarningCallback", {"SdkAppId": APP, "Callback": "", "CallbackKey": ""})
    assert call(sim, "DescribeWarningCallback", {"SdkAppId": APP}) | {"RequestId": ""} == {
        "Callback": "", "CallbackKey": "", "RequestId": ""}


def test_too_many_queued_pushes_send_one_amount_warning_in_the_documented_shape(
    make_sim: Callable[..., Simulator], receiver: Receiver,
) -> None:
    sim = make_sim(warning_queued_amount=1, warning_queued_seconds=3600)
    call(sim, "SetWarningCallback", {"SdkAppId": APP, "Callback": receiver.url, "CallbackKey": ""})
    first = sim.add_task(APP, TaskScript(queued_seconds=600))
    assert receiver.settle() == []  # one queued push is within the limit
    second = sim.add_task(APP, TaskScript(queued_seconds=600))
    (warning,) = receiver.wait_for(1)
    assert set(warning) == {"EventType", "EventData"}  # as 1137/90112's example: no SdkAppId, Sign, ExpireTime
    assert warning["EventType"] == "TaskQueuedAmountLimitWarning"
    data = warning["EventData"]
    assert (data["TaskType"], data["Total"]) == ("WhiteboardPush", 2)
    assert [task["TaskID"] for task in data["Tasks"]] == [first, second]
    assert set(data["Tasks"][0]) == {"TaskID", "CreateTime", "CancelTime", "RoomID", "FileURL", "SdkAppID"}
    assert (data["Tasks"][0]["SdkAppID"], data["Tasks"][0]["FileURL"], data["Tasks"][0]["CancelTime"]) == (APP, "", "")
    sim.add_task(APP, TaskScript(queued_seconds=600))
    assert len(receiver.settle()) == 1  # still over the limit: no new warning until it fell back
    assert sim.stats()["warning_callbacks_sent"] == 1 and sim.stats()["callbacks_sent"] == 0


def test_a_push_waiting_too_long_sends_one_time_warning(
    make_sim: Callable[..., Simulator], receiver: Receiver,
) -> None:
    clock = FakeClock(T0)
    sim = make_sim(clock=clock, warning_queued_amount=10, warning_queued_seconds=5)
    sim.configure_warning_callbacks(receiver.url)
    task_id = sim.add_task(APP, TaskScript(queued_seconds=60))
    sim.add_task(APP, TaskScript(queued_seconds=1))  # leaves the queue in time
    clock.advance(4)
    assert receiver.settle() == []
    clock.advance(2)
    (warning,) = receiver.wait_for(1)
    assert warning["EventType"] == "TaskQueuedTimeLimitWarning"
    assert (warning["EventData"]["Total"], [t["TaskID"] for t in warning["EventData"]["Tasks"]]) == (1, [task_id])
    clock.advance(30)
    assert len(receiver.settle()) == 1  # once per task


def test_warnings_can_use_the_push_callbacks_signed_envelope(
    make_sim: Callable[..., Simulator], receiver: Receiver,
) -> None:
    clock = FakeClock(T0)
    sim = make_sim(clock=clock, warning_queued_amount=0, warning_envelope="push")
    call(sim, "SetWarningCallback", {"SdkAppId": APP, "Callback": receiver.url, "CallbackKey": KEY})
    sim.add_task(APP, TaskScript(queued_seconds=60))
    (warning,) = receiver.wait_for(1)
    assert (warning["SdkAppId"], warning["Timestamp"], warning["ExpireTime"]) == (APP, int(T0), int(T0) + 3600)
    assert warning["Sign"] == hashlib.md5(f"{KEY}{warning['ExpireTime']}".encode()).hexdigest()
    with pytest.raises(ValueError):
        Simulator(warning_envelope="fancy")


def test_no_warning_goes_to_an_sdk_app_id_without_a_warning_url(
    make_sim: Callable[..., Simulator], receiver: Receiver,
) -> None:
    sim = make_sim(sdk_app_ids=(APP, OTHER_APP), warning_queued_amount=0)
    call(sim, "SetWarningCallback", {"SdkAppId": OTHER_APP, "Callback": receiver.url, "CallbackKey": ""})
    sim.add_task(APP, TaskScript(queued_seconds=60))
    assert receiver.settle() == []
    other = sim.add_task(OTHER_APP, TaskScript(queued_seconds=60))
    (warning,) = receiver.wait_for(1)
    assert warning["EventData"]["Tasks"][0]["TaskID"] == other


def test_warning_callbacks_can_be_configured_over_the_control_endpoint(
    make_sim: Callable[..., Simulator], receiver: Receiver,
) -> None:
    sim = make_sim(warning_queued_amount=0)
    SimulatorClient(sim.url).configure_warning_callbacks(receiver.url)
    assert call(sim, "DescribeWarningCallback", {"SdkAppId": APP})["Callback"] == receiver.url
    sim.add_task(APP, TaskScript(queued_seconds=60))
    assert receiver.wait_for(1)[0]["EventType"] == "TaskQueuedAmountLimitWarning"
    with pytest.raises(requests.HTTPError):
        SimulatorClient(sim.url)._call("POST", "callbacks", {"kind": "snapshot", "url": receiver.url})  # no such kind


# --------------------------------------------------------------------------- 6. settings answer what is done


def test_describe_push_callback_answers_the_url_and_key_given_at_construction(
    make_sim: Callable[..., Simulator], receiver: Receiver,
) -> None:
    sim = make_sim(sdk_app_ids=(APP, OTHER_APP), callback_url=receiver.url, callback_key=KEY)
    for sdk_app_id in (APP, OTHER_APP):
        described = call(sim, "DescribeWhiteboardPushCallback", {"SdkAppId": sdk_app_id})
        assert (described["Callback"], described["CallbackKey"]) == (receiver.url, KEY)
    with pytest.raises(ValueError):
        Simulator(callback_url=receiver.url)


def test_configure_callbacks_is_what_describe_answers_and_where_callbacks_go(
    make_sim: Callable[..., Simulator], receiver: Receiver,
) -> None:
    sim = make_sim()
    sim.configure_callbacks(receiver.url, KEY)
    described = call(sim, "DescribeWhiteboardPushCallback", {"SdkAppId": APP})
    assert (described["Callback"], described["CallbackKey"]) == (receiver.url, KEY)
    task_id = sim.add_task(APP, TaskScript(prepare_seconds=0))
    (started,) = receiver.wait_for(1)
    assert started["EventData"]["TaskId"] == task_id
    assert started["Sign"] == hashlib.md5(f"{KEY}{started['ExpireTime']}".encode()).hexdigest()


def test_callbacks_go_to_each_sdk_app_ids_own_url_and_key(make_sim: Callable[..., Simulator]) -> None:
    first, second = Receiver(), Receiver()
    try:
        sim = make_sim(sdk_app_ids=(APP, OTHER_APP))
        call(sim, "SetWhiteboardPushCallback", {"SdkAppId": APP, "Callback": first.url})
        call(sim, "SetWhiteboardPushCallbackKey", {"SdkAppId": APP, "CallbackKey": "first-key"})
        SimulatorClient(sim.url).configure_callbacks(second.url, "second-key")  # every app, as Set* would
        call(sim, "SetWhiteboardPushCallback", {"SdkAppId": APP, "Callback": first.url})
        call(sim, "SetWhiteboardPushCallbackKey", {"SdkAppId": APP, "CallbackKey": "first-key"})
        mine, theirs = sim.add_task(APP, TaskScript(0)), sim.add_task(OTHER_APP, TaskScript(0))
        (to_first,), (to_second,) = first.wait_for(1), second.wait_for(1)
        assert (to_first["EventData"]["TaskId"], to_second["EventData"]["TaskId"]) == (mine, theirs)
        assert to_first["Sign"] == hashlib.md5(f"first-key{to_first['ExpireTime']}".encode()).hexdigest()
        assert to_second["Sign"] == hashlib.md5(f"second-key{to_second['ExpireTime']}".encode()).hexdigest()
    finally:
        first.close()
        second.close()


def test_a_url_without_a_key_gets_unsigned_callbacks(sim: Simulator, receiver: Receiver) -> None:
    call(sim, "SetWhiteboardPushCallback", {"SdkAppId": APP, "Callback": receiver.url})
    sim.add_task(APP, TaskScript(0))
    (started,) = receiver.wait_for(1)
    assert set(started) == {"Timestamp", "SdkAppId", "EventType", "EventData"}  # no ExpireTime, no Sign


def test_no_callback_goes_out_once_the_url_is_deleted(sim: Simulator, receiver: Receiver) -> None:
    sim.configure_callbacks(receiver.url, KEY)
    call(sim, "SetWhiteboardPushCallback", {"SdkAppId": APP, "Callback": ""})
    sim.add_task(APP, TaskScript(0))
    assert receiver.settle() == []


# --------------------------------------------------------------------------- 7. regions


@pytest.mark.parametrize("region", DEFAULT_REGIONS)
def test_the_default_regions_are_served(sim: Simulator, region: str) -> None:
    assert code(call(sim, "DescribeRunningTasks", {"SdkAppID": APP, "TaskType": "WhiteboardPush"}, region)) == (
        "success")


def test_a_region_not_served_gets_unsupported_region(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim()
    answer = call(sim, "DescribeWhiteboardPush", {"SdkAppId": APP, "TaskId": "x"}, region="ap-nowhere")
    assert answer["Error"]["Code"] == "UnsupportedRegion" and "ap-nowhere" in answer["Error"]["Message"]
    assert sim.stats()["requests"]["DescribeWhiteboardPush"] == {"UnsupportedRegion": 1}


def test_the_served_regions_are_an_option(make_sim: Callable[..., Simulator]) -> None:
    beijing = make_sim(regions=("ap-beijing",))
    assert beijing.regions == frozenset({"ap-beijing"})
    params = {"SdkAppID": APP, "TaskType": "WhiteboardPush"}
    assert code(call(beijing, "DescribeRunningTasks", params, "ap-beijing")) == "success"
    assert code(call(beijing, "DescribeRunningTasks", params, "ap-guangzhou")) == "UnsupportedRegion"
    anywhere = make_sim(regions=None)
    assert code(call(anywhere, "DescribeRunningTasks", params, "xx-anything-1")) == "success"


# --------------------------------------------------------------------------- the official SDK parses it all


def test_the_official_sdk_parses_the_new_answers(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(clock=time.time, callback_url="https://cb.example/tiw", callback_key=KEY)
    client = sdk(sim)
    queued = sim.add_task(APP, TaskScript(queued_seconds=600))
    preparing = sim.add_task(APP, TaskScript(prepare_seconds=600))
    running = client.DescribeRunningTasks(sdk_request(models.DescribeRunningTasksRequest, SdkAppID=APP,
                                                      TaskType="WhiteboardPush", Limit=10))
    assert [(t.TaskID, t.Status, t.CancelTime) for t in running.Tasks] == [
        (queued, "QUEUED", ""), (preparing, "PROCESSING", "")]
    pushed = client.DescribeWhiteboardPushCallback(sdk_request(models.DescribeWhiteboardPushCallbackRequest,
                                                               SdkAppId=APP))
    assert (pushed.Callback, pushed.CallbackKey) == ("https://cb.example/tiw", KEY)
    client.SetWarningCallback(sdk_request(models.SetWarningCallbackRequest, SdkAppId=APP,
                                          Callback="https://cb.example/warn", CallbackKey="123456"))
    warned = client.DescribeWarningCallback(sdk_request(models.DescribeWarningCallbackRequest, SdkAppId=APP))
    assert (warned.Callback, warned.CallbackKey) == ("https://cb.example/warn", "123456")
    assert client.DescribeWhiteboardPush(sdk_request(models.DescribeWhiteboardPushRequest, SdkAppId=APP,
                                                     TaskId=queued)).Status == "PREPARED"


@pytest.mark.parametrize(("region", "action", "fields", "expected"), [
    ("ap-nowhere", "DescribeRunningTasks", {"SdkAppID": APP, "TaskType": "WhiteboardPush"}, "UnsupportedRegion"),
    ("ap-guangzhou", "SetWhiteboardPushCallback", {"SdkAppId": APP, "Callback": "ftp://x"},
     "InvalidParameter.CallbackAddressFormatError"),
    ("ap-guangzhou", "SetWarningCallback", {"SdkAppId": APP, "Callback": "ftp://x", "CallbackKey": ""},
     "InvalidParameter.CallbackAddressFormatError"),
])
def test_the_official_sdk_gets_tiws_error_codes(
    make_sim: Callable[..., Simulator], region: str, action: str, fields: dict[str, Any], expected: str,
) -> None:
    sim = make_sim(clock=time.time)
    request = sdk_request(getattr(models, f"{action}Request"), **fields)
    with pytest.raises(TencentCloudSDKException) as caught:
        getattr(sdk(sim, region), action)(request)
    assert caught.value.get_code() == expected and caught.value.get_request_id()


def test_the_official_sdk_sees_a_push_failing_at_start_as_the_seeds_failure(
    make_sim: Callable[..., Simulator],
) -> None:
    sim = make_sim(clock=time.time)
    task_id = sim.add_task(APP, TaskScript(prepare_seconds=0, fail_with="FailedOperation.WhiteboardPush"))
    with pytest.raises(TencentCloudSDKException) as caught:
        sdk(sim).DescribeWhiteboardPush(sdk_request(models.DescribeWhiteboardPushRequest, SdkAppId=APP,
                                                    TaskId=task_id))
    assert (caught.value.get_code(), caught.value.get_message()) == (
        "FailedOperation.WhiteboardPush", SEED_FAILURE_MESSAGE)
    running = sdk(sim).DescribeRunningTasks(sdk_request(models.DescribeRunningTasksRequest, SdkAppID=APP,
                                                        TaskType="WhiteboardPush"))
    assert (running.Total, running.Tasks) == (0, [])


def test_a_wrong_types_fault_answers_an_envelope_for_every_action(sim: Simulator) -> None:
    for action in ACTIONS:
        sim.set_fault("wrong_types", count=1, action=action)
        answer = call(sim, action, {"SdkAppId": APP})
        assert answer["RequestId"], action
