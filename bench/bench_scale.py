"""Scale: 50,000 tasks in one process, and 3 shards vs 1 on the same task set.

Part 1 (in-process exporter, simulator in a subprocess): RSS with 50k tracked tasks, scrape time,
and exporter CPU per poll while polling at 200 req/s.
Part 2 (all subprocesses): 300 active tasks polled by 1 replica, then by 3 shards, against one
account limit of 20 req/s: achieved req/s, throttled requests, the largest 1 s window.

Run: python -m bench.bench_scale [tasks] [seconds] [--shards-only]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import requests

from bench.bench_memory import rss_mib
from exporter.config import build_settings
from exporter.runtime import Exporter
from exporter.simulator import SimulatorClient
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from tests.procs import SIMULATOR_URL, Process, exporter_cmd, running

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


def replicas(count: int, url: str, tasks_file: Path, key_file: Path, seconds: float) -> tuple[float, int, int]:
    processes = []
    try:
        for index in range(count):
            args = exporter_cmd("run", "--listen", "127.0.0.1:0", "--endpoint", url, "--secret-id", "AKIDsimulator",
                                "--secret-key-file", str(key_file), "--tasks-file", str(tasks_file),
                                "--shard-index", str(index), "--shard-count", str(count),
                                "--liveness-interval", "0")  # every task polled: the pacing is measured
            processes.append(Process(args))
        for process in processes:
            process.wait_for(r"listening on")
        time.sleep(5)
        ok0, throttled0, _ = sim_counts(url)
        time.sleep(seconds)
        ok1, throttled1, window = sim_counts(url)
    finally:
        for process in processes:
            process.stop()
    return (ok1 - ok0) / seconds, throttled1 - throttled0, window


def shards_vs_one(seconds: float, directory: Path) -> None:
    sim = exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix", "--rate-limit", "20",
                       "--latency", "50ms")
    key_file = directory / "key"
    key_file.write_text("simulator-secret-key")
    for count in (1, 3):
        with running(sim, SIMULATOR_URL) as (_, url):
            tasks_file = directory / "tasks.yml"
            tasks_file.write_text("".join(f"- {{sdk_app_id: {APP}, task_id: {t}}}\n" for t in add_tasks(url, 400)))
            rate, throttled, window = replicas(count, url, tasks_file, key_file, seconds)
        print(f"{count} replica(s), 400 active tasks, one account limited to 20 req/s: {rate:.2f} req/s "
              f"({rate / 20:.3f} of the limit), throttled {throttled}, max 1 s window {window}")


if __name__ == "__main__":
    import tempfile

    numbers = [a for a in sys.argv[1:] if not a.startswith("--")]
    size = int(numbers[0]) if numbers else 50_000
    duration = float(numbers[1]) if len(numbers) > 1 else 20.0
    if "--shards-only" not in sys.argv:
        one_process(size, duration)
    with tempfile.TemporaryDirectory() as tmp:
        shards_vs_one(duration, Path(tmp))
