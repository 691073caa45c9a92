"""The plain data of the exporter: ids, ``TaskKey``, ``PushTask``, and the one field coercion (each kind's
statuses are its row in ``kinds``).

Everything here is free of I/O and of the HTTP client, so config, store, callbacks, web and the
API wire format all share it. ``int_field``/``str_field`` are the ONE coercion of task fields, used
for ``DescribeWhiteboardPush`` answers and for callback ``EventData`` alike:

* integer fields: missing or ``null`` -> 0 (the API's own "not yet"); integral floats and ASCII digit
  strings are accepted; booleans, other strings, fractions and negative values -> ``FieldError``;
* integers larger than an int64 (the API's type) -> ``FieldError``: every sample stays a finite float;
* string fields: missing or ``null`` -> ""; numbers become their decimal text (GroupId is often
  numeric); text that is not valid Unicode (lone surrogates from ``\\ud800`` escapes) and anything
  else -> ``FieldError``: a label value that cannot be encoded would fail the whole scrape.

Documents nested deeper than ``MAX_NESTING`` are refused before any field is read.

Callers turn ``FieldError`` into their own refusal (``BadResponse`` for an API answer, 400 for a
callback), so a value is judged the same whichever way it arrived.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# How every part of the exporter names a task: (sdk_app_id, task_id) for a push, the kind as a third item
# for any other kind (``task_key``). A push's key stays the 2-tuple it always was, so every state file,
# URL and caller that names pushes keeps working; ``key_kind`` reads the kind back.
TaskKey = tuple[int, str] | tuple[int, str, str]
PUSH = "push"

TASK_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # used with fullmatch: "$" would accept a final newline
MAX_INT64 = 2**63 - 1  # the API's integers are int64; a larger one is no real answer
MAX_SDK_APP_ID = MAX_INT64
MAX_NESTING = 16  # a real answer or callback nests 3 deep; far deeper is an attack or a broken proxy
_DECIMAL_RE = re.compile(r"\s*([0-9]{1,19})\s*")  # ASCII digits only: str.isdigit() also takes "²" and "①"


def decimal_int(text: str) -> int | None:
    """The integer a short ASCII decimal text spells, else None."""
    match = _DECIMAL_RE.fullmatch(text)
    return int(match[1]) if match else None


def task_key(sdk_app_id: int, task_id: str, kind: str = PUSH) -> TaskKey:
    """The key of a task of ``kind`` (see ``TaskKey``)."""
    return (sdk_app_id, task_id) if kind == PUSH else (sdk_app_id, task_id, kind)


def key_kind(key: TaskKey) -> str:
    return key[2] if len(key) > 2 else PUSH  # type: ignore[misc]


def row_id(key: TaskKey) -> str:
    """The task's id column in the state file: the TaskId of a push, ``<kind>/<TaskId>`` otherwise ("/"
    is not in any TaskId, so a push and a recording of one id never share a row)."""
    return key[1] if len(key) == 2 else f"{key[2]}/{key[1]}"  # type: ignore[misc]


def key_from_row(sdk_app_id: int, text: str) -> TaskKey:
    """Inverse of ``row_id``; raises ``InvalidTaskRef`` for a row no version wrote."""
    kind, _, task_id = text.rpartition("/")
    return task_key(validate_sdk_app_id(sdk_app_id), validate_task_id(task_id), validate_kind(kind or PUSH))


def validate_kind(value: Any) -> str:
    """A task kind name this exporter knows (``kinds.KINDS``)."""
    if value not in KIND_NAMES:
        raise InvalidTaskRef(f"kind must be one of {', '.join(KIND_NAMES)}, got {str(value)[:40]!r}")
    return value


KIND_NAMES = (PUSH, "record", "transcode")  # the rows of kinds.KINDS, in that order (a test keeps them equal)


class InvalidTaskRef(ValueError):
    """A task reference (SdkAppId or TaskId) that cannot name a real task."""


def validate_sdk_app_id(value: Any) -> int:
    """SdkAppId: a positive integer (digit strings accepted, as from a CLI or YAML)."""
    given = value
    if isinstance(value, bool):
        raise InvalidTaskRef(f"sdk_app_id must be a positive integer, got {value!r}")
    if isinstance(value, str):
        value = decimal_int(value)
    if not isinstance(value, int) or not 0 < value <= MAX_SDK_APP_ID:
        raise InvalidTaskRef(f"sdk_app_id must be a positive integer, got {str(given)[:40]!r}")
    return value


def validate_task_id(value: Any) -> str:
    """TaskId: 1-64 characters of [A-Za-z0-9_-]."""
    if not isinstance(value, str) or not TASK_ID_RE.fullmatch(value):
        raise InvalidTaskRef(f"task_id must be 1-64 characters of [A-Za-z0-9_-], got {str(value)[:80]!r}")
    return value


class Answer:
    """What every kind's validated Describe answer shares: plain int/str fields that round-trip through the
    state file, a ``status``, and the counters lifecycle keeps from going down."""

    __slots__ = ()
    sdk_app_id: int
    task_id: str
    status: str
    request_id: str

    @property
    def exception_cnt(self) -> int:
        return 0  # a kind without the field (transcodes) has no exceptions to count

    def to_dict(self) -> dict[str, Any]:
        """Every field (all int or str): ``dataclasses.asdict`` deep-copied each value, and the state
        writer and the task API call this for every task they write."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Inverse of ``to_dict`` for the state file; raises ValueError/TypeError on bad data."""
        fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
        unknown = set(data) - set(fields)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}")
        task = cls(**data)
        for name, field_ in fields.items():
            expected = int if field_.type in ("int", int) else str
            value = getattr(task, name)
            if not isinstance(value, expected) or isinstance(value, bool):
                raise TypeError(f"{cls.__name__}.{name} must be {expected.__name__}")
        return task


@dataclass(frozen=True, slots=True)
class PushTask(Answer):
    """One ``DescribeWhiteboardPush`` answer, validated."""

    sdk_app_id: int
    task_id: str
    status: str
    finish_reason: str = ""
    room_id: int = 0
    group_id: str = ""
    push_user_id: str = ""
    push_start_time: int = 0
    push_stop_time: int = 0
    exception_cnt: int = 0  # type: ignore[assignment]
    im_sync_time: int = 0
    backup: str = ""
    request_id: str = ""
    answered_task_id: str = ""



class FieldError(ValueError):
    """A task field whose value no coercion rule accepts; the message names the field."""


def int_field(data: dict[str, Any], name: str) -> int:
    """An integer field (policy in the module docstring); raises ``FieldError``."""
    value = data.get(name)
    if value is None:
        return 0
    if isinstance(value, bool):
        raise FieldError(f"{name} is a boolean, expected an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and decimal_int(value) is not None:
        value = decimal_int(value)
    if not isinstance(value, int):
        raise FieldError(f"{name} is {type(value).__name__}, expected an integer")
    if value < 0:
        raise FieldError(f"{name} is negative ({str(value)[:20]})")
    if value > MAX_INT64:
        raise FieldError(f"{name} is larger than an int64 ({str(value)[:20]}...)")
    return value


def str_field(data: dict[str, Any], name: str) -> str:
    """A string field (policy in the module docstring); raises ``FieldError``."""
    value = data.get(name)
    if value is None:
        return ""
    if isinstance(value, bool):
        raise FieldError(f"{name} is a boolean, expected a string")
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise FieldError(f"{name} is {type(value).__name__}, expected a string")
    return valid_text(value, name)


def valid_text(value: str, name: str) -> str:
    """``value`` if it can be encoded as UTF-8 (JSON's "\\ud800" escapes make lone surrogates that cannot)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FieldError(f"{name} is not valid Unicode text") from None
    return value


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply lists and objects nest in ``value``, counted up to ``limit + 1`` (no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return deepest


@dataclass(frozen=True, slots=True)
class RunningTask:
    """An entry of ``DescribeRunningTasks``: enough to start tracking it."""

    sdk_app_id: int
    task_id: str
    status: str

    @property
    def ended(self) -> bool:
        """Listed but over: the running list covers 3 days, so it names ended tasks too."""
        return self.status.upper() in RUNNING_LIST_ENDED


RUNNING_LIST_ENDED = ("STOPPED", "FINISHED", "CANCELED")  # statuses of DescribeRunningTasks that are not running


def parse_backup(backup: str) -> dict[str, Any] | None:
    """The backup task's result when ``Backup`` is a JSON object with push-task fields.

    Returns None for empty/``null``/``{}`` text; raises ValueError for unparseable text.
    """
    text = backup.strip()
    if not text or text == "null":
        return None
    parsed = json.loads(text)
    if not isinstance(parsed, dict) or not parsed:
        return None
    if "Status" not in parsed and "ExceptionCnt" not in parsed:
        return None
    return parsed


def backup_exception_cnt(backup: dict[str, Any] | None) -> int | None:
    """The backup task's ``ExceptionCnt`` when it is a plausible count (else None: not exported)."""
    count = None if backup is None else backup.get("ExceptionCnt")
    if isinstance(count, int) and not isinstance(count, bool) and 0 <= count <= MAX_INT64:
        return count
    return None
