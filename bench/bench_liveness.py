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

The mix (issue 21): ``--records M`` adds M live recordings (same SdkAppId) beside the N pushes, the
exporter watching both kinds (``--kinds push,record``, liveness on); RECORD_STOPS of the recordings and
STOPS of the pushes stop at planned moments, interleaved over the same window. Measured per kind: the
time from the planned stop to the stop in /metrics (a push: ``tiw_push_task_status`` STOPPED; a
recording: ``tiw_record_task_status`` STOPPED or FINISHED), p50 / p95 / max; requests/s of
DescribeWhiteboardPush, DescribeOnlineRecord and DescribeRunningTasks and each as a fraction of its
limit; throttled requests. ``python -m bench.bench_liveness --records 2000 10000`` is the issue's target
(a stop of either kind within 15 s at p95, each action at most 92 % of its limit, 0 throttled).
"""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path
from typing import Any

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
RECORD_STOPS = 30
RECORD_STOPPED = re.compile(r'tiw_record_task_status\{[^}]*status="(?:STOPPED|FINISHED)",task_id="([^"]+)"\} 1')
RECORD_FINISH_SECONDS = 20.0  # STOPPED -> FINISHED of a planned stop: either status counts as the stop seen
MIX_ACTIONS = ("DescribeWhiteboardPush", "DescribeOnlineRecord", "DescribeRunningTasks")


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


def populate_mix(control: SimulatorClient, n: int, m: int) -> tuple[list[str], dict[str, dict[str, float]]]:
    """N pushes and M recordings as task refs; STOPS pushes and RECORD_STOPS recordings stop at planned moments
    (returned per kind), interleaved over the window and planned from when the steady ones exist."""
    refs = [f"{DEFAULT_SDK_APP_ID}:{control.add_task(DEFAULT_SDK_APP_ID, prepare_seconds=0)}"
            for _ in range(n - STOPS)]
    refs += [f"record:{DEFAULT_SDK_APP_ID}:{control.add_record(DEFAULT_SDK_APP_ID, prepare_seconds=0)}"
             for _ in range(m - RECORD_STOPS)]
    stop_at: dict[str, dict[str, float]] = {"push": {}, "record": {}}
    planned = sorted([("push", i / STOPS) for i in range(STOPS)] + [("record", i / RECORD_STOPS)
                                                                    for i in range(RECORD_STOPS)],
                     key=lambda plan: plan[1])
    start = time.time()
    for number, (kind, fraction) in enumerate(planned):
        added = time.time()
        seconds = max(1.0, start + WARM + SPREAD * fraction - added)
        if kind == "push":
            task_id = control.add_task(DEFAULT_SDK_APP_ID, prepare_seconds=0, push_seconds=seconds,
                                       exceptions_per_minute=6.0 if number % 3 == 0 else 0.0)
            refs.append(f"{DEFAULT_SDK_APP_ID}:{task_id}")
        else:
            task_id = control.add_record(DEFAULT_SDK_APP_ID, prepare_seconds=0, record_seconds=seconds,
                                         finish_seconds=RECORD_FINISH_SECONDS,
                                         exceptions_per_minute=6.0 if number % 3 == 0 else 0.0)
            refs.append(f"record:{DEFAULT_SDK_APP_ID}:{task_id}")
        stop_at[kind][task_id] = added + seconds
    return refs, stop_at


def run_mix(n: int, m: int) -> dict[str, Any]:
    """N pushes + M recordings, liveness on, both kinds watched (see the module docstring)."""
    args = exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix", "--latency", "200ms",
                        "--rate-limit", str(LIMIT))
    with running(args, SIMULATOR_URL) as (_, url):
        control = SimulatorClient(url, session=requests.Session())
        populating = time.time()
        refs, stop_at = populate_mix(control, n, m)
        populated = time.time() - populating
        settings = build_settings({"listen": "127.0.0.1:0", "endpoint": url, "rate_limit": str(LIMIT),
                                   "tasks": tuple(refs), "log_level": "error", "kinds": "push,record",
                                   "liveness_interval": "5s"})
        exporter = Exporter(settings, credentials=StaticCredentials(Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)))
        exporter.start()
        seen: dict[str, dict[str, float]] = {"push": {}, "record": {}}
        patterns = {"push": STOPPED, "record": RECORD_STOPPED}
        wanted = STOPS + RECORD_STOPS
        scrapes: list[float] = []
        window = WARM + SPREAD + 30.0
        try:
            before = control.stats()
            t0 = time.time()
            while time.time() - t0 < window and sum(map(len, seen.values())) < wanted:
                asked = time.perf_counter()
                text = requests.get(f"{exporter.url}/metrics", timeout=30).text
                scrapes.append(time.perf_counter() - asked)
                now = time.time()
                for kind, pattern in patterns.items():
                    for task_id in pattern.findall(text):
                        if task_id in stop_at[kind] and task_id not in seen[kind]:
                            seen[kind][task_id] = now
                time.sleep(0.5)
            elapsed = time.time() - t0
            after = control.stats()
            rss = rss_mib()
        finally:
            exporter.stop()
    rates = {a: (sum(after["requests"].get(a, {}).values()) - sum(before["requests"].get(a, {}).values())) / elapsed
             for a in MIX_ACTIONS}
    peaks = {a: after.get("max_requests_in_any_second", {}).get(a, 0) for a in MIX_ACTIONS}
    arrivals = {a: after.get("max_arrivals_in_any_second", {}).get(a, 0) for a in MIX_ACTIONS}
    throttled_by = {a: after["requests"].get(a, {}).get("RequestLimitExceeded", 0)
                    - before["requests"].get(a, {}).get("RequestLimitExceeded", 0) for a in MIX_ACTIONS}
    kinds = {}
    for kind, planned in stop_at.items():
        delays = [seen[kind][t] - planned[t] for t in seen[kind]]
        kinds[kind] = {"seen": len(seen[kind]), "planned": len(planned), "p50": percentile(delays, 0.5),
                       "p95": percentile(delays, 0.95), "max": max(delays, default=float("nan"))}
    return {"kinds": kinds, "rates": rates, "peaks": peaks, "arrivals": arrivals, "throttled_by": throttled_by,
            "throttled": after["throttled"] - before["throttled"],
            "elapsed": elapsed, "populate": populated, "scrape_p50": percentile(scrapes, 0.5), "rss": rss,
            "period_push": pages_per_pass(n), "period_record": pages_per_pass(m)}


def main_mix(n: int, m: int) -> None:
    """One run of N pushes + M recordings; per kind stop -> /metrics, per action req/s vs its limit."""
    r = run_mix(n, m)
    print(f"N = {n:,} pushes + M = {m:,} recordings, one SdkAppId, liveness every 5 s, no callbacks; "
          f"populating took {r['populate']:.0f} s, measured over {r['elapsed']:.0f} s, /metrics scrape p50 "
          f"{r['scrape_p50'] * 1000:.0f} ms, RSS {r['rss']:.0f} MiB")
    print("| kind | stops seen | planned stop -> /metrics p50 / p95 / max (s) |")
    print("|---|---|---|")
    for kind, k in r["kinds"].items():
        print(f"| {kind} | {k['seen']}/{k['planned']} | {k['p50']:.1f} / {k['p95']:.1f} / {k['max']:.1f} |")
    print(f"| action | req/s | of the {LIMIT}/s limit | throttled | busiest second, whole run: accepted / arrived |")
    print("|---|---|---|---|---|")
    for action in MIX_ACTIONS:
        rate = r["rates"][action]
        print(f"| {action} | {rate:.2f} | {rate / LIMIT:.0%} | {r['throttled_by'][action]} "
              f"| {r['peaks'][action]} / {r['arrivals'][action]} |")
    print(f"throttled: {r['throttled']}; DescribeRunningTasks pages per liveness pass: {r['period_push']} "
          f"(WhiteboardPush) + {r['period_record']} (OnlineRecord)", flush=True)


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
    argv = sys.argv[1:]
    if "--records" in argv:
        at = argv.index("--records")
        records = int(argv[at + 1])
        del argv[at:at + 2]
        for size in [int(a) for a in argv if a.isdigit()] or [10_000]:
            main_mix(size, records)
    else:
        only = "--liveness-only" in argv
        main([int(a) for a in argv if a.isdigit()] or [300, 1000, 3000], (True,) if only else (True, False))
