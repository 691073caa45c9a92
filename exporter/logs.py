"""Logging setup: one line per event, as text or JSON (``--log-format``)."""

from __future__ import annotations

import json
import logging
import sys
import time

# Fields a log call may attach with ``extra=task_fields(...)``: JSON logs carry them as their own keys,
# so a log pipeline can filter by task or error code without parsing the message.
FIELDS = ("sdk_app_id", "task_id", "code", "account")


def task_fields(sdk_app_id: int | None = None, task_id: str | None = None, code: str | None = None,
                account: str | None = None) -> dict[str, object]:
    """``extra=`` for a log call about a task, an SdkAppId, an error code or an account."""
    given = {"sdk_app_id": sdk_app_id, "task_id": task_id, "code": code, "account": account}
    return {name: value for name, value in given.items() if value is not None}


def counted(count: int, noun: str) -> str:
    """``1 task``, ``2 tasks``: log lines read as sentences."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        document.update({name: getattr(record, name) for name in FIELDS if hasattr(record, name)})
        if record.exc_info:
            document["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else ""
            document["exc"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(document, ensure_ascii=False)


def configure(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("urllib3").setLevel(logging.WARNING)
