"""Hundreds of idle and slowloris connections on each listener while scrapes and signed callbacks answer.

The numbers are modest so CI stays quick; bench/bench_abuse.py runs thousands and prints latencies.
Bounds are functional (200 before a generous client timeout), never wall-clock assertions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from exporter.callbacks import sign
from exporter.config import build_settings
from exporter.fdlimit import raise_open_files_limit
from exporter.runtime import Exporter
from exporter.simulator import Simulator
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from tests.abuse import Attack
from tests.constants import APP
from tests.harness import eventually

IDLE, SLOW = 300, 100
CALLBACK_KEY = "abuse-callback-key"


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    with Simulator(credentials={"AKIDabuse": "abuse-key"}) as simulator:
        settings = build_settings({"listen": "127.0.0.1:0", "callback_listen": "127.0.0.1:0",
                                   "endpoint": simulator.url, "callback_key": CALLBACK_KEY})
        running = Exporter(settings, credentials=StaticCredentials(Credential("AKIDabuse", "abuse-key"))).start()
        try:
            yield running
        finally:
            running.stop()


def signed_callback(task_id: str) -> dict[str, object]:
    expire = int(time.time()) + 60
    return {"Timestamp": 1, "SdkAppId": APP, "ExpireTime": expire, "Sign": sign(CALLBACK_KEY, expire),
            "EventType": "WhiteboardPushStarted", "EventData": {"TaskId": task_id}}


@pytest.mark.slow
def test_idle_and_slowloris_connections_on_both_listeners_do_not_starve_scrapes_or_callbacks(exporter):
    servers = [exporter.server, exporter.callback_server]
    attacks = [Attack(server.server_address[:2], IDLE, SLOW).start() for server in servers]
    try:
        assert all(attack.opened == (IDLE, SLOW) for attack in attacks)
        for server in servers:  # the server really holds them all at once
            eventually(lambda server=server: server.connections >= IDLE + SLOW)
        with requests.Session() as session:
            for index in range(20):
                assert session.get(f"{exporter.url}/metrics", timeout=30).status_code == 200
                answer = session.post(f"{exporter.callback_server.url}/callbacks/tiw", timeout=30,
                                      json=signed_callback(f"under_attack_{index}"))
                assert answer.status_code == 200, answer.text
        assert exporter.store.get((APP, "under_attack_19")) is not None
    finally:
        for attack in attacks:
            attack.stop()


def test_the_soft_open_files_limit_is_raised_to_the_hard_one():
    resource = pytest.importorskip("resource")
    limit = raise_open_files_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limit == soft
    assert soft == hard or hard == resource.RLIM_INFINITY
