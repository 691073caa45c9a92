#!/usr/bin/env python3
"""Write alerts/tiw-push.rules.yml from code: the rules follow one ``Config`` (mixin style).

    python alerts/generate.py                       # rewrite the committed rules file
    python alerts/generate.py --check               # exit 1 if the committed file is stale
    python alerts/generate.py --job-selector 'job="push"' --slo-target 0.995 --output my.rules.yml
    python alerts/generate.py --grafana-url https://grafana.example.com \
        --runbook-url https://wiki.example.com/tiw-push/runbook --output my.rules.yml
    python alerts/generate.py --site-labels region,cluster --output my.rules.yml
    python alerts/generate.py --record-slo-target 0.995 --transcode-queue-wait-seconds 300 --output my.rules.yml

Why code and not a hand-kept YAML file: the scrape job selector, the SLO target and the links appear
in every rule; one value each here keeps them from drifting. Besides pushes, the rules cover the two other
TIW task kinds the exporter watches: real-time recordings (``tiw_record_*``: their own SLO and per-task
alerts) and document transcodes (``tiw_transcode_*``: failure ratio and queue wait). The paging policy
(what pages and why) is in alerts/runbook.md, "How these alerts are built"; tests/test_alerts.py checks
the file is current.
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
SLI_WINDOWS = ("5m", "10m", "30m", "1h", "6h", "3d")
# Windows where a FAILED push's cause is known: the per-task tiw_push_task_failure_info series (with
# TRTC's code) lives for --finished-retention (default 1h) after the push failed, so the customer-side
# failures of a window up to 1h can be counted; longer windows cannot tell the causes apart.
SPLIT_WINDOWS = ("5m", "10m", "30m", "1h")
FLEET_WINDOWS = ("5m", "30m", "1h", "6h")
GAP = "5m"  # the range every gauge under a `for:` is read through (a failed scrape leaves a hole)
# The account of each SdkAppId (tiw_exporter_sdk_app_info), recorded once per SdkAppId and joined onto the
# per-task and per-app alerts, so that Alertmanager can scope an inhibition to one account.
ACCOUNT_INFO = "sdk_app_id:tiw_exporter_sdk_app_info:last5m"
# Real-time recordings (DescribeOnlineRecord): STOPPED is not final (the video is still processed and uploaded),
# FINISHED is. A recording ends badly with TIW's EXCEPTION or FORCE_STOP (paused over 90 minutes, recording over
# 24 hours) or our FAILED (FailedOperation.Record confirmed); FAILED and NOT_FOUND are the exporter's own endings.
RECORD_BAD = "EXCEPTION|FORCE_STOP|FAILED"
RECORD_ENDED_BY_US = "FAILED|NOT_FOUND"
# The recording SLI's windows: the burn pairs' (PAGE_BURNS, TICKET_BURNS) per SdkAppId, FLEET_WINDOWS over the
# fleet. No customer split: a failed recording carries no TRTC code to tell whose mistake it was.
RECORD_SLI_WINDOWS = ("5m", "30m", "1h", "6h", "3d")
# Document transcodes (DescribeTranscode): one window for the failure ratio and the queue wait.
TRANSCODE_WINDOW = "30m"


@dataclass(frozen=True)
class Config:
    """Everything a site changes; the defaults are what the project ships (reasoning: alerts/runbook.md,
    "How these alerts are built")."""

    job_selector: str = 'job="tiw-push-exporter"'  # exact, like the mixins' nodeExporterSelector
    slo_target: float = 0.99  # of finished pushes end without EXCEPTION or FAILED
    # Evidence a burn-rate alert needs: this many bad (TIW-side) endings in the long window...
    min_bad: int = 5
    # ...and, to page for one SdkAppId, this many finished pushes per hour (1h window; 6x in the 6h one).
    # Below it the per-app burn is a ticket (TiwPushErrorBudgetBurnSlow); the fleet burn still pages.
    page_volume_per_hour: int = 100
    # Keep a burn alert firing this long after its condition last held: at low volume the short window
    # is often empty, and without it one real burn fires and resolves over and over.
    keep_firing_for: str = "15m"
    many_failing: int = 10  # TIW-side bad endings in 10m over the fleet that page at once...
    many_failing_ratio: float = 0.1  # ...when more than this share of all endings
    # TRTC codes (from a FAILED push's message) that are the customer's own mistake: UserSig and
    # identity (Chat/IM 700xx and TRTC's room-entry codes), the SdkAppId's arrears. Never a page.
    customer_trtc_codes: tuple[str, ...] = (
        "-70001", "-70003", "-70009", "-70013", "-70014", "-70016", "-70020", "-70052",
        "-3317", "-3319", "-3320", "-100006", "-100013", "-100018")
    # Detail answers of steady PUSHING tasks come every (listed tasks / this rate) s under liveness
    # (README "Sizing": 20 req/s x 92 % pacing x 90 % steady share = 16.6 req/s per account).
    steady_detail_rate: float = 16.6
    stale_floor_seconds: int = 600  # a task's detail answer older than this and...
    stale_intervals: float = 2.0  # ...than this many steady intervals is stale
    coverage_min: float = 0.95  # share of active tasks with a fresh answer (liveness or detail)
    # Recordings: the share of finished recordings that end without EXCEPTION, FORCE_STOP or FAILED. The
    # burn alerts take min_bad, page_volume_per_hour and keep_firing_for from the push SLO above.
    record_slo_target: float = 0.99
    # How long a recording may stay STOPPED (video processed and uploaded) before it is stuck. TIW does not
    # document how long that processing takes: an hour is a guess that a class of a few hours fits in.
    record_stopped_for: str = "60m"
    # Transcodes: the share of finished transcodes that FAILED in TRANSCODE_WINDOW that opens a ticket...
    transcode_failure_ratio: float = 0.2
    transcode_min_failed: int = 3  # ...with at least this many failures...
    # ...among at least this many finished transcodes; the same volume of assigned transcodes for the queue
    # wait's p95 (one slow transcode of a small app is the per-task alert's, not a p95).
    transcode_min_volume: int = 5
    transcode_queue_wait_seconds: float = 120  # p95 of the queue wait (AssignTime - CreateTime) above this
    transcode_stuck_queued_for: str = "10m"  # one transcode QUEUED this long
    # Target labels that tell one site from another where one Prometheus sees several (external labels
    # and relabelling): sums keep them anyway (`without`), the account join matches on them, and
    # alerts/alertmanager.example.yml groups and inhibits by them.
    site_labels: tuple[str, ...] = ("cluster", "namespace")
    grafana_url: str = "http://localhost:3000"
    runbook_url: str = RUNBOOK

    def sel(self, metric: str, **labels: str) -> str:
        """``metric{<job selector>, label="value"...}`` (a value starting with ``~`` is a regex match):
        every selector carries the job selector."""
        matchers = [f'{k}=~"{v[1:]}"' if v.startswith("~") else f'{k}="{v}"' for k, v in labels.items()]
        return f"{metric}{{{', '.join((self.job_selector, *matchers))}}}"

    def budget(self) -> float:
        return round(1 - self.slo_target, 6)

    def record_budget(self) -> float:
        return round(1 - self.record_slo_target, 6)

    def customer_codes(self) -> str:
        return "|".join(self.customer_trtc_codes)

    def app_key(self) -> str:
        """The labels that name one SdkAppId of one deployment: what the account join matches on."""
        return ", ".join(("job", *self.site_labels, "sdk_app_id"))


def _lookup(info: str, label: str, text: str) -> str:
    """`` (<text> <label>)`` of the task's ``info`` series, in a description, or nothing without one."""
    return ("{{ with printf \"" + info + "{sdk_app_id='%s',task_id='%s'}\" $labels.sdk_app_id $labels.task_id"
            " | query }}{{ with first . }} (" + text + " {{ label \"" + label + "\" . }}){{ end }}{{ end }}")


# The room of a task, looked up in the description rather than joined in the expression: a missing
# info series must never silence an alert.
ROOM = _lookup("tiw_push_task_info", "room_id", "room")
TASK = "Push task {{ $labels.task_id }} of SdkAppId {{ $labels.sdk_app_id }}" + ROOM
RECORDING = ("Recording {{ $labels.task_id }} of SdkAppId {{ $labels.sdk_app_id }}"
             + _lookup("tiw_record_task_info", "room_id", "room"))
TRANSCODE = ("Transcode {{ $labels.task_id }} of SdkAppId {{ $labels.sdk_app_id }}"
             + _lookup("tiw_transcode_task_info", "title", "document"))


def alert(cfg: Config, name: str, expr: str, severity: str, summary: str, description: str,
          for_: str | None = None, view: str = "", keep_firing_for: str | None = None) -> dict[str, Any]:
    """One alerting rule with the annotations every alert carries (blackbox-mixin's pattern). An alert that
    links the view of one SdkAppId or task is about one SdkAppId: it carries its account (``with_account``)."""
    if view in (APP_VIEW, TASK_VIEW):
        expr = with_account(cfg, expr)
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    if keep_firing_for:
        rule["keep_firing_for"] = keep_firing_for
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
    """Fleet sums for the dashboard: a handful of series per SdkAppId instead of one per task; and the
    account of each SdkAppId for the alerts (``account_info``)."""
    return [
        account_info(cfg),
        {"record": "sdk_app_id_status:tiw_push_tasks:sum",
         "expr": f"sum without ({REPLICA}) ({cfg.sel('tiw_push_tasks')})"},
        {"record": "sdk_app_id:tiw_push_task_exceptions:rate5m",
         "expr": f"sum without ({REPLICA}, task_id) (rate({cfg.sel('tiw_push_task_exceptions_total')}[5m]))"},
        {"record": "sdk_app_id_reason:tiw_push_task_finish_reason:sum",
         "expr": f"sum without ({REPLICA}, task_id) ({cfg.sel('tiw_push_task_finish_reason')})"},
    ]


def account_info(cfg: Config) -> dict[str, Any]:
    """One ``tiw_exporter_sdk_app_info`` series per SdkAppId of a job (and site): the current one, or through
    a scrape gap the last one of 5 minutes (a failed scrape leaves a hole; the `account` label must not come
    and go under a `for:`). ``topk`` keeps exactly one, because a join with two (an SdkAppId on two replicas,
    or moved to another account minutes ago) is an evaluation error that silences the whole alert; the
    replica labels go, as in every sum."""
    key = cfg.app_key()
    info = cfg.sel("tiw_exporter_sdk_app_info")
    return {"record": ACCOUNT_INFO,
            "expr": f"max without ({REPLICA}) (\n  topk by ({key}) (1,\n    {info}\n    or on ({key})\n"
                    f"    last_over_time({info}[{GAP}])\n  )\n)"}


def with_account(cfg: Config, expr: str) -> str:
    """``expr`` (per task or per SdkAppId) with the ``account`` of its SdkAppId. Series of an SdkAppId without
    the info (an exporter older than it, a relabelling that drops it) still fire, without ``account``: a
    missing info series never silences an alert."""
    on = f"on ({cfg.app_key()})"
    body = f"(\n{_indent(expr)}\n)"
    return f"{body}\n* {on} group_left (account)\n{ACCOUNT_INFO}\nor\n{body}\nunless {on}\n{ACCOUNT_INFO}"


def _indent(expr: str) -> str:
    return "\n".join("  " + line for line in expr.splitlines())


def customer_failures(cfg: Config, window: str) -> str:
    """FAILED pushes of the last ``window`` whose TRTC code is the customer's own mistake, per SdkAppId:
    the ``tiw_push_task_failure_info`` series that exist now and did not ``window`` ago (each read
    through ``last_over_time``, so a failed scrape neither hides a failure nor makes an old one new)."""
    info = cfg.sel("tiw_push_task_failure_info", trtc_code="~" + cfg.customer_codes())
    return (f"count without ({REPLICA}, task_id, code, trtc_code) (\n"
            f"  last_over_time({info}[{window}])\n  unless\n  last_over_time({info}[{GAP}] offset {window})\n)")


def slo_rules(cfg: Config) -> list[dict[str, Any]]:
    """The SLI per SdkAppId over the Workbook's windows: finished pushes, bad ones, the bad share; over the
    windows where the cause of FAILED is known, the TIW-side bad ones (customer-side FAILED taken out);
    and the same summed over SdkAppIds (the fleet: ``job`` and site labels kept).

    Counted from ``tiw_push_tasks_finished_total`` (each task once, when it becomes final), so the
    ratio over 3 days is honest although per-task series leave after --finished-retention.
    """
    rules: list[dict[str, Any]] = []
    for window in SLI_WINDOWS:
        rules += _app_sli_rules(cfg, "tiw_push_tasks_finished", "_bad", BAD, window)
    for window in SPLIT_WINDOWS:
        customer = f"sdk_app_id:tiw_push_task_failure_customer:count{window}"
        bad = f"sdk_app_id:tiw_push_tasks_finished_bad:increase{window}"
        tiw_bad = f"sdk_app_id:tiw_push_tasks_finished_tiw_bad:increase{window}"
        rules.append({"record": customer, "expr": customer_failures(cfg, window)})
        rules.append({"record": tiw_bad, "expr": f"clamp_min({bad} - {customer}, 0)\nor\n{bad}"})
        rules.append({"record": f"sdk_app_id:tiw_push_tasks_finished_tiw_bad:ratio_rate{window}",
                      "expr": f"{tiw_bad}\n  /\n(sdk_app_id:tiw_push_tasks_finished:increase{window} > 0)"})
    for window in FLEET_WINDOWS:
        # Over 6h the causes of FAILED are not known: the 6h term counts every bad ending, and the burn
        # alerts pair it with the TIW-side 30m window.
        rules += _fleet_sli_rules("tiw_push_tasks_finished", "_" + _kind(window), window)
    return rules


def _app_sli_rules(cfg: Config, family: str, part: str, bad: str, window: str) -> list[dict[str, Any]]:
    """Per SdkAppId over ``window``: the tasks of ``family`` (a counter without ``_total``) that finished,
    those with a ``reason`` matching ``bad`` (recorded as ``<family><part>``), and the bad share."""
    total = f"{family}_total"
    finished = f"sdk_app_id:{family}:increase{window}"
    bad_ones = f"sdk_app_id:{family}{part}:increase{window}"
    return [
        {"record": finished, "expr": f"sum without ({REPLICA}, reason) (increase({cfg.sel(total)}[{window}]))"},
        {"record": bad_ones,
         "expr": f"sum without ({REPLICA}, reason) (increase({cfg.sel(total, reason=bad)}[{window}]))"},
        {"record": f"sdk_app_id:{family}{part}:ratio_rate{window}", "expr": f"{bad_ones}\n  /\n({finished} > 0)"},
    ]


def _fleet_sli_rules(family: str, part: str, window: str) -> list[dict[str, Any]]:
    """``_app_sli_rules``' finished and ``<part>`` counts summed over SdkAppIds (``job`` and site labels
    kept), and their share."""
    return [
        {"record": f"job:{family}:increase{window}",
         "expr": f"sum without (sdk_app_id) (sdk_app_id:{family}:increase{window})"},
        {"record": f"job:{family}{part}:increase{window}",
         "expr": f"sum without (sdk_app_id) (sdk_app_id:{family}{part}:increase{window})"},
        {"record": f"job:{family}{part}:ratio_rate{window}",
         "expr": f"job:{family}{part}:increase{window}\n  /\n(job:{family}:increase{window} > 0)"},
    ]


def record_slo_rules(cfg: Config) -> list[dict[str, Any]]:
    """The recording SLI, as the push one: per SdkAppId over the burn pairs' windows, summed over SdkAppIds
    over the fleet's; from ``tiw_record_tasks_finished_total`` (each recording once, when FINISHED or ended
    by the exporter). Bad: EXCEPTION, FORCE_STOP, FAILED (every bad ending: no customer split)."""
    rules: list[dict[str, Any]] = []
    for window in RECORD_SLI_WINDOWS:
        rules += _app_sli_rules(cfg, "tiw_record_tasks_finished", "_bad", "~" + RECORD_BAD, window)
    for window in FLEET_WINDOWS:
        rules += _fleet_sli_rules("tiw_record_tasks_finished", "_bad", window)
    return rules


def transcode_rules(cfg: Config) -> list[dict[str, Any]]:
    """Transcodes per SdkAppId over ``TRANSCODE_WINDOW``: finished, FAILED, the FAILED share
    (``tiw_transcode_tasks_finished_total``, each transcode once)."""
    return _app_sli_rules(cfg, "tiw_transcode_tasks_finished", "_failed", "FAILED", TRANSCODE_WINDOW)


def _kind(window: str) -> str:
    return "tiw_bad" if window in SPLIT_WINDOWS else "bad"


def _burn(cfg: Config, level: str, burns: tuple[tuple[str, str, float], ...], volume: bool,
          sli: str = "tiw_push_tasks_finished", budget: float | None = None) -> str:
    """Both windows of each pair above factor x budget, with at least ``min_bad`` bad endings in the long
    window and (``volume``) ``page_volume_per_hour`` finished tasks per hour of it. For pushes (``sli``) the
    ratios are TIW-side wherever the window allows (customer-side FAILED taken out); recordings
    (``tiw_record_tasks_finished``, with its own ``budget``) have no such split."""
    split = sli == "tiw_push_tasks_finished"
    kind = _kind if split else (lambda window: "bad")
    budget = cfg.budget() if budget is None else budget
    terms = []
    for long, short, factor in burns:
        limit = f"{factor:g} * {budget:g}"
        lines = [f"{level}:{sli}_{kind(long)}:ratio_rate{long} > {limit}",
                 f"{level}:{sli}_{kind(short)}:ratio_rate{short} > {limit}",
                 f"{level}:{sli}_{kind(long)}:increase{long} >= {cfg.min_bad}"]
        if volume:
            hours = {"1h": 1, "6h": 6, "3d": 72}[long]
            lines.append(f"{level}:{sli}:increase{long} >= {hours * cfg.page_volume_per_hour}")
        terms.append("(\n  " + "\n  and\n  ".join(lines) + "\n)")
    return "\n or \n".join(terms)


def fleet_alerts(cfg: Config) -> list[dict[str, Any]]:
    """Symptoms of many pushes at once page; one SdkAppId pages only with real volume."""
    slo = f"{cfg.slo_target * 100:g}%"
    volume = cfg.page_volume_per_hour
    tiw_bad_10m = "sdk_app_id:tiw_push_tasks_finished_tiw_bad:increase10m"
    all_10m = "sdk_app_id:tiw_push_tasks_finished:increase10m"
    windows = "14.4x over 1h and 5m, or 6x over 6h and 30m"
    return [
        alert(cfg, "TiwPushFleetErrorBudgetBurn", _burn(cfg, "job", PAGE_BURNS, volume=True), "critical",
              "Whiteboard pushes of job {{ $labels.job }} fail fast enough to spend the monthly error budget.",
              f"{{{{ $value | humanizePercentage }}}} of the finished pushes over all SdkAppIds of job "
              f"{{{{ $labels.job }}}} ended with EXCEPTION or a TIW-side FAILED (SLO: {slo} end well), in the long "
              f"window of the pair that fired ({windows}; customer-side TRTC codes do not count): a fleet-wide "
              "failure, not one customer.", "2m", keep_firing_for=cfg.keep_firing_for),
        alert(cfg, "TiwPushErrorBudgetBurn", _burn(cfg, "sdk_app_id", PAGE_BURNS, volume=True), "critical",
              "Pushes of SdkAppId {{ $labels.sdk_app_id }} fail fast enough to spend the monthly error budget.",
              f"{{{{ $value | humanizePercentage }}}} of the finished pushes of SdkAppId {{{{ $labels.sdk_app_id }}}}"
              f" ended with EXCEPTION or a TIW-side FAILED (SLO: {slo} end well), in the long window of the pair "
              f"that fired ({windows}). It has at least {volume} pushes an hour, so this is many classes, not "
              "noise; customer-side TRTC codes do not count.", "2m", APP_VIEW, keep_firing_for=cfg.keep_firing_for),
        alert(cfg, "TiwPushErrorBudgetBurnSlow", _burn(cfg, "sdk_app_id", TICKET_BURNS, volume=False), "warning",
              "Pushes of SdkAppId {{ $labels.sdk_app_id }} spend the error budget.",
              f"{{{{ $value | humanizePercentage }}}} of the finished pushes of SdkAppId {{{{ $labels.sdk_app_id }}}}"
              f" ended with EXCEPTION or FAILED over 3 days and 6 hours, above the {slo} SLO's budget (at least "
              f"{cfg.min_bad} bad endings; any volume: the ticket for SdkAppIds too small to page).",
              "1h", APP_VIEW),
        alert(cfg, "TiwPushManyTasksFailing",
              f"sum without (sdk_app_id) ({tiw_bad_10m}) >= {cfg.many_failing}\n"
              f"and\nsum without (sdk_app_id) ({tiw_bad_10m})\n  / sum without (sdk_app_id) ({all_10m})"
              f" > {cfg.many_failing_ratio:g}", "critical",
              "{{ $value | printf \"%.0f\" }} whiteboard pushes ended with EXCEPTION or a TIW-side FAILED in 10 "
              "minutes.",
              f"At least {cfg.many_failing} pushes over all SdkAppIds of job {{{{ $labels.job }}}} ended badly "
              f"(EXCEPTION, or FAILED with a TRTC code that is not the customer's) in the last 10 minutes, more "
              f"than {cfg.many_failing_ratio:.0%} of all that ended: a fleet-wide failure (TIW, TRTC or our side), "
              "not one customer."),
        alert(cfg, "TiwPushAppAllPushesFailing",
              "sdk_app_id:tiw_push_tasks_finished_tiw_bad:ratio_rate30m >= 0.999\n"
              "and\nsdk_app_id:tiw_push_tasks_finished_tiw_bad:increase30m >= 3", "warning",
              "Every push of SdkAppId {{ $labels.sdk_app_id }} ends badly.",
              "Every push of SdkAppId {{ $labels.sdk_app_id }} that finished in the last 30 minutes (at least 3) "
              "ended with EXCEPTION or a TIW-side FAILED: the customer's whiteboard pushes do not work at all. "
              "A ticket: TiwPushErrorBudgetBurn pages when the SdkAppId has the volume.",
              "5m", APP_VIEW, keep_firing_for=cfg.keep_firing_for),
    ]


def task_alerts(cfg: Config) -> list[dict[str, Any]]:
    """One push task: how it ended is information (dashboard, status page); active problems are tickets.
    Never pages: one customer's task is not an outage."""
    active = cfg.sel("tiw_push_task_status", status="~" + ACTIVE)
    stopped = cfg.sel("tiw_push_task_status", status="STOPPED")
    last_success = cfg.sel("tiw_push_task_last_success_timestamp_seconds")
    listed = cfg.sel("tiw_exporter_liveness_tasks", mode="listed")
    floor = cfg.stale_floor_seconds
    stale_after = (f"clamp_min(\n    sum without (mode) (last_over_time({listed}[{GAP}]))\n"
                   f"      * {cfg.stale_intervals:g} / {cfg.steady_detail_rate:g},\n    {floor}\n  )")
    return [
        alert(cfg, "TiwPushTaskEndedWithException",
              cfg.sel("tiw_push_task_finish_reason", reason="EXCEPTION") + " == 1", "info",
              "Whiteboard push {{ $labels.task_id }} ended with FinishReason=EXCEPTION.",
              f"{TASK} stopped abnormally: TIW reports FinishReason=EXCEPTION. Viewers of the pushed stream lost "
              "the whiteboard; restart the push if the class is still running.", None, TASK_VIEW),
        alert(cfg, "TiwPushTaskFailed",
              cfg.sel("tiw_push_task_finish_reason", reason="FAILED") + " == 1", "info",
              "Whiteboard push {{ $labels.task_id }} failed.",
              f"{TASK} failed: TIW answered FailedOperation.WhiteboardPush twice in a row. The "
              "TRTC error code is in tiw_push_task_failure_info, the message in GET /api/v1/tasks.",
              None, TASK_VIEW),
        alert(cfg, "TiwPushTaskNotFound",
              cfg.sel("tiw_push_task_finish_reason", reason="NOT_FOUND") + " == 1", "info",
              "Tracked push task {{ $labels.task_id }} does not exist.",
              "DescribeWhiteboardPush kept answering InvalidParameter.TaskNotFound for task {{ $labels.task_id }} "
              "of SdkAppId {{ $labels.sdk_app_id }} beyond the exporter's grace period: the exporter tracked a task "
              "TIW does not know, and has stopped polling it.", None, TASK_VIEW),
        alert(cfg, "TiwPushTaskExceptionsIncreasing",
              f"(increase({cfg.sel('tiw_push_task_exceptions_total')}[5m]) > 0)\nand ignoring(status)\n"
              f"(last_over_time({cfg.sel('tiw_push_task_status', status='PUSHING')}[{GAP}]) == 1)", "warning",
              "Whiteboard push {{ $labels.task_id }} keeps reporting exceptions.",
              f"{TASK} is PUSHING and its ExceptionCnt grew by {{{{ $value | printf \"%.0f\" }}}} in the last 5 "
              "minutes, continuously for 10 minutes. The stream is probably stuttering.", "10m", TASK_VIEW),
        alert(cfg, "TiwPushTaskStuckPrepared",
              f"min_over_time({cfg.sel('tiw_push_task_status', status='PREPARED')}[5m]) == 1", "warning",
              "Whiteboard push {{ $labels.task_id }} is stuck in PREPARED.",
              f"{TASK} has been PREPARED for more than 5 minutes: the push service has not started pushing.",
              "5m", TASK_VIEW),
        alert(cfg, "TiwPushTaskNeverAnswered",
              f"max without (status) (last_over_time({stopped}[{GAP}])) == 0\n"
              f"unless\nmax_over_time({last_success}[15m])", "warning",
              "Tracked push task {{ $labels.task_id }} has no successful answer.",
              f"{TASK} is tracked and not stopped, but no DescribeWhiteboardPush has answered it successfully "
              "for 15 minutes. Its status, if any, comes only from a push callback: its exceptions and end are "
              "unknown, and DataStale cannot fire for it.", "15m", TASK_VIEW),
        alert(cfg, "TiwPushTaskDataStale",
              f"(\n  time() - max_over_time({last_success}[10m])\n  > on (job, instance) group_left ()\n"
              f"  {stale_after}\n)"
              f"\nand ignoring(status)\n(last_over_time({active}[{GAP}]) == 1)", "warning",
              "No fresh data for whiteboard push {{ $labels.task_id }}.",
              f"The last successful query of active p{TASK[1:]} was {{{{ $value | humanizeDuration }}}} ago, longer "
              f"than {floor // 60} minutes and than {cfg.stale_intervals:g} steady detail intervals of its exporter "
              "(liveness spreads the detail polls of confirmed tasks over the budget): its exception count and "
              "finish reason are stale.", "5m", TASK_VIEW),
    ]


def record_alerts(cfg: Config) -> list[dict[str, Any]]:
    """Real-time recordings, as pushes: the SLO burns page (fleet, or one SdkAppId with volume) and tickets
    (slow burn); how one recording ended is information; a recording that does not progress is a ticket."""
    slo = f"{cfg.record_slo_target * 100:g}%"
    volume = cfg.page_volume_per_hour
    windows = "14.4x over 1h and 5m, or 6x over 6h and 30m"
    sli, budget = "tiw_record_tasks_finished", cfg.record_budget()
    bad = "EXCEPTION, FORCE_STOP or FAILED"
    # A recording the exporter ended (FAILED, NOT_FOUND) is final whatever status it shows (the exporter reports
    # FINISHED; an exporter that kept the last answered status would otherwise make it "stuck").
    ended = (f"unless ignoring (status, reason)\nlast_over_time("
             f"{cfg.sel('tiw_record_task_finish_reason', reason='~' + RECORD_ENDED_BY_US)}[{GAP}]) == 1")
    status = {name: cfg.sel("tiw_record_task_status", status=name) for name in ("PREPARED", "RECORDING", "STOPPED")}
    return [
        alert(cfg, "TiwPushRecordingFleetErrorBudgetBurn", _burn(cfg, "job", PAGE_BURNS, True, sli, budget),
              "critical", "Recordings of job {{ $labels.job }} fail fast enough to spend the monthly error budget.",
              f"{{{{ $value | humanizePercentage }}}} of the finished recordings over all SdkAppIds of job "
              f"{{{{ $labels.job }}}} ended with {bad} (SLO: {slo} end well), in the long window of the pair that "
              f"fired ({windows}): a fleet-wide failure, not one customer. Each is a class replay lost or cut "
              "short.", "2m", keep_firing_for=cfg.keep_firing_for),
        alert(cfg, "TiwPushRecordingErrorBudgetBurn", _burn(cfg, "sdk_app_id", PAGE_BURNS, True, sli, budget),
              "critical", "Recordings of SdkAppId {{ $labels.sdk_app_id }} fail fast enough to spend the monthly "
              "error budget.",
              f"{{{{ $value | humanizePercentage }}}} of the finished recordings of SdkAppId "
              f"{{{{ $labels.sdk_app_id }}}} ended with {bad} (SLO: {slo} end well), in the long window of the "
              f"pair that fired ({windows}). It has at least {volume} recordings an hour, so this is many classes "
              "whose replay is lost or cut short, not noise.", "2m", APP_VIEW, keep_firing_for=cfg.keep_firing_for),
        alert(cfg, "TiwPushRecordingErrorBudgetBurnSlow", _burn(cfg, "sdk_app_id", TICKET_BURNS, False, sli, budget),
              "warning", "Recordings of SdkAppId {{ $labels.sdk_app_id }} spend the error budget.",
              f"{{{{ $value | humanizePercentage }}}} of the finished recordings of SdkAppId "
              f"{{{{ $labels.sdk_app_id }}}} ended with {bad} over 3 days and 6 hours, above the {slo} SLO's budget "
              f"(at least {cfg.min_bad} bad endings; any volume: the ticket for SdkAppIds too small to page).",
              "1h", APP_VIEW),
        alert(cfg, "TiwPushRecordingFailed",
              cfg.sel("tiw_record_task_finish_reason", reason="~" + RECORD_BAD) + " == 1", "info",
              "Recording {{ $labels.task_id }} ended with {{ $labels.reason }}.",
              f"{RECORDING} ended with {{{{ $labels.reason }}}}"
              "{{ if eq $labels.reason \"FAILED\" }}: TIW answered FailedOperation.Record twice in a row (the code "
              "is in tiw_record_task_failure_info, the message in GET /api/v1/tasks)"
              "{{ else if eq $labels.reason \"FORCE_STOP\" }}: TIW stopped it, paused for over 90 minutes or "
              "recording for over 24 hours{{ else }}: TIW reports that the recording stopped abnormally{{ end }}. "
              "The class replay is missing or cut short; start a new recording if the class is still running.",
              None, TASK_VIEW),
        alert(cfg, "TiwPushRecordingExceptionsIncreasing",
              f"(increase({cfg.sel('tiw_record_task_exceptions_total')}[5m]) > 0)\nand ignoring(status)\n"
              f"(last_over_time({status['RECORDING']}[{GAP}]) == 1)", "warning",
              "Recording {{ $labels.task_id }} keeps reporting exceptions.",
              f"{RECORDING} is RECORDING and its ExceptionCnt grew by {{{{ $value | printf \"%.0f\" }}}} in the last "
              "5 minutes, continuously for 10 minutes. The replay probably has gaps or glitches.", "10m", TASK_VIEW),
        alert(cfg, "TiwPushRecordingStuckPrepared",
              f"min_over_time({status['PREPARED']}[5m]) == 1\n{ended}", "warning",
              "Recording {{ $labels.task_id }} is stuck in PREPARED.",
              f"{RECORDING} has been PREPARED for more than 5 minutes: the recording service has not started "
              "recording, and the class is not being recorded.", "5m", TASK_VIEW),
        alert(cfg, "TiwPushRecordingStuckStopped",
              f"min_over_time({status['STOPPED']}[{GAP}]) == 1\n{ended}", "warning",
              "Recording {{ $labels.task_id }} stays STOPPED and does not reach FINISHED.",
              f"{RECORDING} stopped more than {cfg.record_stopped_for} ago and TIW is still processing or uploading "
              "its video: it has not reached FINISHED, so there is no replay yet. TIW does not document how long "
              f"that takes; {cfg.record_stopped_for} is this site's threshold (record_stopped_for).",
              cfg.record_stopped_for, TASK_VIEW),
    ]


def transcode_alerts(cfg: Config) -> list[dict[str, Any]]:
    """Document transcodes: courseware that fails or waits is a class without slides, but a ticket, never a
    page (the cause is usually the customer's file or TIW's capacity)."""
    window = TRANSCODE_WINDOW
    failed = f"sdk_app_id:tiw_transcode_tasks_finished_failed:increase{window}"
    finished = f"sdk_app_id:tiw_transcode_tasks_finished:increase{window}"
    bucket = cfg.sel("tiw_transcode_queue_wait_seconds_bucket")
    count = cfg.sel("tiw_transcode_queue_wait_seconds_count")
    wait = cfg.transcode_queue_wait_seconds
    queued = cfg.sel("tiw_transcode_task_status", status="QUEUED")
    final = cfg.sel("tiw_transcode_task_finish_reason")
    return [
        alert(cfg, "TiwPushTranscodeFailureRatioHigh",
              f"sdk_app_id:tiw_transcode_tasks_finished_failed:ratio_rate{window} > {cfg.transcode_failure_ratio:g}\n"
              f"and\n{failed} >= {cfg.transcode_min_failed}\nand\n{finished} >= {cfg.transcode_min_volume}",
              "warning", "Document transcodes of SdkAppId {{ $labels.sdk_app_id }} fail.",
              f"{{{{ $value | humanizePercentage }}}} of the transcodes of SdkAppId {{{{ $labels.sdk_app_id }}}} that "
              f"finished in the last {window} FAILED (at least {cfg.transcode_min_failed} failures among at least "
              f"{cfg.transcode_min_volume} transcodes; threshold {cfg.transcode_failure_ratio:.0%}): teachers start "
              "classes without their slides. tiw_transcode_failures_total tells whose: file codes "
              "(FailedOperation.File*, InvalidParameter.*, LimitExceeded.TranscodePagesLimitation) are usually the "
              "customer's documents, FailedOperation.Transcode* and *ServerError are TIW's.", "5m", APP_VIEW),
        alert(cfg, "TiwPushTranscodeQueueWaitHigh",
              f"histogram_quantile(0.95,\n  sum without ({REPLICA}) (rate({bucket}[{window}]))\n) > {wait:g}\n"
              f"and\nsum without ({REPLICA}) (increase({count}[{window}])) >= {cfg.transcode_min_volume}",
              "warning", "Document transcodes of SdkAppId {{ $labels.sdk_app_id }} wait long in TIW's queue.",
              f"95% of the transcodes of SdkAppId {{{{ $labels.sdk_app_id }}}} that TIW assigned in the last {window} "
              f"waited up to {{{{ $value | humanizeDuration }}}} in its queue (AssignTime - CreateTime; threshold "
              f"{wait:g}s, at least {cfg.transcode_min_volume} transcodes): teachers wait for their slides. The "
              "cause is TIW's capacity or the account's concurrency quota, not the exporter.", "5m", APP_VIEW),
        alert(cfg, "TiwPushTranscodeStuckQueued",
              f"min_over_time({queued}[{GAP}]) == 1\nunless ignoring (status, reason)\n"
              f"last_over_time({final}[{GAP}]) == 1", "warning",
              "Transcode {{ $labels.task_id }} is stuck in TIW's queue.",
              f"{TRANSCODE} has been QUEUED for more than {cfg.transcode_stuck_queued_for}: TIW has not started "
              "converting the document, and its class has no slides yet.", cfg.transcode_stuck_queued_for, TASK_VIEW),
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
              f"and\nmax_over_time({cfg.sel('tiw_exporter_credential_refresh_failures')}[{GAP}]) > 0", "warning",
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


def unpaused_active(cfg: Config) -> str:
    """Per exporter, its active (or not yet answered) tasks through 5 minutes of samples, but for those of
    SdkAppIds whose polling is paused: a pause has its own alert (AccountPaused; for a refused key every
    SdkAppId of the account is paused and CredentialPaused pages), and the tasks it leaves unanswered are
    its consequence, not a second outage."""
    paused = cfg.sel("tiw_exporter_account_paused")
    return (f"sum without (sdk_app_id, status, kind) (\n  (\n{_indent(_indent(active_tasks(cfg)))}\n  )\n"
            f"  unless ignoring (status, code, kind)\n  max_over_time({paused}[{GAP}]) == 1\n)")


# The not-yet-final statuses of the other task kinds (a recording's STOPPED is not final: it is still polled)
KIND_ACTIVE = (("tiw_record_tasks", "PREPARED|RECORDING|PAUSED|STOPPED"), ("tiw_transcode_tasks", "QUEUED|PROCESSING"))


def active_tasks(cfg: Config) -> str:
    """Every kind's active (or not yet answered) tasks through 5 minutes of samples, per SdkAppId and status:
    pushes as they are, the other kinds with a ``kind`` label so that their series never shadow a push's.
    Parenthesise it before ``unless`` or ``and``: ``or`` binds more loosely."""
    parts = [f"max_over_time({cfg.sel('tiw_push_tasks', status='~UNKNOWN|' + ACTIVE)}[{GAP}])"]
    parts += [f'label_replace(max_over_time({cfg.sel(family, status="~UNKNOWN|" + statuses)}[{GAP}]), "kind", '
              f'"{family.split("_")[1]}", "", "")' for family, statuses in KIND_ACTIVE]
    return "\nor\n".join(parts)


def exporter_alerts(cfg: Config) -> list[dict[str, Any]]:
    """The exporter itself: down, absent or blind page; degraded is a ticket."""
    up = cfg.sel("up")
    requests = "tiw_exporter_api_requests_total"
    # Every active task of the exporter belongs to a paused SdkAppId: what it has not answered is explained.
    all_paused = (f"sum without (sdk_app_id, status, kind) (\n{_indent(active_tasks(cfg))}\n) > 0\n"
                  f"unless on (job, instance)\n{unpaused_active(cfg)} > 0")
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
              f"{unpaused_active(cfg)} > 0\n"
              "unless on (job, instance)\n"
              f"sum without (action, outcome) (increase({cfg.sel(requests, outcome='success')}[10m])) > 0",
              "critical", "tiw-push-exporter {{ $labels.instance }} has had no successful API answer for 10 minutes.",
              "{{ $labels.instance }} tracks {{ $value | printf \"%.0f\" }} active tasks of SdkAppIds that are "
              "not paused, but none of its TIW API requests succeeded in 10 minutes (network, endpoint, TIW "
              "itself): their data is old and no task alert can fire. Tasks of paused SdkAppIds and accounts do "
              "not count; AccountPaused and CredentialPaused name that cause.",
              "5m", INSTANCE_VIEW),
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
        alert(cfg, "TiwPushExporterSecretReloadFailed",
              f"max_over_time({cfg.sel('tiw_exporter_secret_reload_success')}[{GAP}]) == 0", "warning",
              "tiw-push-exporter {{ $labels.instance }} cannot reload its secret file {{ $labels.secret }}.",
              "The last read of the secret file {{ $labels.secret }} on {{ $labels.instance }} failed; the "
              "exporter keeps using the previous value, so a rotated key is not in effect and the old one stops "
              "working when it is revoked.", "1m", INSTANCE_VIEW),
        alert(cfg, "TiwPushExporterCoverageLow",
              f"max_over_time({cfg.sel('tiw_exporter_coverage_ratio')}[10m]) < {cfg.coverage_min:g}\n"
              f"unless on (job, instance)\n(\n{_indent(all_paused)}\n)", "warning",
              "tiw-push-exporter {{ $labels.instance }} has no fresh answer for part of its active tasks.",
              "Only {{ $value | humanizePercentage }} of the active tasks of {{ $labels.instance }} had a fresh "
              "answer (the running list or a detail query) at any point of the last 10 minutes, for 10 minutes "
              f"(threshold {cfg.coverage_min:.0%}): the others' status may be wrong. Blind pages when nothing "
              "is answered at all. Silent while every active task belongs to a paused SdkAppId (its own alert "
              "names the cause).", "5m", INSTANCE_VIEW),
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
        {"name": "tiw-push.slo", "rules": slo_rules(cfg) + record_slo_rules(cfg) + transcode_rules(cfg)},
        {"name": "tiw-push.fleet", "rules": fleet_alerts(cfg)},
        {"name": "tiw-push.tasks", "rules": task_alerts(cfg)},
        {"name": "tiw-push.accounts", "rules": account_alerts(cfg)},
        {"name": "tiw-push.exporter", "rules": exporter_alerts(cfg)},
        {"name": "tiw-push.recordings", "rules": record_alerts(cfg)},
        {"name": "tiw-push.transcodes", "rules": transcode_alerts(cfg)},
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
    parser.add_argument("--record-slo-target", type=float, default=Config.record_slo_target,
                        help="share of recordings that end well (without EXCEPTION, FORCE_STOP or FAILED)")
    parser.add_argument("--record-stopped-for", default=Config.record_stopped_for,
                        help="how long a recording may stay STOPPED (video processing, undocumented by TIW) before "
                             "TiwPushRecordingStuckStopped fires")
    parser.add_argument("--transcode-queue-wait-seconds", type=float, default=Config.transcode_queue_wait_seconds,
                        help="p95 of the transcode queue wait above which TiwPushTranscodeQueueWaitHigh fires")
    parser.add_argument("--grafana-url", default=Config.grafana_url, help="base of the dashboard_url annotations")
    parser.add_argument("--runbook-url", default=Config.runbook_url,
                        help="the runbook (alerts/runbook.md) as your site serves it: each alert's runbook_url is "
                             "this URL with the alert's section as #anchor")
    parser.add_argument("--site-labels", default=",".join(Config.site_labels),
                        help="comma-separated target labels that tell your sites apart (the account join matches "
                             "on them; use the same in Alertmanager's group_by and inhibit_rules' equal)")
    parser.add_argument("--output", type=Path, default=TARGET)
    args = parser.parse_args(argv)
    sites = tuple(label.strip() for label in args.site_labels.split(",") if label.strip())
    text = render(Config(job_selector=args.job_selector, slo_target=args.slo_target, grafana_url=args.grafana_url,
                         runbook_url=args.runbook_url, site_labels=sites, record_slo_target=args.record_slo_target,
                         record_stopped_for=args.record_stopped_for,
                         transcode_queue_wait_seconds=args.transcode_queue_wait_seconds))
    return write_or_check(args.output, text, args.check, "python alerts/generate.py")


if __name__ == "__main__":
    sys.exit(main())
