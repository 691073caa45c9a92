"""Whole-process memory, start-up and CPU of a running exporter restored from a state of N tasks.

Honest numbers: the RSS of the ``tiw-exporter run`` process itself (polling a simulator at 20 req/s,
its HTTP server up, /metrics scraped once), not of a store built inside the bench. Also: seconds from
start to ``/-/ready`` answering 200, and the process's CPU over a 20 s window (polling, liveness,
state writes every 5 s, one scrape every 5 s). The restored tasks are unknown to the simulator, so
their queries answer TaskNotFound or pause their SdkAppId: the CPU is of that case, not of 19.2
successful answers a second.

Run: python -m bench.bench_memory [--liveness-interval=0] [--state-save-interval=1h] [tasks ...]
(default 1 10000 50000; options are passed to the exporter, to split the CPU by cause)

``--mix`` (issue 21; not passed to the exporter): at each size, push-only against the mix of the same
task count (5/6 pushes, 1/6 recordings: bench.fleet ``records=True``; the exporter watches both kinds,
its default), one after the other in this run, and an exporter restored from 1 push as the floor.
Printed: memory per task, (RSS - the floor's RSS) / tasks, and the ratio mix / push-only.
Run: python -m bench.bench_memory --mix [tasks ...]   (default 12000 60000)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import requests

from bench.fleet import build_store
from exporter.statedb import StateDB
from tests.procs import EXPORTER_URL, SIMULATOR_URL, Process, exporter_cmd, running

WINDOW = 20.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """CPU time of process ``pid`` (user + system), or of its thread ``tid``."""
    stat = Path(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_restored_state(state: Path, size: int, records: bool = False) -> None:
    """A state database of ``size`` bench.fleet tasks (the push / recording mix with ``records``) as "api"
    tasks: restored whatever the configuration says (bench.fleet's are "file" tasks)."""
    db = StateDB(state)
    db.write([replace(r, sources=frozenset({"api"})) for r in build_store(size, records=records).snapshot()], [])
    db.close()


def measure(size: int, simulator_url: str, directory: Path, key_file: Path, extra: list[str]) -> str:
    r = run_restored(size, simulator_url, directory, key_file, extra)
    return f"| {size:,} | {r['tracked']:,} | {r['rss']:.0f} MiB | {r['ready']:.1f} s | {r['cpu'] * 100:.1f} % |"


def run_restored(size: int, simulator_url: str, directory: Path, key_file: Path, extra: list[str],
                 records: bool = False) -> dict[str, float]:
    """A ``tiw-exporter run`` restored from ``size`` tasks: tasks exported, RSS MiB, seconds to ready, CPU share."""
    state = directory / f"state-{size}{'-mix' if records else ''}.db"
    write_restored_state(state, size, records)
    args = exporter_cmd("run", "--listen", "127.0.0.1:0", "--endpoint", simulator_url, "--secret-id",
                        "AKIDsimulator", "--secret-key-file", str(key_file), "--state-file", str(state),
                        "--log-level", "info", *extra)
    started = time.monotonic()
    process = Process(args)
    try:
        url = process.wait_for(EXPORTER_URL, timeout=120).group("url")
        while requests.get(f"{url}/-/ready", timeout=30).status_code != 200:
            time.sleep(0.05)
        ready = time.monotonic() - started
        text = requests.get(f"{url}/metrics", timeout=60).text
        tracked = text.count("tiw_push_task_info{") + text.count("tiw_record_task_info{")
        cpu0, t0 = cpu_seconds(process.proc.pid), time.monotonic()
        while time.monotonic() - t0 < WINDOW:
            requests.get(f"{url}/metrics", timeout=60)
            time.sleep(5)
        cpu = (cpu_seconds(process.proc.pid) - cpu0) / (time.monotonic() - t0)
        rss = rss_mib(process.proc.pid)
    finally:
        process.stop()
    return {"tracked": tracked, "rss": rss, "ready": ready, "cpu": cpu}


def main_mix(sizes: list[int], extra: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp, \
            running(exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix"), SIMULATOR_URL) as (_, sim):
        directory = Path(tmp)
        key_file = directory / "key"
        key_file.write_text("simulator-secret-key\n")
        floor = run_restored(1, sim, directory, key_file, extra)
        print(f"floor: an exporter restored from 1 push, RSS {floor['rss']:.0f} MiB")
        print("| tasks | fleet | exported | whole-process RSS | per task above the floor | start -> /-/ready "
              "| CPU of one core |")
        print("|---|---|---|---|---|---|---|")
        for size in sizes:
            runs = {}
            for name, records in (("push only", False), ("5/6 push + 1/6 record", True)):
                r = runs[name] = run_restored(size, sim, directory, key_file, extra, records)
                r["per_task"] = (r["rss"] - floor["rss"]) * 2**20 / size
                print(f"| {size:,} | {name} | {r['tracked']:,} | {r['rss']:.0f} MiB | {r['per_task'] / 1024:.2f} KiB "
                      f"| {r['ready']:.1f} s | {r['cpu'] * 100:.1f} % |", flush=True)
            push, mix = runs["push only"], runs["5/6 push + 1/6 record"]
            print(f"| {size:,} | ratio mix / push only | | {mix['rss'] / push['rss']:.2f}x "
                  f"| {mix['per_task'] / push['per_task']:.2f}x | {mix['ready'] / push['ready']:.2f}x "
                  f"| {mix['cpu'] / push['cpu']:.2f}x |", flush=True)


def main(sizes: list[int], extra: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp, \
            running(exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix"), SIMULATOR_URL) as (_, sim):
        directory = Path(tmp)
        key_file = directory / "key"
        key_file.write_text("simulator-secret-key\n")
        print("| tracked tasks (restored) | exported | whole-process RSS | start -> /-/ready | CPU of one core |")
        print("|---|---|---|---|---|")
        for size in sizes:
            print(measure(size, sim, directory, key_file, extra), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    options = [a for a in sys.argv[1:] if a.startswith("--") and a != "--mix"]
    if "--mix" in sys.argv[1:]:
        main_mix([int(a) for a in sys.argv[1:] if a.isdigit()] or [12_000, 60_000], options)
    else:
        main([int(a) for a in sys.argv[1:] if a.isdigit()] or [1, 10_000, 50_000], options)
