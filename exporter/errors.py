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
    PAUSE_SDK_APP_ID = "pause_sdk_app_id"  # the whole SdkAppId waits (exponential backoff, one probe after)
    RETRY = "retry"  # transient: the task is queried again at the next interval (sooner if client_retry)
    TASK_BACKOFF = "task_backoff"  # this task only: exponential backoff up to the collector's cap


class DiscoveryAction(str, Enum):
    """What a ``DescribeRunningTasks`` pass does with the code."""

    THROTTLE = "throttle"  # slow the budget down, end this pass
    END_PASS = "end_pass"  # end this pass; the next interval tries again


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

TABLE: dict[str, Disposition] = {
    "RequestLimitExceeded": Disposition("the account's request rate limit was hit", True, _C.THROTTLE,
                                        DiscoveryAction.THROTTLE),
    "InternalError": Disposition("a fault inside Tencent Cloud", True, _C.RETRY),
    "AuthFailure": Disposition("the credential is refused (wrong, disabled or unauthorised key)", False,
                               _C.PAUSE_SDK_APP_ID),
    "AuthFailure.SignatureExpire": Disposition(
        "our clock is off the server's; the client re-learns it from the answer's Date header", False, _C.RETRY),
    "ResourceUnavailable": Disposition("the SdkAppId cannot be used (e.g. arrears, service not opened)", False,
                                       _C.PAUSE_SDK_APP_ID),
    "UnauthorizedOperation": Disposition("the credential may not use this SdkAppId", False, _C.PAUSE_SDK_APP_ID),
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
