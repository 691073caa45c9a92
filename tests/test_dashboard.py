"""The Grafana dashboard and its provisioning examples.

Re-implements the dashboard-linter rules the monitoring mixins keep (datasource variable, `${datasource}` on
every panel, `$__rate_interval`, units and descriptions, grid layout, stable uid, no import
inputs) and checks that every query is valid PromQL with Prometheus' own parser.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.monitoring import (
    DASHBOARD,
    DASHBOARD_TEXT,
    PANELS,
    PANELS_AND_ROWS,
    PROVISIONING_DIR,
    QUERY_PANELS,
    RULES_FILE,
    VARIABLES,
    invalid_promql,
    known_metrics,
    label_values_selector,
    load_yaml,
    metric_names,
    recording_rule_names,
    run_tool_ok,
    variable_query,
)
from tests.tools import REPO

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_COLUMNS = 24

# What Grafana puts in place of its built-in variables when it sends a query; our own variables
# (sdk_app_id, task_id, job) are only used in regex matchers, where ".*" is what "All" means.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
}


def by_title(panels: list[dict[str, Any]]) -> Any:
    """Parametrize a test over panels, with the panel titles as test ids."""
    return pytest.mark.parametrize("panel", panels, ids=[panel["title"] for panel in panels])


def panel_exprs(panel: dict[str, Any]) -> list[str]:
    return [target["expr"] for target in panel.get("targets", [])]


def all_queries() -> list[str]:
    """Every PromQL expression of the dashboard (panels, annotations, variables), as written."""
    queries = [expr for panel in PANELS for expr in panel_exprs(panel)]
    queries += [item["expr"] for item in DASHBOARD["annotations"]["list"] if "expr" in item]
    for variable in VARIABLES.values():
        if variable["type"] == "query":
            selector = label_values_selector(variable_query(variable))
            assert selector, f"variable {variable['name']}: expected label_values(selector, label)"
            queries.append(selector)
    return queries


def substitute_variables(expr: str) -> str:
    """The query as Prometheus receives it, with ``.*`` for our own (regex) variables."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return BUILTIN_VARIABLES.get(name, ".*")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def sent_queries() -> list[str]:
    """Every query as Prometheus receives it from Grafana."""
    return [substitute_variables(query) for query in all_queries()]


def overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    """Whether two grid rectangles share a cell."""
    columns = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
    return columns and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


# --------------------------------------------------------------------------- dashboard-linter rules


def test_datasource_variable_is_named_datasource_and_lists_prometheus() -> None:
    datasources = [variable for variable in VARIABLES.values() if variable["type"] == "datasource"]
    assert [(variable["name"], variable["query"]) for variable in datasources] == [("datasource", "prometheus")]


@by_title(QUERY_PANELS)
def test_panel_queries_the_datasource_variable(panel: dict[str, Any]) -> None:
    assert panel.get("datasource") == DATASOURCE
    assert panel.get("targets"), "a panel without queries"
    for target in panel["targets"]:
        assert target.get("datasource") == DATASOURCE


def test_query_variables_and_annotations_use_the_datasource_variable() -> None:
    queried = [variable for variable in VARIABLES.values() if variable["type"] == "query"]
    queried += [item for item in DASHBOARD["annotations"]["list"] if "expr" in item]
    assert queried
    for item in queried:
        assert item["datasource"] == DATASOURCE, item.get("name")


# A fixed window is allowed only where it is a duration threshold that an alert shares, not a rate, or
# the SLO's period (the error budget left over 30 days, of the SLI counters only: pushes and recordings).
THRESHOLD_WINDOWS = {r"min_over_time\((.*?)\[5m\]\)": r"min_over_time(\1)",
                     r"increase\((tiw_(?:push|record)_tasks_finished_total\{[^{}]*\})\[30d\]\)":
                         r"slo_period_increase(\1)"}


@by_title(PANELS)
def test_every_range_uses_rate_interval(panel: dict[str, Any]) -> None:
    for expr in panel_exprs(panel):
        for fixed, unwindowed in THRESHOLD_WINDOWS.items():
            expr = re.sub(fixed, unwindowed, expr)
        ranges = re.findall(r"\[([^\]]*)\]", expr)
        if re.search(r"\b(?:rate|irate|increase)\(", expr):
            assert ranges, expr
        assert all(window == "$__rate_interval" for window in ranges), expr


@by_title(QUERY_PANELS)
def test_panel_has_description_and_unit(panel: dict[str, Any]) -> None:
    assert panel.get("description", "").strip()
    assert panel["fieldConfig"]["defaults"].get("unit")


@by_title(PANELS_AND_ROWS)
def test_panel_fits_the_24_column_grid(panel: dict[str, Any]) -> None:
    grid = panel["gridPos"]
    assert grid["w"] > 0 and grid["h"] > 0
    assert grid["x"] >= 0 and grid["y"] >= 0
    assert grid["x"] + grid["w"] <= GRID_COLUMNS


def test_panels_do_not_overlap() -> None:
    overlapping = [
        (a["title"], b["title"])
        for a, b in itertools.combinations(PANELS_AND_ROWS, 2)
        if overlap(a["gridPos"], b["gridPos"])
    ]
    assert not overlapping


def test_overlap_detects_shared_cells_only() -> None:
    left = {"x": 0, "y": 0, "w": 12, "h": 8}
    assert overlap(left, {"x": 11, "y": 7, "w": 2, "h": 2})
    assert not overlap(left, {"x": 12, "y": 0, "w": 12, "h": 8})
    assert not overlap(left, {"x": 0, "y": 8, "w": 24, "h": 1})


def test_uid_is_stable() -> None:
    assert DASHBOARD["uid"] == "tiw-push-exporter"


def test_no_import_inputs_so_file_provisioning_works() -> None:
    assert "__inputs" not in DASHBOARD
    assert "${DS_" not in DASHBOARD_TEXT


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in PANELS_AND_ROWS]
    assert len(ids) == len(set(ids))


def test_schema_version_imports_into_grafana_10_to_12() -> None:
    # grafana-foundation-sdk's Grafana 11.6 build writes 41; Grafana 10.x-12.x migrate it on import.
    assert 36 <= DASHBOARD["schemaVersion"] <= 41


# --------------------------------------------------------------------------- generated from code


def test_dashboard_is_the_generators_current_output() -> None:
    result = subprocess.run([sys.executable, str(REPO / "dashboards" / "generate.py"), "--check"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_provisioned_dashboard_is_not_editable() -> None:  # dashboard-linter uneditable-dashboard
    assert DASHBOARD["editable"] is False


@pytest.mark.parametrize("name", ["job", "instance"])
def test_job_and_instance_variables_select_all_with_a_regex(name: str) -> None:  # template-job/-instance
    variable = VARIABLES[name]
    assert variable["type"] == "query" and variable["multi"] and variable["includeAll"]
    assert variable["allValue"] == ".+"


def test_job_variable_follows_the_rules_job_selector() -> None:
    assert variable_query(VARIABLES["job"]) == 'label_values(tiw_exporter_build_info{job="tiw-push-exporter"}, job)'


@by_title(QUERY_PANELS)
def test_every_selector_filters_by_job_and_instance(panel: dict[str, Any]) -> None:  # target-job/-instance
    for expr in panel_exprs(panel):
        selectors = re.findall(r"(?<![\w:])([a-zA-Z_:][\w:]*)\{([^{}]*)\}", expr)
        assert selectors, expr
        for metric, matchers in selectors:
            assert 'job=~"$job"' in matchers, expr
            # The rules' recorded series are summed over replicas: no instance label to filter by.
            assert 'instance=~"$instance"' in matchers or metric in recording_rule_names(), expr


def test_top_row_is_broken_tasks_beside_the_alert_list() -> None:
    first_row = []
    for panel in PANELS_AND_ROWS[1:]:
        if panel["type"] == "row":
            break
        first_row.append(panel)
    assert [(p["type"], p["title"]) for p in first_row] == [("table", "Broken push tasks now"),
                                                            ("alertlist", "Firing TiwPush alerts")]
    assert first_row[0]["gridPos"]["y"] == first_row[1]["gridPos"]["y"]
    assert "task_id" in json.dumps(first_row[0]["fieldConfig"]["overrides"])


# One task per reason to be in "Broken push tasks now" (and two that must not be), minute by minute:
# task -> {series: values}; every series also has job, instance and sdk_app_id.
BROKEN_TABLE_SERIES = {
    "stuck": {'tiw_push_task_status{status="PREPARED"}': "1x15", 'tiw_push_task_status{status="PUSHING"}': "0x15"},
    "just-prepared": {'tiw_push_task_status{status="PREPARED"}': "_x11 1x4"},  # PREPARED 4 minutes: not stuck
    "rising": {'tiw_push_task_status{status="PUSHING"}': "1x15", "tiw_push_task_exceptions_total": "0+1x15"},
    "steady": {'tiw_push_task_status{status="PUSHING"}': "1x15", "tiw_push_task_exceptions_total": "3x15"},
    "ended": {'tiw_push_task_status{status="STOPPED"}': "1x15",
              'tiw_push_task_finish_reason{reason="EXCEPTION"}': "1x15",
              'tiw_push_task_info{room_id="42"}': "1x15"},
    "failing": {'tiw_push_task_status{status="PUSHING"}': "1x15", 'tiw_push_task_error{code="InternalError"}': "1x15"},
    "unanswered": {'tiw_push_task_status{status="PREPARED"}': "0x15", 'tiw_push_task_status{status="PUSHING"}': "0x15"},
}
BROKEN_TABLE_ROWS = [  # (task_id, why, status, room_id)
    ("stuck", "stuck PREPARED for 5m+", "PREPARED", None),
    ("rising", "exceptions rising", "PUSHING", None),
    ("ended", "ended with EXCEPTION", "STOPPED", "42"),
    ("failing", "query error: InternalError", "PUSHING", None),
    ("unanswered", "no answer yet", "UNKNOWN", None),
]


def test_broken_tasks_table_shows_each_reason_with_status_and_room(tmp_path) -> None:
    """The table's query, run by promtool on a minute-by-minute history: each broken task once, with
    why, its status now and its room; healthy tasks and a task PREPARED for only 4 minutes are absent."""
    (panel,) = [p for p in PANELS if p["title"] == "Broken push tasks now"]
    variables = {"job": ".*", "instance": ".*", "sdk_app_id": ".*", "__rate_interval": "5m"}
    expr = re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), m.group(0)), panel["targets"][0]["expr"])
    target = 'job="tiw-push-exporter", instance="10.0.0.1:9876", sdk_app_id="1400000001"'
    series = [{"series": name.replace("{", "{" + target + f', task_id="{task}", ', 1) if "{" in name
               else f'{name}{{{target}, task_id="{task}"}}', "values": values}
              for task, history in BROKEN_TABLE_SERIES.items() for name, values in history.items()]
    rows = []
    for task_id, why, status, room in BROKEN_TABLE_ROWS:
        labels = f'task_id="{task_id}", why="{why}", status="{status}"' + (f', room_id="{room}"' if room else "")
        rows.append({"labels": "{" + labels + "}", "value": 1})
    (tmp_path / "empty.rules.yml").write_text("groups: []\n")
    (tmp_path / "table.test.yml").write_text(json.dumps({
        "rule_files": ["empty.rules.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": [{
            "expr": f"count by (task_id, why, status, room_id) ({expr})", "eval_time": "15m",
            "exp_samples": rows}]}]}))
    run_tool_ok("promtool", "test", "rules", tmp_path / "table.test.yml")


def test_fleet_stats_show_no_data_rather_than_a_fake_zero() -> None:
    stats = [panel for panel in PANELS if panel["type"] == "stat"]
    assert stats and not [panel["title"] for panel in stats if "or vector(0)" in " ".join(panel_exprs(panel))]


# --------------------------------------------------------------------------- content


def test_drill_down_variables_filter_by_sdk_app_id_and_task_id() -> None:
    for name in ("sdk_app_id", "task_id"):
        variable = VARIABLES[name]
        assert variable["type"] == "query"
        assert variable["multi"] and variable["includeAll"]
        assert label_values_selector(variable_query(variable))
    # Picking an SdkAppId narrows the task list.
    assert "$sdk_app_id" in variable_query(VARIABLES["task_id"])


# Task ids of the tests and the simulator's demo: TIW's 20 lowercase characters, and test names.
SAMPLE_TASK_IDS = ("ru15rlq353g9wd09oylh", "demo_task_not_found", "stuck", "a", "")


def test_drill_down_is_empty_until_a_task_is_chosen() -> None:
    """task_id defaults to All, and All selects no task: at 10k+ tasks, drawing all of them says nothing."""
    variable = VARIABLES["task_id"]
    assert variable["current"]["value"] in ("$__all", ["$__all"])
    all_value = variable["allValue"]
    assert all_value and not any(re.fullmatch(all_value, task_id) for task_id in SAMPLE_TASK_IDS[:-1])
    assert re.fullmatch(r"[\w]+", all_value), "a literal id, not a regex that could match a task"


def test_drill_down_link_keeps_time_range_and_variables() -> None:
    (panel,) = [p for p in PANELS if p["title"] == "Broken push tasks now"]
    links = [link["url"] for override in panel["fieldConfig"]["overrides"] for prop in override["properties"]
             if prop["id"] == "links" for link in prop["value"]]
    assert links
    for url in links:
        assert url.startswith(f"/d/{DASHBOARD['uid']}/")
        for part in ("${__url_time_range}", "${datasource:queryparam}", "${job:queryparam}",
                     "${instance:queryparam}", "var-sdk_app_id=", "var-task_id=${__value.raw}"):
            assert part in url, (part, url)


# --------------------------------------------------------------------------- colours and names

STATS = [panel for panel in PANELS if panel["type"] == "stat"]
FAILURE_COLOURS = {"red", "dark-red", "semi-dark-red", "light-red", "super-light-red"}


def colour_at(panel: dict[str, Any], value: float) -> str:
    """The colour a stat shows for a value: its value mapping's, else its threshold step's."""
    defaults = panel["fieldConfig"]["defaults"]
    for mapping in defaults.get("mappings", []):
        if mapping["type"] == "value" and str(int(value)) in mapping["options"] and value == int(value):
            return mapping["options"][str(int(value))]["color"]
    steps = defaults["thresholds"]["steps"]
    return [step["color"] for step in steps if step["value"] is None or value >= step["value"]][-1]


@by_title(STATS)
def test_every_stat_has_thresholds(panel: dict[str, Any]) -> None:
    """Explicit colours: Grafana's default (green, red from 80) colours a down exporter green."""
    config = panel["fieldConfig"]["defaults"].get("thresholds")
    assert config and config["mode"] == "absolute"
    steps = config["steps"]
    assert steps and steps[0]["value"] is None and all(step["color"] for step in steps)
    assert [step["value"] for step in steps[1:]] == sorted(step["value"] for step in steps[1:])


@pytest.mark.parametrize(("title", "value", "colour"), [
    ("Exporter up", 0, "red"), ("Exporter up", 1, "green"),
    ("Config reloads", 0, "red"), ("Config reloads", 1, "green"),
    ("Accounts and SdkAppIds paused", 1, "red"),
    ("Coverage", 0.89, "red"), ("Coverage", 0.9, "green"),
    ("Poll lag", 5, "green"), ("Poll lag", 60, "red"),
    ("No answer yet", 0, "green"), ("No answer yet", 1, "orange"),
    ("Error budget left (30d)", -0.1, "red"), ("Error budget left (30d)", 0.9, "green"),
])
def test_stat_colours_say_good_or_bad(title: str, value: float, colour: str) -> None:
    (panel,) = [p for p in STATS if p["title"] == title]
    assert colour_at(panel, value) == colour


@pytest.mark.parametrize(("title", "texts"), [("Exporter up", {"0": "down", "1": "up"}),
                                              ("Config reloads", {"0": "failed", "1": "ok"})])
def test_state_stats_map_values_to_words(title: str, texts: dict[str, str]) -> None:
    (panel,) = [p for p in STATS if p["title"] == title]
    options = {k: v["text"] for m in panel["fieldConfig"]["defaults"]["mappings"] for k, v in m["options"].items()}
    assert options == texts


# An aggregation without `by`: one series, which a fixed legend may name.
SINGLE_SERIES = re.compile(r"\s*(?:sum|min|max|count|avg)\s*\(")


@by_title([panel for panel in QUERY_PANELS if panel["type"] != "table"])
def test_every_legend_names_its_series(panel: dict[str, Any]) -> None:
    """Never an unnamed series nor several with one name: a legend names the label (instance, code,
    sdk_app_id...) unless its query yields one series."""
    for target in panel["targets"]:
        legend = target.get("legendFormat", "")
        assert legend.strip(), target["expr"]
        if not SINGLE_SERIES.match(target["expr"]):
            assert re.search(r"\{\{\s*\w+\s*\}\}", legend), (legend, target["expr"])
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):  # a label the query keeps
            grouped = re.findall(r"\b(?:by|without)\s*\(([^()]*)\)", target["expr"])
            if grouped and target["expr"].lstrip().startswith(("sum by", "max by", "min by", "count by")):
                assert label in grouped[0], (label, target["expr"])


def test_annotations_mark_critical_alerts_only() -> None:
    annotations = [item for item in DASHBOARD["annotations"]["list"] if "expr" in item]
    assert annotations
    for item in annotations:
        assert item["expr"].startswith("ALERTS{"), item["expr"]
        assert 'severity="critical"' in item["expr"] and 'alertstate="firing"' in item["expr"]
        assert item["titleFormat"] == "{{alertname}}"


def test_failed_and_not_found_are_coloured_as_failures() -> None:
    (reasons,) = [p for p in PANELS if p["title"] == "Finish reasons"]
    colours = {override["matcher"]["options"]: prop["value"]["fixedColor"]
               for override in reasons["fieldConfig"]["overrides"] for prop in override["properties"]
               if prop["id"] == "color"}
    (timeline,) = [p for p in PANELS if p["title"] == "Status timeline"]
    mapped = {result["text"]: result["color"] for mapping in timeline["fieldConfig"]["defaults"]["mappings"]
              for result in mapping["options"].values()}
    for reason in ("EXCEPTION", "FAILED", "NOT_FOUND"):
        assert colours.get(reason) in FAILURE_COLOURS, reason
        assert mapped.get(reason) in FAILURE_COLOURS, reason
        # The timeline's query can show it.
        assert f'reason="{reason}"' in timeline["targets"][0]["expr"]
    assert mapped["PUSHING"] not in FAILURE_COLOURS


def burn_alert_long_windows() -> set[tuple[str, float]]:
    """(recorded ratio, factor) of the long window of every term of every burn-rate alert of the rules
    file: each term is ``(long ratio > factor * budget and short ratio > ... )``, the long ratio first."""
    alerts = [rule for group in load_yaml(RULES_FILE)["groups"] for rule in group["rules"] if "alert" in rule]
    burns = [rule for rule in alerts if re.fullmatch(r"TiwPush(Fleet)?ErrorBudgetBurn(Slow)?", rule["alert"])]
    assert {rule["alert"] for rule in burns} == {
        "TiwPushErrorBudgetBurn", "TiwPushErrorBudgetBurnSlow", "TiwPushFleetErrorBudgetBurn"}
    used = set()
    for rule in burns:
        for term in re.split(r"\n\s*or\s*\n", rule["expr"]):
            (long, factor), *_short = re.findall(r"(\w+:tiw_push_tasks_finished_\w+:ratio_rate\w+) > ([\d.]+) \*", term)
            used.add((long, float(factor)))
    return used


def test_slo_panels_show_each_burn_rate_against_its_line_and_the_budget_left() -> None:
    """Burn rates from exactly the recorded ratios the burn-rate alerts read over their long windows (TIW-side
    where the window allows, per SdkAppId and over the fleet), with threshold lines at the alerts' factors;
    the budget left from the SLI counter."""
    used = burn_alert_long_windows()
    # The per-app page, the ticket and the fleet page; TIW-side (tiw_bad) over 1h, every bad ending beyond.
    assert {record.split(":")[0] for record, _ in used} == {"sdk_app_id", "job"}
    assert any("_tiw_bad:" in record for record, _ in used) and any("_finished_bad:" in record for record, _ in used)
    (burn,) = [p for p in PANELS if p["title"] == "Error budget burn rate, per SdkAppId"]
    shown = {name for expr in panel_exprs(burn) for name in metric_names(expr)}
    assert shown == {record for record, _ in used}
    assert len(panel_exprs(burn)) == len(shown)  # one line per long window, none twice
    lines = {step["value"] for step in burn["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]}
    assert lines == {factor for _, factor in used}
    assert burn["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] in ("line", "dashed")
    for expr in panel_exprs(burn):
        (name,) = metric_names(expr)
        if name.startswith("job:"):  # the fleet: summed over SdkAppIds, filtered by $job only
            assert f'{name}{{job=~"$job"}} /' in expr, expr
        else:
            assert f'{name}{{job=~"$job", sdk_app_id=~"$sdk_app_id"}} /' in expr, expr
    assert shown <= recording_rule_names()
    (budget,) = [p for p in STATS if p["title"].startswith("Error budget left")]
    assert "tiw_push_tasks_finished_total" in " ".join(panel_exprs(budget))
    assert 'reason=~"EXCEPTION|FAILED"' in " ".join(panel_exprs(budget))


def test_recording_panels_follow_the_recording_alerts() -> None:
    """The recording burn panel shows the very recorded ratios the recording burn alerts read over their long
    windows, with their factors as lines; the STOPPED panel uses TiwPushRecordingStuckStopped's threshold; the
    queue-wait panel TiwPushTranscodeQueueWaitHigh's."""
    alerts = [rule for group in load_yaml(RULES_FILE)["groups"] for rule in group["rules"] if "alert" in rule]
    used = set()
    for rule in alerts:
        if re.fullmatch(r"TiwPushRecording(Fleet)?ErrorBudgetBurn(Slow)?", rule["alert"]):
            for term in re.split(r"\n\s*or\s*\n", rule["expr"]):
                (long, factor), *_ = re.findall(r"(\w+:tiw_record_\w+:ratio_rate\w+) > ([\d.]+) \*", term)
                used.add((long, float(factor)))
    assert len(used) == 5  # per SdkAppId 1h, 6h (pages) and 3d (ticket); over the fleet 1h and 6h
    (burn,) = [p for p in PANELS if p["title"] == "Recording error budget burn rate, per SdkAppId"]
    assert {name for expr in panel_exprs(burn) for name in metric_names(expr)} == {record for record, _ in used}
    assert {step["value"] for step in burn["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]} == {
        factor for _, factor in used}
    (stuck,) = [rule for rule in alerts if rule["alert"] == "TiwPushRecordingStuckStopped"]
    minutes = int(stuck["for"].removesuffix("m"))
    (stopped,) = [p for p in PANELS if p["title"] == "Recordings STOPPED, waiting for their video"]
    assert f"> {minutes * 60}\n" in panel_exprs(stopped)[1]
    (wait_alert,) = [rule for rule in alerts if rule["alert"] == "TiwPushTranscodeQueueWaitHigh"]
    (threshold,) = re.findall(r"\) > ([\d.]+)\n", wait_alert["expr"])[:1]
    (queue,) = [p for p in PANELS if p["title"] == "Transcode queue wait"]
    assert [step["value"] for step in queue["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]] == [float(threshold)]


def test_drill_down_row_has_a_status_timeline_per_task() -> None:
    timelines = [panel for panel in PANELS if panel["type"] == "state-timeline"]
    status = [panel for panel in timelines if "tiw_push_task_status" in " ".join(panel_exprs(panel))]
    assert status
    for expr in panel_exprs(status[0]):
        assert 'task_id=~"$task_id"' in expr


@pytest.mark.parametrize(
    "metric",
    [
        "tiw_push_tasks",
        "tiw_push_task_start_timestamp_seconds",
        "tiw_push_task_stop_timestamp_seconds",
        "tiw_push_task_finish_reason",
        "tiw_push_api_errors_total",
        "tiw_exporter_api_requests_total",
        "tiw_exporter_api_request_duration_seconds_bucket",
        "tiw_exporter_poll_lag_seconds",
        "tiw_exporter_tracked_tasks",
        "tiw_exporter_build_info",
        "up",
        "tiw_push_task_status",
        "tiw_push_task_duration_seconds",
        "tiw_push_task_exceptions_total",
        "tiw_push_task_error",
        "tiw_push_tasks_queued",
        "tiw_push_queue_warnings_total",
        # The other task kinds: recordings and courseware transcodes.
        "tiw_record_tasks",
        "tiw_record_tasks_finished_total",
        "tiw_record_task_exceptions_total",
        "tiw_record_task_status",
        "tiw_record_task_stop_timestamp_seconds",
        "tiw_transcode_tasks",
        "tiw_transcode_tasks_finished_total",
        "tiw_transcode_queue_wait_seconds_bucket",
        "tiw_transcode_processing_seconds_bucket",
        "tiw_transcode_failures_total",
    ],
)
def test_dashboard_shows_metric(metric: str) -> None:
    # Recorded series count as their source: sdk_app_id_status:tiw_push_tasks:sum shows tiw_push_tasks.
    shown = {name for expr in sent_queries() for name in metric_names(expr)}
    shown |= {name.split(":")[1] for name in shown if name.count(":") == 2}
    assert metric in shown


def test_dashboard_uses_only_metrics_of_the_contract_and_recording_rules() -> None:
    unknown = {name for expr in sent_queries() for name in metric_names(expr)} - known_metrics()
    assert not unknown


# --------------------------------------------------------------------------- queries parse


def test_every_query_is_valid_promql() -> None:
    queries = sent_queries()
    assert len(queries) > len(PANELS)
    assert invalid_promql(queries) == []


def test_promql_check_rejects_broken_queries() -> None:
    broken = ["sum(rate(tiw_push_tasks[1m])", 'tiw_push_tasks{status="PUSHING"']
    assert invalid_promql(["sum(tiw_push_tasks)", *broken]) == broken


def test_variable_substitution_yields_what_grafana_sends() -> None:
    assert (
        substitute_variables('rate(x{task_id=~"$task_id", a=~"${sdk_app_id}"}[$__rate_interval]) offset $__interval')
        == 'rate(x{task_id=~".*", a=~".*"}[1m]) offset 1m'
    )


# --------------------------------------------------------------------------- provisioning examples


def test_dashboard_provider_loads_json_files_from_a_path() -> None:
    providers = load_yaml(PROVISIONING_DIR / "dashboards.yml")["providers"]
    assert providers and all(provider["type"] == "file" and provider["options"]["path"] for provider in providers)


def test_datasource_example_provides_a_prometheus_datasource() -> None:
    config = load_yaml(PROVISIONING_DIR / "datasources.yml")
    assert config["apiVersion"] == 1
    assert [source["type"] for source in config["datasources"]] == ["prometheus"]
