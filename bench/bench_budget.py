"""API budget use: 400 active tasks, simulator with 200 ms latency enforcing 20 req/s.

Liveness is off here: this measures the pacer (``ratelimit.HEADROOM`` of the limit) with every task
polled one by one; with liveness on, steady tasks use only part of the budget by design.

The simulator runs in its own process (as the real API would be elsewhere); the exporter in this one.
Prints achieved DescribeWhiteboardPush req/s as a fraction of the limit and the throttled share.

Run: python -m bench.bench_budget [seconds]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from exporter.config import build_settings
from exporter.ratelimit import HEADROOM
from exporter.runtime import Exporter
from exporter.simulator import DEFAULT_SDK_APP_ID, DEMO_SECRET_ID, DEMO_SECRET_KEY, SimulatorClient
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from tests.procs import SIMULATOR_URL, exporter_cmd, running

TASKS = 400
LIMIT = 20
ACTION = "DescribeWhiteboardPush"


def accepted(url: str) -> tuple[int, int]:
    stats = SimulatorClient(url).stats()
    by_outcome = stats["requests"].get(ACTION, {})
    return by_outcome.get("success", 0), stats["throttled"]


def main(seconds: float) -> None:
    args = exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix", "--latency", "200ms",
                        "--rate-limit", str(LIMIT))
    with running(args, SIMULATOR_URL) as (_, url):
        control = SimulatorClient(url)
        ids = [control.add_task(DEFAULT_SDK_APP_ID, prepare_seconds=0) for _ in range(TASKS)]
        settings = build_settings({"listen": "127.0.0.1:0", "endpoint": url, "rate_limit": str(LIMIT),
                                   "tasks": tuple(f"1400000001:{t}" for t in ids), "log_level": "warning",
                                   "liveness_interval": "0"})
        exporter = Exporter(settings, credentials=StaticCredentials(Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)))
        exporter.start()
        try:
            time.sleep(5)  # warm-up: connection pool, first pass under way
            ok0, throttled0 = accepted(url)
            started = time.monotonic()
            time.sleep(seconds)
            ok1, throttled1 = accepted(url)
            elapsed = time.monotonic() - started
            lag = exporter.accounts.by_name["default"].kinds["push"].collector.lag()
        finally:
            exporter.stop()
        stats = control.stats()
    rate = (ok1 - ok0) / elapsed
    sent = (ok1 - ok0) + (throttled1 - throttled0)
    print(f"{TASKS} active tasks, interval 15s (needs {TASKS / 15:.1f} req/s), limit {LIMIT} req/s, latency 200 ms")
    print(f"achieved {rate:.2f} req/s over {elapsed:.0f}s = {rate / LIMIT:.3f} of the limit "
          f"(paced at {HEADROOM:.2f}; target >= {HEADROOM - 0.02:.2f})")
    print(f"throttled {throttled1 - throttled0} of {sent} requests = {(throttled1 - throttled0) / max(sent, 1):.4f}"
          " (target 0)")
    print(f"max requests seen by the simulator in any 1 s window: {stats['max_arrivals_in_any_second'][ACTION]}")
    print(f"poll lag at the end: {lag:.1f}s (budget short by design: {TASKS / 15:.1f} > {LIMIT} req/s)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0)
