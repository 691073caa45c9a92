#!/usr/bin/env python3
"""Write alerts/tiw-push.rules.yml from code: the rules follow one ``Config`` (mixin style).

    python alerts/generate.py                       # rewrite the committed rules file
    python alerts/generate.py --check               # exit 1 if the committed file is stale
    python alerts/generate.py --job-selector 'job="push"' --slo-target 0.995 --output my.rules.yml
    python alerts/generate.py --grafana-url https://grafana.example.com \
        --runbook-url https://wiki.example.com/tiw-push/runbook --output my.rules.yml

Why code and not a hand-kept YAML file: the scrape job selector, the SLO target and the links appear
in every rule; one value each here keeps them from drifting. The paging policy (what pages and why)
is in alerts/runbook.md, "How these alerts are built"; tests/test_alerts.py checks the file is current.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "alerts" / "tiw-push.rules.yml"
RUNBOOK = "https://github.com/tiw-push-exporter/tiw-push-exporter/blob/main/alerts/runbook.md"
DASHBOARD_UID = "tiw-push-exporter"
ACTIVE = "PREPARED|PUSHING"
BAD_REASONS = "EXCEPTION|FAILED"
BAD = "~" + BAD_REASONS
# The labels that tell one exporter process (one per account group) from another: `instance` from any
# scrape config, `pod` from the Prometheus Operator's ServiceMonitor. Sums drop these (and the labels
# they aggregate) and keep the rest, so `job` and any site label (cluster, region) survive into recorded
# series and alerts.
REPLICA = "instance, pod"
FLEET = f"sum without ({REPLICA}, sdk_app_id, reason)"  # over every exporter and app
# SRE Workbook ch. 5, multiwindow multi-burn-rate: (long window, short window, burn rate factor).
PAGE_BURNS = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
TICKET_BURNS = (("3d", "6h", 1.0),)
SLI_WINDOWS = ("5m", "30m", "1h", "6h", "3d")


@dataclass(frozen=True)
class Config:
    """Everything a site changes; the defaults are what the project ships."""

    job_selector: str = 'job="tiw-push-exporter"'  # exact, like the mixins' nodeExporterSelector
    slo_target: float = 0.99  # of finished pushes end without EXCEPTION or FAILED
    min_finished: int = 10  # burn-rate alerts need this many finished pushes in the long window
    many_failing: int = 10  # bad endings in 10m over the fleet that page at once
    grafana_url: str = "http://localhost:3000"
    runbook_url: str = RUNBOOK

    def sel(self, metric: str, **labels: str) -> str:
        """``metric{<job selector>, label="value"...}`` (a value starting with ``~`` is a regex match):
        every selector carries the job selector."""
        matchers = [f'{k}=~"{v[1:]}"' if v.startswith("~") else f'{k}="{v}"' for k, v in labels.items()]
        return f"{metric}{{{', '.join((self.job_selector, *matchers))}}}"

    def budget(self) -> float:
        return round(1 - self.slo_target, 6)


# The room of a task, looked up in the description rather than joined in the expression: a missing
# info series must never silence an alert.
ROOM = ("{{ with printf \"tiw_push_task_info{sdk_app_id='%s',task_id='%s'}\" $labels.sdk_app_id $labels.task_id"
        " | query }}{{ with first . }} (room {{ label \"room_id\" . }}){{ end }}{{ end }}")
TASK = "Push task {{ $labels.task_id }} of SdkAppId {{ $labels.sdk_app_id }}" + ROOM


def alert(cfg: Config, name: str, expr: str, severity: str, summary: str, description: str,
          for_: str | None = None, view: str = "") -> dict[str, Any]:
    """One alerting rule with the annotations every alert carries (STYLE.md, blackbox-mixin)."""
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    dashboard = f"{cfg.grafana_url}/d/{DASHBOARD_UID}/tiw-push?orgId=1"
    rule["annotations"] = {
        "summary": summary,
        "description": " ".join(description.split()),
        "runbook_url": f"{cfg.runbook_url}#{name.lower()}",
        "dashboard_url": dashboard + view,
    }
    return rule


TASK_VIEW = "&var-sdk_app_id={{ $labels.sdk_app_id }}&var-task_id={{ $labels.task_id }}"
APP_VIEW = "&var-sdk_app_id={{ $labels.sdk_app_id }}"
INSTANCE_VIEW = "&var-instance={{ $labels.instance }}"


def recording_rules(cfg: Config) -> list[dict[str, Any]]:
    """Fleet sums for the dashboard: a handful of series per SdkAppId instead of one per task."""
    return [
        {"record": "sdk_app_id_status:tiw_push_tasks:sum",
         "expr": f"sum without ({REPLICA}) ({cfg.sel('tiw_push_tasks')})"},
        {"record": "sdk_app_id:tiw_push_task_exceptions:rate5m",
         "expr": f"sum without ({REPLICA}, task_id) (rate({cfg.sel('tiw_push_task_exceptions_total')}[5m]))"},
        {"record": "sdk_app_id_reason:tiw_push_task_finish_reason:sum",
         "expr": f"sum without ({REPLICA}, task_id) ({cfg.sel('tiw_push_task_finish_reason')})"},
    ]


def slo_rules(cfg: Config) -> list[dict[str, Any]]:
    """The SLI per SdkAppId over the Workbook's windows: finished pushes, and the share that ended bad.

    Counted from ``tiw_push_tasks_finished_total`` (each task once, when it becomes final), so the
    ratio over 3 days is honest although per-task series leave after --finished-retention.
    """
    rules: list[dict[str, Any]] = []
    for window in SLI_WINDOWS:
        finished = f"sdk_app_id:tiw_push_tasks_finished:increase{window}"
        rules.append({"record": finished, "expr": f"sum without ({REPLICA}, reason) "
                      f"(increase({cfg.sel('tiw_push_tasks_finished_total')}[{window}]))"})
        rules.append({"record": f"sdk_app_id:tiw_push_tasks_finished_bad:ratio_rate{window}", "expr": (
            f"sum without ({REPLICA}, reason) "
            f"(increase({cfg.sel('tiw_push_tasks_finished_total', reason=BAD)}[{window}]))\n"
            f"  /\n({finished} > 0)")})
    return rules


def _burn(cfg: Config, burns: tuple[tuple[str, str, float], ...]) -> str:
    """Both windows of each pair above factor x budget, with enough finished pushes in the long window."""
    ratio = "sdk_app_id:tiw_push_tasks_finished_bad:ratio_rate"
    terms = [
        f"(\n  {ratio}{long} > {factor:g} * {cfg.budget():g}\n  and\n  {ratio}{short} > {factor:g} * {cfg.budget():g}\n"
        f"  and\n  sdk_app_id:tiw_push_tasks_finished:increase{long} >= {cfg.min_finished}\n)"
        for long, short, factor in burns
    ]
    return "\n or \n".join(terms)


def fleet_alerts(cfg: Config) -> list[dict[str, Any]]:
    """Symptoms of many pushes at once: these page."""
    slo = f"{cfg.slo_target * 100:g}%"
    bad_10m = f"increase({cfg.sel('tiw_push_tasks_finished_total', reason=BAD)}[10m])"
    all_10m = f"increase({cfg.sel('tiw_push_tasks_finished_total')}[10m])"
    return [
        alert(cfg, "TiwPushErrorBudgetBurn", _burn(cfg, PAGE_BURNS), "critical",
              "Pushes of SdkAppId {{ $labels.sdk_app_id }} fail fast enough to spend the monthly error budget.",
              f"{{{{ $value | humanizePercentage }}}} of the finished pushes of SdkAppId {{{{ $labels.sdk_app_id }}}}"
              f" ended with EXCEPTION or FAILED (SLO: {slo} end well). At this burn rate the 30-day error "
              "budget is gone in days: 14.4x over 1h and 5m, or 6x over 6h and 30m.", "2m", APP_VIEW),
        alert(cfg, "TiwPushErrorBudgetBurnSlow", _burn(cfg, TICKET_BURNS), "warning",
              "Pushes of SdkAppId {{ $labels.sdk_app_id }} slowly spend the error budget.",
              f"{{{{ $value | humanizePercentage }}}} of the finished pushes of SdkAppId {{{{ $labels.sdk_app_id }}}}"
              f" ended with EXCEPTION or FAILED over 3 days and 6 hours, above the {slo} SLO's budget.",
              "1h", APP_VIEW),
        alert(cfg, "TiwPushManyTasksFailing",
              f"{FLEET} ({bad_10m}) >= {cfg.many_failing}\n"
              f"and\n{FLEET} ({bad_10m})\n  / {FLEET} ({all_10m})"
              " > 0.2", "critical",
              "{{ $value | printf \"%.0f\" }} whiteboard pushes ended with EXCEPTION or FAILED in 10 minutes.",
              f"At least {cfg.many_failing} pushes over all SdkAppIds ended badly in the last 10 minutes, more than "
              "20% of all that ended: a fleet-wide failure (TIW, TRTC or our side), not one customer."),
        alert(cfg, "TiwPushAppAllPushesFailing",
              "sdk_app_id:tiw_push_tasks_finished_bad:ratio_rate30m >= 0.999\n"
              "and\nsdk_app_id:tiw_push_tasks_finished:increase30m >= 3", "critical",
              "Every push of SdkAppId {{ $labels.sdk_app_id }} ends badly.",
              "Every push of SdkAppId {{ $labels.sdk_app_id }} that finished in the last 30 minutes (at least 3) "
              "ended with EXCEPTION or FAILED: the customer's whiteboard pushes do not work at all.",
              "5m", APP_VIEW),
    ]


def task_alerts(cfg: Config) -> list[dict[str, Any]]:
    """One push task: warnings for the ticket queue, never pages (one customer's task is not an outage)."""
    active = cfg.sel("tiw_push_task_status", status="~" + ACTIVE)
    return [
        alert(cfg, "TiwPushTaskEndedWithException",
              cfg.sel("tiw_push_task_finish_reason", reason="EXCEPTION") + " == 1", "warning",
              "Whiteboard push {{ $labels.task_id }} ended with FinishReason=EXCEPTION.",
              f"{TASK} stopped abnormally: TIW reports FinishReason=EXCEPTION. Viewers of the pushed stream lost "
              "the whiteboard; restart the push if the class is still running.", None, TASK_VIEW),
        alert(cfg, "TiwPushTaskFailed",
              cfg.sel("tiw_push_task_finish_reason", reason="FAILED") + " == 1", "warning",
              "Whiteboard push {{ $labels.task_id }} failed.",
              f"{TASK} failed: TIW answered FailedOperation.WhiteboardPush twice in a row. The "
              "TRTC error code is in tiw_push_task_failure_info, the message in GET /api/v1/tasks.",
              None, TASK_VIEW),
        alert(cfg, "TiwPushTaskNotFound",
              cfg.sel("tiw_push_task_finish_reason", reason="NOT_FOUND") + " == 1", "warning",
              "Tracked push task {{ $labels.task_id }} does not exist.",
              "DescribeWhiteboardPush kept answering InvalidParameter.TaskNotFound for task {{ $labels.task_id }} "
              "of SdkAppId {{ $labels.sdk_app_id }} beyond the exporter's grace period: the exporter tracked a task "
              "TIW does not know, and has stopped polling it.", None, TASK_VIEW),
        alert(cfg, "TiwPushTaskExceptionsIncreasing",
              f"(increase({cfg.sel('tiw_push_task_exceptions_total')}[5m]) > 0)\nand ignoring(status)\n"
              f"({cfg.sel('tiw_push_task_status', status='PUSHING')} == 1)", "warning",
              "Whiteboard push {{ $labels.task_id }} keeps reporting exceptions.",
              f"{TASK} is PUSHING and its ExceptionCnt grew by {{{{ $value | printf \"%.0f\" }}}} in the last 5 "
              "minutes, continuously for 10 minutes. The stream is probably stuttering.", "10m", TASK_VIEW),
        alert(cfg, "TiwPushTaskStuckPrepared",
              f"min_over_time({cfg.sel('tiw_push_task_status', status='PREPARED')}[5m]) == 1", "warning",
              "Whiteboard push {{ $labels.task_id }} is stuck in PREPARED.",
              f"{TASK} has been PREPARED for more than 5 minutes: the push service has not started pushing.",
              "5m", TASK_VIEW),
        alert(cfg, "TiwPushTaskNeverAnswered",
              f"max without (status) ({cfg.sel('tiw_push_task_status')}) == 0", "warning",
              "Tracked push task {{ $labels.task_id }} has never been answered.",
              f"{TASK} is tracked but no query has answered its status for 15 minutes (status UNKNOWN): "
              "nothing is known about it, and no other task alert can fire for it.", "15m", TASK_VIEW),
        alert(cfg, "TiwPushTaskDataStale",
              f"(time() - max_over_time({cfg.sel('tiw_push_task_last_success_timestamp_seconds')}[10m]) > 600)\n"
              f"and ignoring(status)\n({active} == 1)", "warning",
              "No fresh data for whiteboard push {{ $labels.task_id }}.",
              f"The last successful query of active p{TASK[1:]} was {{{{ $value | humanizeDuration }}}} ago; its "
              "status and exception count are stale.", "5m", TASK_VIEW),
    ]


def queued_expr(cfg: Config) -> str:
    """TiwPushTasksQueued: queued through 5 minutes of samples, or any queue warning in 10 minutes.

    The warnings counter has no series until an SdkAppId's first warning, which creates it at 1: a plain
    ``increase()`` never sees that first warning (it needs two samples), so a series that did not exist
    10 minutes ago counts with its whole value. ``or`` ignores the metric name: a series is counted once."""
    queued = cfg.sel("tiw_push_tasks_queued")
    warnings = cfg.sel("tiw_push_queue_warnings_total")
    return (f"min_over_time({queued}[5m]) > 0\nor\n"
            f"sum without (event_type) (\n  ({warnings} unless {warnings} offset 10m)\n  or\n"
            f"  increase({warnings}[10m])\n) > 0")


def account_alerts(cfg: Config) -> list[dict[str, Any]]:
    """Accounts, credentials, callbacks, TIW's capacity: what makes part of the fleet invisible or stuck."""
    return [
        alert(cfg, "TiwPushCredentialPaused",
              f"max_over_time({cfg.sel('tiw_exporter_credential_paused')}[5m]) == 1", "critical",
              "The TIW API refuses the credentials of account {{ $labels.account }} ({{ $labels.code }}).",
              "All polling of account {{ $labels.account }} on {{ $labels.instance }} is paused: the API answers "
              "{{ $labels.code }}. No push task of its SdkAppIds is monitored: we are blind for them.",
              "5m", INSTANCE_VIEW),
        alert(cfg, "TiwPushAccountPaused",
              f"max_over_time({cfg.sel('tiw_exporter_account_paused')}[5m]) == 1", "warning",
              "Polling of SdkAppId {{ $labels.sdk_app_id }} is paused ({{ $labels.code }}).",
              "The exporter paused SdkAppId {{ $labels.sdk_app_id }} after the app-level error {{ $labels.code }}"
              " (activation, arrears, ownership): none of its push tasks is monitored.", "10m", APP_VIEW),
        alert(cfg, "TiwPushCredentialExpiring",
              f"(min_over_time({cfg.sel('tiw_exporter_credential_expiry_timestamp_seconds')}[5m]) - time() < 900)\n"
              f"and\n{cfg.sel('tiw_exporter_credential_refresh_failures')} > 0", "warning",
              "Temporary credentials of account {{ $labels.account }} expire soon and do not refresh.",
              "The CVM role credentials of account {{ $labels.account }} on {{ $labels.instance }} expire in "
              "{{ $value | humanizeDuration }} and the last refreshes failed: when they expire the exporter "
              "is blind.", "5m", INSTANCE_VIEW),
        alert(cfg, "TiwPushCallbacksRejected",
              "sum without (event_type, outcome) "
              f"(increase({cfg.sel('tiw_exporter_callbacks_total', outcome='bad_sign')}[15m])) >= 3",
              "warning", "TIW callbacks to {{ $labels.instance }} are rejected for a bad signature.",
              "{{ $value | printf \"%.0f\" }} callbacks were rejected with a bad signature in 15 minutes: the "
              "callback key was probably rotated on one side only. Stops are then only learned by polling.",
              "5m", INSTANCE_VIEW),
        # A ticket, not a page: the fix is on Tencent's side (quota, ticket), nothing to do at 3 a.m.
        alert(cfg, "TiwPushTasksQueued", queued_expr(cfg), "warning",
              "Whiteboard pushes of SdkAppId {{ $labels.sdk_app_id }} wait in TIW's queue.",
              "SdkAppId {{ $labels.sdk_app_id }} has push tasks waiting for TIW's capacity: {{ $labels.instance }}"
              " counts {{ $value | printf \"%.0f\" }}, the tasks QUEUED in TIW's running list through the last 5 "
              "minutes or, if none stayed queued that long, the queue warnings TIW sent in the last 10 minutes. A "
              "queued push is a class without its whiteboard. The cause is TIW's capacity or the account's "
              "concurrency quota, not the exporter: raise the quota or open a ticket with Tencent Cloud.",
              "2m", APP_VIEW),
    ]


def exporter_alerts(cfg: Config) -> list[dict[str, Any]]:
    """The exporter itself: down, absent or blind page; degraded is a ticket."""
    up = cfg.sel("up")
    requests = "tiw_exporter_api_requests_total"
    return [
        alert(cfg, "TiwPushExporterDown", f"{up} == 0", "critical",
              "tiw-push-exporter {{ $labels.instance }} is down.",
              "Prometheus has failed to scrape {{ $labels.instance }} (job {{ $labels.job }}) for 5 minutes. No "
              "whiteboard push it tracks is monitored, and no push alert can fire.", "5m", INSTANCE_VIEW),
        alert(cfg, "TiwPushExporterAbsent", f"absent({up})", "critical",
              "Prometheus has no tiw-push-exporter target.",
              f"No `up` series for {cfg.job_selector} has existed for 10 minutes: whiteboard pushes are not "
              "monitored at all.", "10m"),
        alert(cfg, "TiwPushExporterBlind",
              f"sum without (sdk_app_id, status) ({cfg.sel('tiw_push_tasks', status='~UNKNOWN|' + ACTIVE)}) > 0\n"
              "unless on (job, instance)\n"
              f"sum without (action, outcome) (increase({cfg.sel(requests, outcome='success')}[10m])) > 0",
              "critical", "tiw-push-exporter {{ $labels.instance }} has had no successful API answer for 10 minutes.",
              "{{ $labels.instance }} tracks {{ $value | printf \"%.0f\" }} active tasks but none of its TIW API "
              "requests succeeded in 10 minutes (credentials refused, every account paused, network): every "
              "task's data is old and no task alert can fire.", "5m", INSTANCE_VIEW),
        alert(cfg, "TiwPushExporterPollLagHigh",
              f"min_over_time({cfg.sel('tiw_exporter_poll_lag_seconds')}[5m]) > 60", "warning",
              "tiw-push-exporter {{ $labels.instance }} cannot keep up with its tasks.",
              "The most overdue active task on {{ $labels.instance }} is {{ $value | humanizeDuration }} past its "
              "poll time and has been more than 60s late for 15 minutes: the API budget (--rate-limit) is "
              "exhausted.",
              "10m", INSTANCE_VIEW),
        alert(cfg, "TiwPushExporterThrottled",
              f"sum without (action, outcome) (rate({cfg.sel(requests, outcome='throttled')}[10m]))\n  /\n"
              f"sum without (action, outcome) (rate({cfg.sel(requests)}[10m]))\n  > 0.05", "info",
              "tiw-push-exporter {{ $labels.instance }} is being throttled by the TIW API.",
              "{{ $value | humanizePercentage }} of the API requests of {{ $labels.instance }} were answered "
              "RequestLimitExceeded over the last 10 minutes, for 15 minutes.", "15m", INSTANCE_VIEW),
        alert(cfg, "TiwPushExporterApiRequestsFailing",
              f"sum without (action, outcome) (rate({cfg.sel(requests, outcome='~network_error|bad_response')}"
              f"[10m]))\n  /\nsum without (action, outcome) (rate({cfg.sel(requests)}[10m]))\n  > 0.1", "warning",
              "tiw-push-exporter {{ $labels.instance }} cannot reach the TIW API.",
              "{{ $value | humanizePercentage }} of the API requests of {{ $labels.instance }} ended in a network "
              "error or an unreadable answer over the last 10 minutes, for 15 minutes.", "15m", INSTANCE_VIEW),
        alert(cfg, "TiwPushExporterTasksFileReloadFailed",
              f"max_over_time({cfg.sel('tiw_exporter_tasks_file_reload_success')}[5m]) == 0", "warning",
              "tiw-push-exporter {{ $labels.instance }} cannot reload its tasks file.",
              "The last reload of --tasks-file on {{ $labels.instance }} failed; the exporter still tracks the "
              "previous task set and ignores the file's changes.", "1m", INSTANCE_VIEW),
        alert(cfg, "TiwPushExporterWebConfigReloadFailed",
              f"max_over_time({cfg.sel('tiw_exporter_web_config_last_reload_successful')}[5m]) == 0", "warning",
              "tiw-push-exporter {{ $labels.instance }} cannot reload its web config.",
              "The last reload of --web-config-file on {{ $labels.instance }} failed; TLS and basic auth still "
              "use the previous file (a rotated certificate or password is not in effect).", "1m", INSTANCE_VIEW),
    ]


def rules(cfg: Config) -> dict[str, Any]:
    """The whole rule file document."""
    return {"groups": [
        {"name": "tiw-push.recording", "rules": recording_rules(cfg)},
        {"name": "tiw-push.slo", "rules": slo_rules(cfg)},
        {"name": "tiw-push.fleet", "rules": fleet_alerts(cfg)},
        {"name": "tiw-push.tasks", "rules": task_alerts(cfg)},
        {"name": "tiw-push.accounts", "rules": account_alerts(cfg)},
        {"name": "tiw-push.exporter", "rules": exporter_alerts(cfg)},
    ]}


WIDTH = 100


class Dumper(yaml.SafeDumper):
    """Strings styled as a person writes rule files: multi-line PromQL as literal blocks, long
    annotations folded, so generated files stay reviewable (PyYAML quotes where a style cannot hold)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    long_text = len(value) > WIDTH - 20 and " " in value
    style = "|" if "\n" in value else ">" if long_text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


Dumper.add_representer(str, _str)


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=Dumper, sort_keys=False, width=WIDTH, allow_unicode=True)


HEADER = """\
# GENERATED by alerts/generate.py: do not edit, change the generator or its Config and regenerate.
# Prometheus rules for tiw-push-exporter. Load with `rule_files: [alerts/tiw-push.rules.yml]`;
# unit tests: `promtool test rules alerts/tiw-push.rules.test.yml`; runbook: alerts/runbook.md.
"""


def render(cfg: Config = Config()) -> str:
    return HEADER + dump(rules(cfg))


def write_or_check(target: Path, text: str, check: bool, command: str) -> int:
    """Write a generated file, or with ``check`` exit 1 when the committed one differs (CI's staleness test).

    Shared by every generator of the project (rules, PrometheusRule, dashboard)."""
    if check:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            print(f"{target} is stale: run {command}", file=sys.stderr)
            return 1
        return 0
    target.write_text(text, encoding="utf-8")
    return 0


def check_or_write_main(argv: list[str] | None, description: str, target: Path, render_text: Any,
                        command: str) -> int:
    """The command line of a generator without options of its own: write, or ``--check``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is stale")
    return write_or_check(target, render_text(), parser.parse_args(argv).check, command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is stale")
    parser.add_argument("--job-selector", default=Config.job_selector, help="label matchers of the exporter's job")
    parser.add_argument("--slo-target", type=float, default=Config.slo_target, help="share of pushes that end well")
    parser.add_argument("--grafana-url", default=Config.grafana_url, help="base of the dashboard_url annotations")
    parser.add_argument("--runbook-url", default=Config.runbook_url,
                        help="the runbook (alerts/runbook.md) as your site serves it: each alert's runbook_url is "
                             "this URL with the alert's section as #anchor")
    parser.add_argument("--output", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    text = render(Config(job_selector=args.job_selector, slo_target=args.slo_target, grafana_url=args.grafana_url,
                         runbook_url=args.runbook_url))
    return write_or_check(args.output, text, args.check, "python alerts/generate.py")


if __name__ == "__main__":
    sys.exit(main())
