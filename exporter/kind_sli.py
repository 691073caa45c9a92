"""The SLI counters of every kind (``<prefix>_tasks_started_total``, ``_finished_total``), and the transcode
timing histograms.

Each task is counted once in its life
(``lifecycle.take_milestones``, kept across restarts), so rates over days stay honest after the per-task
series left with ``--finished-retention``. Every reason of an SdkAppId starts at 0, so ``increase()``
sees the first failure too.

A transcode's queue wait (AssignTime - CreateTime) and processing time (FinishedTime - AssignTime) are
observed once, when it becomes final: that is the one moment counted exactly once, and TIW gives both
times then. A transcode still queued shows in ``tiw_transcode_task_status{status="QUEUED"}``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from exporter.kind_metrics import RECORD_REASONS, TRANSCODE_REASONS
from exporter.kinds import PUSH_KIND
from exporter.lifecycle import ENDINGS, FAILED, Milestones, TaskRecord

QUEUE_WAIT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800)
PROCESSING_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600)


class KindCounters:
    """``<prefix>_tasks_started_total`` and ``<prefix>_tasks_finished_total`` of one kind."""

    def __init__(self, registry: CollectorRegistry, prefix: str, tasks: str, reasons: tuple[str, ...]) -> None:
        """``tasks``: what the help text calls them ("Push tasks", "Recordings")."""
        self.reasons = reasons
        self.started = Counter(
            f"{prefix}_tasks_started", f"{tasks} seen for the first time (first answer, or ending "
            "unanswered), counted once per task, by SdkAppId.", ["sdk_app_id"], registry=registry)
        self.finished = Counter(
            f"{prefix}_tasks_finished", f"{tasks} that became final, counted once per task, by SdkAppId "
            f"and finish reason ({', '.join(reasons)}; OTHER for a reason TIW did not document).",
            ["sdk_app_id", "reason"], registry=registry)

    def count(self, record: TaskRecord, milestones: Milestones) -> None:
        app = str(record.sdk_app_id)
        started = self.started.labels(app)
        for reason in self.reasons:
            self.finished.labels(app, reason)
        if milestones.started:
            started.inc()
        if milestones.finished:
            reason = record.finish_reason if record.finish_reason in self.reasons else "OTHER"  # bounded labels
            self.finished.labels(app, reason).inc()


class TranscodeCounters(KindCounters):
    """The transcode SLI, its failures by code and its two timing histograms."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry, "tiw_transcode", "Transcodes", TRANSCODE_REASONS)
        self.failures = Counter(
            "tiw_transcode_failures", "Transcodes that failed (final), counted once per task, by SdkAppId and the "
            "error code TIW answered.", ["sdk_app_id", "code"], registry=registry)
        self.queue_wait = Histogram(
            "tiw_transcode_queue_wait_seconds", "How long a transcode waited in TIW's queue (AssignTime - "
            "CreateTime), observed once when it became final.", ["sdk_app_id"], buckets=QUEUE_WAIT_BUCKETS,
            registry=registry)
        self.processing = Histogram(
            "tiw_transcode_processing_seconds", "How long a finished transcode was processed (FinishedTime - "
            "AssignTime), observed once when it finished.", ["sdk_app_id"], buckets=PROCESSING_BUCKETS,
            registry=registry)

    def count(self, record: TaskRecord, milestones: Milestones) -> None:
        super().count(record, milestones)
        if not milestones.finished:
            return
        app, task = str(record.sdk_app_id), record.latest
        if record.ended == FAILED and record.last_error is not None:
            self.failures.labels(app, record.last_error.code).inc()
        if task is not None and task.assign_time and task.create_time and task.assign_time >= task.create_time:
            self.queue_wait.labels(app).observe(task.assign_time - task.create_time)
            if task.status == "FINISHED" and task.finished_time >= task.assign_time:
                self.processing.labels(app).observe(task.finished_time - task.assign_time)


def kind_counters(registry: CollectorRegistry) -> dict[str, KindCounters]:
    """The SLI counters of every kind (``kinds.KINDS``)."""
    push_reasons = (*PUSH_KIND.finish_reasons, *ENDINGS)
    return {"push": KindCounters(registry, "tiw_push", "Push tasks", push_reasons),
            "record": KindCounters(registry, "tiw_record", "Recordings", RECORD_REASONS),
            "transcode": TranscodeCounters(registry)}
