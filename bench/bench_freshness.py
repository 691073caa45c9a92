"""ExceptionCnt freshness of steady tasks against the physical cycle N / (0.92 x 20) s, after a restart.

A steady PUSHING task's ExceptionCnt is only as fresh as its last DescribeWhiteboardPush answer:
with liveness on, steady tasks share what the budget leaves, so each is answered about once per
N / (0.92 x 20 req/s) seconds (the physical cycle). An exception that rises at a random moment shows
at the task's next answer, so its delay is the wait until that answer.

The run starts as a restart does: the exporter opens a state file of N PUSHING tasks whose last
answers are spread over the past cycle (as a running exporter leaves them), with the simulator
knowing the same N tasks (200 ms latency, 20 req/s per action). Every answer is recorded in this
process (the exporter runs in it); rises are then drawn at uniformly random moments of the first
cycle after the restart, each on a random task, and the delay is that task's next answer after it.
Printed: delay p50 / p95 / max, p95 as a share of the cycle, DescribeWhiteboardPush req/s, the
throttled count, and this process's CPU over the window (the exporter with liveness, polling and state
saves; nothing scrapes it, the simulator runs elsewhere).

Run: python -m bench.bench_freshness [N ...]   (default 1000 3000; 10000 takes ~12 minutes)
"""

from __future__ import annotations

import bisect
import random
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import requests

from exporter.collector import Collector
from exporter.config import build_settings
from exporter.lifecycle import merge_result
from exporter.model import PushTask
from exporter.ratelimit import HEADROOM
from exporter.runtime import Exporter
from exporter.simulator import DEFAULT_SDK_APP_ID, DEMO_SECRET_ID, DEMO_SECRET_KEY, SimulatorClient
from exporter.statedb import StateDB
from exporter.store import TaskStore
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from tests.procs import SIMULATOR_URL, exporter_cmd, running

LIMIT = 20
RISES = 2000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def write_state(path: Path, ids: list[str], cycle: float, now: float, rng: random.Random) -> None:
    """N PUSHING tasks answered at moments spread over the past cycle, as a running exporter saves them."""
    store = TaskStore()
    for task_id in ids:
        key = (DEFAULT_SDK_APP_ID, task_id)
        store.add(key, "api")
        answered = now - rng.uniform(0, cycle)
        store.update(key, lambda r, t=task_id, at=answered: merge_result(r, PushTask(DEFAULT_SDK_APP_ID, t, "PUSHING"),
                                                                           at))
    db = StateDB(path)
    db.write([replace(r, sources=frozenset({"api"})) for r in store.snapshot()], [])
    db.close()


def record_answers() -> dict[str, list[float]]:
    """Every answered poll's time per task, from the collector itself (in this process)."""
    answers: dict[str, list[float]] = {}
    lock = threading.Lock()
    original = Collector.poll

    def poll(self: Collector, key: tuple[int, str], due: float) -> None:
        original(self, key, due)
        with lock:
            answers.setdefault(key[1], []).append(time.time())

    Collector.poll = poll  # type: ignore[method-assign]
    return answers


def run(n: int, rng: random.Random) -> None:
    cycle = n / (HEADROOM * LIMIT)
    args = exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix", "--latency", "200ms",
                        "--rate-limit", str(LIMIT))
    with running(args, SIMULATOR_URL) as (_, url), tempfile.TemporaryDirectory() as tmp:
        control = SimulatorClient(url, session=requests.Session())
        ids = [control.add_task(DEFAULT_SDK_APP_ID, prepare_seconds=0) for _ in range(n)]
        state = Path(tmp) / "state.db"
        write_state(state, ids, cycle, time.time(), rng)
        settings = build_settings({"listen": "127.0.0.1:0", "endpoint": url, "rate_limit": str(LIMIT),
                                   "state_file": str(state), "log_level": "error", "liveness_interval": "5s"})
        answers = record_answers()
        exporter = Exporter(settings, credentials=StaticCredentials(Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)))
        before = control.stats()
        started, cpu = time.time(), time.process_time()
        exporter.start()
        window = 1.25 * cycle + 10  # every rise of the first cycle gets its answer
        try:
            time.sleep(window)
        finally:
            exporter.stop()
        elapsed = time.time() - started
        cpu = (time.process_time() - cpu) / elapsed
        after = control.stats()
    delays = []
    for _ in range(RISES):
        task = rng.choice(ids)
        rise = started + rng.uniform(0, cycle)
        times = sorted(answers.get(task, []))
        index = bisect.bisect_right(times, rise)
        delays.append(times[index] - rise if index < len(times) else started + elapsed - rise)  # censored: a bound
    polls = sum(len(t) for t in answers.values())
    throttled = after["throttled"] - before["throttled"]
    p95 = percentile(delays, 0.95)
    print(f"| {n:,} | {cycle:.0f} | {percentile(delays, 0.5):.0f} / {p95:.0f} / {max(delays):.0f} "
          f"| {p95 / cycle:.2f} | {polls / elapsed:.2f} | {throttled} | {cpu:.1%} |", flush=True)


def main(sizes: list[int]) -> None:
    print("| N | cycle N/(0.92x20) s | ExceptionCnt rise -> answer p50 / p95 / max (s) | p95 / cycle "
          "| DescribeWhiteboardPush req/s | throttled | exporter CPU (of one core, no scrapes) |")
    print("|---|---|---|---|---|---|---|")
    for n in sizes:
        run(n, random.Random(n))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:] if a.isdigit()] or [1000, 3000])
