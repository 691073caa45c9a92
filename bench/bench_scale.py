"""Scale: 50,000 tasks in one process.

In-process exporter, simulator in a subprocess: RSS with 50k tracked tasks, scrape time, and exporter
CPU per poll while polling at 200 req/s. (How much of one account's budget one process achieves is
``bench_budget``; there is one writer per account, so no replica count to compare.)

Run: python -m bench.bench_scale [tasks] [seconds]
"""

from __future__ import annotations

import os
import sys
import time

import requests

from bench.bench_memory import rss_mib
from exporter.config import build_settings
from exporter.runtime import Exporter
from exporter.simulator import SimulatorClient
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from tests.procs import SIMULATOR_URL, exporter_cmd, running

APP = 1400000001
ACTION = "DescribeWhiteboardPush"


def add_tasks(url: str, count: int) -> list[str]:
    control = SimulatorClient(url, session=requests.Session())
    return [control.add_task(APP, prepare_seconds=0) for _ in range(count)]


def sim_counts(url: str) -> tuple[int, int, int]:
    stats = SimulatorClient(url).stats()
    return (stats["requests"].get(ACTION, {}).get("success", 0), stats["throttled"],
            stats["max_arrivals_in_any_second"].get(ACTION, 0))


def one_process(tasks: int, seconds: float) -> None:
    sim = exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix", "--rate-limit", "0")
    with running(sim, SIMULATOR_URL) as (_, url):
        task_ids = add_tasks(url, tasks)
        before = rss_bytes()
        settings = build_settings({"listen": "127.0.0.1:0", "endpoint": url, "rate_limit": "200",
                                   "concurrency": "16", "tasks": tuple(f"{APP}:{t}" for t in task_ids),
                                   "log_level": "warning"})
        exporter = Exporter(settings, credentials=StaticCredentials(Credential("AKIDsimulator",
                                                                               "simulator-secret-key")))
        exporter.start()
        try:
            time.sleep(3)
            polls0, cpu0 = sim_counts(url)[0], time.process_time()
            time.sleep(seconds)
            polls1, cpu1 = sim_counts(url)[0], time.process_time()
            started = time.perf_counter()
            body = requests.get(f"{exporter.url}/metrics", timeout=60).content
            scrape = time.perf_counter() - started
            started = time.perf_counter()
            requests.get(f"{exporter.url}/metrics", timeout=60)
            scrape_warm = time.perf_counter() - started
            rss = rss_bytes()
        finally:
            exporter.stop()
    polls = polls1 - polls0
    print(f"one process, {tasks} tasks: RSS +{(rss - before) / 2**20:.0f} MiB ({(rss - before) / tasks:.0f} B/task)")
    print(f"  scrape over HTTP {scrape * 1000:.0f} ms cold, {scrape_warm * 1000:.0f} ms warm "
          f"({len(body) / 2**20:.0f} MiB); {polls / seconds:.0f} polls/s at "
          f"{(cpu1 - cpu0) / max(polls, 1) * 1000:.2f} ms CPU per poll (exporter process, incl. its simulator client)")


def rss_bytes() -> int:
    """This process' resident set (the in-process exporter of part 1)."""
    return int(rss_mib(os.getpid()) * 2**20)


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    one_process(size, float(sys.argv[2]) if len(sys.argv) > 2 else 20.0)
