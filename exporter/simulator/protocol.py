"""The wire vocabulary shared by the API, the faults and the HTTP server: actions, errors, replies."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

API_VERSION = "2019-09-19"
SERVICE = "tiw"
# TIW's own request-body limit (RequestSizeLimitExceeded). Not the product's MAX_RESPONSE_BYTES: that
# caps what the client reads from an answer, a different rule that happens to have the same size.
MAX_BODY_BYTES = 1 << 20

DESCRIBE = "DescribeWhiteboardPush"
START = "StartWhiteboardPush"
STOP = "StopWhiteboardPush"
RUNNING = "DescribeRunningTasks"
DESCRIBE_CALLBACK = "DescribeWhiteboardPushCallback"
SET_CALLBACK = "SetWhiteboardPushCallback"
SET_CALLBACK_KEY = "SetWhiteboardPushCallbackKey"
DESCRIBE_WARNING_CALLBACK = "DescribeWarningCallback"
SET_WARNING_CALLBACK = "SetWarningCallback"
RECORD_ACTIONS = ("DescribeOnlineRecord", "StartOnlineRecord", "StopOnlineRecord", "PauseOnlineRecord",
                  "ResumeOnlineRecord", "DescribeOnlineRecordCallback", "SetOnlineRecordCallback",
                  "SetOnlineRecordCallbackKey")
TRANSCODE_ACTIONS = ("DescribeTranscode", "CreateTranscode", "DescribeTranscodeCallback", "SetTranscodeCallback",
                     "SetTranscodeCallbackKey")
ACTIONS = (DESCRIBE, START, STOP, RUNNING, DESCRIBE_CALLBACK, SET_CALLBACK, SET_CALLBACK_KEY,
           DESCRIBE_WARNING_CALLBACK, SET_WARNING_CALLBACK, *RECORD_ACTIONS, *TRANSCODE_ACTIONS)
# The regions a simulator serves by default: the domestic default and the international site's only one
# (the intl push API pages: "only supports: ap-singapore"). The domestic region list is unconfirmed.
DEFAULT_REGIONS = ("ap-guangzhou", "ap-singapore")


class SimulatedError(Exception):
    """An API error the simulator answers with ``Response.Error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def missing(name: str) -> SimulatedError:
    return SimulatedError("MissingParameter", f"The request is missing a required parameter `{name}`.")


_TYPE_NAMES = {int: "Integer", str: "String", bool: "Boolean"}
T = TypeVar("T")


def param(params: Mapping[str, Any], name: str, kind: type, required: bool = True) -> Any:
    """One parameter, type-checked like the API (JSON integers only, no booleans)."""
    value = params.get(name)
    if value is None:
        if required:
            raise missing(name)
        return None
    matches = isinstance(value, int) and not isinstance(value, bool) if kind is int else isinstance(value, kind)
    if not matches:
        expected = _TYPE_NAMES[kind]
        raise SimulatedError(
            "InvalidParameter.BodyParameterTypeUnmatched",
            f"The type of parameter `{name}` must be {expected}.",
        )
    return value


def reject_unknown(params: Mapping[str, Any], known: Iterable[str]) -> None:
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise SimulatedError("UnknownParameter", f"The parameter `{unknown[0]}` is not recognized.")


def script_from_extra(extra: str | None, parse: Callable[[Mapping[str, Any]], T]) -> T | None:
    """The test hook of a create action: ``ExtraData`` as JSON text with a ``simulator`` object of script fields.

    ``parse`` builds the kind's script (e.g. ``TaskScript.from_mapping``); text without that object is no hook.
    """
    if not extra:
        return None
    try:
        data = json.loads(extra)
    except ValueError:
        return None
    if not isinstance(data, dict) or "simulator" not in data:
        return None
    try:
        if not isinstance(data["simulator"], dict):
            raise ValueError("`simulator` must be an object")
        return parse(data["simulator"])
    except (TypeError, ValueError) as exc:
        raise SimulatedError("InvalidParameter.InvalidExtra", f"ExtraData simulator script: {exc}") from None


@dataclass
class Reply:
    """An HTTP answer and how to deliver it (faults may delay, trickle or drop it)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    trickle: bool = False
    drop: bool = False


def envelope(response: Mapping[str, Any]) -> Reply:
    document = {"Response": {**response, "RequestId": str(uuid.uuid4())}}
    return Reply(body=json.dumps(document, ensure_ascii=False).encode("utf-8"))


def error_reply(code: str, message: str) -> Reply:
    return envelope({"Error": {"Code": code, "Message": message}})


def json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, else None (API and control endpoints reject anything else)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None
