"""The paging policy's targets, measured on the shipped rules (alerts/tiw-push.rules.yml) with promtool:
a fleet of small SdkAppIds meeting the SLO, fleet and app burns, a customer's own FAILED pushes.

    python -m bench.alert_targets                   # every scenario, 2 seeds for the Monte Carlo
    python -m bench.alert_targets --seeds 5 --only a
    python -m bench.alert_targets --days 3          # a shorter Monte Carlo (pages scaled to 30 days)

Each scenario generates random series (Poisson pushes, each bad with a probability), writes a promtool
unit-test file that expects *no* alert at every checkpoint, runs ``promtool test rules`` and reads the
alerts promtool reports as unexpected: that is what fired, and when. A firing *episode* is a run of
consecutive checkpoints with the alert firing (with ``for: 2m`` and ``keep_firing_for: 15m`` an episode
lasts at least 17 minutes, so checkpoints every 5 minutes see every one); each episode is one page or
ticket. Scenarios and targets:

    a  100 SdkAppIds at 10 pushes/h, 1 % bad (exactly the 99 % SLO), 30 days: <= 1 critical page
    b  the same fleet turning 20 % bad at minute 60: a page within 10 minutes
    c  one SdkAppId at 120 pushes/h turning 20 % bad: a page
    d  one SdkAppId at 10 pushes/h, 20 % bad for 2 days: no page, one ticket
    e  three FAILED pushes of one SdkAppId with TRTC code -70003 (illegal UserSig): no page
    f  a callback-learned task never answered: a warning naming it at 20 minutes

Scenario a evaluates only the rules its critical alerts read (the shipped fleet group and the recording
rules it depends on, verbatim): the 3-day windows of the ticket alert would make a 30-day run take hours
on 2 cores, and tickets are not what it measures. promtool 2.42 or later must be on PATH.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "alerts" / "tiw-push.rules.yml"
JOB, INSTANCE = "tiw-push-exporter", "127.0.0.1:9876"
CHECK_EVERY = 5  # minutes between checkpoints


def series(metric: str, **labels: str) -> str:
    merged = {"job": JOB, "instance": INSTANCE, **labels}
    return metric + "{" + ", ".join(f'{k}="{v}"' for k, v in merged.items()) + "}"


def poisson(rng: random.Random, mean: float) -> int:
    # Knuth: fine for the small means of one scrape interval
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def app_counters(rng: random.Random, app: str, per_hour: float, bad_share: Any, steps: int,
                 step_minutes: int) -> list[dict[str, str]]:
    """AUTO and EXCEPTION counters of one SdkAppId; ``bad_share(minute)`` is the bad probability."""
    good, bad, good_values, bad_values = 0, 0, [], []
    for step in range(steps + 1):
        if step:
            for _ in range(poisson(rng, per_hour * step_minutes / 60)):
                if rng.random() < bad_share(step * step_minutes):
                    bad += 1
                else:
                    good += 1
        good_values.append(str(good))
        bad_values.append(str(bad))
    return [{"series": series("tiw_push_tasks_finished_total", sdk_app_id=app, reason="AUTO"),
             "values": " ".join(good_values)},
            {"series": series("tiw_push_tasks_finished_total", sdk_app_id=app, reason="EXCEPTION"),
             "values": " ".join(bad_values)}]


def rules_for_critical_alerts(directory: Path) -> Path:
    """The shipped fleet group and, verbatim, every recording rule it reads (transitively)."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    records = {rule["record"]: rule for group in groups for rule in group["rules"] if "record" in rule}
    fleet = next(group for group in groups if group["name"] == "tiw-push.fleet")
    alerts = [rule for rule in fleet["rules"] if rule["labels"]["severity"] == "critical"]
    needed: set[str] = set()
    todo = [rule["expr"] for rule in alerts]
    while todo:
        for name in re.findall(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", todo.pop()):
            if name not in needed and name in records:
                needed.add(name)
                todo.append(records[name]["expr"])
    ordered = [rule for group in groups for rule in group["rules"] if rule.get("record") in needed]
    path = directory / "critical.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "tiw-push.slo", "rules": ordered},
                                               {"name": "tiw-push.fleet", "rules": alerts}]}, sort_keys=False))
    return path


def run_promtool(rules: Path, input_series: list[dict[str, str]], minutes: int, interval: int,
                 alertnames: list[str], directory: Path, name: str) -> dict[str, list[tuple[int, str]]]:
    """Firing (minute, labels) per alert name at every checkpoint, from promtool's unexpected alerts."""
    checks = [{"eval_time": f"{minute}m", "alertname": alertname, "exp_alerts": []}
              for minute in range(CHECK_EVERY, minutes + 1, CHECK_EVERY) for alertname in alertnames]
    test = {"rule_files": [str(rules)], "evaluation_interval": f"{interval}m",
            "group_eval_order": [g["name"] for g in yaml.safe_load(rules.read_text())["groups"]],
            "tests": [{"name": name, "interval": f"{interval}m", "input_series": input_series,
                       "alert_rule_test": checks}]}
    path = directory / f"{name}.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False, width=1_000_000))
    result = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    if result.returncode and "FAILED" not in output:
        raise RuntimeError(output)
    fired: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for case in re.split(r"\n\s+name: ", output)[1:]:
        found = re.search(r"alertname: (\w+), time: (\w+),.*?got:(.*?)(?:\n\n|\Z)", case, re.S)
        if found:
            for labels in re.findall(r"Labels:\{(.*?)\}", found.group(3)):
                fired[found.group(1)].append((_minutes(found.group(2)), labels))
    return fired


def _minutes(duration: str) -> int:
    total = 0
    for amount, unit in re.findall(r"(\d+)([dhm])", duration):
        total += int(amount) * {"d": 1440, "h": 60, "m": 1}[unit]
    return total


def episodes(points: list[tuple[int, str]]) -> int:
    """Runs of consecutive checkpoints with the same alert (labels) firing."""
    by_labels: dict[str, list[int]] = defaultdict(list)
    for minute, labels in points:
        by_labels[labels].append(minute)
    return sum(1 + sum(1 for a, b in itertools.pairwise(ms) if b - a > CHECK_EVERY)
               for ms in (sorted(set(m)) for m in by_labels.values()))


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        sys.exit("promtool not found on PATH (CI: the Debian 2.42 package)")
    return found


CRITICAL = ["TiwPushFleetErrorBudgetBurn", "TiwPushErrorBudgetBurn", "TiwPushManyTasksFailing"]


def scenario_a(directory: Path, seeds: int, days: float) -> str:
    rules = rules_for_critical_alerts(directory)
    minutes, interval = int(days * 1440), 2
    pages = []
    for seed in range(seeds):
        rng = random.Random(seed)
        inputs = [s for n in range(100)
                  for s in app_counters(rng, str(1400100000 + n), 10, lambda _: 0.01, minutes // interval, interval)]
        started = time.monotonic()
        fired = run_promtool(rules, inputs, minutes, interval, CRITICAL, directory, f"a-{seed}")
        count = sum(episodes(fired.get(name, [])) for name in CRITICAL)
        pages.append(count * 30 / days)
        print(f"  a seed {seed}: {count} critical episodes in {days:g} days "
              f"({time.monotonic() - started:.0f} s)", flush=True)
    mean = sum(pages) / len(pages)
    return f"a: {mean:.2f} critical pages per 30 days (seeds: {', '.join(f'{p:.1f}' for p in pages)}; target <= 1)"


def scenario_b(directory: Path) -> str:
    rng = random.Random(7)
    inputs = [s for n in range(100) for s in app_counters(
        rng, str(1400100000 + n), 10, lambda m: 0.01 if m < 60 else 0.2, 90, 1)]
    fired = run_promtool(RULES, inputs, 90, 1, CRITICAL, directory, "b")
    first = min((m for name in CRITICAL for m, _ in fired.get(name, []) if m >= 60), default=None)
    before = sum(1 for name in CRITICAL for m, _ in fired.get(name, []) if m < 60)
    took = f"{first - 60} min after the onset" if first is not None else "never"
    return f"b: fleet-wide 20 % from minute 60 pages {took} (checkpoints every {CHECK_EVERY} min; " \
           f"pages before the onset: {before}; target <= 10 min)"


def scenario_c(directory: Path) -> str:
    rng = random.Random(3)
    inputs = app_counters(rng, "1400000001", 120, lambda m: 0.01 if m < 60 else 0.2, 180, 1)
    fired = run_promtool(RULES, inputs, 180, 1, CRITICAL, directory, "c")
    hits = sorted(m for name in CRITICAL for m, _ in fired.get(name, []))
    counts = {name: episodes(fired.get(name, [])) for name in CRITICAL}
    when = f"first at {hits[0] - 60} min after the onset" if hits else "never"
    return f"c: one SdkAppId (the whole fleet here) at 120 pushes/h turning 20 % bad for 2 h: episodes {counts}, " \
           f"{when} (target: pages)"


def scenario_d(directory: Path) -> str:
    rng = random.Random(5)
    minutes = 2 * 1440
    inputs = app_counters(rng, "1400000003", 10, lambda _: 0.2, minutes // 2, 2)
    names = [*CRITICAL, "TiwPushErrorBudgetBurnSlow", "TiwPushAppAllPushesFailing"]
    fired = run_promtool(RULES, inputs, minutes, 2, names, directory, "d")
    pages = sum(episodes(fired.get(name, [])) for name in CRITICAL)
    tickets = {name: episodes(fired.get(name, [])) for name in names[3:]}
    return f"d: one SdkAppId at 10 pushes/h, 20 % bad for 2 days: {pages} pages, tickets {tickets} " \
           "(target: no page, one ticket)"


def scenario_e(directory: Path) -> str:
    inputs = [{"series": series("tiw_push_tasks_finished_total", sdk_app_id="1400000004", reason=r), "values": v}
              for r, v in (("AUTO", "0x40"), ("EXCEPTION", "0x40"), ("FAILED", "0x9 1x5 2x5 3x20"))]
    inputs += [{"series": series("tiw_push_task_failure_info", sdk_app_id="1400000004", task_id=f"usersig-{m}",
                                 code="FailedOperation.WhiteboardPush", trtc_code="-70003"),
                "values": f"_x{m} 1x{40 - m}"} for m in (10, 15, 20)]
    names = [*CRITICAL, "TiwPushAppAllPushesFailing"]
    fired = run_promtool(RULES, inputs, 40, 1, names, directory, "e")
    return "e: three FAILED pushes with TRTC -70003: " + ", ".join(
        f"{name} {episodes(fired.get(name, []))}" for name in names) + " (target: no page)"


def scenario_f(directory: Path) -> str:
    task = {"sdk_app_id": "1400000001", "task_id": "callback-only"}
    inputs = [{"series": series("tiw_push_task_status", status=s, **task), "values": v}
              for s, v in (("PREPARED", "0x30"), ("PUSHING", "1x30"), ("STOPPED", "0x30"))]
    fired = run_promtool(RULES, inputs, 30, 1, ["TiwPushTaskNeverAnswered"], directory, "f")
    at20 = [labels for m, labels in fired.get("TiwPushTaskNeverAnswered", []) if m == 20]
    named = any('task_id="callback-only"' in labels and 'severity="warning"' in labels for labels in at20)
    return f"f: callback-learned task never answered: warning naming it at 20 min: {'yes' if named else 'NO'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="Monte Carlo seeds of scenario a")
    parser.add_argument("--days", type=float, default=30, help="days per seed of scenario a")
    parser.add_argument("--only", default="abcdef", help="scenarios to run, e.g. 'bef'")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        results = []
        for key in args.only:
            if key == "a":
                results.append(scenario_a(directory, args.seeds, args.days))
            else:
                results.append(globals()[f"scenario_{key}"](directory))
            print(results[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
