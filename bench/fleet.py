"""A realistic fleet of tracked tasks for benchmarks: every status, errors, some backups."""

from __future__ import annotations

import random
import time

from exporter.lifecycle import TaskError, merge_error, merge_result
from exporter.model import PushTask
from exporter.store import TaskStore

STATUSES = ("PREPARED", "PUSHING", "PUSHING", "PUSHING", "STOPPED")
REASONS = ("AUTO", "USER_CALL", "EXCEPTION")


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


def build_store(size: int, seed: int = 1) -> TaskStore:
    rng = random.Random(seed)
    store = TaskStore()
    now = time.time()
    for i in range(size):
        key = (1400000001 + i % 4, task_id(i))
        store.add(key, "file")
        result = answer(i, rng)
        store.update(key, lambda r, result=result: merge_result(r, result, now))
        if i % 50 == 0:
            store.update(key, lambda r: merge_error(r, TaskError("InternalError", "x", "rid", now)))
    return store


def touch(store: TaskStore, count: int, rng: random.Random) -> None:
    """What ``count`` polls do between two scrapes: new answers for random tasks."""
    size = len(store)
    now = time.time()
    for _ in range(count):
        i = rng.randrange(size)
        result = answer(i, rng)
        store.update((result.sdk_app_id, result.task_id), lambda r, result=result: merge_result(r, result, now))
