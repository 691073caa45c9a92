"""Liveness + adaptive polling vs polling only, N live tasks on one account, no callbacks.

The simulator runs in its own process with 200 ms latency and 20 req/s per action; the exporter in
this one (so the RSS printed is the whole exporter process, bench harness included). For each N,
both designs run one after the other in this run, each against a fresh simulator with the same
population: N steady PUSHING tasks, STOPS of which stop at planned moments spread over the window
(some with exceptions rising). Measured: time from a task's stop to STOPPED in /metrics (p50, p95,
max; /metrics scraped every 0.5 s), the detail-data age of steady tasks at the end (p50/p95),
requests/s per action, throttled requests.

Run: python -m bench.bench_liveness [--liveness-only] [N ...]   (default 300 1000 3000; polling only
at 10,000 needs a window of ~10 minutes, hence ``--liveness-only``)
"""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path

import requests

from exporter.config import build_settings
from exporter.discovery import PAGE_SIZE, PAGE_STEP
from exporter.ratelimit import HEADROOM
from exporter.runtime import Exporter
from exporter.simulator import DEFAULT_SDK_APP_ID, DEMO_SECRET_ID, DEMO_SECRET_KEY, SimulatorClient
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from tests.procs import SIMULATOR_URL, exporter_cmd, running

LIMIT = 20
STOPS = 30
WARM = 20.0  # seconds before the first planned stop
SPREAD = 30.0  # planned stops are spread over this many seconds
STOPPED = re.compile(r'tiw_push_task_status\{[^}]*status="STOPPED",task_id="([^"]+)"\} 1')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))] if ordered else float("nan")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def populate(control: SimulatorClient, n: int) -> tuple[list[str], dict[str, float]]:
    """N tasks; STOPS of them stop at planned wall-clock moments (returned), planned from when the
    steady ones exist (adding 10,000 takes a while; a stop planned before that would be no stop at all)."""
    ids, stop_at = [], {}
    for _ in range(n - STOPS):
        ids.append(control.add_task(DEFAULT_SDK_APP_ID, prepare_seconds=0))
    start = time.time()
    for i in range(STOPS):
        added = time.time()
        push_seconds = max(1.0, start + WARM + SPREAD * i / STOPS - added)
        task_id = control.add_task(DEFAULT_SDK_APP_ID, prepare_seconds=0, push_seconds=push_seconds,
                                   exceptions_per_minute=6.0 if i % 3 == 0 else 0.0)
        stop_at[task_id] = added + push_seconds
        ids.append(task_id)
    return ids, stop_at


def run_mode(n: int, liveness: bool) -> dict[str, float]:
    args = exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix", "--latency", "200ms",
                        "--rate-limit", str(LIMIT))
    with running(args, SIMULATOR_URL) as (_, url):
        control = SimulatorClient(url, session=requests.Session())
        ids, stop_at = populate(control, n)
        settings = build_settings({"listen": "127.0.0.1:0", "endpoint": url, "rate_limit": str(LIMIT),
                                   "tasks": tuple(f"{DEFAULT_SDK_APP_ID}:{t}" for t in ids), "log_level": "error",
                                   "liveness_interval": "5s" if liveness else "0"})
        exporter = Exporter(settings, credentials=StaticCredentials(Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)))
        exporter.start()
        seen: dict[str, float] = {}
        window = WARM + SPREAD + (20.0 if liveness else n / (LIMIT * HEADROOM) + 10.0)
        try:
            before = control.stats()
            t0 = time.time()
            while time.time() - t0 < window and len(seen) < STOPS:
                text = requests.get(f"{exporter.url}/metrics", timeout=30).text
                now = time.time()
                for task_id in STOPPED.findall(text):
                    if task_id in stop_at and task_id not in seen:
                        seen[task_id] = now
                time.sleep(0.5)
            elapsed = time.time() - t0
            after = control.stats()
            fresh = exporter.freshness.refresh()
            rss = rss_mib()
        finally:
            exporter.stop()
    delays = [seen[t] - stop_at[t] for t in seen]
    rates = {a: (sum(after["requests"].get(a, {}).values()) - sum(before["requests"].get(a, {}).values())) / elapsed
             for a in ("DescribeWhiteboardPush", "DescribeRunningTasks")}
    return {"seen": len(seen), "p50": percentile(delays, 0.5), "p95": percentile(delays, 0.95),
            "max": max(delays, default=float("nan")), "detail_p50": fresh.ages["detail"].get(0.5, float("nan")),
            "detail_p95": fresh.ages["detail"].get(0.95, float("nan")), "push_rps": rates["DescribeWhiteboardPush"],
            "list_rps": rates["DescribeRunningTasks"], "throttled": after["throttled"] - before["throttled"],
            "coverage": fresh.coverage, "rss": rss,
            "period": pages_per_pass(n) / rates["DescribeRunningTasks"] if liveness else float("nan")}


def pages_per_pass(n: int) -> int:
    """DescribeRunningTasks pages one pass asks for N listed tasks (``discovery.list_running``)."""
    return 1 + max(0, math.ceil((n - PAGE_SIZE) / PAGE_STEP))


def main(sizes: list[int], designs: tuple[bool, ...] = (True, False)) -> None:
    print("| N | design | stops seen | stop -> /metrics p50 / p95 / max (s) | ExceptionCnt age p50 / p95 (s) "
          "| DescribeWhiteboardPush req/s | DescribeRunningTasks req/s | pass period (s) | throttled | coverage "
          "| RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for liveness in designs:
            r = run_mode(n, liveness)
            name = "liveness + adaptive" if liveness else "polling only"
            print(f"| {n:,} | {name} | {r['seen']}/{STOPS} | {r['p50']:.1f} / {r['p95']:.1f} / {r['max']:.1f} "
                  f"| {r['detail_p50']:.0f} / {r['detail_p95']:.0f} | {r['push_rps']:.2f} | {r['list_rps']:.2f} "
                  f"| {r['period']:.2f} | {r['throttled']} | {r['coverage']:.2f} | {r['rss']:.0f} |", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    only = "--liveness-only" in sys.argv
    main([int(a) for a in sys.argv[1:] if a.isdigit()] or [300, 1000, 3000], (True,) if only else (True, False))
