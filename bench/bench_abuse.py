"""Scrape and callback latency, quiet vs under thousands of idle and slowloris connections per listener.

The exporter runs in this process (its open-files limit raised at start); each attack runs in a
child process (``python -m tests.abuse``) so the attacker does not share the exporter's interpreter.
Connections the server closes at its deadline are reopened, so the pressure holds for the whole run.

Run: python -m bench.bench_abuse [IDLE SLOW [REQUESTS]]   (per listener; default 2000 2000 300)
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import threading
import time

import requests

from exporter.callbacks import sign
from exporter.config import build_settings
from exporter.fdlimit import raise_open_files_limit
from exporter.runtime import Exporter
from exporter.simulator import DEFAULT_SDK_APP_ID, Simulator
from exporter.tencentcloud.credentials import Credential, StaticCredentials

KEY = "bench-callback-key"


def timed(session: requests.Session, method: str, url: str, **options: object) -> float:
    started = time.perf_counter()
    answer = session.request(method, url, timeout=60, **options)
    assert answer.status_code == 200, answer.status_code
    return time.perf_counter() - started


def measure(exporter: Exporter, count: int, tag: str) -> tuple[list[float], list[float]]:
    scrapes, callbacks = [], []
    with requests.Session() as session:
        for index in range(count):
            scrapes.append(timed(session, "GET", f"{exporter.url}/metrics"))
            expire = int(time.time()) + 60
            event = {"Timestamp": 1, "SdkAppId": DEFAULT_SDK_APP_ID, "ExpireTime": expire, "Sign": sign(KEY, expire),
                     "EventType": "WhiteboardPushStarted", "EventData": {"TaskId": f"{tag}_{index}"}}
            callbacks.append(timed(session, "POST", f"{exporter.callback_server.url}/callbacks/tiw", json=event))
    return scrapes, callbacks


def percentiles(label: str, samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"{label}: p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, max {max(samples) * 1000:.1f} ms"


def attackers(exporter: Exporter, idle: int, slow: int) -> list[subprocess.Popen[str]]:
    children = []
    for server in (exporter.server, exporter.callback_server):
        host, port = server.server_address[:2]
        children.append(subprocess.Popen([sys.executable, "-m", "tests.abuse", f"{host}:{port}", str(idle), str(slow)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    for child in children:
        print("  " + child.stdout.readline().strip())  # the attack is fully open
    return children


def main(idle: int, slow: int, count: int) -> None:
    logging.getLogger("exporter").setLevel(logging.ERROR)  # tasks made up by the callbacks are not found
    limit = raise_open_files_limit()
    with Simulator(credentials={"AKIDbench": "bench-key"}) as simulator:
        settings = build_settings({"listen": "127.0.0.1:0", "callback_listen": "127.0.0.1:0", "log_level": "warning",
                                   "endpoint": simulator.url, "callback_key": KEY})
        exporter = Exporter(settings, credentials=StaticCredentials(Credential("AKIDbench", "bench-key"))).start()
        try:
            measure(exporter, 20, "warmup")
            quiet = measure(exporter, count, "quiet")
            children = attackers(exporter, idle, slow)
            peak = [0]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.2):
                    peak[0] = max(peak[0], exporter.server.connections + exporter.callback_server.connections)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            attacked = measure(exporter, count, "attacked")
            done.set()
            sampler.join()
            for child in children:
                child.stdin.close()
                child.wait(timeout=30)
        finally:
            exporter.stop()
    print(f"open-files limit {limit}; attack per listener: {idle} idle + {slow} slowloris; {count} requests each")
    print(percentiles("quiet    scrape  ", quiet[0]))
    print(percentiles("quiet    callback", quiet[1]))
    print(percentiles("attacked scrape  ", attacked[0]))
    print(percentiles("attacked callback", attacked[1]))
    print(f"connections held by the exporter at once (both listeners, peak): {peak[0]}")


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:]]
    main(*(numbers + [2000, 2000, 300][len(numbers):]))
