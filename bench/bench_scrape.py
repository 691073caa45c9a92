"""Scrape cost at 1k/10k/50k tracked tasks: our cached exposition vs prometheus_client's labelled Gauges.

Both render the same samples (checked). The baseline is what a straightforward exporter does: one
labelled ``Gauge``/``Counter`` per family, ``generate_latest`` per scrape. Ours is measured as a
steady-state scrape after 300 task updates (20 req/s x 15 s between scrapes).

Run: python -m bench.bench_scrape [sizes...]

``--mix`` (issue 21): at each size, push-only against the mix of the same task count (5/6 pushes, 1/6
recordings: bench.fleet ``records=True``), both rendered by our exposition in this run (cold, warm, gzip
warm; the warm updates touch the mix's recordings too); printed with the ratio mix / push-only. The
prometheus_client baseline is not part of it (it renders push families only).
Run: python -m bench.bench_scrape --mix [sizes...]   (default 12000 60000)
"""

from __future__ import annotations

import random
import statistics
import sys
import time

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from bench.fleet import build_store, touch
from exporter.exposition import Exposition
from exporter.metrics import TASK_FAMILIES, not_retired, per_task_samples
from exporter.store import TaskStore

UPDATES_BETWEEN_SCRAPES = 300


def baseline_registry(store: TaskStore) -> CollectorRegistry:
    registry = CollectorRegistry()
    families: dict[int, Gauge | Counter] = {}
    for record in not_retired(store.snapshot()):
        for index, labels, value in per_task_samples(record):
            family = TASK_FAMILIES[index]
            if index not in families:
                kind = Counter if family.kind == "counter" else Gauge
                families[index] = kind(family.name.removesuffix("_total"), family.help, [k for k, _ in labels],
                                       registry=registry)
            child = families[index].labels(*[v for _, v in labels])
            child.inc(value) if family.kind == "counter" else child.set(value)
    return registry


def timed(func, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def measure(size: int) -> str:
    """One table row: the same fleet rendered by the baseline and by our exposition."""
    store = build_store(size)
    rng = random.Random(size)
    exposition = Exposition(store, CollectorRegistry())
    started = time.perf_counter()
    body = b"".join(exposition.render_text())
    cold = time.perf_counter() - started
    registry = baseline_registry(store)
    baseline_body = generate_latest(registry)
    samples = sum(1 for line in baseline_body.splitlines() if not line.startswith(b"#"))
    assert set(baseline_body.splitlines()) <= set(body.splitlines()), "outputs differ"
    repeat = 3 if size > 20000 else 5
    baseline = timed(lambda: generate_latest(registry), repeat)

    def warm_scrape() -> None:
        touch(store, UPDATES_BETWEEN_SCRAPES, rng)
        exposition.render_text()

    def warm_gzip() -> None:
        touch(store, UPDATES_BETWEEN_SCRAPES, rng)
        exposition.render("", "gzip")

    # touch() runs inside the timed call: subtract its own cost, measured alone.
    touch_cost = timed(lambda: touch(store, UPDATES_BETWEEN_SCRAPES, rng), repeat)
    ours = max(timed(warm_scrape, repeat * 2) - touch_cost, 1e-6)
    gz = max(timed(warm_gzip, repeat) - touch_cost, 1e-6)
    return (f"{size:>7} {samples:>8} {baseline * 1000:>8.1f}ms {cold * 1000:>8.1f}ms {ours * 1000:>8.1f}ms "
            f"{gz * 1000:>8.1f}ms {baseline / ours:>6.1f}x")


def ours(size: int, records: bool) -> dict[str, float]:
    """Our exposition of one fleet: samples and bytes of a scrape, cold, warm and gzip-warm seconds."""
    store = build_store(size, records=records)
    rng = random.Random(size)
    exposition = Exposition(store, CollectorRegistry())
    started = time.perf_counter()
    body = b"".join(exposition.render_text())
    cold = time.perf_counter() - started
    repeat = 3 if size > 20000 else 5
    touch_cost = timed(lambda: touch(store, UPDATES_BETWEEN_SCRAPES, rng, records), repeat)

    def warm_scrape() -> None:
        touch(store, UPDATES_BETWEEN_SCRAPES, rng, records)
        exposition.render_text()

    def warm_gzip() -> None:
        touch(store, UPDATES_BETWEEN_SCRAPES, rng, records)
        exposition.render("", "gzip")

    return {"samples": sum(1 for line in body.splitlines() if not line.startswith(b"#")), "bytes": len(body),
            "cold": cold, "warm": max(timed(warm_scrape, repeat * 2) - touch_cost, 1e-6),
            "gzip": max(timed(warm_gzip, repeat) - touch_cost, 1e-6)}


def main_mix(sizes: list[int]) -> None:
    print("| tasks | fleet | samples | body | cold | warm | gzip warm |")
    print("|---|---|---|---|---|---|---|")
    for size in sizes:
        push, mix = ours(size, False), ours(size, True)
        for name, r in (("push only", push), ("5/6 push + 1/6 record", mix)):
            print(f"| {size:,} | {name} | {r['samples']:,} | {r['bytes'] / 2**20:.1f} MiB | {r['cold'] * 1000:.1f} ms "
                  f"| {r['warm'] * 1000:.1f} ms | {r['gzip'] * 1000:.1f} ms |")
        print(f"| {size:,} | ratio mix / push only | {mix['samples'] / push['samples']:.2f}x "
              f"| {mix['bytes'] / push['bytes']:.2f}x | {mix['cold'] / push['cold']:.2f}x "
              f"| {mix['warm'] / push['warm']:.2f}x | {mix['gzip'] / push['gzip']:.2f}x |", flush=True)
    print(f"(warm = a scrape after {UPDATES_BETWEEN_SCRAPES} task updates; machine shared and noisy)")


def main(sizes: list[int]) -> None:
    print(f"{'tasks':>7} {'samples':>8} {'baseline':>10} {'ours cold':>10} {'ours warm':>10} {'gzip warm':>10} "
          f"{'ratio':>7}")
    for size in sizes:
        print(measure(size))
    print(f"(warm = a scrape after {UPDATES_BETWEEN_SCRAPES} task updates; machine shared and noisy)")


if __name__ == "__main__":
    if "--mix" in sys.argv[1:]:
        main_mix([int(a) for a in sys.argv[1:] if a.isdigit()] or [12000, 60000])
    else:
        main([int(a) for a in sys.argv[1:]] or [1000, 10000, 50000])
