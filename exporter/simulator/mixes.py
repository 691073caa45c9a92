"""Seeded task mixes: a fleet seen mid-life, the demo mix, tasks that keep arriving, and the scripts of
recordings and transcodes started without one.

Every draw comes from a ``random.Random`` the caller owns (and locks), so a seed replays a run. Tasks
with a backup push answer the documented Describe ``Backup`` (``"{}"``), never an invented result.
"""

from __future__ import annotations

import random
import string

from exporter.simulator.lifecycle import DOCUMENTED_DESCRIBE_BACKUP, PUSH_FINISH_REASONS, TaskScript
from exporter.simulator.record_lifecycle import RecordScript
from exporter.simulator.transcode_lifecycle import TranscodeScript

_ID_ALPHABET = string.ascii_lowercase + string.digits


def _uniform(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 1)


def _weighted_reason(rng: random.Random) -> str:
    return rng.choices(PUSH_FINISH_REASONS, weights=(50, 35, 15))[0]


def random_id(rng: random.Random) -> str:
    return "".join(rng.choices(_ID_ALPHABET, k=20))


def random_script(rng: random.Random) -> TaskScript:
    """A script for a task created now (StartWhiteboardPush without the test hook)."""
    roll = rng.random()
    prepare = _uniform(rng, 1.0, 8.0)
    if roll < 0.6:
        return TaskScript(prepare)
    if roll < 0.7:
        return TaskScript(prepare, exceptions_per_minute=_uniform(rng, 0.5, 6.0))
    if roll < 0.9:
        return TaskScript(prepare, _uniform(rng, 300, 3600), _weighted_reason(rng))
    if roll < 0.95:
        return TaskScript(prepare, _uniform(rng, 60, 600), "EXCEPTION", exceptions_per_minute=_uniform(rng, 2, 20))
    return TaskScript(prepare, _uniform(rng, 5, 60), "EXCEPTION", fail_with="FailedOperation.WhiteboardPush")


def populated_task(rng: random.Random) -> tuple[float, TaskScript]:
    """(age in seconds, script) for a task of a fleet observed mid-life."""
    roll = rng.random()
    prepare = _uniform(rng, 1.0, 8.0)
    if roll < 0.15:
        return _uniform(rng, 0, 5), TaskScript(_uniform(rng, 20, 300))
    if roll < 0.65:
        age = _uniform(rng, 60, 4 * 3600)
        push = None if rng.random() < 0.6 else age + _uniform(rng, 600, 7200)
        rate = _uniform(rng, 0.5, 6.0) if rng.random() < 0.2 else 0.0
        return age, TaskScript(prepare, push, _weighted_reason(rng), rate)
    if roll < 0.9:
        age = _uniform(rng, 600, 2 * 86400)
        reason = _weighted_reason(rng)
        rate = _uniform(rng, 1, 20) if reason == "EXCEPTION" else 0.0
        return age, TaskScript(prepare, _uniform(rng, 60, age - prepare - 1), reason, rate)
    if roll < 0.95:
        return _uniform(rng, 0, 600), TaskScript(prepare, 30.0, "EXCEPTION", fail_with="FailedOperation.WhiteboardPush")
    return _uniform(rng, 60, 3600), TaskScript(prepare, backup=DOCUMENTED_DESCRIBE_BACKUP)


def demo_scripts() -> list[tuple[float, TaskScript]]:
    """The demo mix as (age, script): every state and finish reason shows within two minutes.

    The task with a backup push answers ``Backup`` as the API page shows it (``"{}"``): the shape of a
    live backup push's result is undocumented, so the demo invents none.
    """
    return [
        (0, TaskScript(1)),
        (0, TaskScript(3)),
        (0, TaskScript(2, exceptions_per_minute=6)),
        (0, TaskScript(45)),
        (0, TaskScript(2, 40, "AUTO")),
        (0, TaskScript(2, 70, "USER_CALL")),
        (0, TaskScript(5, 55, "EXCEPTION", exceptions_per_minute=12)),
        (0, TaskScript(2, 90, "EXCEPTION", fail_with="FailedOperation.WhiteboardPush")),
        (0, TaskScript(5, fail_with="FailedOperation.WhiteboardPush")),  # fails at start: never pushes
        (0, TaskScript(2, backup=DOCUMENTED_DESCRIBE_BACKUP)),
        (600, TaskScript(3, 300, "AUTO")),
    ]


def spawned_script(rng: random.Random) -> TaskScript:
    """A short demo-like lifecycle for tasks that keep arriving."""
    reason = _weighted_reason(rng)
    rate = _uniform(rng, 2, 12) if reason == "EXCEPTION" or rng.random() < 0.2 else 0.0
    return TaskScript(_uniform(rng, 1, 10), _uniform(rng, 30, 180), reason, rate)


def random_user_suffix(rng: random.Random) -> str:
    return "".join(rng.choices(_ID_ALPHABET, k=5))


def random_record_script(rng: random.Random) -> RecordScript:
    """A script for a recording started now (StartOnlineRecord without the test hook)."""
    roll = rng.random()
    prepare, finish = _uniform(rng, 1.0, 8.0), _uniform(rng, 5, 60)
    if roll < 0.6:
        return RecordScript(prepare, finish_seconds=finish)
    if roll < 0.75:
        return RecordScript(prepare, _uniform(rng, 300, 3600), rng.choice(("AUTO", "USER_CALL")), finish,
                            pauses=((_uniform(rng, 30, 200), _uniform(rng, 10, 120)),))
    if roll < 0.9:
        return RecordScript(prepare, _uniform(rng, 60, 600), "EXCEPTION", finish,
                            exceptions_per_minute=_uniform(rng, 2, 20), interrupts_per_minute={"teacher": 1.0})
    return RecordScript(prepare, _uniform(rng, 5, 60), finish_seconds=finish, fail_with="FailedOperation.Record")


TRANSCODE_FAILURES = ("FailedOperation.Transcode", "FailedOperation.FileDownloadFail",
                      "FailedOperation.FileFormatError", "InvalidParameter.UrlFormatError",
                      "LimitExceeded.TranscodePagesLimitation")


def random_transcode_script(rng: random.Random) -> TranscodeScript:
    """A script for a transcode created now (CreateTranscode without the test hook)."""
    timing = (_uniform(rng, 0, 30), _uniform(rng, 5, 120), rng.randint(1, 80))
    failure = rng.choice(TRANSCODE_FAILURES) if rng.random() < 0.1 else None
    return TranscodeScript(*timing, fail_with=failure)


def demo_records() -> list[tuple[float, RecordScript]]:
    """The demo's recordings as (age, script): every status and finish reason within two minutes."""
    return [
        (0, RecordScript(1)),
        (0, RecordScript(3, queued_seconds=20)),
        (0, RecordScript(2, 90, "AUTO", 20, pauses=((20, 15),))),
        (0, RecordScript(3, 60, "USER_CALL", 30)),
        (0, RecordScript(2, 50, "EXCEPTION", 15, exceptions_per_minute=12,
                         interrupts_per_minute={"teacher": 4, "student_1": 2})),
        (0, RecordScript(2, 40, finish_seconds=10, fail_with="FailedOperation.Record")),
        (5430, RecordScript(0, finish_seconds=60, pauses=((0, None),))),  # paused 90 min: FORCE_STOP
    ]


def demo_transcodes() -> list[tuple[float, TranscodeScript, str]]:
    """The demo's transcodes as (age, script, document URL): queued, processing, finished and failing."""
    deck, handout = "https://courseware.example.com/lesson-1.pptx", "https://courseware.example.com/handout.pdf"
    return [
        (0, TranscodeScript(5, 60, 24), deck),
        (0, TranscodeScript(0, 30, 8), handout),
        (0, TranscodeScript(40, 40, 12), deck),
        (0, TranscodeScript(2, 20, fail_with="FailedOperation.FileFormatError"), handout),
        (0, TranscodeScript(0, 10, 300, fail_with="LimitExceeded.TranscodePagesLimitation"), deck),
        (600, TranscodeScript(1, 30, 16), deck),
    ]
