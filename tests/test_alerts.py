"""The alerting rules, their unit tests, the runbook and the Alertmanager example.

Checked with the real tools (promtool, amtool) and against the project's alerting conventions: every
alert is `TiwPush...`, has a severity, summary, description and a runbook section, and is shown
both firing and silent by a promtool unit test.
"""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from collections import defaultdict
from typing import Any

import pytest

from tests.monitoring import (
    ALERTMANAGER_FILE,
    RULES_FILE,
    RULES_TEST_FILE,
    RUNBOOK_FILE,
    known_metrics,
    load_yaml,
    metric_names,
    recording_rule_names,
    run_tool,
    run_tool_ok,
)

GENERATOR = RULES_FILE.parent / "generate.py"
RUNBOOK_URL = "https://github.com/tiw-push-exporter/tiw-push-exporter/blob/main/alerts/runbook.md"
SEVERITY_RECEIVERS = {"critical": "pager", "warning": "ticket", "info": "low-priority"}
HEALTHY_FLEET_GROUP = "a healthy fleet never alerts"
GENERATOR_CONFIG = runpy.run_path(str(RULES_FILE.parent / "generate.py"), run_name="alerts_generate")["Config"]()
SITE_LABELS = list(GENERATOR_CONFIG.site_labels)  # cluster, namespace


def _rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES_FILE)["groups"] for rule in group["rules"]]


ALERTS = [rule for rule in _rules() if "alert" in rule]
ALERT_NAMES = [rule["alert"] for rule in ALERTS]
# Alerts about one task, of any kind: those that link the dashboard's view of one task. For pushes that is
# TiwPushTask<Something> (TiwPushTasksQueued is about an SdkAppId's queue at TIW, not one task).
PER_TASK_ALERTS = [rule for rule in ALERTS if "&var-task_id=" in rule["annotations"]["dashboard_url"]]


def test_per_task_alerts_are_the_push_task_alerts_and_those_of_the_other_kinds() -> None:
    push = {name for name in ALERT_NAMES if re.match(r"TiwPushTask[A-Z]", name)}
    kinds = {rule["alert"] for rule in PER_TASK_ALERTS} - push
    assert push <= {rule["alert"] for rule in PER_TASK_ALERTS}
    assert kinds == {"TiwPushRecordingFailed", "TiwPushRecordingExceptionsIncreasing", "TiwPushRecordingStuckPrepared",
                     "TiwPushRecordingStuckStopped", "TiwPushTranscodeStuckQueued"}


def by_name(rules: list[dict[str, Any]]) -> Any:
    """Parametrize a test over alerting rules, with the alert names as test ids."""
    return pytest.mark.parametrize("alert", rules, ids=[rule["alert"] for rule in rules])


def unit_test_cases() -> list[tuple[str, dict[str, Any]]]:
    """Every ``alert_rule_test`` entry of the promtool unit tests, with its group's name."""
    return [
        (group.get("name", ""), case)
        for group in load_yaml(RULES_TEST_FILE)["tests"]
        for case in group.get("alert_rule_test", [])
    ]


def fired_labels(alertname: str) -> list[dict[str, str]]:
    """The expected labels of every firing instance of ``alertname`` in the unit tests."""
    return [
        expected["exp_labels"]
        for _, case in unit_test_cases()
        if case["alertname"] == alertname
        for expected in case.get("exp_alerts") or []
    ]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_headings(level: str = "##") -> list[str]:
    text = RUNBOOK_FILE.read_text(encoding="utf-8")
    return re.findall(rf"^{level} (.+?)\s*$", text, flags=re.MULTILINE)


def parse_matcher(matcher: str) -> tuple[str, str, str]:
    """``name="value"`` / ``name=~"regex"`` (Alertmanager matcher syntax) -> (name, op, value)."""
    found = re.fullmatch(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*', matcher)
    assert found, f"cannot parse matcher {matcher!r}"
    return found.group(1), found.group(2), found.group(3)


def alerts_selected(matchers: list[str]) -> list[str]:
    """Our alert names an Alertmanager matcher list on ``alertname`` selects."""
    selected = list(ALERT_NAMES)
    for name, op, value in map(parse_matcher, matchers):
        assert name == "alertname", f"inhibition should select alerts by name, not {name}"
        assert op in ("=", "=~"), f"unexpected operator {op} in {matchers}"
        pattern = re.escape(value) if op == "=" else value
        selected = [alert for alert in selected if re.fullmatch(pattern, alert)]
    return selected


# --------------------------------------------------------------------------- rules and unit tests


def test_rules_file_passes_promtool_check() -> None:
    output = run_tool_ok("promtool", "check", "rules", RULES_FILE)
    assert f"SUCCESS: {len(_rules())} rules found" in output


@pytest.mark.slow  # promtool over every rule: seconds
def test_promtool_unit_tests_pass() -> None:
    output = run_tool_ok("promtool", "test", "rules", RULES_TEST_FILE)
    assert "SUCCESS" in output


def test_alert_names_are_unique() -> None:
    assert len(ALERT_NAMES) == len(set(ALERT_NAMES))


@by_name(ALERTS)
def test_alert_is_named_tiwpush_in_camel_case(alert: dict[str, Any]) -> None:
    assert re.fullmatch(r"TiwPush(?:[A-Z][a-z]+)+", alert["alert"])


@by_name(ALERTS)
def test_alert_has_severity_summary_description_and_runbook_url(alert: dict[str, Any]) -> None:
    assert alert.get("labels", {}).get("severity") in SEVERITY_RECEIVERS
    annotations = alert.get("annotations", {})
    assert annotations.get("summary", "").strip()
    assert annotations.get("description", "").strip()
    assert annotations.get("runbook_url") == f"{RUNBOOK_URL}#{alert['alert'].lower()}"


@by_name(ALERTS)
def test_runbook_has_the_section_the_alert_links_to(alert: dict[str, Any]) -> None:
    anchors = {github_anchor(heading) for heading in runbook_headings()}
    assert alert["annotations"]["runbook_url"].rpartition("#")[2] in anchors


@by_name(ALERTS)
def test_runbook_section_starts_with_the_query_to_run_first(alert: dict[str, Any]) -> None:
    text = RUNBOOK_FILE.read_text(encoding="utf-8")
    section = text.split(f"\n## {alert['alert']}\n", 1)[1].split("\n## ", 1)[0]
    assert re.match(r"\s*\*\*Run first\.\*\* .*`", section), section[:200]


def test_runbook_has_no_section_for_an_alert_that_does_not_exist() -> None:
    sections = {heading for heading in runbook_headings() if heading.startswith("TiwPush")}
    assert sections == set(ALERT_NAMES)


def test_github_anchor_matches_githubs_slugs() -> None:
    assert github_anchor("TiwPushTaskEndedWithException") == "tiwpushtaskendedwithexception"
    assert github_anchor("How these alerts are built") == "how-these-alerts-are-built"


@by_name(PER_TASK_ALERTS)
def test_per_task_alert_names_the_task(alert: dict[str, Any]) -> None:
    description = alert["annotations"]["description"]
    assert "$labels.task_id" in description
    assert "$labels.sdk_app_id" in description
    firing = fired_labels(alert["alert"])
    assert firing, "no unit test shows it firing"
    for labels in firing:
        assert {"sdk_app_id", "task_id"} <= labels.keys()


@by_name(ALERTS)
def test_alert_has_a_firing_and_a_silent_unit_test(alert: dict[str, Any]) -> None:
    outcomes = {bool(case.get("exp_alerts")) for _, case in unit_test_cases() if case["alertname"] == alert["alert"]}
    assert outcomes == {True, False}, "needs one test where it fires and one where it stays silent"


# An alert on `absent()` has no series to miss a scrape of.
NO_GAP_TEST = {"TiwPushExporterAbsent"}


def fired_through_a_gap() -> set[str]:
    """Alerts some unit test shows firing from input series with a missing sample (`_`)."""
    names = set()
    for group in load_yaml(RULES_TEST_FILE)["tests"]:
        values = [str(series.get("values", "")) for series in group.get("input_series", [])]
        if any(re.search(r"(^|\s)_(x\d+)?(\s|$)", value) for value in values):
            names |= {case["alertname"] for case in group.get("alert_rule_test", []) if case.get("exp_alerts")}
    return names


@by_name([rule for rule in ALERTS if "for" in rule and rule["alert"] not in NO_GAP_TEST])
def test_alert_with_for_fires_through_a_scrape_gap(alert: dict[str, Any]) -> None:
    # A missed scrape must neither hide the condition nor restart its `for` (issue 20).
    assert alert["alert"] in fired_through_a_gap(), "needs a unit test firing through a `_` in its input"


def test_unit_tests_only_name_existing_alerts() -> None:
    # A test expecting silence from a misspelt alert name would pass without testing anything.
    tested = {case["alertname"] for _, case in unit_test_cases()}
    assert tested <= set(ALERT_NAMES)


def test_healthy_fleet_test_covers_every_alert() -> None:
    silent: dict[str, set[bool]] = defaultdict(set)
    for group, case in unit_test_cases():
        if group == HEALTHY_FLEET_GROUP:
            silent[case["alertname"]].add(not case.get("exp_alerts"))
    assert {name: {True} for name in ALERT_NAMES} == dict(silent)


def test_recording_rules_are_named_level_metric_operations() -> None:
    records = [rule["record"] for rule in _rules() if "record" in rule]
    assert records
    for record in records:
        assert re.fullmatch(r"[a-z0-9_]+:[a-z0-9_]+:[a-z0-9_]+", record), record


def test_rules_use_only_metrics_of_the_contract() -> None:
    unknown = {name for rule in _rules() for name in metric_names(rule["expr"])} - known_metrics()
    assert not unknown


JOB_SELECTOR = 'job="tiw-push-exporter"'
# The paging policy: only fleet symptoms and "we are blind" wake someone up (alerts/runbook.md).
# Recordings page as pushes do: on the SLO burn of the fleet, or of one SdkAppId with volume.
PAGING = {
    "TiwPushFleetErrorBudgetBurn", "TiwPushErrorBudgetBurn", "TiwPushManyTasksFailing",
    "TiwPushExporterDown", "TiwPushExporterAbsent", "TiwPushExporterBlind", "TiwPushCredentialPaused",
    "TiwPushRecordingFleetErrorBudgetBurn", "TiwPushRecordingErrorBudgetBurn",
}
_SELECTOR = re.compile(r"\b([a-z_]+)\{([^{}]*)\}")


def test_rules_file_is_the_generators_current_output() -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow  # promtool over every rule: seconds
def test_every_selector_carries_the_exact_job_selector() -> None:
    # One config value (alerts/generate.py Config.job_selector); no regex that matches other jobs.
    exprs = [rule["expr"] for rule in _rules()]
    selectors = [match for expr in exprs for match in _SELECTOR.finditer(expr)]
    assert selectors
    for match in selectors:
        assert match.group(2).startswith(JOB_SELECTOR), match.group(0)
    raw = [name for expr in exprs for name in metric_names(expr)
           if name in known_metrics() - recording_rule_names() and not re.search(rf"\b{name}\{{", expr)]
    assert not raw, f"series selected without the job selector: {raw}"


def test_another_job_selector_changes_every_rule(tmp_path) -> None:
    out = tmp_path / "rules.yml"
    subprocess.run([sys.executable, str(GENERATOR), "--job-selector", 'job="push"', "--slo-target", "0.995",
                    "--output", str(out)], check=True, timeout=60)
    text = out.read_text(encoding="utf-8")
    assert 'job="tiw-push-exporter"' not in text and 'job="push"' in text
    assert "> 14.4 * 0.005" in text and "99.5%" in text
    run_tool_ok("promtool", "check", "rules", out)


def test_recording_slo_and_kind_thresholds_follow_their_flags(tmp_path) -> None:
    out = tmp_path / "rules.yml"
    subprocess.run([sys.executable, str(GENERATOR), "--record-slo-target", "0.995", "--record-stopped-for", "2h",
                    "--transcode-queue-wait-seconds", "300", "--output", str(out)], check=True, timeout=60)
    alerts = {rule["alert"]: rule for group in load_yaml(out)["groups"] for rule in group["rules"] if "alert" in rule}
    recording, push = alerts["TiwPushRecordingErrorBudgetBurn"]["expr"], alerts["TiwPushErrorBudgetBurn"]["expr"]
    assert "tiw_record_tasks_finished_bad:ratio_rate1h > 14.4 * 0.005" in recording
    assert "tiw_push_tasks_finished_tiw_bad:ratio_rate1h > 14.4 * 0.01" in push
    assert alerts["TiwPushRecordingStuckStopped"]["for"] == "2h"
    assert "\n  ) > 300\n" in alerts["TiwPushTranscodeQueueWaitHigh"]["expr"]
    run_tool_ok("promtool", "check", "rules", out)


def test_stuck_stopped_says_tiw_does_not_document_the_processing_time() -> None:
    (rule,) = [rule for rule in ALERTS if rule["alert"] == "TiwPushRecordingStuckStopped"]
    assert rule["for"] == GENERATOR_CONFIG.record_stopped_for
    assert "TIW does not document" in rule["annotations"]["description"]


def test_another_runbook_and_grafana_url_reach_every_alert(tmp_path) -> None:
    out = tmp_path / "rules.yml"
    runbook, grafana = "https://wiki.example.com/tiw-push/runbook", "https://grafana.example.com"
    subprocess.run([sys.executable, str(GENERATOR), "--runbook-url", runbook, "--grafana-url", grafana,
                    "--output", str(out)], check=True, timeout=60)
    alerts = [rule for group in load_yaml(out)["groups"] for rule in group["rules"] if "alert" in rule]
    assert [rule["alert"] for rule in alerts] == ALERT_NAMES
    for rule in alerts:
        assert rule["annotations"]["runbook_url"] == f"{runbook}#{rule['alert'].lower()}"
        assert rule["annotations"]["dashboard_url"].startswith(f"{grafana}/d/tiw-push-exporter/")
    text = out.read_text(encoding="utf-8")
    assert RUNBOOK_URL not in text and "http://localhost:3000" not in text


@by_name(ALERTS)
def test_only_fleet_symptoms_and_blindness_page(alert: dict[str, Any]) -> None:
    assert (alert["labels"]["severity"] == "critical") == (alert["alert"] in PAGING)


# How a task ended is information (dashboard, status page), not a ticket stream.
INFO = {"TiwPushTaskEndedWithException", "TiwPushTaskFailed", "TiwPushTaskNotFound", "TiwPushExporterThrottled",
        "TiwPushRecordingFailed"}


@by_name(ALERTS)
def test_ended_tasks_and_throttling_are_information(alert: dict[str, Any]) -> None:
    assert (alert["labels"]["severity"] == "info") == (alert["alert"] in INFO)


def paging_policy_table() -> dict[str, tuple[str, str, str]]:
    """The runbook's paging-policy table: alert -> (severity, `for`, `keep_firing_for`)."""
    text = RUNBOOK_FILE.read_text(encoding="utf-8")
    section = text.split("**Paging policy", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| TiwPush"):
            rows[cells[0]] = (cells[1], cells[-2], cells[-1])
        elif rows and not line.startswith("|"):
            break
    return rows


def test_runbook_paging_policy_table_matches_the_rules() -> None:
    def shown(value: str | None) -> str:
        return value or "none"
    rules = {alert["alert"]: (alert["labels"]["severity"], shown(alert.get("for")), shown(alert.get("keep_firing_for")))
             for alert in ALERTS}
    assert paging_policy_table() == rules


@by_name(ALERTS)
def test_gauges_under_for_are_read_through_over_time(alert: dict[str, Any]) -> None:
    # A gauge read as an instant vector under `for:` is reset (or hidden) by one failed scrape.
    gauges = {"tiw_push_task_status", "tiw_push_tasks", "tiw_exporter_credential_refresh_failures",
              "tiw_exporter_coverage_ratio", "tiw_exporter_secret_reload_success", "tiw_exporter_poll_lag_seconds",
              "tiw_exporter_credential_paused", "tiw_exporter_account_paused", "tiw_push_tasks_queued",
              "tiw_exporter_liveness_tasks", "tiw_push_task_last_success_timestamp_seconds",
              "tiw_push_task_failure_info", "tiw_exporter_tasks_file_reload_success",
              "tiw_exporter_web_config_last_reload_successful", "tiw_exporter_credential_expiry_timestamp_seconds",
              "tiw_record_task_status", "tiw_record_task_finish_reason", "tiw_record_tasks",
              "tiw_transcode_task_status", "tiw_transcode_task_finish_reason", "tiw_transcode_tasks"}
    if not alert.get("for"):
        return
    for match in re.finditer(r"\b([a-z_]+)\{", alert["expr"]):
        if match.group(1) in gauges:
            before = alert["expr"][:match.start()]
            assert re.search(r"(min|max|last)_over_time\($", before), f"{match.group(1)} read without *_over_time"


@by_name(ALERTS)
def test_alert_links_the_dashboard(alert: dict[str, Any]) -> None:
    assert alert["annotations"]["dashboard_url"].startswith("http://localhost:3000/d/tiw-push-exporter/")


def test_every_recording_rule_has_a_unit_test() -> None:
    tested = " ".join(case["expr"] for group in load_yaml(RULES_TEST_FILE)["tests"]
                      for case in group.get("promql_expr_test", []))
    assert {name for name in recording_rule_names() if name not in tested} == set()


# --------------------------------------------------------------------------- Alertmanager example


def alertmanager_config() -> dict[str, Any]:
    return load_yaml(ALERTMANAGER_FILE)


def test_alertmanager_example_passes_amtool_check() -> None:
    output = run_tool_ok("amtool", "check-config", ALERTMANAGER_FILE)
    assert "SUCCESS" in output


def route(labels: dict[str, str], receiver: str) -> tuple[int, str]:
    """``amtool config routes test`` for ``labels`` expecting ``receiver``: (status, output)."""
    result = run_tool(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_FILE}",
        f"--verify.receivers={receiver}",
        *(f"{name}={value}" for name, value in labels.items()),
    )
    return result.returncode, result.stdout + result.stderr


def example_labels(alert: dict[str, Any]) -> dict[str, str]:
    """Labels as the alert would carry them: from its firing unit test, plus alertname."""
    return {"alertname": alert["alert"], **fired_labels(alert["alert"])[0]}


@by_name(ALERTS)
def test_alert_is_routed_by_its_severity(alert: dict[str, Any]) -> None:
    expected = SEVERITY_RECEIVERS[alert["labels"]["severity"]]
    status, output = route(example_labels(alert), expected)
    assert status == 0, output


def test_alert_without_severity_still_reaches_the_ticket_queue() -> None:
    status, output = route({"alertname": "SomethingElse"}, "ticket")
    assert status == 0, output


def test_route_check_notices_a_wrong_receiver() -> None:
    status, _ = route({"alertname": "TiwPushExporterDown", "severity": "critical"}, "ticket")
    assert status != 0


def test_alerts_are_grouped_by_alertname_job_site_and_sdk_app_id() -> None:
    assert alertmanager_config()["route"]["group_by"] == ["alertname", "job", *SITE_LABELS, "sdk_app_id"]


def test_webhook_receivers_are_local_placeholders() -> None:
    receivers = alertmanager_config()["receivers"]
    assert {receiver["name"] for receiver in receivers} == set(SEVERITY_RECEIVERS.values())
    for receiver in receivers:
        for webhook in receiver["webhook_configs"]:
            assert webhook["url"].startswith("http://127.0.0.1:")


INHIBIT_RULES = alertmanager_config()["inhibit_rules"]


@pytest.mark.slow  # amtool per rule
@pytest.mark.parametrize("rule", INHIBIT_RULES, ids=lambda rule: "+".join(rule["source_matchers"]))
def test_inhibit_rule_selects_alerts_that_share_its_equal_labels(rule: dict[str, Any]) -> None:
    # An inhibition whose matchers select no alert, or whose `equal` labels the alerts lack,
    # silently never inhibits anything.
    # (The unit tests' series have no site labels: an alert without one has it empty on both sides.)
    sources = alerts_selected(rule["source_matchers"])
    targets = alerts_selected(rule["target_matchers"])
    assert sources and targets
    assert not set(sources) & set(targets), "an alert must not inhibit its own kind"
    equal = set(rule["equal"]) - set(SITE_LABELS)
    for name in sources + targets:
        assert any(equal <= labels.keys() for labels in fired_labels(name)), f"{name} lacks {equal}"


@pytest.mark.parametrize("rule", INHIBIT_RULES, ids=lambda rule: "+".join(rule["source_matchers"]))
def test_inhibit_rule_stays_within_its_job_and_site(rule: dict[str, Any]) -> None:
    # Two clusters (or deployments) scraped by one Prometheus are two incidents: never `equal: []`.
    assert {"job", *SITE_LABELS} <= set(rule["equal"])


def test_a_refused_key_mutes_only_its_own_account() -> None:
    # One exporter serves several accounts (`accounts:`): the instance alone would mute the others.
    (rule,) = [rule for rule in INHIBIT_RULES if "TiwPushCredentialPaused" in alerts_selected(rule["source_matchers"])]
    assert {"instance", "account"} <= set(rule["equal"])


def test_a_cause_is_never_muted_by_its_consequence() -> None:
    # Blind follows from a pause, never the other way round (and Blind leaves paused SdkAppIds out).
    assert not {"TiwPushAccountPaused", "TiwPushCredentialPaused"} & inhibitions()["TiwPushExporterBlind"]


@by_name([rule for rule in ALERTS if any("sdk_app_id" in labels for labels in fired_labels(rule["alert"]))])
def test_per_task_and_per_app_alerts_carry_the_account(alert: dict[str, Any]) -> None:
    # So that an inhibition can be scoped to one account (alerts/generate.py with_account).
    assert "group_left (account)\nsdk_app_id:tiw_exporter_sdk_app_info:last5m" in alert["expr"]
    assert any(labels.get("account") for labels in fired_labels(alert["alert"])), "no unit test shows its account"


def inhibitions() -> dict[str, set[str]]:
    """Alert name -> the alerts it mutes, per the example's inhibit rules."""
    inhibited_by: dict[str, set[str]] = defaultdict(set)
    for rule in INHIBIT_RULES:
        for source in alerts_selected(rule["source_matchers"]):
            inhibited_by[source].update(alerts_selected(rule["target_matchers"]))
    return inhibited_by


def test_blindness_and_a_paused_account_inhibit_every_per_task_alert() -> None:
    inhibited_by = inhibitions()
    per_task = {rule["alert"] for rule in PER_TASK_ALERTS}
    assert per_task <= inhibited_by["TiwPushExporterDown"]
    assert per_task <= inhibited_by["TiwPushExporterBlind"]
    assert per_task <= inhibited_by["TiwPushCredentialPaused"]
    assert per_task <= inhibited_by["TiwPushAccountPaused"]


def test_queued_pushes_are_muted_while_no_liveness_runs_and_explain_stuck_prepared_tasks() -> None:
    # Without answers (exporter down or blind, credential or SdkAppId paused) no liveness pass runs and
    # tiw_push_tasks_queued keeps its last value; a push waiting in TIW's queue shows as PREPARED.
    inhibited_by = inhibitions()
    for source in ("TiwPushExporterDown", "TiwPushExporterBlind", "TiwPushCredentialPaused", "TiwPushAccountPaused"):
        assert "TiwPushTasksQueued" in inhibited_by[source], source
    assert inhibited_by["TiwPushTasksQueued"] == {"TiwPushTaskStuckPrepared"}
