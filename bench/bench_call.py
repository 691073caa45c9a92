"""CPU per ``DescribeWhiteboardPush`` call: our client against the official SDK and an ``http.client`` floor.

Every variant signs with TC3, sends one POST over a kept-alive connection to the built-in simulator
(its own process, no rate limit, no latency), reads the answer and parses its JSON envelope:
- ``ours``: ``exporter.tencentcloud.client.TencentCloudClient.call`` (what a poll worker does, minus
  turning the answer into a ``PushTask``);
- ``sdk``: ``tencentcloud.tiw.v20190919.tiw_client.TiwClient.DescribeWhiteboardPush`` with
  ``keepAlive`` on (the official SDK also builds its response model);
- ``floor``: one ``http.client.HTTPConnection``, our signer (``exporter.tencentcloud.signing``) and
  ``json.loads``: what any client on the standard library must do, with no timeouts, size cap or retries.

Each variant runs in its own process: warm-up calls, then ``time.process_time()`` over ``--calls``
calls (all threads of that process, so our deadline watchdog counts). Repetitions are interleaved
(ours, sdk, floor, ours, ...), so a busy machine slows every variant alike: compare ratios of one run.
``--tree=PATH`` adds our client of another checkout (e.g. a worktree of an earlier commit) as a variant.
``--profile`` runs ``ours`` in this process under cProfile instead and prints where its time goes.

Run: python -m bench.bench_call [--calls=1500] [--reps=3] [--tree=PATH ...] [--profile]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from exporter.simulator import DEMO_SECRET_ID, DEMO_SECRET_KEY
from exporter.simulator.control import SimulatorClient
from tests.procs import REPO, SIMULATOR_URL, exporter_cmd, running

APP = 1400000001
WARMUP = 200

# Run in the variant's own process, from the tree whose code it measures: argv = variant url task calls.
CHILD = """
import http.client, json, sys, time
from urllib.parse import urlsplit
variant, url, task, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
secret_id, secret_key = sys.argv[5], sys.argv[6]
params = {"SdkAppId": int(sys.argv[7]), "TaskId": task}
host = urlsplit(url).netloc

if variant == "ours":
    from exporter.tencentcloud.client import TencentCloudClient
    from exporter.tencentcloud.credentials import Credential, StaticCredentials
    client = TencentCloudClient(StaticCredentials(Credential(secret_id, secret_key)), endpoint=url)

    def call():
        assert client.call("DescribeWhiteboardPush", params).response["TaskId"] == task
elif variant == "sdk":
    from tencentcloud.common import credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.tiw.v20190919 import models, tiw_client
    profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=host, keepAlive=True))
    client = tiw_client.TiwClient(credential.Credential(secret_id, secret_key), "ap-guangzhou", profile)
    request = models.DescribeWhiteboardPushRequest()
    request.SdkAppId, request.TaskId = params["SdkAppId"], task

    def call():
        assert client.DescribeWhiteboardPush(request).TaskId == task
else:
    from exporter.tencentcloud import signing
    connection = http.client.HTTPConnection(host, timeout=13)

    def call():
        body = json.dumps(params, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "Host": host, "X-TC-Action": "DescribeWhiteboardPush",
                   "X-TC-Version": "2019-09-19", "X-TC-Timestamp": str(timestamp), "X-TC-Region": "ap-guangzhou"}
        canonical = signing.canonical_request("POST", "/", "", headers, signing.DEFAULT_SIGNED_HEADERS, body)
        headers["Authorization"] = signing.authorization(secret_id, secret_key, timestamp, "tiw", canonical)
        connection.request("POST", "/", body, headers)
        answer = connection.getresponse()
        response = json.loads(answer.read(1 << 20))["Response"]
        assert answer.status == 200 and "Error" not in response and response["TaskId"] == task

for _ in range(WARMUP):
    call()
started = time.process_time()
for _ in range(calls):
    call()
print((time.process_time() - started) / calls * 1e6)
""".replace("WARMUP", str(WARMUP))


def run_variant(variant: str, tree: Path, url: str, task: str, calls: int) -> float:
    """Microseconds of CPU per call of ``variant``, measured in a process of its own."""
    args = [sys.executable, "-c", CHILD, variant, url, task, str(calls), DEMO_SECRET_ID, DEMO_SECRET_KEY, str(APP)]
    done = subprocess.run(args, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant} in {tree} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.split()[-1])


def profile(url: str, task: str, calls: int) -> None:
    import cProfile
    import pstats

    from exporter.tencentcloud.client import TencentCloudClient
    from exporter.tencentcloud.credentials import Credential, StaticCredentials

    client = TencentCloudClient(StaticCredentials(Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)), endpoint=url)
    params = {"SdkAppId": APP, "TaskId": task}
    for _ in range(WARMUP):
        client.call("DescribeWhiteboardPush", params)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        client.call("DescribeWhiteboardPush", params)
    profiler.disable()
    client.close()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def main(argv: list[str]) -> None:
    calls = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--calls=")), 1500)
    reps = next((int(a.split("=", 1)[1]) for a in argv if a.startswith("--reps=")), 3)
    trees = [Path(a.split("=", 1)[1]).resolve() for a in argv if a.startswith("--tree=")]
    variants = [("ours", REPO, "ours"), *((f"ours @ {t.name}", t, "ours") for t in trees),
                ("official SDK", REPO, "sdk"), ("http.client floor", REPO, "floor")]
    simulator = exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix", "--rate-limit", "0")
    with running(simulator, SIMULATOR_URL) as (_, url):
        task = SimulatorClient(url).add_task(APP)
        if "--profile" in argv:
            profile(url, task, calls)
            return
        results: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        for _ in range(reps):
            for name, tree, variant in variants:
                results[name].append(run_variant(variant, tree, url, task, calls))
    floor, sdk = results["http.client floor"], results["official SDK"]
    print(f"CPU per DescribeWhiteboardPush call, {calls:,} calls after {WARMUP} warm-up, {reps} interleaved reps")
    print("| client | µs per call, each rep | median | / floor, each rep | / SDK, each rep |")
    print("|---|---|---|---|---|")
    for name, values in results.items():
        each = ", ".join(f"{v:.0f}" for v in values)
        to_floor = ", ".join(f"{v / f:.2f}x" for v, f in zip(values, floor, strict=True))
        to_sdk = ", ".join(f"{v / s:.2f}x" for v, s in zip(values, sdk, strict=True))
        print(f"| {name} | {each} | {statistics.median(values):.0f} | {to_floor} | {to_sdk} |")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main(sys.argv[1:])
