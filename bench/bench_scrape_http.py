"""Whole-process scrape time: ``GET /metrics`` over HTTP of ``tiw-exporter run`` processes tracking N tasks.

Each checkout given (default: this one) runs its own exporter, restored from a state file of the same
N tasks (bench.fleet, written by that checkout's own code) and polling its own simulator at 20 req/s,
as in production. The processes run side by side and are scraped in turn (text, then with
``Accept-Encoding: gzip``), so a busy machine slows all of them alike: compare the columns of one run.
The restored tasks are unknown to the simulators, so their polls answer TaskNotFound (a few dozen
tasks change between two scrapes, as a real fleet's would).

The floor is a bare asyncio server answering a body captured from the first exporter, pre-rendered and
pre-compressed, as one prepared response: what a scrape would cost if the exporter did nothing but send
bytes. Its column is scraped in the same rounds as the exporters'.

With ``--live`` every task is also added to the simulators as a PUSHING push: liveness then lists them
all and polls answer, as in production (without it the restored tasks are unknown to the simulators).

Run: python -m bench.bench_scrape_http [--tree=PATH ...] [--scrapes=20] [--live] [tasks]   (default 10000)

Measured at 10,000 tasks (10.1 MB of text), two runs, p50 / p95, 2 shared cores, four versions side by side:
an earlier version without liveness, still on the thread-pool HTTP server, text 29 / 44 and 27 / 137 ms,
gzip 58 / 75 and 63 / 380 ms; one without liveness on the aiohttp server text 23 / 295 and 25 / 45 ms,
gzip 60 / 108 and 64 / 332 ms; the first version with liveness text 62 / 88 and 62 / 81 ms, gzip 93 / 117
and 93 / 118 ms (freshness walked every task per scrape); the version whose freshness follows the store's
change feed text 24 / 33 and 25 / 34 ms, gzip 63 / 74 and 63 / 75 ms.
"""

from __future__ import annotations

import gzip
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from bench.fleet import task_id
from exporter.simulator import SimulatorClient
from tests.procs import EXPORTER_URL, REPO, SIMULATOR_URL, Process, running

WRITE_STATE = """
import sys
from dataclasses import replace
from pathlib import Path
from bench.fleet import build_store
from exporter.statedb import StateDB
records = [replace(r, sources=frozenset({"api"})) for r in build_store(int(sys.argv[1])).snapshot()]
db = StateDB(Path(sys.argv[2]))
db.write(records, [])
db.close()
"""


FLOOR = """
import asyncio, gzip, sys

text = open(sys.argv[1], "rb").read()
head = "HTTP/1.1 200 OK\\r\\nContent-Type: text/plain; version=0.0.4\\r\\n{}Content-Length: {}\\r\\n\\r\\n"
plain = head.format("", len(text)).encode() + text
packed = gzip.compress(text, 1)
packed = head.format("Content-Encoding: gzip\\r\\n", len(packed)).encode() + packed


class Floor(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while b"\\r\\n\\r\\n" in self.buffer:
            request, self.buffer = self.buffer.split(b"\\r\\n\\r\\n", 1)
            self.transport.write(packed if b"gzip" in request.lower() else plain)


async def main():
    server = await asyncio.get_running_loop().create_server(Floor, "127.0.0.1", 0)
    print(f"floor listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
FLOOR_URL = r"floor listening on (?P<url>http://\S+)"


def write_state(tree: Path, size: int, path: Path) -> None:
    """A JSON state file of ``size`` tasks, written by ``tree``'s own code (so any version reads it)."""
    subprocess.run([sys.executable, "-c", WRITE_STATE, str(size), str(path)], cwd=tree, check=True)


def start_exporter(tree: Path, simulator: str, state: Path, key_file: Path) -> tuple[Process, str]:
    process = Process([sys.executable, "-m", "exporter", "run", "--listen", "127.0.0.1:0", "--endpoint", simulator,
                       "--secret-id", "AKIDsimulator", "--secret-key-file", str(key_file),
                       "--state-file", str(state)], cwd=tree)
    return process, process.wait_for(EXPORTER_URL, timeout=180).group("url")


def wait_exported(url: str, size: int) -> int:
    """Until /metrics answers with every task (an older version's /-/ready means something else);
    the body's size then."""
    while True:
        response = requests.get(f"{url}/metrics", headers={"Accept-Encoding": "identity"}, timeout=60)
        if response.status_code == 200 and response.text.count("tiw_push_task_info{") >= size:
            return len(response.content)
        time.sleep(0.5)


def scrape(session: requests.Session, url: str, encoding: str) -> float:
    started = time.perf_counter()
    response = session.get(f"{url}/metrics", headers={"Accept-Encoding": encoding}, timeout=60, stream=True)
    body = response.raw.read()  # the bytes as sent: time the transfer, not our client's gunzip
    elapsed = time.perf_counter() - started
    if encoding == "gzip":
        assert response.headers.get("Content-Encoding") == "gzip", "no gzip answer"
        gzip.decompress(body)
    return elapsed


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) * 1000:6.0f} / {p95 * 1000:4.0f} ms"


def make_live(simulator: str, size: int) -> None:
    """Every task of the fleet's state, PUSHING in ``simulator`` (``bench.fleet``'s ids and SdkAppIds)."""
    control = SimulatorClient(simulator, session=requests.Session())
    for i in range(size):
        control.add_task(1400000001 + i % 4, task_id=task_id(i), prepare_seconds=0)


def main(trees: list[Path], size: int, scrapes: int, live: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        key_file = Path(tmp) / "key"
        key_file.write_text("simulator-secret-key\n")
        urls = []
        for index, tree in enumerate(trees):
            state = Path(tmp) / f"state-{index}.db"
            write_state(tree, size, state)
            _, simulator = stack.enter_context(running(
                [sys.executable, "-m", "exporter", "simulate", "--listen", "127.0.0.1:0", "--no-demo-mix",
                 *(f"--sdk-app-id={1400000001 + n}" for n in range(4))],
                SIMULATOR_URL))
            if live:
                make_live(simulator, size)
            process, url = start_exporter(tree, simulator, state, key_file)
            stack.callback(process.stop)
            urls.append(url)
        sizes = [wait_exported(url, size) for url in urls]
        body = Path(tmp) / "body"
        captured = requests.get(f"{urls[0]}/metrics", headers={"Accept-Encoding": "identity"}, timeout=60)
        body.write_bytes(captured.content)
        floor = Process([sys.executable, "-c", FLOOR, str(body)])
        stack.callback(floor.stop)
        urls.append(floor.wait_for(FLOOR_URL, timeout=60).group("url"))
        sizes.append(body.stat().st_size)
        names = [*map(str, trees), "floor (pre-rendered bytes)"]
        session = requests.Session()
        times: dict[tuple[int, str], list[float]] = {}
        for round_ in range(scrapes + 2):
            for encoding in ("identity", "gzip"):
                for index, url in enumerate(urls):
                    elapsed = scrape(session, url, encoding)
                    if round_ >= 2:  # two warm-up rounds
                        times.setdefault((index, encoding), []).append(elapsed)
        print(f"{size:,} tasks, {scrapes} scrapes each, p50 / p95:")
        floor = statistics.median(times[len(trees), "identity"])
        for index, name in enumerate(names):
            text = times[index, "identity"]
            print(f"  {name}: text {percentiles(text)} ({statistics.median(text) / floor:.2f}x the floor)   "
                  f"gzip {percentiles(times[index, 'gzip'])}   ({sizes[index] / 1e6:.1f} MB)")


if __name__ == "__main__":
    options = [a for a in sys.argv[1:] if a.startswith("--")]
    main([Path(a.split("=", 1)[1]) for a in options if a.startswith("--tree=")] or [REPO],
         next((int(a) for a in sys.argv[1:] if a.isdigit()), 10_000),
         next((int(a.split("=", 1)[1]) for a in options if a.startswith("--scrapes=")), 20), "--live" in options)
