"""The landing page at ``/``: links and a live table of the tracked tasks, all text escaped."""

from __future__ import annotations

import html

from exporter import __version__
from exporter.lifecycle import TaskRecord

MAX_ROWS = 500


def landing_page(records: list[TaskRecord]) -> bytes:
    rows = "".join(
        f"<tr><td>{r.sdk_app_id}</td><td>{html.escape(r.task_id)}</td><td>{r.status}</td>"
        f"<td>{html.escape(r.last_error.code) if r.last_error else ''}</td>"
        f"<td>{html.escape(', '.join(sorted(r.sources)))}</td></tr>"
        for r in sorted(records, key=lambda r: r.key)[:MAX_ROWS]
    )
    return LANDING_PAGE.format(version=__version__, count=len(records), rows=rows).encode("utf-8")


LANDING_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>TIW push exporter</title>
<meta http-equiv="refresh" content="10">
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:left}}</style></head>
<body><h1>TIW push exporter {version}</h1>
<p><a href="/metrics">Metrics</a> &middot; <a href="/api/v1/tasks">Tasks (JSON)</a> &middot;
<a href="/-/healthy">Healthy</a> &middot; <a href="/-/ready">Ready</a></p>
<h2>Tracked tasks ({count})</h2>
<table><tr><th>SdkAppId</th><th>TaskId</th><th>Status</th><th>Last error</th><th>Source</th></tr>
{rows}</table></body></html>
"""
