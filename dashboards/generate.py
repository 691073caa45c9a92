#!/usr/bin/env python3
"""Write dashboards/tiw-push.json from code, with grafana-foundation-sdk (Grafana 11.6 builders).

    python dashboards/generate.py           # rewrite the committed dashboard
    python dashboards/generate.py --check   # exit 1 if the committed file is stale

Why code: the job selector, the $job/$instance filter on every query and the panel conventions
(datasource variable, unit, description) live in one place instead of 2,000 lines of JSON. Why
grafana-foundation-sdk: Grafana's own typed builders, released per Grafana version; pinned to the
11.6 build (schemaVersion 41), which Grafana 10.x to 12.x import. The page tells a story from the
top: what is broken now, then the SLO and the fleet, then the exporter's health, then one task; then
the other TIW task kinds, real-time recordings and courseware transcodes (rows of their own, after the
push rows so that the push panels keep their ids and links).
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "dashboards" / "tiw-push.json"
UID = "tiw-push-exporter"
DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
SCOPE = ('job=~"$job"', 'instance=~"$instance"')
TASKS = (*SCOPE, 'sdk_app_id=~"$sdk_app_id"')
DRILL = (*TASKS, 'task_id=~"$task_id"')
BAD = 'reason=~"EXCEPTION|FAILED"'
EXCEPTION = 'reason="EXCEPTION"'
FAILED = 'reason="FAILED"'
NOT_FOUND = 'reason="NOT_FOUND"'
PUSHING = 'status="PUSHING"'
ACTIVE = 'status=~"PREPARED|PUSHING"'
PREPARED = 'status="PREPARED"'
STOPPED = 'status="STOPPED"'
STUCK_WINDOW = "5m"  # alerts/generate.py TiwPushTaskStuckPrepared
KEY = "job, instance, sdk_app_id, task_id"
# The task_id variable's "All": a task id no task has, so the drill-down stays empty until tasks are
# chosen (at 10k+ tasks, drawing every task would not render and says nothing).
NO_TASK = "__no_task_chosen__"
SLO_PERIOD = "30d"  # the error budget's period (TiwPushErrorBudgetBurn: "the 30-day error budget")
# Colours of the ways a push ends badly, wherever a finish reason is shown.
FAILURE_COLOURS = {"EXCEPTION": "red", "FAILED": "dark-red", "NOT_FOUND": "semi-dark-red"}


# alerts/generate.py: the rules' Config (the dashboard follows their job selector and SLO), its burn-rate
# windows and write-or-check.
ALERTS = runpy.run_path(str(REPO / "alerts" / "generate.py"), run_name="alerts_generate")


def sel(metric: str, *matchers: str, scope: tuple[str, ...] = TASKS) -> str:
    """``metric{$job, $instance[, $sdk_app_id], matchers...}``: every query is filtered by $job and $instance."""
    return f"{metric}{{{', '.join((*scope, *matchers))}}}"


def query(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
          table_format: bool = True) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    if not instant:
        return q.range()
    return q.instant().format(PromQueryFormat.TABLE) if table_format else q.instant()


def thresholds(base: str, *steps: tuple[float, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds: ``base`` below the first step, each (value, colour) from its value up."""
    return dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=None, color=base), *(model.Threshold(value=v, color=c) for v, c in steps)])


def value_texts(*values: tuple[int, str, str]) -> list[Any]:
    """Value mappings: (value, text, colour)."""
    return [model.ValueMap(options={str(v): model.ValueMappingResult(text=text, color=colour, index=i)
                                    for i, (v, text, colour) in enumerate(values)})]


NEUTRAL = thresholds("blue")  # a count with no good or bad value: one colour, never a false green
UP_DOWN = value_texts((0, "down", "red"), (1, "up", "green"))
OK_FAILED = value_texts((0, "failed", "red"), (1, "ok", "green"))


def _common(panel: Any, title: str, description: str, unit: str, width: int, height: int,
            *targets: prometheus.Dataquery) -> Any:
    panel = panel.title(title).description(description).unit(unit).datasource(DS).span(width).height(height)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def stat_panel(title: str, description: str, expr: str | list[prometheus.Dataquery], colours: Any,
               unit: str = "short", width: int = 4, mappings: list[Any] | None = None,
               legend: str = "") -> stat.Panel:
    """A stat with its colours: thresholds (and value mappings for states); one query, or several.
    A single-series sum() may be named by the title; anything per label names the label."""
    targets = [query(expr, legend or title)] if isinstance(expr, str) else expr
    panel = _common(stat.Panel(), title, description, unit, width, 4, *targets).thresholds(colours)
    return panel.mappings(mappings) if mappings else panel


def series(title: str, description: str, unit: str, *targets: prometheus.Dataquery, width: int = 12) -> Any:
    return _common(timeseries.Panel(), title, description, unit, width, 8, *targets)


# --------------------------------------------------------------------------- broken now

def _why(expr: str, why: str) -> str:
    return f'label_replace({expr}, "why", "{why}", "", "")'


BROKEN = " or ".join((
    f'label_replace((({sel("tiw_push_task_error")} == 1) and ignoring(code, status) '
    f'({sel("tiw_push_task_status", ACTIVE)} == 1)), "why", "query error: $1", "code", "(.+)")',
    _why(f'{sel("tiw_push_task_finish_reason", EXCEPTION)} == 1', "ended with EXCEPTION"),
    _why(f'{sel("tiw_push_task_finish_reason", FAILED)} == 1', "push failed"),
    _why(f'{sel("tiw_push_task_finish_reason", NOT_FOUND)} == 1', "not found"),
    _why(f'(increase({sel("tiw_push_task_exceptions_total")}[$__rate_interval]) > 0) and ignoring(status) '
         f'({sel("tiw_push_task_status", PUSHING)} == 1)', "exceptions rising"),
    _why(f'max without (status) ({sel("tiw_push_task_status")}) == 0', "no answer yet"),
    # TiwPushTaskStuckPrepared's threshold, a duration (hence a fixed window): PREPARED in every sample
    # of the window, and already PREPARED at its start (a task created a minute ago is not stuck).
    _why(f'(min_over_time({sel("tiw_push_task_status", PREPARED)}[{STUCK_WINDOW}]) == 1) and '
         f'({sel("tiw_push_task_status", PREPARED)} offset {STUCK_WINDOW} == 1)',
         f"stuck PREPARED for {STUCK_WINDOW}+"),
))
# The status now (UNKNOWN before any answer), then the room where TIW told it (tiw_push_task_info);
# each join keeps the rows it cannot match, so no broken task is dropped for a missing series.
_STATUS_NOW = f"({sel('tiw_push_task_status')} == 1)"
BROKEN_WITH_STATUS = (f"(({BROKEN}) * on ({KEY}) group_left (status) {_STATUS_NOW})\n"
                      f'or label_replace(({BROKEN}) unless on ({KEY}) {_STATUS_NOW}, "status", "UNKNOWN", "", "")')
BROKEN_WITH_ROOM = (f"(({BROKEN_WITH_STATUS}) * on ({KEY}) group_left (room_id) {sel('tiw_push_task_info')})\n"
                    f"or (({BROKEN_WITH_STATUS}) unless on ({KEY}) {sel('tiw_push_task_info')})")


def broken_table() -> table.Panel:
    # The drill-down of the clicked task, keeping the time range, the data source, job and instance.
    drill = (f"/d/{UID}/tiw-push?${{__url_time_range}}&${{datasource:queryparam}}&${{job:queryparam}}"
             f"&${{instance:queryparam}}&var-sdk_app_id=${{__data.fields.sdk_app_id}}&var-task_id=${{__value.raw}}")
    panel = _common(table.Panel(), "Broken push tasks now",
                    "Tasks that need a look now, with why: a failing query (active tasks), ended with EXCEPTION, "
                    "a failed push, not found, exceptions rising while pushing, PREPARED for 5 minutes or more, or "
                    "never answered. Click a task "
                    "for its drill-down. Empty means nothing is broken.", "none", 16, 10,
                    query(BROKEN_WITH_ROOM, ref="A", instant=True))
    return panel.override_by_name("task_id", [model.DynamicConfigValue(id_val="links", value=[
        {"title": "Drill down", "url": drill}])]).with_transformation(model.DataTransformerConfig(
            id_val="organize", options={"excludeByName": {"Time": True, "Value": True, "__name__": True},
                                        "indexByName": {"why": 0, "sdk_app_id": 1, "task_id": 2, "status": 3,
                                                        "room_id": 4}}))


def alert_list() -> dashboard.Panel:
    return (dashboard.Panel().type("alertlist").title("Firing TiwPush alerts").span(8).height(10)
            .description("Firing and pending alerts of alerts/tiw-push.rules.yml; critical ones page "
                         "(alerts/runbook.md).")
            .options({"alertName": "TiwPush", "dashboardAlerts": False, "groupMode": "default", "maxItems": 20,
                      "sortOrder": 1, "viewMode": "list", "showInstances": True,
                      "stateFilter": {"firing": True, "pending": True, "noData": False, "normal": False,
                                      "error": True}}))


# --------------------------------------------------------------------------- SLO and fleet

def recorded(metric: str) -> str:
    """A recorded series of alerts/generate.py: summed over replicas (no instance), so filtered by job and
    SdkAppId only."""
    return f'{metric}{{job=~"$job", sdk_app_id=~"$sdk_app_id"}}'


def burn_series(level: str, long: str) -> str:
    """The recorded ratio a burn-rate alert of alerts/generate.py reads over ``long`` at ``level``
    (``sdk_app_id`` or ``job``): TIW-side where the window can tell the causes of FAILED apart (its
    ``_kind``), every bad ending otherwise."""
    return f"{level}:tiw_push_tasks_finished_{ALERTS['_kind'](long)}:ratio_rate{long}"


def burn_panel() -> Any:
    """Each burn-rate alert's long window (the very recorded ratio the alert reads, over the budget) against
    its line: per SdkAppId (TiwPushErrorBudgetBurn, TiwPushErrorBudgetBurnSlow) and over the fleet
    (TiwPushFleetErrorBudgetBurn, from the ``job:`` rules: filtered by $job only)."""
    cfg = ALERTS["Config"]()
    return _burn_rate_panel(
        burn_series, cfg.budget(), "Error budget burn rate, per SdkAppId",
        f"How fast each SdkAppId, and the fleet (all SdkAppIds "
        f"of a job), spends its error budget ({cfg.slo_target * 100:g}% of finished pushes end without "
        f"EXCEPTION or FAILED; 1x spends it in exactly {SLO_PERIOD}), over the long window of each "
        "burn-rate alert, from the recorded ratio that alert reads: TIW-side (customer-side FAILED "
        "taken out, *_tiw_bad:ratio_rate*) over the windows where the cause of FAILED is known, every "
        "bad ending (*_bad:ratio_rate*) over longer ones. The dashed lines are the alerts' factors: "
        "TiwPushErrorBudgetBurn (per SdkAppId) and TiwPushFleetErrorBudgetBurn (fleet) page when the "
        "long and the short window are both above theirs with enough pushes; TiwPushErrorBudgetBurnSlow "
        "tickets. No data: no push finished in the window.")


def _burn_rate_panel(series_of: Any, budget: float, title: str, description: str) -> Any:
    """A burn-rate panel: the long window of each page and ticket burn (``series_of(level, long)``, the recorded
    ratio the alert reads) over ``budget``, per SdkAppId and over the fleet, with the alerts' factors dashed."""
    burns = [("sdk_app_id", long, factor, "pages") for long, _short, factor in ALERTS["PAGE_BURNS"]]
    burns += [("sdk_app_id", long, factor, "tickets") for long, _short, factor in ALERTS["TICKET_BURNS"]]
    burns += [("job", long, factor, "pages") for long, _short, factor in ALERTS["PAGE_BURNS"]]
    targets = []
    for i, (level, long, factor, what) in enumerate(burns):
        record = series_of(level, long)
        if level == "job":
            expr, legend = f'{record}{{job=~"$job"}}', f"fleet {{{{job}}}} {long} ({what} above {factor:g}x)"
        else:
            expr, legend = recorded(record), f"{{{{sdk_app_id}}}} {long} ({what} above {factor:g}x)"
        targets.append(query(f"{expr} / {budget:g}", legend, chr(ord("A") + i)))
    lines = sorted({factor for _level, _long, factor, _what in burns})
    colours = ["yellow", "orange", "red"][-len(lines):] if len(lines) <= 3 else ["red"] * len(lines)
    panel = series(title, description, "none", *targets, width=16)
    return (panel.thresholds(thresholds("transparent", *zip(lines, colours, strict=True)))
            .thresholds_style(common.GraphThresholdsStyleConfig().mode(common_model.GraphThresholdsStyleMode.DASHED)))


def budget_panel() -> stat.Panel:
    cfg = ALERTS["Config"]()
    finished = f"increase({sel('tiw_push_tasks_finished_total')}[{SLO_PERIOD}])"
    bad = f"increase({sel('tiw_push_tasks_finished_total', BAD)}[{SLO_PERIOD}])"
    return stat_panel(
        f"Error budget left ({SLO_PERIOD})", f"Share of the {SLO_PERIOD} error budget each SdkAppId has left: 1 - "
        f"(EXCEPTION + FAILED endings / finished pushes over {SLO_PERIOD}) / {cfg.budget():g} "
        "(tiw_push_tasks_finished_total). Red: spent (below 0); orange: under a quarter left. No data: no push "
        f"finished in {SLO_PERIOD}.",
        [query(f"1 - (\n  sum by (sdk_app_id) ({bad})\n  / sum by (sdk_app_id) ({finished})\n) / {cfg.budget():g}",
               "{{sdk_app_id}}", instant=True, table_format=False)],
        thresholds("red", (0, "orange"), (0.25, "green")), "percentunit", 8)


def slo_panels() -> list[Any]:
    finished = sel("tiw_push_tasks_finished_total")
    bad = sel("tiw_push_tasks_finished_total", BAD)
    return [
        burn_panel(),
        budget_panel(),
        series("Pushes that ended badly, per SdkAppId", "Share of finished pushes that ended with EXCEPTION or "
               "FAILED (tiw_push_tasks_finished_total). The SLO allows 1%; TiwPushErrorBudgetBurn pages at "
               "14.4x that over 1h.", "percentunit",
               # No push finished in an interval: NaN (a gap), not 0%.
               query(f"sum by (sdk_app_id) (increase({bad}[$__rate_interval]))\n  / "
                     f"sum by (sdk_app_id) (increase({finished}[$__rate_interval]))", "{{sdk_app_id}}")),
        series("Pushes started and finished", "Pushes per interval, counted once per task "
               "(tiw_push_tasks_started_total, tiw_push_tasks_finished_total): restarts and failed scrapes "
               "do not count old tasks again.", "short",
               query(f"sum(increase({sel('tiw_push_tasks_started_total')}[$__rate_interval]))", "started"),
               query(f"sum(increase({finished}[$__rate_interval]))", "finished", "B")),
    ]


WARN_ABOVE_ZERO = thresholds("green", (1, "orange"))
FLEET_STATS = (  # title, description, status matcher, colours
    ("Tracked tasks", "All tasks the exporters track (tiw_push_tasks).", "", NEUTRAL),
    ("Pushing", "Tasks whose latest answer is PUSHING.", 'status="PUSHING"', NEUTRAL),
    ("Prepared", "Tasks still starting (PREPARED).", 'status="PREPARED"', NEUTRAL),
    ("Stopped (retained)", "Final tasks, kept for --finished-retention.", 'status="STOPPED"', NEUTRAL),
    ("No answer yet", "Tasks no query has answered yet (UNKNOWN); orange from 1.", 'status="UNKNOWN"',
     WARN_ABOVE_ZERO),
)


def fleet_panels() -> list[Any]:
    stats = [stat_panel(title, description + " No data means no exporter reports it (not zero).",
                        f"sum({sel('tiw_push_tasks', *([m] if m else []))})", colours)
             for title, description, m, colours in FLEET_STATS]
    stats.append(stat_panel("Ended with EXCEPTION (retained)", "Final tasks that ended with EXCEPTION, kept for "
                            "--finished-retention; orange from 1. No data means no exporter reports it (not zero).",
                            "sum(" + sel("tiw_push_task_finish_reason", EXCEPTION) + ")", WARN_ABOVE_ZERO))
    reasons = series("Finish reasons", "Pushes that became final per interval, by finish reason "
                     "(tiw_push_tasks_finished_total; each task counted once). EXCEPTION, FAILED and NOT_FOUND "
                     "are failures, in reds.", "short",
                     query(f"sum by (reason) (increase({sel('tiw_push_tasks_finished_total')}[$__rate_interval]))",
                           "{{reason}}"))
    for reason, colour in FAILURE_COLOURS.items():
        reasons = reasons.override_by_name(reason, [model.DynamicConfigValue(
            id_val="color", value={"mode": "fixed", "fixedColor": colour})])
    return [*stats,
            series("Tasks by status", "Tracked tasks by status (tiw_push_tasks).", "short",
                   query(f"sum by (status) ({sel('tiw_push_tasks')})", "{{status}}")),
            reasons,
            series("Exceptions per SdkAppId", "New exceptions per minute over all tasks of an SdkAppId.", "cpm",
                   query(f"sum by (sdk_app_id) (rate({sel('tiw_push_task_exceptions_total')}[$__rate_interval]))"
                         " * 60", "{{sdk_app_id}}"), width=8),
            series("API errors by code", "Error answers of the TIW API per second by SdkAppId and code "
                   "(tiw_push_api_errors_total), including ClientError.* for network and bad answers.", "reqps",
                   query(f"sum by (sdk_app_id, code) (rate({sel('tiw_push_api_errors_total')}[$__rate_interval]))",
                         "{{sdk_app_id}} {{code}}"), width=8),
            queued_panel()]


def queued_panel() -> Any:
    """Pushes waiting for TIW's capacity: the running list's QUEUED count and TIW's queue warnings."""
    warnings = sel("tiw_push_queue_warnings_total")
    return series("Push tasks queued at TIW", "Push tasks waiting for TIW's capacity, each a class without its "
                  "whiteboard: QUEUED in TIW's running list at the last liveness pass (tiw_push_tasks_queued; "
                  "only SdkAppIds the exporter tracks tasks of), and TIW's queue warnings per interval "
                  "(tiw_push_queue_warnings_total; SdkAppId 0: the warning named none). A counter's first "
                  "warning creates its series, so a series younger than the interval counts whole. "
                  "TiwPushTasksQueued alerts (a ticket: the fix is Tencent's quota or capacity).", "short",
                  query(f"sum by (sdk_app_id) ({sel('tiw_push_tasks_queued')})", "{{sdk_app_id}} queued"),
                  query(f"sum by (sdk_app_id, event_type) (\n  ({warnings} unless {warnings} offset "
                        f"$__rate_interval)\n  or increase({warnings}[$__rate_interval])\n)",
                        "{{sdk_app_id}} {{event_type}}", "B"), width=8)


# --------------------------------------------------------------------------- exporter health

def health_panels() -> list[Any]:
    own = SCOPE
    return [
        stat_panel("Exporter up", "Whether Prometheus scrapes each exporter (up): down in red.",
                   f"up{{{', '.join(own)}}}", thresholds("red", (1, "green")), "none", 4, UP_DOWN,
                   "{{instance}}"),
        stat_panel("Accounts and SdkAppIds paused", "SdkAppIds whose polling is paused after an app-level or "
                   "credential error, by error code (tiw_exporter_account_paused); red from 1. "
                   "TiwPushAccountPaused alerts. No data: nothing is paused.",
                   f"count by (code) ({sel('tiw_exporter_account_paused', scope=own)})",
                   thresholds("green", (1, "red")), "short", 5, legend="{{code}}"),
        stat_panel("Config reloads", "Last reload of --tasks-file and --web-config-file per exporter: ok or "
                   "failed (red).", [
                       query(f"min by (instance) ({sel('tiw_exporter_tasks_file_reload_success', scope=own)})",
                             "{{instance}} tasks file"),
                       query(f"min by (instance) ({sel('tiw_exporter_web_config_last_reload_successful', scope=own)})",
                             "{{instance}} web config", "B")],
                   thresholds("red", (1, "green")), "none", 5, OK_FAILED),
        stat_panel("Coverage", "Share of each exporter's active tasks with a fresh answer, from the running list "
                   "or a detail query (tiw_exporter_coverage_ratio); red below 90%: tasks are blind.",
                   f"min by (instance) ({sel('tiw_exporter_coverage_ratio', scope=own)})",
                   thresholds("red", (0.9, "green")), "percentunit", 5, legend="{{instance}}"),
        stat_panel("Poll lag", "How overdue the most overdue active task of each exporter is; orange from 30 s, "
                   "red from 60 s (TiwPushExporterPollLagHigh's threshold).",
                   f"max by (instance) ({sel('tiw_exporter_poll_lag_seconds', scope=own)})",
                   thresholds("green", (30, "orange"), (60, "red")), "s", 5, legend="{{instance}}"),
        series("API requests by outcome", "TIW API requests per second by outcome.", "reqps",
               query(f"sum by (outcome) (rate({sel('tiw_exporter_api_requests_total', scope=own)}"
                     "[$__rate_interval]))", "{{outcome}}")),
        series("API request duration", "Latency quantiles of TIW API requests.", "s", *(
            query(f"histogram_quantile({q}, sum by (le, action) (rate("
                  f"{sel('tiw_exporter_api_request_duration_seconds_bucket', scope=own)}[$__rate_interval])))",
                  f"p{int(q * 100)} {{{{action}}}}", ref) for q, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C")))),
        series("Callbacks and credentials", "TIW callbacks per second by outcome (bad_sign: a key rotated on one "
               "side) and consecutive failed refreshes of temporary credentials.", "short",
               query(f"sum by (outcome) (rate({sel('tiw_exporter_callbacks_total', scope=own)}"
                     "[$__rate_interval]))", "callbacks {{outcome}}"),
               query(f"max by (account) ({sel('tiw_exporter_credential_refresh_failures', scope=own)})",
                     "refresh failures {{account}}", "B")),
        series("Tracked tasks per exporter", "Tasks each exporter tracks, and its build.", "short",
               query(sel("tiw_exporter_tracked_tasks", scope=own), "{{instance}}"),
               query(sel("tiw_exporter_build_info", scope=own), "{{instance}} {{version}}", "B")),
    ]


# --------------------------------------------------------------------------- one task

def drill_panels() -> list[Any]:
    status = " or ".join("(" + sel("tiw_push_task_status", f'status="{s}"', scope=DRILL) + f" == 1) * {n}"
                         for n, s in ((1, "PREPARED"), (2, "PUSHING"), (3, "STOPPED")))
    reasons = {n: sel("tiw_push_task_finish_reason", f'reason="{reason}"', scope=DRILL)
               for n, reason in enumerate(FAILURE_COLOURS, start=4)}
    ended = " or ".join(f"({selector} == 1) * {n}" for n, selector in reasons.items())
    timeline = _common(statetimeline.Panel(), "Status timeline", "Each selected task's status over time; a task "
                       "that ended badly shows its finish reason (EXCEPTION, FAILED, NOT_FOUND) in reds instead of "
                       "STOPPED. Empty until a task is chosen in the Task variable (or clicked in the broken "
                       "tasks table).", "none", 24, 8,
                       query(f"max by (sdk_app_id, task_id) ({status} or {ended})", "{{task_id}}"))
    timeline = timeline.mappings(value_texts(
        (1, "PREPARED", "yellow"), (2, "PUSHING", "green"), (3, "STOPPED", "blue"),
        *((n, reason, FAILURE_COLOURS[reason]) for n, reason in enumerate(FAILURE_COLOURS, start=4))))
    return [
        timeline,
        series("Push duration", "Stop minus start when stopped; last answer minus start while pushing.", "s",
               query(sel("tiw_push_task_duration_seconds", scope=DRILL), "{{task_id}}"), width=8),
        series("New exceptions", "ExceptionCnt increase per interval.", "short",
               query(f"increase({sel('tiw_push_task_exceptions_total', scope=DRILL)}[$__rate_interval])",
                     "{{task_id}}"), width=8),
        series("Data age (active tasks)", "Seconds since the last successful query of active tasks; final tasks "
               "are never polled again and are left out.", "s",
               query(f"(time() - {sel('tiw_push_task_last_success_timestamp_seconds', scope=DRILL)})\n"
                     f"and ignoring(status) ({sel('tiw_push_task_status', ACTIVE, scope=DRILL)} == 1)",
                     "{{task_id}}"), width=8),
        _common(statetimeline.Panel(), "Query errors", "The error code of each task's latest query, while "
                "it lasts.", "none", 12, 8,
                query(sel("tiw_push_task_error", scope=DRILL), "{{task_id}}: {{code}}")),
        _common(table.Panel(), "Tasks", "Room, group, push user, start and stop of the selected tasks.",
                "none", 12, 8, query(sel("tiw_push_task_info", scope=DRILL), instant=True),
                query(f'label_replace({sel("tiw_push_task_start_timestamp_seconds", scope=DRILL)}, "event", "start", '
                      f'"", "") or label_replace({sel("tiw_push_task_stop_timestamp_seconds", scope=DRILL)}, "event", '
                      '"stop", "", "")', ref="B", instant=True)),
    ]


# --------------------------------------------------------------------------- recordings

# Colours of the ways a recording ends badly (alerts/generate.py RECORD_BAD) and of NOT_FOUND.
RECORD_FAILURE_COLOURS = {"EXCEPTION": "red", "FORCE_STOP": "light-red", "FAILED": "dark-red",
                          "NOT_FOUND": "semi-dark-red"}
RECORD_BAD = 'reason=~"' + ALERTS["RECORD_BAD"] + '"'


def seconds(duration: str) -> int:
    """A Prometheus duration of one unit (``60m``, ``2h``) in seconds."""
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[duration[-1]]


def record_burn_panel() -> Any:
    """The recording burn-rate alerts' long windows (the recorded ratio each reads, over the budget) against
    their lines, per SdkAppId and over the fleet (TiwPushRecording[Fleet]ErrorBudgetBurn[Slow])."""
    cfg = ALERTS["Config"]()
    return _burn_rate_panel(
        lambda level, long: f"{level}:tiw_record_tasks_finished_bad:ratio_rate{long}", cfg.record_budget(),
        "Recording error budget burn rate, per SdkAppId", "How fast each SdkAppId, and the fleet, "
        f"spends its recording error budget ({cfg.record_slo_target * 100:g}% of finished recordings end "
        f"without EXCEPTION, FORCE_STOP or FAILED; 1x spends it in exactly {SLO_PERIOD}), over the long "
        "window of each burn-rate alert, from the recorded ratio that alert reads. The dashed lines are "
        "the alerts' factors: TiwPushRecordingErrorBudgetBurn (per SdkAppId) and "
        "TiwPushRecordingFleetErrorBudgetBurn (fleet) page when the long and the short window are both "
        "above theirs with enough recordings; TiwPushRecordingErrorBudgetBurnSlow tickets. No data: no "
        "recording finished in the window.")


def record_panels() -> list[Any]:
    cfg = ALERTS["Config"]()
    finished_total = sel("tiw_record_tasks_finished_total")
    finished = f"increase({finished_total}[{SLO_PERIOD}])"
    bad = f"increase({sel('tiw_record_tasks_finished_total', RECORD_BAD)}[{SLO_PERIOD}])"
    stopped = f"({sel('tiw_record_task_status', STOPPED)} == 1)"
    stopped_for = cfg.record_stopped_for
    reasons = series("Recordings finished, by reason", "Recordings that became final per interval, by finish reason "
                     "(tiw_record_tasks_finished_total; each recording counted once, when FINISHED or ended by the "
                     "exporter). EXCEPTION, FORCE_STOP and FAILED end the replay badly; NOT_FOUND is a wrong id.",
                     "short", query(f"sum by (reason) (increase({finished_total}[$__rate_interval]))", "{{reason}}"))
    for reason, colour in RECORD_FAILURE_COLOURS.items():
        reasons = reasons.override_by_name(reason, [model.DynamicConfigValue(
            id_val="color", value={"mode": "fixed", "fixedColor": colour})])
    return [
        record_burn_panel(),
        stat_panel(f"Recording error budget left ({SLO_PERIOD})", f"Share of the {SLO_PERIOD} recording error budget "
                   f"each SdkAppId has left: 1 - (EXCEPTION + FORCE_STOP + FAILED endings / finished recordings over "
                   f"{SLO_PERIOD}) / {cfg.record_budget():g} (tiw_record_tasks_finished_total). Red: spent (below 0); "
                   f"orange: under a quarter left. No data: no recording finished in {SLO_PERIOD}.",
                   [query(f"1 - (\n  sum by (sdk_app_id) ({bad})\n  / sum by (sdk_app_id) ({finished})\n) / "
                          f"{cfg.record_budget():g}", "{{sdk_app_id}}", instant=True, table_format=False)],
                   thresholds("red", (0, "orange"), (0.25, "green")), "percentunit", 8),
        series("Recordings by status", "Tracked recordings by status (tiw_record_tasks): STOPPED recordings are "
               "still processed and uploaded, FINISHED ones have their replay; UNKNOWN: no answer yet.", "short",
               query(f"sum by (status) ({sel('tiw_record_tasks')})", "{{status}}"), width=8),
        reasons.span(8),
        series("Recording exceptions per SdkAppId", "New exceptions per minute over all recordings of an SdkAppId "
               "(tiw_record_task_exceptions_total); TiwPushRecordingExceptionsIncreasing alerts per recording.", "cpm",
               query(f"sum by (sdk_app_id) (rate({sel('tiw_record_task_exceptions_total')}[$__rate_interval])) * 60",
                     "{{sdk_app_id}}"), width=8),
        series("Recordings STOPPED, waiting for their video", "Recordings that stopped and whose video TIW still "
               "processes and uploads (STOPPED, not yet FINISHED), and those of them that stopped more than "
               f"{stopped_for} ago (RecordStopTime): TiwPushRecordingStuckStopped's threshold (record_stopped_for). "
               "TIW does not document how long processing takes: this panel shows how long yours do.", "short",
               query(f"count by (sdk_app_id) {stopped}", "{{sdk_app_id}} STOPPED"),
               query(f"count by (sdk_app_id) (\n  (time() - {sel('tiw_record_task_stop_timestamp_seconds')}) > "
                     f"{seconds(stopped_for)}\n  and ignoring(status) {stopped}\n)",
                     f"{{{{sdk_app_id}}}} stopped over {stopped_for} ago", "B"), width=12),
        series("Recorded and paused time", "Per SdkAppId: recorded video (TotalTime, filled once TIW has processed "
               "the video) and paused time (OmittedDurations) of the recordings tracked now.", "s",
               query(f"sum by (sdk_app_id) ({sel('tiw_record_task_recorded_seconds')})", "{{sdk_app_id}} recorded"),
               query(f"sum by (sdk_app_id) ({sel('tiw_record_task_omitted_seconds')})", "{{sdk_app_id}} paused", "B"),
               width=12),
    ]


# --------------------------------------------------------------------------- courseware transcodes

def transcode_panels() -> list[Any]:
    cfg = ALERTS["Config"]()
    finished = sel("tiw_transcode_tasks_finished_total")
    failed = sel("tiw_transcode_tasks_finished_total", FAILED)
    wait = cfg.transcode_queue_wait_seconds

    def quantiles(metric: str, qs: tuple[float, ...]) -> list[prometheus.Dataquery]:
        return [query(f"histogram_quantile({q}, sum by (le, sdk_app_id) (rate({sel(metric)}[$__rate_interval])))",
                      f"p{int(q * 100)} {{{{sdk_app_id}}}}", chr(ord("A") + i)) for i, q in enumerate(qs)]

    queue = series("Transcode queue wait", "How long transcodes waited in TIW's queue before it assigned them "
                   "(AssignTime - CreateTime, tiw_transcode_queue_wait_seconds, observed once per transcode), p50 "
                   f"and p95 per SdkAppId. The dashed line is TiwPushTranscodeQueueWaitHigh's threshold ({wait:g} s, "
                   "on the p95 over 30 minutes).", "s",
                   *quantiles("tiw_transcode_queue_wait_seconds_bucket", (0.5, 0.95)), width=8)
    queue = (queue.thresholds(thresholds("transparent", (wait, "orange")))
             .thresholds_style(common.GraphThresholdsStyleConfig().mode(common_model.GraphThresholdsStyleMode.DASHED)))
    return [
        series("Transcodes by status", "Tracked document transcodes by status (tiw_transcode_tasks): QUEUED waits "
               "for TIW's capacity, PROCESSING converts, FINISHED is final; UNKNOWN: no answer yet.", "short",
               query(f"sum by (status) ({sel('tiw_transcode_tasks')})", "{{status}}"), width=8),
        series("Transcode failure ratio, per SdkAppId", "Share of finished transcodes that FAILED "
               "(tiw_transcode_tasks_finished_total). TiwPushTranscodeFailureRatioHigh opens a ticket above "
               f"{cfg.transcode_failure_ratio:.0%} over 30 minutes with at least {cfg.transcode_min_failed} failures "
               f"among {cfg.transcode_min_volume} transcodes. No data: no transcode finished.", "percentunit",
               query(f"sum by (sdk_app_id) (increase({failed}[$__rate_interval]))\n  / "
                     f"sum by (sdk_app_id) (increase({finished}[$__rate_interval]))", "{{sdk_app_id}}"), width=8),
        queue,
        series("Transcode processing time", "How long TIW took to convert a document once assigned (FinishedTime - "
               "AssignTime, tiw_transcode_processing_seconds, observed once per FINISHED transcode), p95 per "
               "SdkAppId.", "s", *quantiles("tiw_transcode_processing_seconds_bucket", (0.95,)), width=12),
        series("Transcode failures by code", "Failed transcodes per interval by SdkAppId and failure code "
               "(tiw_transcode_failures_total): FailedOperation.File*, InvalidParameter.* and "
               "LimitExceeded.TranscodePagesLimitation are usually the customer's documents, "
               "FailedOperation.Transcode* and *ServerError TIW's.", "short",
               query(f"sum by (sdk_app_id, code) (increase({sel('tiw_transcode_failures_total')}[$__rate_interval]))",
                     "{{sdk_app_id}} {{code}}"), width=12),
    ]


# --------------------------------------------------------------------------- the dashboard

def variables(job: str) -> list[Any]:
    def label_values(name: str, selector: str) -> dashboard.QueryVariable:
        return (dashboard.QueryVariable(name).label(name.replace("_", " ").title().replace("Sdk App Id", "SdkAppId")
                                                    .replace("Task Id", "Task"))
                .datasource(DS).query(f"label_values({selector}, {name})").multi(True).include_all(True)
                .all_value(".+").refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED))
    return [
        dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        label_values("job", f"tiw_exporter_build_info{{{job}}}"),
        label_values("instance", 'tiw_exporter_build_info{job=~"$job"}'),
        # Every SdkAppId the exporters know, of every task kind (a recording-only SdkAppId has no push series).
        label_values("sdk_app_id", sel("tiw_exporter_sdk_app_info", scope=SCOPE)),
        label_values("task_id", sel("tiw_push_task_status", scope=TASKS)).all_value(NO_TASK)
        .current(model.VariableOption(text="All", value="$__all"))
        .description("The tasks of the drill-down row. All (the default) selects none: pick tasks, or click "
                     "one in the broken tasks table."),
    ]


# Pages only: warnings and info are tickets and notes, which would bury the incidents in marks.
CRITICAL_ALERTS = 'ALERTS{alertname=~"TiwPush.+", alertstate="firing", severity="critical", job=~"$job"}'


def build(job: str) -> dict[str, Any]:
    board = (dashboard.Dashboard("TIW whiteboard push").uid(UID).readonly()
             .description("Tencent Cloud Interactive Whiteboard push tasks, as seen by tiw-push-exporter: what is "
                          "broken now, the SLO and the fleet, the exporter's health, one task; then recordings and "
                          "courseware transcodes.")
             .tags(["tiw", "tiw-push-exporter", "tencent-cloud"]).refresh("30s").time("now-6h", "now")
             .timezone("").tooltip(model.DashboardCursorSync.CROSSHAIR)
             .link(dashboard.DashboardLink("Runbook").type(model.DashboardLinkType.LINK).icon("doc")
                   .target_blank(True).url("https://github.com/tiw-push-exporter/tiw-push-exporter/blob/main/"
                                           "alerts/runbook.md"))
             .annotation(dashboard.AnnotationQuery().name("Critical TiwPush alerts").datasource(DS).enable(True)
                         .icon_color("red").expr(CRITICAL_ALERTS)))
    for variable in variables(job):
        board = board.with_variable(variable)
    rows = (("Broken now", [broken_table(), alert_list()]), ("SLO and fleet", slo_panels() + fleet_panels()),
            ("Exporter health", health_panels()), ("Task drill-down", drill_panels()),
            ("Recordings", record_panels()), ("Courseware transcodes", transcode_panels()))
    panel_id = 0
    for title, panels in rows:
        panel_id += 1
        board = board.with_row(dashboard.Row(title).id(panel_id))
        for panel in panels:
            panel_id += 1
            board = board.with_panel(panel.id(panel_id))
    built = json.loads(JSONEncoder(sort_keys=True, indent=2).encode(board.build()))
    for item in built["annotations"]["list"]:  # the builder has no title/text format: name the alert
        if item.get("expr") == CRITICAL_ALERTS:
            item.update(titleFormat="{{alertname}}", textFormat="{{sdk_app_id}} {{instance}} {{code}}",
                        useValueForTime=False)
    return built


def render() -> str:
    return json.dumps(build(ALERTS["Config"]().job_selector), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    return ALERTS["check_or_write_main"](argv, __doc__.splitlines()[0], TARGET, render, "python dashboards/generate.py")


if __name__ == "__main__":
    sys.exit(main())
