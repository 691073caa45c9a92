"""End to end: simulator -> exporter -> real Prometheus -> real Alertmanager -> a webhook receiver here.

One scenario (module fixture) runs every process on 127.0.0.1 with free ports:

* the simulator with one task per situation the alerts distinguish (``SCRIPTS``), plus a tracked task
  it does not know and one under an SdkAppId it does not know, and throttling of a fifth of the
  DescribeWhiteboardPush requests (so the throttling panels and TiwPushExporterThrottled have data);
* the exporter tracking all of them, polling every second;
* Alertmanager with ``alerts/alertmanager.example.yml``, only its waits shortened and its webhooks
  pointed at the receiver of this test;
* Prometheus scraping the exporter every second as job ``tiw-exporter`` with the real
  ``alerts/tiw-push.rules.yml``, only the ``for:`` durations shortened (``SHORT_FOR``).

The tests then read what an on-call engineer would see: the dashboard's queries, Prometheus' alerts,
the notifications, and Alertmanager's inhibition. ``test_a_fleet_wide_failure_burst_pages`` adds a
burst of failing pushes after the calm scenario's tests, and
``test_a_blind_exporter_pages_and_inhibits_per_task_alerts`` revokes the exporter's credentials, so they
are the last tests of the module (pytest keeps file order).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from exporter.simulator import SimulatorClient
from tests.alerting_rig import (
    DEBIAN_ALERTMANAGER_TEMPLATE,
    Delivery,
    WebhookReceiver,
    fast_alertmanager_config,
    free_port,
    start_service,
    write_yaml,
)
from tests.constants import SECRET_ID
from tests.harness import eventually
from tests.monitoring import (
    ALERTMANAGER_FILE,
    DASHBOARD,
    PANELS,
    RULES_FILE,
    VARIABLES,
    label_values_selector,
    load_yaml,
    variable_query,
)
from tests.procs import SIMULATOR_URL, exporter_cmd, exporter_process, running
from tests.tools import find_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SDK_APP_ID = "1400000001"
UNKNOWN_SDK_APP_ID = "1400009999"  # the simulator answers UnauthorizedOperation.SdkAppId for it
JOB = "tiw-push-exporter"  # the rules' exact job selector (alerts/generate.py)
ACCOUNT = "default"  # the one account without `accounts:`: per-task and per-app alerts carry it
BURST_TASKS = [f"burst-{n}" for n in range(12)]
API_TOKEN = "e2e-token"

HEALTHY = "healthy-pushing"
USER_CALL = "stopped-user-call"
AUTO = "stopped-auto"
EXCEPTION = "ended-exception"
EXCEPTIONS_GROWING = "exceptions-growing"
STUCK_PREPARED = "stuck-prepared"
FAILED = "push-failed"
NOT_FOUND = "not-in-simulator"
UNKNOWN_APP_TASK = "task-of-unknown-app"

# The simulator's TaskScript per task (times in seconds after creation).
SCRIPTS: dict[str, dict[str, Any]] = {
    HEALTHY: {"prepare_seconds": 0},
    USER_CALL: {"prepare_seconds": 0, "push_seconds": 2, "finish_reason": "USER_CALL"},
    AUTO: {"prepare_seconds": 0, "push_seconds": 2, "finish_reason": "AUTO"},
    EXCEPTION: {"prepare_seconds": 0, "push_seconds": 2, "finish_reason": "EXCEPTION"},
    EXCEPTIONS_GROWING: {"prepare_seconds": 0, "exceptions_per_minute": 120},
    STUCK_PREPARED: {"prepare_seconds": 86400},
    FAILED: {"prepare_seconds": 0, "fail_with": "FailedOperation.WhiteboardPush"},
}
TRACKED = [(SDK_APP_ID, task_id) for task_id in [*SCRIPTS, NOT_FOUND]] + [(UNKNOWN_SDK_APP_ID, UNKNOWN_APP_TASK)]
# The class's recording and courseware beside its pushes: one recording goes on, one is cut off (FORCE_STOP);
# one transcode finishes, one fails. None waits in a queue: a QUEUED transcode would be "stuck" after the
# shortened `for:`.
RECORDING = "recording-on"
RECORDING_CUT = "recording-force-stop"
SLIDES = "slides-finished"
SLIDES_BROKEN = "slides-failed"
KIND_SCRIPTS: dict[tuple[str, str], dict[str, Any]] = {
    ("record", RECORDING): {"prepare_seconds": 0},
    ("record", RECORDING_CUT): {"prepare_seconds": 0, "record_seconds": 2, "finish_reason": "FORCE_STOP",
                                "finish_seconds": 1},
    ("transcode", SLIDES): {"queued_seconds": 0, "processing_seconds": 2},
    ("transcode", SLIDES_BROKEN): {"queued_seconds": 0, "processing_seconds": 1,
                                   "fail_with": "FailedOperation.FileDownloadFail"},
}
HEALTHY_TASKS = (HEALTHY, USER_CALL, AUTO)
THROTTLING = {"kind": "request_limit", "ratio": 0.2, "action": "DescribeWhiteboardPush"}

# `for:` of every alert of alerts/tiw-push.rules.yml in this test (None: the rule has none). Only these
# change: every window the expressions use ([5m], [10m]) already shows the scenario's changes after a
# few scrapes, and the thresholds are what the scenario must cross, or must not for the silent ones.
SHORT_FOR: dict[str, str | None] = {
    "TiwPushFleetErrorBudgetBurn": "3s",
    "TiwPushErrorBudgetBurn": "3s",
    "TiwPushErrorBudgetBurnSlow": "3s",
    "TiwPushManyTasksFailing": None,
    "TiwPushAppAllPushesFailing": "3s",
    # Longer than TiwPushAccountPaused's, so that the pause is in Alertmanager first to inhibit it.
    "TiwPushTaskNeverAnswered": "15s",
    "TiwPushAccountPaused": "3s",
    "TiwPushCredentialPaused": "3s",
    "TiwPushCredentialExpiring": "3s",
    "TiwPushCallbacksRejected": "3s",
    # Silent here: the simulator's tasks never queue, and no warning callback is set up.
    "TiwPushTasksQueued": "3s",
    "TiwPushExporterBlind": "3s",
    "TiwPushExporterWebConfigReloadFailed": "3s",
    "TiwPushTaskEndedWithException": None,
    "TiwPushTaskFailed": None,
    "TiwPushTaskExceptionsIncreasing": "3s",
    "TiwPushTaskStuckPrepared": "3s",
    "TiwPushTaskNotFound": None,
    "TiwPushTaskDataStale": "3s",
    "TiwPushExporterDown": "3s",
    # Prometheus applies discovered targets only every 5s, so a fresh Prometheus has no `up` series for
    # a few seconds: the real rule's long `for` exists for exactly that (see its comment).
    "TiwPushExporterAbsent": "30s",
    "TiwPushExporterPollLagHigh": "3s",
    "TiwPushExporterThrottled": "3s",
    "TiwPushExporterApiRequestsFailing": "3s",
    "TiwPushExporterTasksFileReloadFailed": "3s",
    "TiwPushExporterSecretReloadFailed": "3s",
    "TiwPushExporterCoverageLow": "3s",
    "TiwPushRecordingFleetErrorBudgetBurn": "3s",
    "TiwPushRecordingErrorBudgetBurn": "3s",
    "TiwPushRecordingErrorBudgetBurnSlow": "3s",
    "TiwPushRecordingFailed": None,
    "TiwPushRecordingExceptionsIncreasing": "3s",
    "TiwPushRecordingStuckPrepared": "3s",
    "TiwPushRecordingStuckStopped": "3s",
    "TiwPushTranscodeFailureRatioHigh": "3s",
    "TiwPushTranscodeQueueWaitHigh": "3s",
    "TiwPushTranscodeStuckQueued": "3s",
}


@dataclass(frozen=True)
class ExpectedAlert:
    alertname: str
    receiver: str | None  # None: inhibited by another expected alert, never delivered
    labels: dict[str, str]  # besides alertname and the `target` labels
    target: tuple[str, ...] = ("job", "instance")  # the scrape's labels it keeps


EXPECTED_ALERTS = (
    # One task that ended badly does not page, nor open a ticket: it is information (dashboards, the status page).
    ExpectedAlert("TiwPushTaskEndedWithException", "low-priority", {
        "sdk_app_id": SDK_APP_ID, "account": ACCOUNT, "task_id": EXCEPTION, "reason": "EXCEPTION", "severity": "info"}),
    ExpectedAlert("TiwPushTaskFailed", "low-priority", {
        "sdk_app_id": SDK_APP_ID, "account": ACCOUNT, "task_id": FAILED, "reason": "FAILED", "severity": "info"}),
    ExpectedAlert("TiwPushTaskExceptionsIncreasing", "ticket", {
        "sdk_app_id": SDK_APP_ID, "account": ACCOUNT, "task_id": EXCEPTIONS_GROWING, "severity": "warning"}),
    ExpectedAlert("TiwPushTaskStuckPrepared", "ticket", {
        "sdk_app_id": SDK_APP_ID, "account": ACCOUNT, "task_id": STUCK_PREPARED, "status": "PREPARED",
        "severity": "warning"}),
    ExpectedAlert("TiwPushTaskNotFound", "low-priority", {
        "sdk_app_id": SDK_APP_ID, "account": ACCOUNT, "task_id": NOT_FOUND, "reason": "NOT_FOUND",
        "severity": "info"}),
    ExpectedAlert("TiwPushAccountPaused", "ticket", {
        "sdk_app_id": UNKNOWN_SDK_APP_ID, "account": ACCOUNT, "code": "UnauthorizedOperation.SdkAppId",
        "severity": "warning"}),
    # Its task never got an answer; the paused SdkAppId explains it (inhibition).
    ExpectedAlert("TiwPushTaskNeverAnswered", None, {
        "sdk_app_id": UNKNOWN_SDK_APP_ID, "account": ACCOUNT, "task_id": UNKNOWN_APP_TASK, "severity": "warning"}),
    ExpectedAlert("TiwPushExporterThrottled", "low-priority", {"severity": "info"}),
    # A recording cut off is information, as a failed push is; the burn alerts page when many are.
    ExpectedAlert("TiwPushRecordingFailed", "low-priority", {
        "sdk_app_id": SDK_APP_ID, "account": ACCOUNT, "task_id": RECORDING_CUT, "reason": "FORCE_STOP",
        "severity": "info"}),
    # The paused SdkAppId's task has no fresh answer: a quarter of the active tasks here. True, and a
    # ticket; muting it under any paused SdkAppId would hide coverage lost to the budget on a big fleet.
    ExpectedAlert("TiwPushExporterCoverageLow", "ticket", {"severity": "warning"}),
)

# Grafana's values for the dashboard variables: the drill-down shows one task that pushes and one whose
# queries fail (a multi-value selection, sent as a regex alternation like Grafana does).
STEP_SECONDS = 5
VARIABLE_VALUES = {
    "job": JOB,
    "instance": ".+",  # what Grafana sends for "All"
    "sdk_app_id": SDK_APP_ID,
    "task_id": f"({EXCEPTIONS_GROWING}|{FAILED})",
    "__interval": f"{STEP_SECONDS}s",
    "__rate_interval": "1m",
}
# Dashboard queries that may legitimately return nothing in this scenario, with the reason.
NO_DATA_EXPECTED: dict[str, str] = {
    "panel 'Callbacks and credentials'": "no callbacks and no temporary (CVM role) credentials in this scenario",
    "panel 'Push tasks queued at TIW'": "no queue warnings in this scenario (no warning callback token); the queued "
                                        "count has data (0)",
    "annotation 'Critical TiwPush alerts'": "the calm scenario pages no one (critical only); the burst pages later",
    "panel 'Error budget burn rate, per SdkAppId'": "the recorded ratios need a push that finished while Prometheus "
                                                    "watched; the calm pushes end first; the burst fills them",
    "panel 'Recording error budget burn rate, per SdkAppId'": "as for pushes: the cut-off recording ends before "
                                                              "Prometheus has two samples of its counter",
    "panel 'Recordings STOPPED, waiting for their video'": "no recording stays STOPPED here (TIW's processing time "
                                                           "is undocumented; the simulator's is a second)",
}
# The fleet stat panels (by title) for $sdk_app_id: the 8 tracked tasks of SDK_APP_ID by state.
FLEET_STATS = {
    "Tracked tasks": 8,
    "Pushing": 2,  # HEALTHY, EXCEPTIONS_GROWING
    "Prepared": 1,  # STUCK_PREPARED
    "Stopped (retained)": 5,  # USER_CALL, AUTO, EXCEPTION, and final without an answer: FAILED, NOT_FOUND
    "No answer yet": 0,  # FAILED and NOT_FOUND never answered, but they are final (ended) once confirmed
    "Ended with EXCEPTION (retained)": 1,
}
TIMEOUT = 60.0


# --------------------------------------------------------------------------- configuration


def shortened_rules(source: Path = RULES_FILE) -> dict[str, Any]:
    """The rules file with each alert's `for:` from SHORT_FOR, everything else untouched."""
    rules = load_yaml(source)
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    assert sorted(SHORT_FOR) == sorted(rule["alert"] for rule in alerts), "SHORT_FOR must list every alert"
    for rule in alerts:
        short = SHORT_FOR[rule["alert"]]
        assert ("for" in rule) == (short is not None), f"{rule['alert']}: SHORT_FOR does not match its `for`"
        if short is not None:
            rule["for"] = short
    return rules


def prometheus_config(rules: Path, exporter: str, alertmanager: str) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [exporter]}]}],
    }


@dataclass
class Scenario:
    simulator: str
    exporter: str  # host:port, the `instance` label
    alertmanager: str
    prometheus: str
    webhook: WebhookReceiver
    exporter_url: str
    started: float = field(default_factory=time.time)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, key_file: Path) -> Iterator[Scenario]:
    tools = {name: find_tool(name) for name in ("prometheus", "prometheus-alertmanager")}
    assert DEBIAN_ALERTMANAGER_TEMPLATE.is_file(), (
        f"{DEBIAN_ALERTMANAGER_TEMPLATE} is missing: install Debian's prometheus-alertmanager, or link the unpacked "
        "package's usr/share/prometheus/alertmanager there (.ci/run)"
    )
    tmp = tmp_path_factory.mktemp("e2e")
    with ExitStack() as stack:
        simulate = exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix", "--rate-limit", "20")
        _, simulator = stack.enter_context(running(simulate, SIMULATOR_URL))
        control = SimulatorClient(simulator)
        for task_id, script in SCRIPTS.items():
            assert control.add_task(int(SDK_APP_ID), task_id, **script) == task_id  # raises unless 201 Created
        for (kind, task_id), script in KIND_SCRIPTS.items():
            add = control.add_record if kind == "record" else control.add_transcode
            assert add(int(SDK_APP_ID), task_id, **script) == task_id
        control.set_fault(**THROTTLING)

        tasks = [arg for app, task_id in TRACKED for arg in ("--task", f"{app}:{task_id}")]
        tasks += [arg for kind, task_id in KIND_SCRIPTS for arg in ("--task", f"{kind}:{SDK_APP_ID}:{task_id}")]
        token_file = tmp / "api-token"
        token_file.write_text(API_TOKEN, encoding="utf-8")
        exporter_proc, exporter_url = exporter_process(
            "--listen", "127.0.0.1:0", "--endpoint", simulator, "--secret-id", SECRET_ID, "--secret-key-file",
            str(key_file), "--interval", "1s", "--not-found-grace", "2s", "--api-token-file", str(token_file),
            "--kinds", "push,record,transcode", *tasks)
        stack.enter_context(exporter_proc)

        webhook = stack.enter_context(WebhookReceiver())
        am_address = f"127.0.0.1:{free_port()}"
        am_config = write_yaml(tmp / "alertmanager.yml", fast_alertmanager_config(webhook.url))
        (tmp / "alertmanager").mkdir()
        start_service(stack, "Alertmanager", [
            tools["prometheus-alertmanager"], f"--config.file={am_config}", f"--storage.path={tmp / 'alertmanager'}",
            f"--web.listen-address={am_address}", "--cluster.listen-address=",
        ], f"http://{am_address}")

        exporter = urlsplit(exporter_url).netloc
        prometheus_address = f"127.0.0.1:{free_port()}"
        rules = write_yaml(tmp / "tiw-push.rules.yml", shortened_rules())
        config = write_yaml(tmp / "prometheus.yml", prometheus_config(rules, exporter, am_address))
        start_service(stack, "Prometheus", [
            tools["prometheus"], f"--config.file={config}", f"--storage.tsdb.path={tmp / 'prometheus'}",
            f"--web.listen-address={prometheus_address}",
        ], f"http://{prometheus_address}")

        yield Scenario(simulator, exporter, f"http://{am_address}", f"http://{prometheus_address}", webhook,
                       exporter_url)


# --------------------------------------------------------------------------- reading Prometheus and Alertmanager


def api(url: str, path: str, **params: Any) -> Any:
    answer = requests.get(f"{url}{path}", params=params, timeout=10)
    assert answer.status_code == 200, f"{path} {params}: {answer.status_code} {answer.text[:500]}"
    return answer.json()["data"]


def instant(scenario: Scenario, expr: str) -> list[dict[str, Any]]:
    return api(scenario.prometheus, "/api/v1/query", query=expr)["result"]


def over_the_run(scenario: Scenario, expr: str) -> list[dict[str, Any]]:
    """``expr`` as a Grafana time series panel asks for it: a range query over the whole run."""
    return api(scenario.prometheus, "/api/v1/query_range", query=expr, start=scenario.started - STEP_SECONDS,
               end=time.time(), step=STEP_SECONDS)["result"]


def prometheus_alerts(scenario: Scenario, state: str = "firing") -> list[dict[str, Any]]:
    return [alert for alert in api(scenario.prometheus, "/api/v1/alerts")["alerts"] if alert["state"] == state]


def alertmanager_alerts(scenario: Scenario) -> list[dict[str, Any]]:
    answer = requests.get(f"{scenario.alertmanager}/api/v2/alerts", timeout=10)
    answer.raise_for_status()
    return answer.json()


def expected_labels(expected: ExpectedAlert, scenario: Scenario) -> dict[str, str]:
    target = {"job": JOB, "instance": scenario.exporter}
    return {"alertname": expected.alertname, **{k: target[k] for k in expected.target}, **expected.labels}


def wait_for_expected_alerts(scenario: Scenario) -> list[dict[str, Any]]:
    """Prometheus' firing alerts once every expected one fires (fails with what is missing)."""
    missing: list[dict[str, str]] = []

    def all_firing() -> list[dict[str, Any]]:
        firing = prometheus_alerts(scenario)
        missing[:] = [labels for expected in EXPECTED_ALERTS
                      if (labels := expected_labels(expected, scenario)) not in [a["labels"] for a in firing]]
        return [] if missing else firing

    return eventually(all_firing, TIMEOUT, 0.5,
                      explain=lambda: f"not firing with exactly these labels: {missing}\n"
                                      f"firing: {prometheus_alerts(scenario)}")


def substitute(expr: str) -> str:
    """The query as Grafana sends it, with VARIABLE_VALUES."""
    # Like Grafana, leave what is no variable alone (label_replace's "$1").
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)",
                  lambda m: VARIABLE_VALUES.get(m.group(1) or m.group(2), m.group(0)), expr)


def dashboard_queries() -> list[tuple[str, str, bool]]:
    """(where, query, instant) for every panel target and query annotation of the dashboard."""
    queries = [(f"panel {panel['title']!r}", target["expr"], bool(target.get("instant")) and not target.get("range"))
               for panel in PANELS for target in panel.get("targets", [])]
    queries += [(f"annotation {item['name']!r}", item["expr"], False)
                for item in DASHBOARD["annotations"]["list"] if "expr" in item]
    return queries


# --------------------------------------------------------------------------- the tests


def test_every_dashboard_query_returns_data(scenario: Scenario) -> None:
    empty: list[str] = []

    def all_have_data() -> bool:
        empty[:] = [
            f"{where}: {query}" for where, query, is_instant in dashboard_queries()
            if where not in NO_DATA_EXPECTED
            and not (instant if is_instant else over_the_run)(scenario, substitute(query))
        ]
        return not empty

    eventually(all_have_data, TIMEOUT, 0.5,
               explain=lambda: "dashboard queries without data:\n" + "\n".join(empty))


def test_dashboard_variables_offer_the_scenario(scenario: Scenario) -> None:
    """label_values() of each query variable, as Grafana asks for them, includes the scenario's values."""
    wanted = {"job": {JOB}, "instance": {scenario.exporter}, "sdk_app_id": {SDK_APP_ID, UNKNOWN_SDK_APP_ID},
              "task_id": {task_id for app, task_id in TRACKED if app == SDK_APP_ID}}
    assert {name for name, variable in VARIABLES.items() if variable["type"] == "query"} == set(wanted)

    offered: dict[str, set[str]] = {}

    def offers_all() -> bool:
        for name in wanted:
            selector = label_values_selector(substitute(variable_query(VARIABLES[name])))
            offered[name] = set(api(scenario.prometheus, f"/api/v1/label/{name}/values", **{"match[]": selector}))
        return all(wanted[name] <= offered[name] for name in wanted)

    eventually(offers_all, TIMEOUT, 0.5, explain=lambda: f"variables offer {offered}, expected at least {wanted}")


def test_drill_down_is_empty_until_a_task_is_chosen(scenario: Scenario) -> None:
    """With task_id at its default (All), every drill-down query selects nothing, although the scenario's
    tasks have data (test_every_dashboard_query_returns_data)."""
    all_tasks = VARIABLES["task_id"]["allValue"]
    drill = [(panel["title"], target["expr"].replace("$task_id", all_tasks)) for panel in PANELS
             for target in panel.get("targets", []) if "$task_id" in target["expr"]]
    assert drill
    shown = {title: len(over_the_run(scenario, substitute(expr))) for title, expr in drill}
    assert not any(shown.values()), shown


def test_fleet_stat_panels_count_the_scenario(scenario: Scenario) -> None:
    exprs = {panel["title"]: substitute(panel["targets"][0]["expr"]) for panel in PANELS
             if panel["title"] in FLEET_STATS}
    assert sorted(exprs) == sorted(FLEET_STATS)
    shown: dict[str, list[float]] = {}

    def counts_match() -> bool:
        shown.update({title: [float(series["value"][1]) for series in instant(scenario, expr)]
                      for title, expr in exprs.items()})
        return shown == {title: [count] for title, count in FLEET_STATS.items()}

    eventually(counts_match, TIMEOUT, 0.5, explain=lambda: f"stat panels show {shown}, expected {FLEET_STATS}")


# What the "Broken push tasks now" table shows for $sdk_app_id: task -> (why, status now).
BROKEN_ROWS = {
    EXCEPTION: ("ended with EXCEPTION", "STOPPED"),
    FAILED: ("push failed", "STOPPED"),
    NOT_FOUND: ("not found", "STOPPED"),
    EXCEPTIONS_GROWING: ("exceptions rising", "PUSHING"),
}


def test_broken_tasks_table_names_each_broken_task_with_why_and_status(scenario: Scenario) -> None:
    (panel,) = [panel for panel in PANELS if panel["title"] == "Broken push tasks now"]
    expr = substitute(panel["targets"][0]["expr"])
    shown: dict[str, set[tuple[str, str]]] = {}

    def rows_match() -> bool:
        shown.clear()
        for row in instant(scenario, expr):
            shown.setdefault(row["metric"]["task_id"], set()).add((row["metric"]["why"], row["metric"]["status"]))
        # A throttled query may add a passing "query error" row; the broken tasks and only they are there.
        return all(BROKEN_ROWS[task] in shown.get(task, set()) for task in BROKEN_ROWS) and \
            not set(shown) & set(HEALTHY_TASKS)

    eventually(rows_match, TIMEOUT, 0.5, explain=lambda: f"table shows {shown}, expected {BROKEN_ROWS}")


def test_broken_tasks_fire_their_alerts_with_exact_labels(scenario: Scenario) -> None:
    firing = wait_for_expected_alerts(scenario)
    for expected in EXPECTED_ALERTS:  # once each: no second task, code or instance under the same name
        same_name = [alert["labels"] for alert in firing if alert["labels"]["alertname"] == expected.alertname]
        assert same_name == [expected_labels(expected, scenario)]


def test_alert_annotations_name_the_task_and_its_room(scenario: Scenario) -> None:
    rooms = {series["metric"]["task_id"]: series["metric"]["room_id"]
             for series in instant(scenario, "tiw_push_task_info")}
    with_room = []
    for alert in wait_for_expected_alerts(scenario):
        labels, annotations = alert["labels"], alert["annotations"]
        assert annotations["runbook_url"].endswith("/alerts/runbook.md#" + labels["alertname"].lower())
        assert annotations["summary"] and annotations["description"]
        if "task_id" in labels:
            assert labels["task_id"] in annotations["summary"]
        if labels.get("task_id") in rooms:  # the description looks the room up in tiw_push_task_info
            assert f"(room {rooms[labels['task_id']]})" in annotations["description"], annotations
            with_room.append(labels["task_id"])
    # Tasks that never answered (FAILED, NOT_FOUND) have no info series, hence no room.
    assert sorted(with_room) == sorted([EXCEPTION, EXCEPTIONS_GROWING, STUCK_PREPARED])


def test_no_alert_for_healthy_tasks_and_none_unexpected(scenario: Scenario) -> None:
    wait_for_expected_alerts(scenario)
    # Everything that fired at any time of the run, not only what fires now.
    ever = [series["metric"] for series in instant(scenario, 'max_over_time(ALERTS{alertstate="firing"}[1h])')]
    about_healthy = [labels for labels in ever if labels.get("task_id") in HEALTHY_TASKS]
    assert not about_healthy, f"alerts about healthy tasks: {about_healthy}"
    expected_names = {expected.alertname for expected in EXPECTED_ALERTS}
    unexpected = [labels for labels in ever if labels["alertname"] not in expected_names]
    assert not unexpected, f"alerts nothing in the scenario should cause: {unexpected}"


def test_alerts_reach_the_receiver_of_their_severity(scenario: Scenario) -> None:
    wait_for_expected_alerts(scenario)

    def delivered() -> list[Delivery]:
        deliveries = scenario.webhook.deliveries()
        firing = [d for d in deliveries if d.status == "firing"]
        return deliveries if all(
            any(expected_labels(e, scenario) == d.labels for d in firing) for e in EXPECTED_ALERTS if e.receiver
        ) else []

    deliveries = eventually(delivered, TIMEOUT, 0.5,
                            explain=lambda: f"not all expected alerts delivered: {scenario.webhook.deliveries()}")
    for expected in EXPECTED_ALERTS:
        labels = expected_labels(expected, scenario)
        seen = {(d.path, d.receiver) for d in deliveries if d.labels == labels}
        wanted = {(f"/{expected.receiver}", expected.receiver)} if expected.receiver else set()
        assert seen == wanted, (expected.alertname, seen)
    # One failing task, one paused SdkAppId: nobody is woken up.
    assert not [d for d in deliveries if d.receiver == "pager"]
    group_by = load_yaml(ALERTMANAGER_FILE)["route"]["group_by"]  # alert name, job, site, SdkAppId
    for delivery in deliveries:  # (a label the alert lacks, as exporter alerts sdk_app_id, is left out)
        assert delivery.group_labels == {k: v for k, v in delivery.labels.items() if k in group_by}
        assert delivery.labels.get("task_id") not in HEALTHY_TASKS, delivery


def pages(scenario: Scenario) -> set[tuple[str, str | None]]:
    """(alertname, sdk_app_id) of every firing notification the pager received."""
    return {(d.labels["alertname"], d.labels.get("sdk_app_id")) for d in scenario.webhook.deliveries()
            if d.path == "/pager" and d.status == "firing"}


def test_a_fleet_wide_failure_burst_pages(scenario: Scenario) -> None:
    """A dozen pushes die at once: the fleet symptom pages; the SdkAppId's own error budget does not (a
    dozen pushes are not the volume the per-app burn needs to page).

    Runs after the tests of the calm scenario (pytest keeps file order), which saw no page.
    """
    wait_for_expected_alerts(scenario)
    control = SimulatorClient(scenario.simulator)
    for task_id in BURST_TASKS:
        control.add_task(int(SDK_APP_ID), task_id, prepare_seconds=0, push_seconds=1, finish_reason="EXCEPTION")
        answer = requests.post(f"{scenario.exporter_url}/api/v1/tasks", timeout=10,
                               json={"sdk_app_id": int(SDK_APP_ID), "task_id": task_id},
                               headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert answer.status_code == 201, answer.text
    eventually(lambda: ("TiwPushManyTasksFailing", None) in pages(scenario), TIMEOUT, 0.5,
               explain=lambda: f"pages {pages(scenario)}, expected TiwPushManyTasksFailing")
    # The dashboard marks the pages (its annotation is for critical alerts only) and shows the burn.
    (marks,) = [item["expr"] for item in DASHBOARD["annotations"]["list"] if "expr" in item]
    (burn_rates,) = [panel for panel in PANELS if panel["title"] == "Error budget burn rate, per SdkAppId"]
    for expr in (marks, *(target["expr"] for target in burn_rates["targets"])):
        eventually(lambda expr=expr: instant(scenario, substitute(expr)), TIMEOUT, 0.5,
                   explain=lambda expr=expr: f"no data after the burst: {expr}")
    assert ("TiwPushErrorBudgetBurn", SDK_APP_ID) not in pages(scenario)  # too few pushes for a per-app page


def test_a_blind_exporter_pages_and_inhibits_per_task_alerts(scenario: Scenario) -> None:
    """Revoking the credentials blinds the exporter: TiwPushCredentialPaused pages within its `for`, and
    the per-task alerts of that exporter go quiet (inhibition).

    Runs last: the scenario's credentials stay revoked.
    """
    wait_for_expected_alerts(scenario)
    SimulatorClient(scenario.simulator).revoke(SECRET_ID)
    # These stay firing in Prometheus: a stopped task is not polled again, and the exporter keeps
    # the last known status of a task whose queries now fail.
    targets = {("TiwPushTaskEndedWithException", EXCEPTION), ("TiwPushTaskStuckPrepared", STUCK_PREPARED)}
    source: dict[str, Any] = {}

    def inhibited() -> list[dict[str, Any]]:
        alerts = alertmanager_alerts(scenario)
        sources = [a for a in alerts if a["labels"]["alertname"] == "TiwPushCredentialPaused"]
        if not sources:
            return []
        source.update(sources[0])
        muted = [a for a in alerts if (a["labels"]["alertname"], a["labels"].get("task_id")) in targets]
        done = len(muted) == len(targets) and all(
            a["status"]["state"] == "suppressed" and source["fingerprint"] in a["status"]["inhibitedBy"] for a in muted
        )
        return muted if done else []

    eventually(inhibited, TIMEOUT, 0.5,
               explain=lambda: f"per-task alerts of {scenario.exporter} not inhibited by "
                               f"{source or 'a refused credential'}:\n{alertmanager_alerts(scenario)}")
    assert source["labels"]["code"] == "AuthFailure.SecretIdNotFound"
    assert source["labels"]["severity"] == "critical"
    assert source["status"]["state"] == "active"
    eventually(
        lambda: any(d.path == "/pager" and d.labels == source["labels"] for d in scenario.webhook.deliveries()),
        TIMEOUT, 0.5,
        explain=lambda: f"{source['labels']} not delivered to /pager: {scenario.webhook.deliveries()}",
    )
