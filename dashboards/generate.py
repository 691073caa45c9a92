#!/usr/bin/env python3
"""Write dashboards/tiw-push.json from code, with grafana-foundation-sdk (Grafana 11.6 builders).

    python dashboards/generate.py           # rewrite the committed dashboard
    python dashboards/generate.py --check   # exit 1 if the committed file is stale

Why code: the job selector, the $job/$instance filter on every query and the panel conventions
(datasource variable, unit, description) live in one place instead of 2,000 lines of JSON. Why
grafana-foundation-sdk: Grafana's own typed builders, released per Grafana version; pinned to the
11.6 build (schemaVersion 41), which Grafana 10.x to 12.x import. The page tells a story from the
top: what is broken now, then the SLO and the fleet, then the exporter's health, then one task.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
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
STUCK_WINDOW = "5m"  # alerts/generate.py TiwPushTaskStuckPrepared
KEY = "job, instance, sdk_app_id, task_id"


# alerts/generate.py: the rules' Config (the dashboard follows their job selector) and write-or-check.
ALERTS = runpy.run_path(str(REPO / "alerts" / "generate.py"), run_name="alerts_generate")


def sel(metric: str, *matchers: str, scope: tuple[str, ...] = TASKS) -> str:
    """``metric{$job, $instance[, $sdk_app_id], matchers...}``: every query is filtered by $job and $instance."""
    return f"{metric}{{{', '.join((*scope, *matchers))}}}"


def query(expr: str, legend: str = "", ref: str = "A", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    return q.instant().format(PromQueryFormat.TABLE) if instant else q.range()


def _common(panel: Any, title: str, description: str, unit: str, width: int, height: int,
            *targets: prometheus.Dataquery) -> Any:
    panel = panel.title(title).description(description).unit(unit).datasource(DS).span(width).height(height)
    for target in targets:
        panel = panel.with_target(target)
    return panel


def stat_panel(title: str, description: str, expr: str, unit: str = "short", width: int = 4) -> stat.Panel:
    return _common(stat.Panel(), title, description, unit, width, 4, query(expr, title))


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
    drill = f"/d/{UID}/tiw-push?var-sdk_app_id=${{__data.fields.sdk_app_id}}&var-task_id=${{__value.raw}}"
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

def slo_panels() -> list[Any]:
    finished = sel("tiw_push_tasks_finished_total")
    bad = sel("tiw_push_tasks_finished_total", BAD)
    return [
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


FLEET_STATS = (
    ("Tracked tasks", "All tasks the exporters track (tiw_push_tasks).", ""),
    ("Pushing", "Tasks whose latest answer is PUSHING.", 'status="PUSHING"'),
    ("Prepared", "Tasks still starting (PREPARED).", 'status="PREPARED"'),
    ("Stopped (retained)", "Final tasks, kept for --finished-retention.", 'status="STOPPED"'),
    ("No answer yet", "Tasks no query has answered yet (UNKNOWN).", 'status="UNKNOWN"'),
)


def fleet_panels() -> list[Any]:
    stats = [stat_panel(title, description + " No data means no exporter reports it (not zero).",
                        f"sum({sel('tiw_push_tasks', *([m] if m else []))})") for title, description, m in FLEET_STATS]
    stats.append(stat_panel("Ended with EXCEPTION (retained)", "Final tasks that ended with EXCEPTION, kept for "
                            "--finished-retention. No data means no exporter reports it (not zero).",
                            "sum(" + sel("tiw_push_task_finish_reason", EXCEPTION) + ")"))
    return [*stats,
            series("Tasks by status", "Tracked tasks by status (tiw_push_tasks).", "short",
                   query(f"sum by (status) ({sel('tiw_push_tasks')})", "{{status}}")),
            series("Finish reasons", "Pushes that became final per interval, by finish reason "
                   "(tiw_push_tasks_finished_total; each task counted once).", "short",
                   query(f"sum by (reason) (increase({sel('tiw_push_tasks_finished_total')}[$__rate_interval]))",
                         "{{reason}}")),
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
        stat_panel("Exporter up", "Whether Prometheus scrapes each exporter (up).",
                   f"up{{{', '.join(own)}}}", "none", 6),
        stat_panel("Accounts and SdkAppIds paused", "SdkAppIds whose polling is paused after an app-level or "
                   "credential error (tiw_exporter_account_paused); TiwPushAccountPaused alerts.",
                   f"count by (code) ({sel('tiw_exporter_account_paused', scope=own)})", "short", 6),
        stat_panel("Config reloads", "Last reload of --tasks-file and --web-config-file: 1 worked, 0 failed.",
                   f"min({sel('tiw_exporter_tasks_file_reload_success', scope=own)}) * "
                   f"min({sel('tiw_exporter_web_config_last_reload_successful', scope=own)})", "none", 6),
        stat_panel("Poll lag", "How overdue the most overdue active task is.",
                   f"max({sel('tiw_exporter_poll_lag_seconds', scope=own)})", "s", 6),
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
    timeline = _common(statetimeline.Panel(), "Status timeline", "Each selected task's status over time "
                       "(EXCEPTION: stopped with FinishReason=EXCEPTION).", "none", 24, 8,
                       query(f"max by (sdk_app_id, task_id) ({status} or "
                             f'({sel("tiw_push_task_finish_reason", EXCEPTION, scope=DRILL)} == 1) * 4)',
                             "{{task_id}}"))
    timeline = timeline.mappings([model.ValueMap(options={
        str(n): model.ValueMappingResult(text=text, color=color, index=n) for n, text, color in (
            (1, "PREPARED", "yellow"), (2, "PUSHING", "green"), (3, "STOPPED", "blue"), (4, "EXCEPTION", "red"))})])
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
        label_values("sdk_app_id", sel("tiw_push_tasks", scope=SCOPE)),
        label_values("task_id", sel("tiw_push_task_status", scope=TASKS)),
    ]


def build(job: str) -> dict[str, Any]:
    board = (dashboard.Dashboard("TIW whiteboard push").uid(UID).readonly()
             .description("Tencent Cloud Interactive Whiteboard push tasks, as seen by tiw-push-exporter: what is "
                          "broken now, the SLO and the fleet, the exporter's health, one task.")
             .tags(["tiw", "tiw-push-exporter", "tencent-cloud"]).refresh("30s").time("now-6h", "now")
             .timezone("").tooltip(model.DashboardCursorSync.CROSSHAIR)
             .link(dashboard.DashboardLink("Runbook").type(model.DashboardLinkType.LINK).icon("doc")
                   .target_blank(True).url("https://github.com/tiw-push-exporter/tiw-push-exporter/blob/main/"
                                           "alerts/runbook.md"))
             .annotation(dashboard.AnnotationQuery().name("TiwPush alerts").datasource(DS).enable(True)
                         .icon_color("red").expr('ALERTS{alertname=~"TiwPush.+", alertstate="firing"}')))
    for variable in variables(job):
        board = board.with_variable(variable)
    rows = (("Broken now", [broken_table(), alert_list()]), ("SLO and fleet", slo_panels() + fleet_panels()),
            ("Exporter health", health_panels()), ("Task drill-down", drill_panels()))
    panel_id = 0
    for title, panels in rows:
        panel_id += 1
        board = board.with_row(dashboard.Row(title).id(panel_id))
        for panel in panels:
            panel_id += 1
            board = board.with_panel(panel.id(panel_id))
    return json.loads(JSONEncoder(sort_keys=True, indent=2).encode(board.build()))


def render() -> str:
    return json.dumps(build(ALERTS["Config"]().job_selector), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    return ALERTS["check_or_write_main"](argv, __doc__.splitlines()[0], TARGET, render, "python dashboards/generate.py")


if __name__ == "__main__":
    sys.exit(main())
