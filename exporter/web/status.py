"""What the status page shows: each task's "why is it broken" and the filtered, paged selection.

Kept apart from the HTML (``landing.py``) so the triage rules are plain functions: a task is broken
when its queries fail, it ended with EXCEPTION, FAILED or NOT_FOUND, its exceptions rose in the
last 10 minutes while pushing, it has been PREPARED for 5 minutes or more (the stuck-prepared alert's
threshold), or it never got an answer. Broken tasks come first, then the rest.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from exporter.lifecycle import FAILED, NOT_FOUND, TaskRecord, push_duration

PAGE_SIZE = 200
RISING_WINDOW = 600.0  # exceptions that rose this recently count as "rising"
STUCK_PREPARED = 300.0  # PREPARED since tracking began this long ago: stuck (alerts: TiwPushTaskStuckPrepared)
STATUS_ORDER = ("UNKNOWN", "PREPARED", "PUSHING", "STOPPED")


def why_broken(record: TaskRecord, now: float) -> str:
    """The reason an on-call engineer should look at this task, or "" when nothing is wrong."""
    if record.active and record.last_error is not None:
        return f"query error: {record.last_error.code}"
    if record.finish_reason == "EXCEPTION":
        return "ended with EXCEPTION"
    if record.finish_reason == FAILED:
        return f"push failed: {record.last_error.code}" if record.last_error else "push failed"
    if record.finish_reason == NOT_FOUND:
        return "not found"
    rose = record.exceptions_rose_at
    if record.status == "PUSHING" and rose is not None and now - rose <= RISING_WINDOW:
        return "exceptions rising"
    if record.status == "PREPARED" and now - record.added_at >= STUCK_PREPARED:
        return "stuck PREPARED for 5m+"  # the status only moves forward: PREPARED now means PREPARED all along
    if record.status == "UNKNOWN":
        return "no answer yet"
    return ""


@dataclass(frozen=True)
class Row:
    """One task as the page shows it; every text is escaped where it is rendered."""

    sdk_app_id: int
    task_id: str
    room: str
    status: str
    finish_reason: str
    why: str
    exceptions: str
    duration: float | None
    data_age: float | None
    sources: str

    def text(self) -> str:
        """What the filter searches (lower case)."""
        return " ".join((str(self.sdk_app_id), self.task_id, self.room, self.status, self.finish_reason,
                         self.why, self.sources)).lower()


def to_row(record: TaskRecord, now: float) -> Row:
    task = record.latest
    return Row(
        sdk_app_id=record.sdk_app_id, task_id=record.task_id, room=str(task.room_id) if task else "",
        status=record.status, finish_reason=record.finish_reason, why=why_broken(record, now),
        exceptions=str(task.exception_cnt) if task else "", duration=push_duration(record),
        data_age=None if record.last_success is None else max(0.0, now - record.last_success),
        sources=", ".join(sorted(record.sources)),
    )


@dataclass(frozen=True)
class Selection:
    """The rows of one page, and the numbers that say what was left out (no silent cap)."""

    rows: list[Row]
    matching: int  # rows that pass the filter
    total: int  # all tracked (not retired) tasks
    first: int  # 1-based index of rows[0] among the matching rows (0 when none)
    page: int
    pages: int
    by_status: dict[str, int]
    broken: int


def select(records: list[TaskRecord], now: float, query: str = "", broken_only: bool = False,
           page: int = 1) -> Selection:
    """Broken tasks first (by reason, then id), then the rest by status and id; filtered and paged."""
    rows = [to_row(r, now) for r in records if not r.retired]
    by_status = Counter(row.status for row in rows)
    broken = sum(1 for row in rows if row.why)
    needle = query.strip().lower()
    matching = [row for row in rows if (not broken_only or row.why) and (not needle or needle in row.text())]
    matching.sort(key=lambda row: (not row.why, row.why, STATUS_ORDER.index(row.status)
                                   if row.status in STATUS_ORDER else 0, row.sdk_app_id, row.task_id))
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    page = min(max(1, page), pages)
    start = (page - 1) * PAGE_SIZE
    shown = matching[start:start + PAGE_SIZE]
    return Selection(shown, len(matching), len(rows), start + 1 if shown else 0, page, pages,
                     {status: by_status.get(status, 0) for status in STATUS_ORDER}, broken)
