"""Helpers shared by the tests of the alerting rules and of the Grafana dashboard.

They run the real tools (promtool, amtool) and know the metric contract of DESIGN.md §6, so that
both the rules and the dashboard are checked against the names the exporter promises.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.tools import REPO, find_tool

ALERTS_DIR = REPO / "alerts"
RULES_FILE = ALERTS_DIR / "tiw-push.rules.yml"
RULES_TEST_FILE = ALERTS_DIR / "tiw-push.rules.test.yml"
RUNBOOK_FILE = ALERTS_DIR / "runbook.md"
ALERTMANAGER_FILE = ALERTS_DIR / "alertmanager.example.yml"
DASHBOARD_FILE = REPO / "dashboards" / "tiw-push.json"
PROVISIONING_DIR = REPO / "dashboards" / "provisioning"

# DESIGN.md §6: every metric family the exporter exposes (histograms with their series suffixes).
CONTRACT_METRICS = frozenset(
    {
        "tiw_push_task_info",
        "tiw_push_task_status",
        "tiw_push_task_finish_reason",
        "tiw_push_task_duration_seconds",
        "tiw_push_task_start_timestamp_seconds",
        "tiw_push_task_stop_timestamp_seconds",
        "tiw_push_task_exceptions_total",
        "tiw_push_task_error",
        "tiw_push_task_last_success_timestamp_seconds",
        "tiw_push_task_backup_status",
        "tiw_push_task_backup_exceptions_total",
        "tiw_push_tasks",
        "tiw_push_api_errors_total",
        "tiw_exporter_api_requests_total",
        "tiw_exporter_api_request_duration_seconds_bucket",
        "tiw_exporter_api_request_duration_seconds_sum",
        "tiw_exporter_api_request_duration_seconds_count",
        "tiw_exporter_poll_lag_seconds",
        "tiw_exporter_tracked_tasks",
        "tiw_exporter_build_info",
        "tiw_exporter_tasks_file_reload_success",
    }
)
# Families the exporter adds beyond DESIGN.md §6 ("extend freely").
EXTENSION_METRICS = frozenset(
    {
        "tiw_exporter_account_paused",
        "tiw_exporter_sdk_app_info",
        "tiw_exporter_callbacks_total",
        "tiw_exporter_web_config_last_reload_successful",
        "tiw_exporter_credential_refresh_failures",
        "tiw_exporter_credential_expiry_timestamp_seconds",
        "tiw_exporter_credential_paused",
        "tiw_exporter_answer_anomalies_total",
        "tiw_push_task_failure_info",
        "tiw_exporter_secret_reload_success",
        "tiw_exporter_secret_last_reload_timestamp_seconds",
        "tiw_push_tasks_started_total",
        "tiw_push_tasks_finished_total",
        "tiw_exporter_data_age_seconds",
        "tiw_exporter_coverage_ratio",
        "tiw_exporter_liveness_tasks",
        "tiw_exporter_liveness_unsupported",
        "tiw_exporter_state_file_write_failures_total",
        "tiw_push_tasks_queued",
        "tiw_push_queue_warnings_total",
    }
)
# The families of the other TIW task kinds, real-time recordings and document transcodes (README, "Task
# kinds"); tests/test_metrics.py holds CONTRACT | EXTENSION | KIND equal to what the exporter exports.
KIND_METRICS = frozenset(
    {
        "tiw_record_task_info",
        "tiw_record_task_status",
        "tiw_record_task_finish_reason",
        "tiw_record_task_start_timestamp_seconds",
        "tiw_record_task_stop_timestamp_seconds",
        "tiw_record_task_exceptions_total",
        "tiw_record_task_interrupts_total",
        "tiw_record_task_recorded_seconds",
        "tiw_record_task_omitted_seconds",
        "tiw_record_task_videos",
        "tiw_record_task_error",
        "tiw_record_task_last_success_timestamp_seconds",
        "tiw_record_task_failure_info",
        "tiw_record_tasks",
        "tiw_record_tasks_started_total",
        "tiw_record_tasks_finished_total",
        "tiw_transcode_task_info",
        "tiw_transcode_task_status",
        "tiw_transcode_task_finish_reason",
        "tiw_transcode_task_progress_ratio",
        "tiw_transcode_task_pages",
        "tiw_transcode_task_create_timestamp_seconds",
        "tiw_transcode_task_assign_timestamp_seconds",
        "tiw_transcode_task_finish_timestamp_seconds",
        "tiw_transcode_task_error",
        "tiw_transcode_task_last_success_timestamp_seconds",
        "tiw_transcode_task_failure_info",
        "tiw_transcode_tasks",
        "tiw_transcode_tasks_started_total",
        "tiw_transcode_tasks_finished_total",
        "tiw_transcode_failures_total",
        *(f"tiw_transcode_{name}_seconds_{suffix}" for name in ("queue_wait", "processing")
          for suffix in ("bucket", "sum", "count")),
    }
)
# Series Prometheus itself writes.
PROMETHEUS_METRICS = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def run_tool(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run an external tool found by ``find_tool``; never raises on a non-zero exit status."""
    command = [find_tool(name), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def run_tool_ok(name: str, *args: str | Path) -> str:
    """Run a tool, fail the test with its output unless it succeeds; return its output."""
    result = run_tool(name, *args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{name} {' '.join(map(str, args))} failed:\n{output}"
    return output


def recording_rule_names() -> frozenset[str]:
    groups = load_yaml(RULES_FILE)["groups"]
    return frozenset(rule["record"] for group in groups for rule in group["rules"] if "record" in rule)


def known_metrics() -> frozenset[str]:
    """Every series name a query may use: the contract (the task kinds' too), Prometheus' own, our recording
    rules."""
    return CONTRACT_METRICS | EXTENSION_METRICS | KIND_METRICS | PROMETHEUS_METRICS | recording_rule_names()


def invalid_promql(expressions: Iterable[str]) -> list[str]:
    """The expressions Prometheus' own parser rejects (via ``promtool check rules``)."""
    unique = list(dict.fromkeys(expressions))
    if _promtool_accepts(unique):
        return []
    # Something is wrong: find out which ones, so the failure names them.
    return [expr for expr in unique if not _promtool_accepts([expr])]


def _promtool_accepts(expressions: list[str]) -> bool:
    rules = {
        "groups": [
            {
                "name": "query-syntax-check",
                "rules": [
                    {"record": f"query_syntax_check_{index}", "expr": expr} for index, expr in enumerate(expressions)
                ],
            }
        ]
    }
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "queries.rules.yml"
        path.write_text(yaml.safe_dump(rules), encoding="utf-8")
        return run_tool("promtool", "check", "rules", path).returncode == 0


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGES = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"})


def metric_names(expr: str) -> set[str]:
    """Series names selected by a PromQL expression (a lexical scan, good for our queries).

    Strings, label matchers, grouping label lists and ranges are blanked out first; what is left
    that is neither a keyword nor followed by ``(`` (a function or an aggregation) is a name.
    """
    text = expr
    for pattern in (_STRING, _MATCHERS, _LABEL_LISTS, _RANGES):
        text = pattern.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        rest = text[match.end() :].lstrip()
        if match.group() not in _KEYWORDS and not rest.startswith("("):
            names.add(match.group())
    return names


# --- the dashboard, parsed once for tests/test_dashboard.py and tests/test_e2e.py ------------------
DASHBOARD_TEXT = DASHBOARD_FILE.read_text(encoding="utf-8")
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_TEXT)


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Panels in order, rows included, with the panels of collapsed rows."""
    return [item for panel in panels for item in (panel, *all_panels(panel.get("panels", [])))]


PANELS_AND_ROWS = all_panels(DASHBOARD["panels"])
PANELS = [panel for panel in PANELS_AND_ROWS if panel["type"] != "row"]
QUERY_PANELS = [panel for panel in PANELS if panel["type"] != "alertlist"]  # the alert list reads Grafana's alerts
VARIABLES = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


def label_values_selector(query: str) -> str | None:
    """The series selector of a ``label_values(selector, label)`` variable query."""
    found = re.fullmatch(r"\s*label_values\((.+),\s*\w+\s*\)\s*", query, flags=re.DOTALL)
    return found.group(1) if found else None
