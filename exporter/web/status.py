"""What the status page shows: the exporter's health, each task's "why is it broken", and the filtered,
paged selection.

Kept apart from the HTML (``landing.py``) so the triage rules are plain functions. A task is broken when:

* it is active and its queries fail ("query error"), its exceptions rose in the last 10 minutes while
  pushing, it has been PREPARED for 5 minutes or more (the stuck-prepared alert's threshold), or the API
  has never answered for it: "no answer yet" once that is news (added more than 2 poll intervals ago
  and not just listed alive by the running list), "no answer for 20m+" after 20 minutes whatever the
  list says. This judges the *answer*, not the status: a task a callback said is PUSHING is no less
  unanswered (the SRE review's blind tasks);
* it ended with EXCEPTION, FAILED (with TRTC's code when the failure names one) or NOT_FOUND.

Rows come active problems first, then ended problems, then the healthy tasks; within each by urgency,
then id. ``Health`` is the exporter's own state, read from the accounts' published poll states and the
freshness index (``exporter_health``): the page never calls the pollers or the API.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from exporter.lifecycle import FAILED, NOT_FOUND, TaskRecord, push_duration, trtc_code
from exporter.model import TaskKey
from exporter.settings import PollingSettings

if TYPE_CHECKING:
    from exporter.freshness import FreshnessSnapshots
    from exporter.pollstate import PollStates

PAGE_SIZE = 200
RISING_WINDOW = 600.0  # exceptions that rose this recently count as "rising"
STUCK_PREPARED = 300.0  # PREPARED since tracking began this long ago: stuck (alerts: TiwPushTaskStuckPrepared)
NEVER_ANSWERED = 1200.0  # no successful answer this long after tracking began: broken whatever liveness says
NEWS_AFTER_INTERVALS = 2  # a new task has this many poll intervals to get its first answer
LISTED_WITHIN = 15.0  # liveness's default staleness (3 passes of 5 s): "just listed alive"
STATUS_ORDER = ("UNKNOWN", "PREPARED", "PUSHING", "STOPPED")

# Urgency within each group (lower first): what hurts a class now before what we merely cannot see.
RISING, STUCK, SILENT, QUERY_ERROR, NO_ANSWER_YET = range(5)
ENDED_URGENCY = {FAILED: 0, "EXCEPTION": 1, "FORCE_STOP": 1, NOT_FOUND: 2}  # FORCE_STOP: a recording cut off
STUCK_QUEUED = 600.0  # a transcode QUEUED this long after tracking began (alerts: its per-task queue alert)
ACTIVE_PROBLEM, ENDED_PROBLEM, HEALTHY = range(3)  # the row groups, in page order


class Verdict(NamedTuple):
    why: str  # "" when nothing is wrong
    urgency: int  # order within the verdict's group


def triage(record: TaskRecord, now: float, listed_at: float | None = None,
           poll_interval: float = PollingSettings.interval, listed_within: float = LISTED_WITHIN) -> Verdict:
    """Why an on-call engineer should look at this task ("" when nothing is wrong), and how urgently.

    ``listed_at``: the task's last time on TIW's running list (liveness), if any.
    """
    if record.final:
        reason = record.finish_reason
        if reason in ("EXCEPTION", "FORCE_STOP"):
            return Verdict(f"ended with {reason}", ENDED_URGENCY[reason])
        if reason == FAILED:
            return Verdict(_failed(record), ENDED_URGENCY[reason])
        if reason == NOT_FOUND:
            return Verdict("not found", ENDED_URGENCY[reason])
        return Verdict("", _order(record))
    rose = record.exceptions_rose_at
    if record.steady and rose is not None and now - rose <= RISING_WINDOW:
        return Verdict("exceptions rising", RISING)
    if record.status == "PREPARED" and now - record.added_at >= STUCK_PREPARED:
        # the status only moves forward: PREPARED now means PREPARED all along
        return Verdict("stuck PREPARED for 5m+", STUCK)
    if record.status == "QUEUED" and now - record.added_at >= STUCK_QUEUED:
        return Verdict(f"queued for {int(STUCK_QUEUED // 60)}m+", STUCK)
    if record.last_success is None and now - record.added_at >= NEVER_ANSWERED:
        error = f" ({record.last_error.code})" if record.last_error is not None else ""
        return Verdict(f"no answer for {int(NEVER_ANSWERED // 60)}m+{error}", SILENT)
    if record.last_error is not None:
        return Verdict(f"query error: {record.last_error.code}", QUERY_ERROR)
    if record.last_success is None and not _news_pending(record, now, listed_at, poll_interval, listed_within):
        return Verdict("no answer yet", NO_ANSWER_YET)
    return Verdict("", _order(record))


def _order(record: TaskRecord) -> int:
    """A healthy row's place: UNKNOWN first, then its kind's statuses in lifecycle order."""
    statuses = record.spec.statuses
    return statuses.index(record.status) + 1 if record.status in statuses else 0


def _news_pending(record: TaskRecord, now: float, listed_at: float | None, poll_interval: float,
                  listed_within: float) -> bool:
    """No answer yet is no news: the task was added moments ago, or the running list just showed it alive."""
    just_added = now - record.added_at < NEWS_AFTER_INTERVALS * poll_interval
    just_listed = listed_at is not None and now - listed_at <= listed_within
    return just_added or just_listed


def _failed(record: TaskRecord) -> str:
    error = record.last_error
    noun = record.spec.noun
    if error is None:
        return f"{noun} failed"
    code = trtc_code(error.message)
    return f"{noun} failed: TRTC {code}" if code else f"{noun} failed: {error.code}"


def why_broken(record: TaskRecord, now: float, listed_at: float | None = None,
               poll_interval: float = PollingSettings.interval) -> str:
    """The reason an on-call engineer should look at this task, or "" when nothing is wrong."""
    return triage(record, now, listed_at, poll_interval).why


# --------------------------------------------------------------------------- exporter health


class CredentialPause(NamedTuple):
    account: str
    code: str
    sdk_app_ids: tuple[int, ...]  # the SdkAppIds it stops (those the account has tasks of)


@dataclass(frozen=True)
class Health:
    """The exporter's own state as the page shows it, read from published snapshots only.

    ``None`` means "not known here" (a server built without pollers, as in tests): the banner leaves it out.
    """

    paused_credentials: tuple[CredentialPause, ...] = ()
    paused_sdk_app_ids: tuple[tuple[int, str], ...] = ()  # paused on their own (not by their account's credential)
    fresh: int | None = None  # active tasks with a fresh answer (liveness or detail), as tiw_exporter_coverage_ratio
    active: int | None = None  # active tasks the freshness index counts
    lag: float | None = None  # seconds: the most overdue active task (tiw_exporter_poll_lag_seconds)
    listed: Mapping[TaskKey, float] = field(default_factory=lambda: MappingProxyType({}))  # last time on the list
    listed_within: float = LISTED_WITHIN
    poll_interval: float = PollingSettings.interval

    @property
    def coverage(self) -> float | None:
        if self.fresh is None or self.active is None:
            return None
        return self.fresh / self.active if self.active else 1.0


def exporter_health(states: PollStates, freshness: FreshnessSnapshots | None, poll_interval: float,
                    now: float) -> Health:
    """``Health`` from the accounts' published poll states and the freshness index: the same figures as
    ``PausedAccountsCollector``, ``tiw_exporter_poll_lag_seconds`` and ``FreshnessCollector``."""
    credentials: list[CredentialPause] = []
    apps: dict[int, str] = {}
    listed_within = 0.0
    for name, state in sorted(states.current().items()):
        own = dict(state.paused_sdk_app_ids)
        if state.credential_pause is not None:  # every app of a paused credential carries its code
            stopped = tuple(sorted(app for app, code in own.items() if code == state.credential_pause))
            credentials.append(CredentialPause(name, state.credential_pause, stopped))
            own = {app: code for app, code in own.items() if app not in stopped}
        apps.update(own)
        if state.liveness is not None:
            listed_within = max(listed_within, state.liveness.stale_after)
    seen, _ = states.liveness_seen(now)
    fresh = active = None
    if freshness is not None:
        measured = freshness.current()
        fresh, active = measured.fresh, measured.active
    return Health(tuple(credentials), tuple(sorted(apps.items())), fresh, active, states.lag(),
                  MappingProxyType(seen), listed_within or LISTED_WITHIN, poll_interval)


# --------------------------------------------------------------------------- rows and the selection


@dataclass(frozen=True)
class Row:
    """One task as the page shows it; every text is escaped where it is rendered."""

    sdk_app_id: int
    task_id: str
    room: str
    status: str
    kind: str  # the kind's noun (push, recording, transcode)
    finish_reason: str
    why: str
    exceptions: str
    duration: float | None
    data_age: float | None  # None: final (nothing to refresh) or never answered, as ``final`` says
    sources: str
    final: bool = False
    group: int = HEALTHY
    urgency: int = 0

    def text(self) -> str:
        """What the filter searches (lower case)."""
        return " ".join((str(self.sdk_app_id), self.task_id, self.kind, self.room, self.status, self.finish_reason,
                         self.why, self.sources)).lower()

    def sort_key(self) -> tuple[int, int, int, str]:
        return self.group, self.urgency, self.sdk_app_id, self.task_id


def to_row(record: TaskRecord, now: float, health: Health | None = None) -> Row:
    health = health or Health()
    task = record.latest
    verdict = triage(record, now, health.listed.get(record.key), health.poll_interval, health.listed_within)
    group = HEALTHY if not verdict.why else ENDED_PROBLEM if record.final else ACTIVE_PROBLEM
    return Row(
        sdk_app_id=record.sdk_app_id, task_id=record.task_id, room=str(getattr(task, "room_id", "") or ""),
        status=record.status, kind=record.spec.noun, finish_reason=record.finish_reason, why=verdict.why,
        exceptions=str(task.exception_cnt) if task else "", duration=push_duration(record),
        data_age=None if record.final or record.last_success is None else max(0.0, now - record.last_success),
        sources=", ".join(sorted(record.sources)), final=record.final, group=group, urgency=verdict.urgency,
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
    broken_active: int = 0
    broken_ended: int = 0
    active: int = 0  # tracked tasks not final
    last_success: float | None = None  # the newest successful API answer of any task: None, never
    oldest_active: float | None = None  # when the longest-tracked active task was added


def select(records: list[TaskRecord], now: float, query: str = "", broken_only: bool = False,
           page: int = 1, health: Health | None = None) -> Selection:
    """Active problems first, then ended ones, then the rest (each by urgency, then id); filtered and paged."""
    tracked = [r for r in records if not r.retired]
    rows = [to_row(r, now, health) for r in tracked]
    by_status = Counter(row.status for row in rows)
    groups = Counter(row.group for row in rows)
    needle = query.strip().lower()
    matching = [row for row in rows if (not broken_only or row.why) and (not needle or needle in row.text())]
    matching.sort(key=Row.sort_key)
    pages = max(1, -(-len(matching) // PAGE_SIZE))
    page = min(max(1, page), pages)
    start = (page - 1) * PAGE_SIZE
    shown = matching[start:start + PAGE_SIZE]
    answered = [r.last_success for r in records if r.last_success is not None]
    active_added = [r.added_at for r in tracked if r.active]
    return Selection(shown, len(matching), len(rows), start + 1 if shown else 0, page, pages,
                     {**{status: by_status.get(status, 0) for status in STATUS_ORDER},  # other kinds' when present
                      **{status: count for status, count in by_status.items() if status not in STATUS_ORDER}},
                     groups[ACTIVE_PROBLEM] + groups[ENDED_PROBLEM], groups[ACTIVE_PROBLEM], groups[ENDED_PROBLEM],
                     len(active_added), max(answered, default=None), min(active_added, default=None))
