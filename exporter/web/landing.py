"""The landing page at ``/``: a status page that answers "what is broken now", with plain HTML.

Broken tasks first with the reason (``status.py`` decides), counts per status, a filter that is a
GET form (works without JavaScript), pages with "showing N-M of K" instead of a silent cap, and a
layout that turns rows into cards below 600 px. Every text from a task or the query is escaped.
"""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qs, urlencode

from exporter import __version__
from exporter.lifecycle import TaskRecord
from exporter.web.status import Row, Selection, select

COLUMNS = ("Why", "SdkAppId", "Task", "Room", "Status", "Finish reason", "Exceptions", "Duration", "Data age",
           "Source")


def landing_page(records: list[TaskRecord], now: float, query_string: str = "",
                 queued: dict[int, int] | None = None) -> bytes:
    """The page for ``records`` as of ``now``, filtered and paged by the request's query string; ``queued``:
    push tasks TIW's running list shows waiting for capacity, per SdkAppId."""
    params = parse_qs(query_string, max_num_fields=10)
    query = params.get("q", [""])[0][:200]
    broken_only = params.get("broken", [""])[0] == "1"
    try:
        page = int(params.get("page", ["1"])[0])
    except ValueError:
        page = 1
    selection = select(records, now, query, broken_only, page)
    body = "".join((_summary(selection), _queued(queued or {}), _filter_form(query, broken_only),
                    _pager(selection, query, broken_only), _table(selection.rows)))
    return PAGE.format(version=escape(__version__), body=body).encode("utf-8")


def _summary(selection: Selection) -> str:
    counts = " &middot; ".join(f"{status} <b>{count}</b>" for status, count in selection.by_status.items())
    return (f'<p class="counts"><span class="broken">Broken <b>{selection.broken}</b></span> of '
            f"{selection.total} tracked &middot; {counts}</p>")


def _queued(queued: dict[int, int]) -> str:
    """One line while TIW keeps pushes waiting for capacity (a class without its whiteboard)."""
    waiting = {app: count for app, count in sorted(queued.items()) if count > 0}
    if not waiting:
        return ""
    apps = ", ".join(f"SdkAppId {app}: <b>{count}</b>" for app, count in waiting.items())
    return (f'<p class="queued broken">Queued at TIW, waiting for capacity: <b>{sum(waiting.values())}</b> push '
            f"task(s) ({apps})</p>")


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


def _table(rows: list[Row]) -> str:
    head = "".join(f"<th>{name}</th>" for name in COLUMNS)
    return f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(map(_row, rows))}</tbody></table>'


def _row(row: Row) -> str:
    cells = (row.why, str(row.sdk_app_id), row.task_id, row.room, row.status, row.finish_reason, row.exceptions,
             _seconds(row.duration), _seconds(row.data_age), row.sources)
    tds = "".join(f'<td data-label="{name}">{escape(value)}</td>' for name, value in zip(COLUMNS, cells))
    return f'<tr class="{"broken" if row.why else "ok"}">{tds}</tr>'


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


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TIW push exporter: status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="30">
<style>
body{{font-family:sans-serif;margin:1em;max-width:100%}}
table{{border-collapse:collapse;width:100%}}
td,th{{padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}}
tr.broken td{{background:#fde8e8}} tr.broken td:first-child{{font-weight:bold;color:#a00}}
.broken b{{color:#a00}} input[type=search]{{max-width:100%}}
@media (max-width:600px){{
 table,thead,tbody,tr,td{{display:block}} thead{{display:none}}
 tr{{border:1px solid #ccc;margin:0 0 .6em 0}}
 td:empty{{display:none}}
 td::before{{content:attr(data-label) ": ";font-weight:bold;color:#555}}
}}
</style></head>
<body><h1>TIW push exporter {version}</h1>
<p><a href="/metrics">Metrics</a> &middot; <a href="/api/v1/tasks">Tasks (JSON)</a> &middot;
<a href="/-/healthy">Healthy</a> &middot; <a href="/-/ready">Ready</a></p>
{body}</body></html>
"""
