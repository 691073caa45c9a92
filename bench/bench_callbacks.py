"""With TIW's callbacks wired, how soon a stop is in /metrics, for N live tasks on one account.

The simulator runs in its own process (200 ms latency, 20 req/s per action) with N PUSHING tasks; the
exporter runs in this one, tracking all N (liveness and polling on, as in production). STOPS times, a
signed ``WhiteboardPushStopped`` callback for a random task is POSTed to the exporter, then /metrics
is scraped back to back until that task shows ``status="STOPPED"``. Printed: the time from sending the
callback to the end of the first scrape that shows the stop (p50/p95/max), and how long one scrape
takes at that N and one callback POST: their sum is the floor of what any reader can see.

Run: python -m bench.bench_callbacks [N ...]   (default 1000 10000)
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import requests

from bench.bench_liveness import percentile
from exporter.callbacks import STOPPED, sign
from exporter.config import build_settings
from exporter.runtime import Exporter
from exporter.simulator import DEFAULT_SDK_APP_ID, DEMO_SECRET_ID, DEMO_SECRET_KEY, SimulatorClient
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from tests.procs import SIMULATOR_URL, exporter_cmd, running

LIMIT = 20
STOPS = 30
CALLBACK_KEY = "bench-callback-key"


def stop_callback(task_id: str) -> bytes:
    now = int(time.time())
    return json.dumps({"Timestamp": now, "SdkAppId": DEFAULT_SDK_APP_ID, "ExpireTime": now + 600,
                       "Sign": sign(CALLBACK_KEY, now + 600), "EventType": STOPPED,
                       "EventData": {"TaskId": task_id, "FinishReason": "USER_CALL", "PushStopTime": now}}).encode()


def stopped_in(text: str, task_id: str) -> bool:
    return f'status="STOPPED",task_id="{task_id}"}} 1' in text


def run(n: int) -> dict[str, float]:
    args = exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix", "--latency", "200ms",
                        "--rate-limit", str(LIMIT))
    with running(args, SIMULATOR_URL) as (_, url):
        control = SimulatorClient(url, session=requests.Session())
        ids = [control.add_task(DEFAULT_SDK_APP_ID, prepare_seconds=0) for _ in range(n)]
        settings = build_settings({"listen": "127.0.0.1:0", "endpoint": url, "rate_limit": str(LIMIT),
                                   "tasks": tuple(f"{DEFAULT_SDK_APP_ID}:{t}" for t in ids), "log_level": "error",
                                   "callback_key": CALLBACK_KEY})
        exporter = Exporter(settings, credentials=StaticCredentials(Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)))
        exporter.start()
        session = requests.Session()
        delays, scrapes, posts = [], [], []
        try:
            time.sleep(10.0)  # past the start: the first polls and liveness pages are under way, as in production
            for task_id in random.Random(n).sample(ids, STOPS):
                sent = time.perf_counter()
                answer = session.post(f"{exporter.url}/callbacks/tiw", data=stop_callback(task_id), timeout=10)
                answer.raise_for_status()
                posts.append(time.perf_counter() - sent)
                while True:
                    started = time.perf_counter()
                    text = session.get(f"{exporter.url}/metrics", timeout=30).text
                    scrapes.append(time.perf_counter() - started)
                    if stopped_in(text, task_id):
                        delays.append(time.perf_counter() - sent)
                        break
                time.sleep(1.0)
        finally:
            exporter.stop()
    return {"p50": percentile(delays, 0.5), "p95": percentile(delays, 0.95), "max": max(delays),
            "scrape": percentile(scrapes, 0.5), "post": percentile(posts, 0.5)}


def main(sizes: list[int]) -> None:
    print("| N | callback -> STOPPED in /metrics p50 / p95 / max | one POST p50 | one scrape p50 "
          "| p50 / (POST + scrape) |")
    print("|---|---|---|---|---|")
    for n in sizes:
        r = run(n)
        ratio = r["p50"] / (r["post"] + r["scrape"])
        print(f"| {n:,} | {r['p50'] * 1000:.0f} / {r['p95'] * 1000:.0f} / {r['max'] * 1000:.0f} ms "
              f"| {r['post'] * 1000:.1f} ms | {r['scrape'] * 1000:.0f} ms | {ratio:.2f} |", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main([int(a) for a in sys.argv[1:] if a.isdigit()] or [1000, 10000])
