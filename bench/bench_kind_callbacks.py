"""With TIW's callbacks wired for every kind, how soon a recording's or a transcode's end is in /metrics.

The simulator runs in its own process (200 ms latency, 20 req/s per action) and sends its own callbacks
(``configure_callbacks`` for push, record and transcode: OnlineRecordStopped / OnlineRecordFinished,
TranscodeFinished), signed with the exporter's key, to the exporter running in this one
(``--kinds push,record,transcode``, liveness and polling on, as in production), beside N live pushes.
The callback URL (a port chosen up front) is set for every kind before any task exists, as in
production where it is set once: the start callbacks of the tasks added before the exporter listens
are refused, rather than queued as one backlog of N ``WhiteboardPushStarted`` that the simulator's one
sender would deliver first, ahead of the ends measured.
ENDS recordings and ENDS transcodes end at planned moments spread over SPREAD seconds: a recording stops
(STOPPED) and is FINISHED FINISH_SECONDS later; a transcode is QUEUED 1 s, then PROCESSING until its end
(FINISHED). /metrics is scraped every GAP seconds (``--gap``, default 0.1; 0: back to back, which at
10,000 tasks keeps this process, the exporter's, busy rendering ~30 scrapes a second and delays the
callbacks it measures); printed per kind: the time from the scripted end to the
end of the first scrape that shows the final status (``tiw_record_task_status`` FINISHED,
``tiw_transcode_task_status`` FINISHED), and for recordings also stop -> STOPPED, p50 / p95 / max; one
scrape's p50 (the floor of what any reader sees; the simulator's callback ticker adds up to 0.2 s);
how many callbacks the simulator delivered.

Run: python -m bench.bench_kind_callbacks [--gap SECONDS] [N]   (default 1000 pushes beside the recordings
and transcodes)
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import requests

from bench.bench_liveness import percentile
from exporter.config import build_settings
from exporter.runtime import Exporter
from exporter.simulator import DEFAULT_SDK_APP_ID, DEMO_SECRET_ID, DEMO_SECRET_KEY, SimulatorClient
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from tests.harness import common_free_port
from tests.procs import SIMULATOR_URL, exporter_cmd, running

LIMIT = 20
ENDS = 50  # recordings and transcodes each
WARM = 15.0  # seconds from the exporter's start to the first planned end
SPREAD = 60.0  # planned ends are spread over this many seconds
FINISH_SECONDS = 3.0  # a recording's STOPPED -> FINISHED (video processing)
QUEUED_SECONDS = 1.0
CALLBACK_KEY = "bench-kind-callback-key"
PATTERNS = {
    "record FINISHED": re.compile(r'tiw_record_task_status\{[^}]*status="FINISHED",task_id="([^"]+)"\} 1'),
    "record STOPPED": re.compile(r'tiw_record_task_status\{[^}]*status="(?:STOPPED|FINISHED)",task_id="([^"]+)"\} 1'),
    "transcode FINISHED": re.compile(r'tiw_transcode_task_status\{[^}]*status="FINISHED",task_id="([^"]+)"\} 1'),
}


def populate(control: SimulatorClient, n: int, start: float) -> tuple[list[str], dict[str, dict[str, float]]]:
    """N steady pushes, ENDS recordings and ENDS transcodes (task refs); the planned moment of each
    measured event, by PATTERNS name, the first one WARM seconds after ``start``."""
    refs = [f"{DEFAULT_SDK_APP_ID}:{control.add_task(DEFAULT_SDK_APP_ID, prepare_seconds=0)}" for _ in range(n)]
    due: dict[str, dict[str, float]] = {name: {} for name in PATTERNS}
    for i in range(ENDS):
        added = time.time()
        stop = max(1.0, start + WARM + SPREAD * i / ENDS - added)
        task_id = control.add_record(DEFAULT_SDK_APP_ID, prepare_seconds=0, record_seconds=stop,
                                     finish_seconds=FINISH_SECONDS)
        refs.append(f"record:{DEFAULT_SDK_APP_ID}:{task_id}")
        due["record STOPPED"][task_id] = added + stop
        due["record FINISHED"][task_id] = added + stop + FINISH_SECONDS
        added = time.time()
        end = max(QUEUED_SECONDS + 1.0, start + WARM + SPREAD * (i + 0.5) / ENDS - added)
        task_id = control.add_transcode(DEFAULT_SDK_APP_ID, queued_seconds=QUEUED_SECONDS,
                                        processing_seconds=end - QUEUED_SECONDS)
        refs.append(f"transcode:{DEFAULT_SDK_APP_ID}:{task_id}")
        due["transcode FINISHED"][task_id] = added + end
    return refs, due


def run(n: int, gap: float) -> dict[str, object]:
    args = exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix", "--latency", "200ms",
                        "--rate-limit", str(LIMIT))
    with running(args, SIMULATOR_URL) as (_, url):
        control = SimulatorClient(url, session=requests.Session())
        port = common_free_port(["127.0.0.1"])
        for kind in ("push", "record", "transcode"):
            control.configure_callbacks(f"http://127.0.0.1:{port}/callbacks/tiw", CALLBACK_KEY, kind)
        refs, due = populate(control, n, time.time() + 5.0)  # + the exporter's start
        settings = build_settings({"listen": f"127.0.0.1:{port}", "endpoint": url, "rate_limit": str(LIMIT),
                                   "tasks": tuple(refs), "log_level": "error", "kinds": "push,record,transcode",
                                   "callback_key": CALLBACK_KEY})
        exporter = Exporter(settings, credentials=StaticCredentials(Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)))
        exporter.start()
        before = control.stats()
        session = requests.Session()
        seen: dict[str, dict[str, float]] = {name: {} for name in PATTERNS}
        scrapes: list[float] = []
        last = max(max(d.values()) for d in due.values())
        try:
            while time.time() < last + 15.0 and any(len(seen[k]) < len(due[k]) for k in PATTERNS):
                asked = time.perf_counter()
                text = session.get(f"{exporter.url}/metrics", timeout=30).text
                scrapes.append(time.perf_counter() - asked)
                now = time.time()
                for name, pattern in PATTERNS.items():
                    for task_id in pattern.findall(text):
                        if task_id in due[name] and task_id not in seen[name]:
                            seen[name][task_id] = now
                time.sleep(gap)
            stats = control.stats()
        finally:
            exporter.stop()
    sent = {key: stats[key] - before.get(key, 0) for key in stats
            if key.endswith(("callbacks_sent", "callbacks_failed"))}
    result: dict[str, object] = {"scrape": percentile(scrapes, 0.5), "stats": sent}
    for name in PATTERNS:
        delays = [seen[name][t] - due[name][t] for t in seen[name]]
        result[name] = {"seen": len(seen[name]), "planned": len(due[name]), "p50": percentile(delays, 0.5),
                        "p95": percentile(delays, 0.95), "max": max(delays, default=float("nan")),
                        "min": min(delays, default=float("nan"))}
    return result


def main(n: int, gap: float) -> None:
    r = run(n, gap)
    print(f"{n:,} live pushes beside {ENDS} recordings and {ENDS} transcodes ending over {SPREAD:.0f} s; "
          f"callbacks of every kind wired; /metrics every {gap:g} s after the last, one scrape p50 "
          f"{r['scrape'] * 1000:.0f} ms")
    print("| event | seen | scripted end -> status in /metrics p50 / p95 / max (min) |")
    print("|---|---|---|")
    for name in PATTERNS:
        k = r[name]
        print(f"| {name} | {k['seen']}/{k['planned']} | {k['p50'] * 1000:.0f} / {k['p95'] * 1000:.0f} / "
              f"{k['max'] * 1000:.0f} ms ({k['min'] * 1000:.0f} ms) |")
    stats = r["stats"]
    print("callbacks delivered (failed) while the exporter listened: " + ", ".join(
        f"{kind} {stats.get(f'{prefix}callbacks_sent', 0)} ({stats.get(f'{prefix}callbacks_failed', 0)})"
        for kind, prefix in (("push", ""), ("record", "record_"), ("transcode", "transcode_"))), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    argv = sys.argv[1:]
    gap = 0.1
    if "--gap" in argv:
        at = argv.index("--gap")
        gap = float(argv[at + 1])
        del argv[at:at + 2]
    main(next((int(a) for a in argv if a.isdigit()), 1000), gap)
