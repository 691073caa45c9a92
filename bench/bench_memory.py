"""Memory per tracked task: RSS growth with 50,000 tasks tracked, answered and scraped once.

Run: python -m bench.bench_memory [tasks]
"""

from __future__ import annotations

import gc
import os
import sys

from prometheus_client import CollectorRegistry

from bench.fleet import build_store
from exporter.exposition import Exposition


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main(size: int) -> None:
    gc.collect()
    before = rss_bytes()
    store = build_store(size)
    gc.collect()
    after_store = rss_bytes()
    exposition = Exposition(store, CollectorRegistry())
    body = sum(len(chunk) for chunk in exposition.render_text())
    gc.collect()
    after_scrape = rss_bytes()
    print(f"{size} tasks: store {(after_store - before) / size:.0f} B/task, with cached exposition "
          f"{(after_scrape - before) / size:.0f} B/task, total {(after_scrape - before) / 2**20:.1f} MiB "
          f"(scrape body {body / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)
