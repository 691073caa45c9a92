"""Pacing on a loaded machine: 30,000 live tasks on 3 accounts, liveness on, CPU hogs beside the exporter.

Three simulators (one per account, 10,000 steady PUSHING tasks each, 200 ms latency, the strict
sliding window of 20 req/s per action) and the exporter (all defaults but the accounts: liveness 5 s,
concurrency 8, rate limit 20) each run in their own process, plus ``HOGS`` busy-loop processes for the
whole run. The exporter reads the 30,000 tasks from a tasks file, so every task is due at start and
``DescribeWhiteboardPush`` runs at its full pace for the whole window (the first sweep takes ~9 minutes).

The simulators stand in for the remote API, which the hogs do not load: they run at a higher priority
(``SIMULATOR_NICE``, when allowed). Their sliding window counts a request when their Python server gets
to it, so what they see is what the exporter sent plus their own scheduling jitter.

Printed per account and action: requests/s over the window (after ``WARM`` s) and as a fraction of the
limit, throttled requests in the window, and the busiest 1 s windows over the whole run (warm-up
included) twice: of the requests as the exporter sent them (timed as each enters the ``requests``
adapter) and as they arrived at the simulator (its stats). Where the second is higher, the bunching
happened after the send. Then the exporter's own ``tiw_exporter_api_requests_total`` by action and
outcome, its CPU and the load average.

``--send-window=off`` runs the exporter with the send-time window check disabled (what the pacing was
before it); ``--send-window=N[,S]`` with a cap of N sends per second (and sends at least S of the pace's
spacings apart) instead of the defaults. Both patch the exporter process at start and exist only for
this comparison.

``--hogs=N`` runs N busy loops instead of ``HOGS``.

Run: python -m bench.bench_pacing [seconds] [--send-window=off|N[,S]] [--hogs=N]
(default 150 s; about 4 minutes a run)
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from exporter.simulator import DEMO_SECRET_ID, DEMO_SECRET_KEY, SimulatorClient
from tests.procs import REPO, SIMULATOR_URL, Process

ACCOUNTS = (("a", 1400000001), ("b", 1400000002), ("c", 1400000003))
TASKS_PER_ACCOUNT = 10_000
LIMIT = 20
LATENCY = 0.2
HOGS = 2
WARM = 20.0
SIMULATOR_NICE = -10
ACTIONS = ("DescribeWhiteboardPush", "DescribeRunningTasks")
THROTTLED = "RequestLimitExceeded"
API_REQUESTS = re.compile(r'^tiw_exporter_api_requests_total\{action="([^"]+)",outcome="([^"]+)"\} ([0-9.e+]+)$',
                          re.MULTILINE)


def serve_simulator(sdk_app_id: int, tasks: int, ids_file: str) -> None:
    """Child: one account's simulator with ``tasks`` steady tasks; writes their ids, prints its URL."""
    from exporter.simulator import Simulator, TaskScript

    try:
        os.nice(SIMULATOR_NICE)
        niced = f"nice {SIMULATOR_NICE}"
    except OSError:
        niced = "nice 0 (not allowed to raise the priority)"
    simulator = Simulator(sdk_app_ids=(sdk_app_id,), rate_limit=LIMIT, latency=LATENCY).start()
    steady = TaskScript(prepare_seconds=0)
    ids = [simulator.add_task(sdk_app_id, steady) for _ in range(tasks)]
    Path(ids_file).write_text("\n".join(ids), encoding="utf-8")
    print(f"simulator {simulator.url} ({niced})", flush=True)
    while True:
        time.sleep(3600)


def run_exporter(send_window: str, config: str, sends_file: str) -> None:
    """Child: the exporter, with the send-time window patched as ``--send-window`` says. Every request's
    time as it enters the ``requests`` adapter (the last step before the socket) is written to
    ``sends_file`` at exit, by endpoint and action."""
    import requests.adapters

    from exporter import ratelimit
    from exporter.cli import main

    if send_window == "off":
        ratelimit.PacedLimiter.before_send = lambda self: 0.0  # type: ignore[method-assign]
    elif send_window != "default":
        cap, _, spacing = send_window.partition(",")
        ratelimit.send_cap = lambda rate, headroom: int(cap)  # type: ignore[assignment]
        ratelimit.SEND_SPACING = float(spacing or ratelimit.SEND_SPACING)
    sends: dict[str, list[float]] = collections.defaultdict(list)
    adapter_send = requests.adapters.HTTPAdapter.send

    def timed_send(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        sends[f"{request.url} {request.headers.get('X-TC-Action')}"].append(time.monotonic())  # list.append: atomic
        return adapter_send(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = timed_send  # type: ignore[method-assign]
    atexit.register(lambda: Path(sends_file).write_text(json.dumps(sends), encoding="utf-8"))
    sys.argv = ["tiw-exporter", "run", "--config", config]
    main()


def busiest_second(times: list[float]) -> int:
    """The most of ``times`` in any half-open second (the API's strict sliding window)."""
    ordered, first, best = sorted(times), 0, 0
    for last, now in enumerate(ordered):
        while ordered[first] <= now - 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def exporter_counts(url: str) -> dict[tuple[str, str], float]:
    text = requests.get(f"{url}/metrics", timeout=30).text
    return {(action, outcome): float(value) for action, outcome, value in API_REQUESTS.findall(text)}


def main(seconds: float, send_window: str, hog_count: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-pacing-"))
    key_file = work / "key"
    key_file.write_text(DEMO_SECRET_KEY, encoding="utf-8")
    me = [sys.executable, "-m", "bench.bench_pacing"]
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hog_count)]
    simulators: list[Process] = []
    try:
        urls, task_lines, account_lines = {}, [], []
        for name, app in ACCOUNTS:
            ids_file = work / f"{name}.ids"
            process = Process([*me, "--simulator", str(app), str(TASKS_PER_ACCOUNT), str(ids_file)])
            simulators.append(process)
            urls[name] = process.wait_for(SIMULATOR_URL, timeout=120).group("url")
            task_lines += [f"- {{sdk_app_id: {app}, task_id: {t}}}" for t in ids_file.read_text().split()]
            account_lines += [f"  - {{name: {name}, sdk_app_ids: [{app}], endpoint: '{urls[name]}', "
                              f"secret_id: {DEMO_SECRET_ID}, secret_key_file: '{key_file}'}}"]
        niced = simulators[0].lines[-1].split("(", 1)[1].rstrip(")")
        (work / "tasks.yaml").write_text("\n".join(task_lines) + "\n", encoding="utf-8")
        port = free_port()
        (work / "config.yaml").write_text(
            f"listen: '127.0.0.1:{port}'\nlog_level: warning\ntasks_file: '{work / 'tasks.yaml'}'\n"
            f"rate_limit: {LIMIT}\naccounts:\n" + "\n".join(account_lines) + "\n", encoding="utf-8")
        sends_file = work / "sends.json"
        child = [*me, "--exporter", send_window, str(work / "config.yaml"), str(sends_file)]
        with Process(child, cwd=REPO) as exporter:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if requests.get(f"{url}/-/ready", timeout=10).status_code == 200:
                        break
                except requests.RequestException:  # not listening yet, or too busy loading to answer
                    pass
                time.sleep(0.5)
            else:
                raise SystemExit(f"the exporter never got ready:\n{exporter.output[-3000:]}")
            time.sleep(WARM)
            controls = {name: SimulatorClient(urls[name]) for name, _ in ACCOUNTS}
            before = {name: control.stats() for name, control in controls.items()}
            counts_before, cpu_before, load_before = exporter_counts(url), cpu_seconds(exporter.proc.pid), loadavg()
            started = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - started
            after = {name: control.stats() for name, control in controls.items()}
            counts_after, cpu_after, load_after = exporter_counts(url), cpu_seconds(exporter.proc.pid), loadavg()
        sends = json.loads(sends_file.read_text(encoding="utf-8"))  # written as the exporter exits
    finally:
        for process in simulators:
            process.stop()
        for hog in hogs:
            hog.kill()
            hog.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(f"30,000 tasks on 3 accounts, liveness 5 s, {hog_count} CPU hogs, send window: {send_window}; "
          f"{elapsed:.0f} s after {WARM:.0f} s warm-up; simulators at {niced}; load {load_before} -> {load_after}; "
          f"exporter CPU {(cpu_after - cpu_before) / elapsed:.0%} of a core")
    print("| account | action | req/s | of the limit | throttled | busiest 1 s sent by the exporter "
          "| busiest 1 s arrived at the simulator |")
    print("|---|---|---|---|---|---|---|")
    for name, _ in ACCOUNTS:
        for action in ACTIONS:
            answered = after[name]["requests"].get(action, {})
            answered_before = before[name]["requests"].get(action, {})
            rate = (sum(answered.values()) - sum(answered_before.values())) / elapsed
            throttled = answered.get(THROTTLED, 0) - answered_before.get(THROTTLED, 0)
            sent = busiest_second(sends.get(f"{urls[name]}/ {action}", []))
            arrived = after[name]["max_arrivals_in_any_second"].get(action, 0)
            print(f"| {name} | {action} | {rate:.2f} | {rate / LIMIT:.3f} | {throttled} | {sent} | {arrived} |")
    print("the busiest seconds are over the whole run, warm-up included; the exporter's "
          "tiw_exporter_api_requests_total in the window (all accounts): " + ", ".join(
              f"{action} {outcome} {counts_after[(action, outcome)] - counts_before.get((action, outcome), 0):.0f}"
              for action, outcome in sorted(counts_after)))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    if sys.argv[1:2] == ["--simulator"]:
        serve_simulator(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1:2] == ["--exporter"]:
        run_exporter(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        options = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
        positional = [a for a in sys.argv[1:] if not a.startswith("--")]
        main(float(positional[0]) if positional else 150.0, options.get("send-window", "default"),
             int(options.get("hogs", HOGS)))
