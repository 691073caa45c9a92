"""How a Tencent Cloud API call can fail: one exception family, each with a stable ``code``.

``code`` is Tencent's own error code, or one of ours under ``ClientError.*``; ``outcome`` is the
label of ``tiw_exporter_api_requests_total``. What each code *means* to the exporter (retry, pause,
back off) is decided in ``exporter.errors``, not here (``tests/test_errors.py`` holds the two to agree
on which codes are throttling).
"""

from __future__ import annotations

# Outcomes, the values of the `outcome` label.
SUCCESS = "success"
ERROR = "error"
THROTTLED = "throttled"
NETWORK_ERROR = "network_error"
BAD_RESPONSE = "bad_response"

# Tencent Cloud's common code for a request rate limit that was hit; its sub-codes say which limit.
THROTTLING_CODE = "RequestLimitExceeded"


class CallFailure(Exception):
    """A call that produced no usable answer. ``code`` is stable and safe to put in a label."""

    outcome = ERROR

    def __init__(self, code: str, message: str, request_id: str = "") -> None:
        one_line = " ".join(message.split())[:500]  # API messages carry newlines; logs are one line per event
        super().__init__(f"{code}: {one_line}" + (f" (RequestId {request_id})" if request_id else ""))
        self.code = code
        self.message = message
        self.request_id = request_id


class ApiError(CallFailure):
    """The API answered with ``Response.Error``."""

    @property
    def outcome(self) -> str:  # type: ignore[override]
        return THROTTLED if self.code.split(".")[0] == THROTTLING_CODE else ERROR


class NetworkFailure(CallFailure):
    """Connection refused, DNS failure, reset: no HTTP answer at all."""

    outcome = NETWORK_ERROR


class TimeoutFailure(NetworkFailure):
    """Connect or read timeout."""


class StaleConnection(NetworkFailure):
    """The server closed the (pooled) connection without answering: safe to resend a read-only call."""


class BadResponse(CallFailure):
    """An HTTP answer that is not a valid API envelope (non-JSON, wrong shape, oversized, 4xx)."""

    outcome = BAD_RESPONSE


class HttpStatusFailure(BadResponse):
    """HTTP 5xx: a gateway or server fault, worth a retry (``ClientError.HttpStatus``)."""


class CredentialFailure(CallFailure):
    """The credential provider could not give a key (e.g. rotated file unreadable)."""

    outcome = ERROR
