"""DescribeWhiteboardPush answers -> PushTask: the validation policy of exporter/tiw.py."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.kinds import PUSH_KIND
from exporter.model import InvalidTaskRef, PushTask, parse_backup, validate_sdk_app_id, validate_task_id
from exporter.tencentcloud.errors import BadResponse
from exporter.tiw import parse_push_task

SEED_EXAMPLE = {
    "ExceptionCnt": 0, "FinishReason": "USER_CALL", "GroupId": "880528", "IMSyncTime": 0,
    "PushStartTime": 1610591726, "PushStopTime": 1610591759, "PushUserId": "tic_push_user_880528_test1",
    "RequestId": "d290f1ee-6c54-4b01-90e6-d701748f0851", "RoomId": 880528, "Status": "STOPPED",
    "Backup": "", "TaskId": "g42lfmu5uc3lpoqrqvvb",
}


def parse(**overrides):
    return parse_push_task(1400000001, "ghucnligqtgtvk2624mb", {**SEED_EXAMPLE, **overrides})


def test_seed_example_parses_every_field():
    task = parse()
    assert task == PushTask(
        sdk_app_id=1400000001, task_id="ghucnligqtgtvk2624mb", status="STOPPED", finish_reason="USER_CALL",
        room_id=880528, group_id="880528", push_user_id="tic_push_user_880528_test1",
        push_start_time=1610591726, push_stop_time=1610591759, exception_cnt=0, im_sync_time=0, backup="",
        request_id="d290f1ee-6c54-4b01-90e6-d701748f0851", answered_task_id="g42lfmu5uc3lpoqrqvvb",
    )


def test_task_is_identified_by_the_id_asked_for_not_the_answered_one():
    task = parse()
    assert task.task_id == "ghucnligqtgtvk2624mb"
    assert task.answered_task_id == "g42lfmu5uc3lpoqrqvvb"


@pytest.mark.parametrize("status", [None, 3, "", ["PUSHING"]])
def test_missing_or_non_string_status_is_a_bad_response(status):
    with pytest.raises(BadResponse, match="Status"):
        parse(Status=status)


def test_missing_status_key_is_a_bad_response():
    response = dict(SEED_EXAMPLE)
    del response["Status"]
    with pytest.raises(BadResponse):
        parse_push_task(1, "t", response)


def test_unknown_status_is_kept_verbatim_but_not_known():
    task = parse(Status="PAUSED")
    assert task.status == "PAUSED"
    assert task.status not in PUSH_KIND.rank  # not a known status
    assert task.status not in PUSH_KIND.final_statuses  # not stopped


def test_unknown_finish_reason_is_kept_verbatim():
    assert parse(FinishReason="NEW_REASON").finish_reason == "NEW_REASON"


@pytest.mark.parametrize("field", ["RoomId", "PushStartTime", "PushStopTime", "ExceptionCnt", "IMSyncTime"])
def test_null_or_missing_integer_fields_mean_zero(field):
    assert getattr(parse(**{field: None}), _attr(field)) == 0
    response = dict(SEED_EXAMPLE)
    del response[field]
    assert getattr(parse_push_task(1, "t", response), _attr(field)) == 0


@pytest.mark.parametrize(("value", "expected"), [(7.0, 7), ("12", 12), (" 3 ", 3)])
def test_integral_floats_and_digit_strings_are_accepted(value, expected):
    assert parse(ExceptionCnt=value).exception_cnt == expected


@pytest.mark.parametrize("value", [True, "many", 1.5, -1, [], {}])
def test_wrong_integer_types_are_bad_responses_naming_the_field(value):
    with pytest.raises(BadResponse, match="ExceptionCnt"):
        parse(ExceptionCnt=value)


def test_numeric_group_id_becomes_text():
    assert parse(GroupId=880528).group_id == "880528"


@pytest.mark.parametrize("value", [True, ["x"], {"a": 1}])
def test_wrong_string_types_are_bad_responses(value):
    with pytest.raises(BadResponse, match="PushUserId"):
        parse(PushUserId=value)


def test_null_strings_become_empty():
    task = parse(FinishReason=None, GroupId=None, PushUserId=None, RequestId=None)
    assert (task.finish_reason, task.group_id, task.push_user_id, task.request_id) == ("", "", "", "")


def test_backup_null_is_empty_and_objects_are_kept_as_json_text():
    assert parse(Backup=None).backup == ""
    assert json.loads(parse(Backup={"Status": "PUSHING"}).backup) == {"Status": "PUSHING"}


@pytest.mark.parametrize("text", ["", "null", "{}", "  ", '{"Foo": 1}', "[1]"])
def test_backup_without_push_task_fields_exports_nothing(text):
    assert parse_backup(text) is None


def test_backup_with_push_task_fields_is_parsed():
    assert parse_backup('{"Status":"PUSHING","ExceptionCnt":2}') == {"Status": "PUSHING", "ExceptionCnt": 2}


def test_unparseable_backup_raises_value_error():
    with pytest.raises(ValueError):
        parse_backup("{not json")


def test_push_task_round_trips_through_dict():
    task = parse()
    assert PushTask.from_dict(task.to_dict()) == task


def test_push_task_from_dict_rejects_wrong_types():
    data = parse().to_dict()
    data["room_id"] = "880528"
    with pytest.raises(TypeError):
        PushTask.from_dict(data)


@pytest.mark.parametrize("value", [1400000001, "1400000001", " 42 "])
def test_valid_sdk_app_ids(value):
    assert validate_sdk_app_id(value) == int(str(value).strip())


@pytest.mark.parametrize("value", [0, -1, "abc", True, 1.5, None, 2**63, ""])
def test_invalid_sdk_app_ids(value):
    with pytest.raises(InvalidTaskRef):
        validate_sdk_app_id(value)


@pytest.mark.parametrize("value", ["", "a" * 65, "bad id", "x/y", "ü", 5, None])
def test_invalid_task_ids(value):
    with pytest.raises(InvalidTaskRef):
        validate_task_id(value)


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10)


@given(st.dictionaries(st.sampled_from([*sorted(SEED_EXAMPLE), "Extra"]),
                       json_scalars | st.lists(json_scalars, max_size=2), max_size=14))
def test_any_response_gives_a_task_or_a_bad_response(response):
    try:
        task = parse_push_task(1, "t", response)
    except BadResponse as exc:
        assert exc.code == "ClientError.BadResponse"
    else:
        assert isinstance(task.status, str) and task.status
        assert min(task.room_id, task.exception_cnt, task.push_start_time) >= 0


def _attr(field: str) -> str:
    return {"RoomId": "room_id", "PushStartTime": "push_start_time", "PushStopTime": "push_stop_time",
            "ExceptionCnt": "exception_cnt", "IMSyncTime": "im_sync_time"}[field]
