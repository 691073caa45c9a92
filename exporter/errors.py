"""The one error table: what an error code means, and what the client, collector and discovery do.

Every failure of a Tencent Cloud call carries a ``code``: Tencent's own (``AuthFailure.SecretIdNotFound``)
or one of ours for failures without an API answer (``ClientError.Timeout``). ``disposition(code)``
looks the code up by its longest dotted prefix, so ``AuthFailure.SignatureExpire`` can differ from
the rest of ``AuthFailure``. A code the table does not know gets ``UNKNOWN``: it is treated as a
problem of the one task that got it (backed off, never retried at once, never pausing others).

This module imports nothing of ours: the client, the collector and discovery all read it, and
adding or reclassifying a code is one row here and one row in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class CollectorAction(str, Enum):
    """What the poller does with a task whose query failed with the code."""

    THROTTLE = "throttle"  # slow the account's paced budget down; the task keeps its place in the queue
    PAUSE_CREDENTIAL = "pause_credential"  # every SdkAppId of the account waits; one loud log line
    PAUSE_SDK_APP_ID = "pause_sdk_app_id"  # the whole SdkAppId waits (exponential backoff, one probe after)
    RETRY = "retry"  # transient: the task is queried again at the next interval (sooner if client_retry)
    TASK_FAILED = "task_failed"  # the push failed: final once a second answer confirms it
    TASK_NOT_FOUND = "task_not_found"  # no such task: final once confirmed over the not-found grace period
    TASK_BACKOFF = "task_backoff"  # this task only: exponential backoff up to the collector's cap


class DiscoveryAction(str, Enum):
    """What a ``DescribeRunningTasks`` pass does with the code."""

    THROTTLE = "throttle"  # slow the budget down, end this pass
    END_PASS = "end_pass"  # end this pass; the next interval tries again
    POLL_INSTEAD = "poll_instead"  # refused for good (no such action, CAM denial): liveness polls instead, asked rarely


@dataclass(frozen=True)
class Disposition:
    meaning: str
    client_retry: bool  # the client may resend the same call at once (capped backoff with jitter)
    collector: CollectorAction
    discovery: DiscoveryAction = DiscoveryAction.END_PASS

    @property
    def throttled(self) -> bool:
        return self.collector is CollectorAction.THROTTLE


_C = CollectorAction
# A transcode's failures, answered by DescribeTranscode (the Go SDK's error list for the action); the
# transcode row of kinds.KINDS names these as its failure codes.
TRANSCODE_FAILURES = (
    "FailedOperation.Transcode", "FailedOperation.TranscodeServerError", "FailedOperation.FileDownloadFail",
    "FailedOperation.FileFormatError", "FailedOperation.FileOpenFail", "FailedOperation.FileUploadFail",
    "FailedOperation.Preprocess", "FailedOperation.PreprocessServerError", "InvalidParameter.FileFormatUnsupported",
    "InvalidParameter.UrlFormatError", "InvalidParameter.TranscodeParameter", "InvalidParameter.PreprocessParameter",
    "LimitExceeded.TranscodePagesLimitation",
)

TABLE: dict[str, Disposition] = {
    "RequestLimitExceeded": Disposition("the account's request rate limit was hit", True, _C.THROTTLE,
                                        DiscoveryAction.THROTTLE),
    "InternalError": Disposition("a fault inside Tencent Cloud", True, _C.RETRY),
    "ServiceUnavailable": Disposition("the service is temporarily unavailable", True, _C.RETRY),
    "AuthFailure": Disposition("the credential is refused (unknown SecretId, wrong key or token, bad signature)",
                               False, _C.PAUSE_CREDENTIAL),
    "AuthFailure.SignatureExpire": Disposition(
        "our clock is off the server's; the client re-learns it from the answer's Date header", False, _C.RETRY),
    "AuthFailure.UnauthorizedOperation": Disposition("the credential may not use this SdkAppId or action (CAM)",
                                                     False, _C.PAUSE_SDK_APP_ID, DiscoveryAction.POLL_INSTEAD),
    "UnsupportedRegion": Disposition("--region is not served by this endpoint", False, _C.PAUSE_CREDENTIAL),
    "InvalidAction": Disposition("the endpoint has no such action (wrong --endpoint or product; international "
                                 "accounts lack DescribeRunningTasks)", False, _C.PAUSE_CREDENTIAL,
                                 DiscoveryAction.POLL_INSTEAD),
    "ActionOffline": Disposition("the action was taken offline", False, _C.PAUSE_CREDENTIAL,
                                 DiscoveryAction.POLL_INSTEAD),
    "NoSuchVersion": Disposition("the endpoint has no such API version", False, _C.PAUSE_CREDENTIAL),
    "NoSuchProduct": Disposition("the endpoint serves no such product (wrong --endpoint or product)", False,
                                 _C.PAUSE_CREDENTIAL),
    "UnsupportedProtocol": Disposition("the endpoint refuses this protocol (http vs https)", False,
                                       _C.PAUSE_CREDENTIAL),
    "IpNotInWhitelist": Disposition("this host's IP is not in the account's API allow list", False,
                                    _C.PAUSE_CREDENTIAL),
    "ResourceUnavailable": Disposition("the SdkAppId cannot be used (whiteboard not activated, arrears, expired)",
                                       False, _C.PAUSE_SDK_APP_ID),
    "UnauthorizedOperation": Disposition("the credential may not use this SdkAppId or action (CAM)", False,
                                         _C.PAUSE_SDK_APP_ID, DiscoveryAction.POLL_INSTEAD),
    "InvalidParameter.SdkAppIdNotFound": Disposition("the SdkAppId does not exist", False, _C.PAUSE_SDK_APP_ID),
    "FailedOperation.WhiteboardPush": Disposition(
        "the push failed (the message carries TRTC's error, e.g. an illegal UserSig)", False, _C.TASK_FAILED),
    # A push's Stopped callback names FailedOperation.Record too: it means "the task failed", of any kind.
    "FailedOperation.Record": Disposition("the task failed (a recording's answer; also named in push callbacks)",
                                          False, _C.TASK_FAILED),
    **dict.fromkeys(TRANSCODE_FAILURES, Disposition("the transcode failed (the document could not be fetched, "
                                                    "opened or converted)", False, _C.TASK_FAILED)),
    "InvalidParameter.TaskNotFound": Disposition("no such task (or not visible yet, just after its start)",
                                                 False, _C.TASK_NOT_FOUND),
    "ClientError.Network": Disposition("no HTTP answer: connection refused, reset, DNS", True, _C.RETRY),
    "ClientError.Timeout": Disposition("no complete answer within the connect/read deadline", True, _C.RETRY),
    "ClientError.HttpStatus": Disposition("HTTP 5xx from the endpoint or a gateway", True, _C.RETRY),
    "ClientError.BadResponse": Disposition("an answer that is not a valid API envelope or task", False, _C.RETRY),
    "ClientError.ResponseTooLarge": Disposition("an answer larger than any real one", False, _C.RETRY),
    "ClientError.Credential": Disposition("no key to sign with (key file unreadable, role refresh failed)", False,
                                          _C.RETRY),
    "ClientError.Signing": Disposition("the request could not be signed (clock out of range)", False, _C.RETRY),
}

UNKNOWN = Disposition("any other code (InvalidParameter.*, FailedOperation.*, ...): a problem of this task",
                      False, _C.TASK_BACKOFF)


def disposition(code: str) -> Disposition:
    """The row of the longest dotted prefix of ``code`` in ``TABLE``, else ``UNKNOWN``."""
    parts = code.split(".")
    for length in range(len(parts), 0, -1):
        found = TABLE.get(".".join(parts[:length]))
        if found is not None:
            return found
    return UNKNOWN


def client_retry(code: str) -> bool:
    """Whether the client may resend a call that failed with ``code`` at once: ``RetryPolicy.retryable``."""
    return disposition(code).client_retry


# Where each collector action shows (besides tiw_push_api_errors_total{sdk_app_id,code}, which counts every code).
ACTION_METRICS: dict[CollectorAction, str] = {
    _C.THROTTLE: "`tiw_exporter_api_requests_total{outcome=\"throttled\"}`",
    _C.PAUSE_CREDENTIAL: "`tiw_exporter_credential_paused{account,code}`",
    _C.PAUSE_SDK_APP_ID: "`tiw_exporter_account_paused{sdk_app_id,code}`",
    _C.RETRY: "`tiw_push_task_error{code}`",
    _C.TASK_FAILED: "`<prefix>_task_finish_reason{reason=\"FAILED\"}`, `<prefix>_task_failure_info` (prefix: "
                    "the kind's, e.g. `tiw_push`)",
    _C.TASK_NOT_FOUND: "`<prefix>_task_finish_reason{reason=\"NOT_FOUND\"}`",
    _C.TASK_BACKOFF: "`tiw_push_task_error{code}`",
}


def markdown_table() -> str:
    """The table as Markdown for the README (a test keeps the README's copy equal to this)."""
    lines = ["| code (longest dotted prefix wins) | meaning | client retries | collector | discovery | shows in |",
             "|---|---|---|---|---|---|"]
    rows = [(f"`{code}`", row) for code, row in sorted(TABLE.items())] + [("any other code", UNKNOWN)]
    for code, row in rows:
        lines.append(f"| {code} | {row.meaning} | {'yes' if row.client_retry else 'no'} | {row.collector.value} | "
                     f"{row.discovery.value} | {ACTION_METRICS[row.collector]} |")
    return "\n".join(lines) + "\n"
