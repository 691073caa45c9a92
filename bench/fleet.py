"""A realistic fleet of tracked tasks for benchmarks: every status, errors, some backups.

``records=True`` makes the fleet the issue-21 mix: every sixth task (5/6 pushes, 1/6 recordings, the
ratio of 10,000 pushes and 2,000 recordings) is a real-time recording in every status of its own.
"""

from __future__ import annotations

import random
import time

from exporter.kind_answers import RecordTask
from exporter.lifecycle import TaskError, merge_error, merge_result
from exporter.model import PushTask, TaskKey, task_key
from exporter.store import TaskStore

STATUSES = ("PREPARED", "PUSHING", "PUSHING", "PUSHING", "STOPPED")
REASONS = ("AUTO", "USER_CALL", "EXCEPTION")
RECORD_STATUSES = ("PREPARED", "RECORDING", "RECORDING", "RECORDING", "PAUSED", "STOPPED", "FINISHED")
RECORD_REASONS = ("AUTO", "USER_CALL", "EXCEPTION", "FORCE_STOP")
RECORD_EVERY = 6  # with records=True, task i is a recording when i % RECORD_EVERY == RECORD_EVERY - 1


def task_id(i: int) -> str:
    return f"{i:08d}{'abcdefghijkl'[i % 12]}x7k2m9q4p1z"


def answer(i: int, rng: random.Random) -> PushTask:
    status = STATUSES[i % len(STATUSES)]
    start = 1_764_000_000 + i if status != "PREPARED" else 0
    return PushTask(
        sdk_app_id=1400000001 + i % 4, task_id=task_id(i), status=status,
        finish_reason=REASONS[i % 3] if status == "STOPPED" else "", room_id=100000 + i, group_id=str(100000 + i),
        push_user_id=f"tic_push_user_{100000 + i}_{i % 977}", push_start_time=start,
        push_stop_time=start + 1800 if status == "STOPPED" else 0, exception_cnt=rng.randrange(5),
        im_sync_time=start, backup='{"Status":"PUSHING","ExceptionCnt":0}' if i % 10 == 0 else "",
        request_id=f"{rng.getrandbits(128):032x}",
    )


def is_record(i: int, records: bool) -> bool:
    return records and i % RECORD_EVERY == RECORD_EVERY - 1


def record_answer(i: int, rng: random.Random) -> RecordTask:
    """A DescribeOnlineRecord answer of task ``i``: a class recording with one or two pauses and interrupts."""
    status = RECORD_STATUSES[(i // RECORD_EVERY) % len(RECORD_STATUSES)]
    start = 1_764_000_000 + i if status != "PREPARED" else 0
    ended = status in ("STOPPED", "FINISHED")
    finished = status == "FINISHED"
    return RecordTask(
        sdk_app_id=1400000001 + i % 4, task_id=task_id(i), status=status,
        finish_reason=RECORD_REASONS[i % 4] if ended else "", room_id=100000 + i, group_id=str(100000 + i),
        record_user_id=f"tic_record_user_{100000 + i}_{i % 977}", record_start_time=start,
        record_stop_time=start + 2700 if ended else 0, total_time_ms=2_640_000 if finished else 0,
        exception_cnt=rng.randrange(5), omitted_ms=60_000 if finished else 0, videos=2 if finished else 0,
        interrupts=rng.randrange(3), request_id=f"{rng.getrandbits(128):032x}",
    )


def key_and_answer(i: int, rng: random.Random, records: bool) -> tuple[TaskKey, PushTask | RecordTask]:
    if is_record(i, records):
        result: PushTask | RecordTask = record_answer(i, rng)
        return task_key(result.sdk_app_id, result.task_id, "record"), result
    result = answer(i, rng)
    return task_key(result.sdk_app_id, result.task_id), result


def build_store(size: int, seed: int = 1, records: bool = False) -> TaskStore:
    """``size`` tasks: pushes, or with ``records`` the 5:1 mix of pushes and recordings."""
    rng = random.Random(seed)
    store = TaskStore()
    now = time.time()
    for i in range(size):
        key, result = key_and_answer(i, rng, records)
        store.add(key, "file")
        store.update(key, lambda r, result=result: merge_result(r, result, now))
        if i % 50 == 0:
            store.update(key, lambda r: merge_error(r, TaskError("InternalError", "x", "rid", now)))
    return store


def touch(store: TaskStore, count: int, rng: random.Random, records: bool = False) -> None:
    """What ``count`` polls do between two scrapes: new answers for random tasks (of a mix with ``records``)."""
    size = len(store)
    now = time.time()
    for _ in range(count):
        key, result = key_and_answer(rng.randrange(size), rng, records)
        store.update(key, lambda r, result=result: merge_result(r, result, now))
