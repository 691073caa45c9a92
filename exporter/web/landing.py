"""The landing page at ``/``: a status page that answers "is the exporter seeing" and "what is broken now",
with plain HTML.

On top, the exporter's health in one banner (``status.Health``: paused credentials and SdkAppIds with
their codes, coverage, poll lag, the last successful API answer, pushes queued at TIW): one green line
when all is well, a red or amber line per problem otherwise. Below, active problems first, then ended
ones, with the reason (``status.py`` decides), counts per status, a filter that is a GET form (works
without JavaScript), pages with "showing N-M of K" instead of a silent cap, statuses as coloured chips,
ids and statuses that never wrap, and a layout that turns rows into cards below 600 px. Every text from a
task, an account or the query is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timezone
from html import escape
from urllib.parse import parse_qs, urlencode

from exporter import __version__
from exporter.lifecycle import FAILED, NOT_FOUND, TaskRecord
from exporter.web.status import ACTIVE_PROBLEM, ENDED_PROBLEM, Health, Row, Selection, select

COLUMNS = ("Why", "SdkAppId", "Task", "Room", "Status", "Finish reason", "Exceptions", "Duration", "Data age",
           "Source")
NUMBERS = frozenset({"Exceptions", "Duration", "Data age"})  # right-aligned columns
STATUS_CHIPS = {"PUSHING": "pushing", "PREPARED": "prepared", "STOPPED": "stopped",  # else: unknown
                "RECORDING": "pushing", "PAUSED": "prepared", "FINISHED": "stopped", "QUEUED": "prepared",
                "PROCESSING": "pushing"}
BAD_ENDINGS = frozenset({"EXCEPTION", "FORCE_STOP", FAILED, NOT_FOUND})
COVERAGE_WARN = 0.95  # below: amber (some active tasks have no fresh answer)
COVERAGE_BAD = 0.5  # below: red (the exporter sees less than half of them)
LAG_WARN = 60.0  # seconds, as TiwPushExporterPollLagHigh
BLIND_AFTER = 600.0  # seconds without a successful answer while tasks are active: TiwPushExporterBlind
QUIET_INTERVALS = 4  # poll intervals without any answer, tasks active: amber
PAUSED_SHOWN = 20  # SdkAppIds named per line; the rest are counted


def landing_page(records: list[TaskRecord], now: float, query_string: str = "",
                 queued: dict[int, int] | None = None, health: Health | None = None) -> bytes:
    """The page for ``records`` as of ``now``, filtered and paged by the request's query string; ``queued``:
    push tasks TIW's running list shows waiting for capacity, per SdkAppId; ``health``: the exporter's own
    state (``status.exporter_health``), None when nothing but the records is known."""
    params = parse_qs(query_string, max_num_fields=10)
    query = params.get("q", [""])[0][:200]
    broken_only = params.get("broken", [""])[0] == "1"
    try:
        page = int(params.get("page", ["1"])[0])
    except ValueError:
        page = 1
    health = health or Health()
    selection = select(records, now, query, broken_only, page, health)
    body = "".join((_banner(selection, health, queued or {}, now), _summary(selection),
                    _filter_form(query, broken_only), _pager(selection, query, broken_only), _table(selection.rows)))
    as_of = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return PAGE.format(version=escape(__version__), as_of=as_of, style=STYLE, body=body).encode("utf-8")


# --------------------------------------------------------------------------- the health banner


def _banner(selection: Selection, health: Health, queued: dict[int, int], now: float) -> str:
    """One green line when the exporter sees everything; else a red/amber line per problem, then the rest."""
    problems: list[tuple[str, str]] = []  # (level, html)
    fine: list[str] = []
    for pause in health.paused_credentials:
        apps = f" (SdkAppId {_ids(pause.sdk_app_ids)})" if pause.sdk_app_ids else ""
        problems.append(("bad", f"Account <b>{escape(pause.account)}</b> paused: the API refuses its credential or "
                                f"setup, <code>{escape(pause.code)}</code>. None of its tasks is polled{apps}."))
    if health.paused_sdk_app_ids:
        apps = ", ".join(f"<b>{app}</b> <code>{escape(code)}</code>"
                         for app, code in health.paused_sdk_app_ids[:PAUSED_SHOWN])
        more = len(health.paused_sdk_app_ids) - PAUSED_SHOWN
        problems.append(("warn", f"SdkAppId paused, its tasks not polled: {apps}"
                                 f"{f' and {more} more' if more > 0 else ''}."))
    coverage = health.coverage
    if coverage is not None:
        share = f"{math.floor(coverage * 100)}%"
        if coverage < COVERAGE_WARN:
            problems.append(("bad" if coverage < COVERAGE_BAD else "warn",
                             f"Coverage {share}: only {health.fresh} of {health.active} active tasks have a fresh "
                             "answer (running list or detail within 2 poll intervals)."))
        else:
            fine.append(f"coverage {share} of {health.active} active" if health.active else "no active task")
    if health.lag is not None:
        if health.lag > LAG_WARN:
            problems.append(("warn", f"Poll lag {_seconds(health.lag)}: the most overdue task is that late for its "
                                     "poll (the API budget, --rate-limit, may be exhausted)."))
        else:
            fine.append(f"poll lag {_seconds(health.lag)}")
    level, text = _last_answer(selection, health, now)
    if level:
        problems.append((level, text[0].upper() + text[1:] + "."))
    else:
        fine.append(text)
    line = _queued(queued)
    if line:
        problems.append(("bad queued", line))
    if not problems:
        fine.append("nothing paused or queued")
        return f'<section class="health"><p class="ok">Exporter healthy: {" &middot; ".join(fine)}</p></section>'
    lines = "".join(f'<p class="{level}">{text}</p>' for level, text in problems)
    rest = f'<p class="info">{" &middot; ".join(fine)}</p>' if fine else ""
    return f'<section class="health">{lines}{rest}</section>'


def _last_answer(selection: Selection, health: Health, now: float) -> tuple[str, str]:
    """The newest successful answer of any task, and a level when active tasks wait on it too long."""
    if selection.last_success is None:
        text = "no successful API answer yet"
        waited = now - selection.oldest_active if selection.oldest_active is not None else 0.0
    else:
        waited = max(0.0, now - selection.last_success)
        text = f"last API answer {_seconds(waited)} ago"
    if not selection.active:
        return "", text
    if waited >= BLIND_AFTER:
        return "bad", text + f" with {selection.active} active task(s): their data is old"
    if waited >= QUIET_INTERVALS * health.poll_interval:
        return "warn", text + f" with {selection.active} active task(s)"
    return "", text


def _queued(queued: dict[int, int]) -> str:
    """One line while TIW keeps pushes waiting for capacity (a class without its whiteboard)."""
    waiting = {app: count for app, count in sorted(queued.items()) if count > 0}
    if not waiting:
        return ""
    apps = ", ".join(f"SdkAppId {app}: <b>{count}</b>" for app, count in waiting.items())
    return f"Queued at TIW, waiting for capacity: <b>{sum(waiting.values())}</b> push task(s) ({apps})"


def _ids(ids: Iterable[int]) -> str:
    ids = list(ids)
    more = len(ids) - PAUSED_SHOWN
    return ", ".join(map(str, ids[:PAUSED_SHOWN])) + (f" and {more} more" if more > 0 else "")


# --------------------------------------------------------------------------- counts, filter, pages


def _summary(selection: Selection) -> str:
    counts = " ".join(f'{_chip(status, "s-" + STATUS_CHIPS.get(status, "unknown"))} <b>{count}</b>'
                      for status, count in selection.by_status.items())
    return (f'<p class="counts"><span class="broken">Broken <b>{selection.broken}</b></span> of '
            f"{selection.total} tracked: {selection.broken_active} active, {selection.broken_ended} ended "
            f"&middot; {counts}</p>")


def _filter_form(query: str, broken_only: bool) -> str:
    checked = " checked" if broken_only else ""
    return ('<form method="get" action="/"><label>Filter <input type="search" name="q" value="'
            f'{escape(query, quote=True)}" placeholder="task, room, reason..."></label> '
            f'<label><input type="checkbox" name="broken" value="1"{checked}> broken only</label> '
            '<button type="submit">Apply</button></form>')


def _pager(selection: Selection, query: str, broken_only: bool) -> str:
    last = selection.first + len(selection.rows) - 1 if selection.rows else 0
    text = f'<p class="showing">Showing {selection.first}&ndash;{last} of {selection.matching} matching tasks'
    links = []
    for label, page in (("previous", selection.page - 1), ("next", selection.page + 1)):
        if 1 <= page <= selection.pages:
            href = "/?" + urlencode({"q": query, "broken": "1" if broken_only else "", "page": page})
            links.append(f'<a href="{escape(href, quote=True)}">{label}</a>')
    return text + (f" &middot; page {selection.page} of {selection.pages} " + " ".join(links) if links else "") + "</p>"


# --------------------------------------------------------------------------- the table


def _table(rows: list[Row]) -> str:
    head = "".join(f'<th class="num">{name}</th>' if name in NUMBERS else f"<th>{name}</th>" for name in COLUMNS)
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(map(_row, rows))}</tbody>'
            "</table></div>")


ROW_CLASS = {ACTIVE_PROBLEM: "broken", ENDED_PROBLEM: "broken ended"}


def _row(row: Row) -> str:
    status = _chip(row.status, "s-" + STATUS_CHIPS.get(row.status, "unknown"))
    reason = row.finish_reason
    ending = _chip(reason, "bad" if reason in BAD_ENDINGS else "s-stopped") if reason else ""
    cells = (  # (td class, html) per column
        ("", _chip(row.why, "bad why") if row.why else ""),
        ("nowrap", f'<span class="id">{row.sdk_app_id}</span>'),
        ("nowrap", f'<span class="id">{escape(row.task_id)}</span>'
                   + ("" if row.kind == "push" else " " + _chip(row.kind, "s-unknown"))),
        ("", escape(row.room)),
        ("nowrap", status),
        ("nowrap", ending),
        ("nowrap num", escape(row.exceptions)),
        ("nowrap num", _seconds(row.duration)),
        ("nowrap num", _data_age(row)),
        ("", escape(row.sources)),
    )
    tds = "".join(_td(name, css, html) for name, (css, html) in zip(COLUMNS, cells))
    return f'<tr class="{ROW_CLASS.get(row.group, "ok")}">{tds}</tr>'


def _td(label: str, css: str, html: str) -> str:
    attribute = f' class="{css}"' if css else ""
    return f'<td{attribute} data-label="{label}">{html}</td>'


def _chip(text: str, css: str) -> str:
    return f'<span class="chip {css}">{escape(text)}</span>'


def _data_age(row: Row) -> str:
    """How old the task's last answer is; "—" for a final task (nothing left to refresh)."""
    if row.final:
        return "&mdash;"
    return "never" if row.data_age is None else _seconds(row.data_age)


def _seconds(value: float | None) -> str:
    """A short human duration: 45s, 12m 5s, 3h 20m."""
    if value is None:
        return ""
    total = int(value)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m {total % 60}s"
    return f"{total // 3600}h {total % 3600 // 60}m"


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1em;color:#222;line-height:1.4}
h1{font-size:1.4em;margin:0}
.asof{color:#555;margin:.1em 0 .6em}
code,.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}
.health p{margin:.3em 0;padding:.4em .7em;border-left:5px solid;border-radius:3px}
.health .ok{background:#e6f4ea;border-color:#1e8e3e;color:#0d5323}
.health .warn{background:#fff4dc;border-color:#e8a200;color:#6b4700}
.health .bad{background:#fde7e7;border-color:#c5221f;color:#8a1410}
.health .info{background:#f3f4f6;border-color:#9aa0a6;color:#3c4043}
.counts .chip{margin-left:.4em}
.broken b{color:#a50e0e}
input[type=search]{max-width:100%}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9em}
th{text-align:left;white-space:nowrap;background:#f1f3f4;padding:4px 6px}
td{padding:4px 6px;text-align:left;vertical-align:top;border-bottom:1px solid #e8eaed}
td.nowrap,.id{white-space:nowrap}
td.num,th.num{text-align:right}
tr.broken td{background:#fff3f3}
tr.broken.ended td{background:#fafafa}
.chip{display:inline-block;white-space:nowrap;padding:0 .55em;border-radius:.8em;font-size:.85em;font-weight:600;
 line-height:1.6;border:1px solid transparent}
.chip.why{white-space:normal}
.chip.bad{background:#c5221f;color:#fff}
tr.ended .chip.why{background:#fce8e6;color:#a50e0e;border-color:#f4b4ae}
.s-pushing{background:#ceead6;color:#0d5323}
.s-prepared{background:#feefc3;color:#6b4700}
.s-stopped{background:#e8eaed;color:#3c4043}
.s-unknown{background:#fff;color:#5f6368;border-color:#9aa0a6;border-style:dashed}
@media (max-width:600px){
 table,thead,tbody,tr,td{display:block} thead{display:none}
 tr{border:1px solid #ccc;border-radius:4px;margin:0 0 .6em 0}
 td{border:0;overflow-x:auto}
 td.num{text-align:left}
 td:empty{display:none}
 td::before{content:attr(data-label) ": ";font-weight:bold;color:#555}
}
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TIW push exporter: status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="30">
<style>{style}</style></head>
<body><h1>TIW push exporter {version}</h1>
<p class="asof">as of {as_of} &middot; refreshes every 30 s</p>
<p><a href="/metrics">Metrics</a> &middot; <a href="/api/v1/tasks">Tasks (JSON)</a> &middot;
<a href="/-/healthy">Healthy</a> &middot; <a href="/-/ready">Ready</a></p>
{body}</body></html>
"""
