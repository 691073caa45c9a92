"""CPU of ``--state-file`` persistence in a running exporter restored from N tasks, versions side by side.

For each size, every checkout given (default: this one) runs two ``tiw-exporter run`` processes at
once, each with its own simulator as in bench_memory: one saving every 5 s (the default), one with
``--state-save-interval 1h`` (never within the window). Reported per checkout:

* ``writer``: CPU of the ``state-writer`` thread itself over the window (its OS thread found with
  ``py-spy dump``; "-" without py-spy). This is the cost of persistence, free of the other threads' noise;
* ``first write``: that thread's CPU before the window: the one write after the restore;
* ``process 5s`` / ``process 1h`` and their difference: whole-process CPU, the way bench_memory
  splits it (a difference under ~1 % of a core is within this machine's noise).

The window starts one save interval after ``/-/ready``, so the first write is not in it. All processes
of one size run in the same window: a busy machine slows them alike; compare within a run.

Run: python -m bench.bench_state [--tree=PATH ...] [--window=60] [tasks ...]   (default 10000 50000)

Measured (2 shared cores, 60 s, two runs) side by side with the first version of the SQLite state writer
(which deep-copied every row it encoded and compared every restored row field by field on its first write):
writer 0.11 / 0.09 % of a core at 10,000 (was 0.18 / 0.20 %), 0.13 / 0.12 % at 50,000 (was 0.21 / 0.19 %);
first write 0.03 s at 10,000 (was 0.06-0.08 s), 0.12-0.16 s at 50,000 (was 0.43-0.47 s); the process
difference -0.4 to +0.6 % (was +0.3 to +1.2 %): within noise. The 3.7 % once reported at 50,000 was two
separate 20 s runs with the first write in the window.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from bench.bench_memory import cpu_seconds, write_restored_state
from tests.procs import EXPORTER_URL, REPO, SIMULATOR_URL, Process, running

SAVE_INTERVAL = 5.0


def writer_thread(pid: int) -> int | None:
    """The OS thread id of the ``state-writer`` thread (None without py-spy)."""
    if shutil.which("py-spy") is None:
        return None
    dump = subprocess.run(["py-spy", "dump", "--json", "-p", str(pid)], capture_output=True, text=True, check=True)
    return next((t["os_thread_id"] for t in json.loads(dump.stdout) if t.get("thread_name") == "state-writer"), None)


def start(stack: ExitStack, tree: Path, state: Path, key_file: Path, interval: str) -> tuple[Process, str]:
    _, simulator = stack.enter_context(running(
        [sys.executable, "-m", "exporter", "simulate", "--listen", "127.0.0.1:0", "--no-demo-mix"], SIMULATOR_URL))
    process = Process([sys.executable, "-m", "exporter", "run", "--listen", "127.0.0.1:0", "--endpoint", simulator,
                       "--secret-id", "AKIDsimulator", "--secret-key-file", str(key_file), "--state-file", str(state),
                       "--state-save-interval", interval], cwd=tree)
    stack.callback(process.stop)
    return process, process.wait_for(EXPORTER_URL, timeout=300).group("url")


def measure(size: int, trees: list[Path], directory: Path, key_file: Path, window: float) -> list[str]:
    with ExitStack() as stack:
        runs = []
        for index, tree in enumerate(trees):
            for interval in ("5s", "1h"):
                state = directory / f"state-{size}-{index}-{interval}.db"
                write_restored_state(state, size)
                runs.append((tree, interval, *start(stack, tree, state, key_file, interval)))
        for *_, url in runs:
            while requests.get(f"{url}/-/ready", timeout=30).status_code != 200:
                time.sleep(0.1)
        time.sleep(SAVE_INTERVAL + 1)  # the first write after the restore lands before the window
        pids = [process.proc.pid for _, _, process, _ in runs]
        tids = [writer_thread(pid) for pid in pids]
        before = [(cpu_seconds(pid), cpu_seconds(pid, tid) if tid else float("nan")) for pid, tid in zip(pids, tids)]
        started = time.monotonic()
        while time.monotonic() - started < window:
            for *_, url in runs:
                requests.get(f"{url}/metrics", timeout=60)
            time.sleep(5)
        elapsed = time.monotonic() - started
        after = [(cpu_seconds(pid), cpu_seconds(pid, tid) if tid else float("nan")) for pid, tid in zip(pids, tids)]
    share = [((a[0] - b[0]) / elapsed * 100, (a[1] - b[1]) / elapsed * 100, b[1]) for a, b in zip(after, before)]
    rows = []
    for index, tree in enumerate(trees):
        (saving, writer, first), (never, _, _) = share[2 * index], share[2 * index + 1]
        rows.append(f"| {size:,} | {tree} | {writer:.2f} % | {first:.2f} s | {saving:.1f} % | {never:.1f} % | "
                    f"{saving - never:+.1f} % |")
    return rows


def main(trees: list[Path], sizes: list[int], window: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        key_file = directory / "key"
        key_file.write_text("simulator-secret-key\n")
        print(f"CPU of one core over {window:.0f} s")
        print("| tasks | checkout | writer | first write | process 5s | process 1h | difference |")
        print("|---|---|---|---|---|---|---|")
        for size in sizes:
            print("\n".join(measure(size, trees, directory, key_file, window)), flush=True)


if __name__ == "__main__":
    options = [a for a in sys.argv[1:] if a.startswith("--")]
    main([Path(a.split("=", 1)[1]) for a in options if a.startswith("--tree=")] or [REPO],
         [int(a) for a in sys.argv[1:] if a.isdigit()] or [10_000, 50_000],
         next((float(a.split("=", 1)[1]) for a in options if a.startswith("--window=")), 60.0))
