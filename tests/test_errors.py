"""The error table: each code's meaning and what the client, collector and discovery do with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.errors import (
    TABLE,
    UNKNOWN,
    CollectorAction,
    DiscoveryAction,
    client_retry,
    disposition,
    markdown_table,
)
from exporter.tencentcloud.errors import (
    ApiError,
    BadResponse,
    CallFailure,
    CredentialFailure,
    HttpStatusFailure,
    NetworkFailure,
    StaleConnection,
    TimeoutFailure,
)

C = CollectorAction

# code -> (client retries it, collector action, discovery action)
EXPECTED = {
    "RequestLimitExceeded": (True, C.THROTTLE, DiscoveryAction.THROTTLE),
    "RequestLimitExceeded.UinLimitExceeded": (True, C.THROTTLE, DiscoveryAction.THROTTLE),
    "InternalError": (True, C.RETRY, DiscoveryAction.END_PASS),
    "InternalError.DbError": (True, C.RETRY, DiscoveryAction.END_PASS),
    "AuthFailure.SecretIdNotFound": (False, C.PAUSE_CREDENTIAL, DiscoveryAction.END_PASS),
    "AuthFailure.SignatureFailure": (False, C.PAUSE_CREDENTIAL, DiscoveryAction.END_PASS),
    "AuthFailure.UnauthorizedOperation": (False, C.PAUSE_SDK_APP_ID, DiscoveryAction.POLL_INSTEAD),
    "UnsupportedRegion": (False, C.PAUSE_CREDENTIAL, DiscoveryAction.END_PASS),
    "InvalidAction": (False, C.PAUSE_CREDENTIAL, DiscoveryAction.POLL_INSTEAD),  # liveness falls back to polling
    "IpNotInWhitelist": (False, C.PAUSE_CREDENTIAL, DiscoveryAction.END_PASS),
    "NoSuchVersion": (False, C.PAUSE_CREDENTIAL, DiscoveryAction.END_PASS),
    "NoSuchProduct": (False, C.PAUSE_CREDENTIAL, DiscoveryAction.END_PASS),  # a setup error, like InvalidAction
    "ServiceUnavailable": (True, C.RETRY, DiscoveryAction.END_PASS),
    "InvalidParameter.SdkAppIdNotFound": (False, C.PAUSE_SDK_APP_ID, DiscoveryAction.END_PASS),
    "ResourceUnavailable.NotRegistered": (False, C.PAUSE_SDK_APP_ID, DiscoveryAction.END_PASS),
    "AuthFailure.SignatureExpire": (False, C.RETRY, DiscoveryAction.END_PASS),
    "ResourceUnavailable.InArrears": (False, C.PAUSE_SDK_APP_ID, DiscoveryAction.END_PASS),
    "UnauthorizedOperation.SdkAppId": (False, C.PAUSE_SDK_APP_ID, DiscoveryAction.POLL_INSTEAD),
    "InvalidParameter.TaskNotFound": (False, C.TASK_NOT_FOUND, DiscoveryAction.END_PASS),
    "FailedOperation.WhiteboardPush": (False, C.TASK_FAILED, DiscoveryAction.END_PASS),
    "InvalidParameterValue": (False, C.TASK_BACKOFF, DiscoveryAction.END_PASS),
    "SomethingNew.NeverSeen": (False, C.TASK_BACKOFF, DiscoveryAction.END_PASS),
    "ClientError.Network": (True, C.RETRY, DiscoveryAction.END_PASS),
    "ClientError.Timeout": (True, C.RETRY, DiscoveryAction.END_PASS),
    "ClientError.HttpStatus": (True, C.RETRY, DiscoveryAction.END_PASS),
    "ClientError.BadResponse": (False, C.RETRY, DiscoveryAction.END_PASS),
    "ClientError.ResponseTooLarge": (False, C.RETRY, DiscoveryAction.END_PASS),
    "ClientError.Credential": (False, C.RETRY, DiscoveryAction.END_PASS),
    "ClientError.Signing": (False, C.RETRY, DiscoveryAction.END_PASS),
}


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_each_code_has_its_documented_disposition(code: str) -> None:
    found = disposition(code)
    assert (found.client_retry, found.collector, found.discovery) == EXPECTED[code]


def test_the_longest_dotted_prefix_wins_and_unknown_codes_get_the_default() -> None:
    assert disposition("AuthFailure.SignatureExpire") is TABLE["AuthFailure.SignatureExpire"]
    assert disposition("AuthFailure.SignatureExpire.Extra") is TABLE["AuthFailure.SignatureExpire"]
    assert disposition("AuthFailureX") is UNKNOWN  # a prefix of the text, not of the dotted code
    assert disposition("") is UNKNOWN


def test_every_client_error_code_the_client_raises_is_in_the_table() -> None:
    raised = {"ClientError.Network", "ClientError.Timeout", "ClientError.HttpStatus", "ClientError.BadResponse",
              "ClientError.ResponseTooLarge", "ClientError.Credential", "ClientError.Signing"}
    assert raised <= set(TABLE)


@pytest.mark.parametrize(("failure", "retryable", "outcome"), [
    (NetworkFailure("ClientError.Network", "reset"), True, "network_error"),
    (TimeoutFailure("ClientError.Timeout", "slow"), True, "network_error"),
    (StaleConnection("ClientError.Network", "closed"), True, "network_error"),
    (HttpStatusFailure("ClientError.HttpStatus", "HTTP 502"), True, "bad_response"),
    (BadResponse("ClientError.BadResponse", "not JSON"), False, "bad_response"),
    (CredentialFailure("ClientError.Credential", "unreadable"), False, "error"),
    (CallFailure("ClientError.Signing", "year 10000"), False, "error"),
    (ApiError("RequestLimitExceeded", "slow down"), True, "throttled"),
    (ApiError("InternalError", "oops"), True, "error"),
    (ApiError("AuthFailure.SignatureFailure", "no"), False, "error"),
])
def test_failures_take_retry_from_the_table_and_keep_their_outcome_label(
        failure: CallFailure, retryable: bool, outcome: str) -> None:
    assert (client_retry(failure.code), failure.outcome) == (retryable, outcome)


@pytest.mark.parametrize("code", sorted({*TABLE, *EXPECTED, "RequestLimitExceeded.Other", "RequestLimitExceededX"}))
def test_an_api_error_is_counted_throttled_exactly_when_the_table_throttles_its_code(code: str) -> None:
    # tencentcloud/ imports nothing of ours, so it knows the throttling code itself: it must agree with the table
    assert (ApiError(code, "").outcome == "throttled") == disposition(code).throttled


def test_the_readme_lists_the_table_as_the_code_has_it() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- error-table:start -->\n", "<!-- error-table:end -->"
    assert start in readme and end in readme
    assert readme.split(start, 1)[1].split(end, 1)[0] == markdown_table()
