"""Signed TIW API calls to a simulator at the simulator's own time, for the simulator's tests.

``call`` signs with the demo credential and the simulator's (often manual) clock, so no test sleeps
or fights the signature's five-minute window; ``code`` reads the outcome of an answer.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from exporter.simulator import DEMO_SECRET_ID, DEMO_SECRET_KEY, Simulator
from exporter.tencentcloud import signing


def call(sim: Simulator, action: str, params: dict[str, Any], region: str = "ap-guangzhou") -> dict[str, Any]:
    """One TC3-signed request at the simulator's own time; the answer's ``Response``."""
    body = json.dumps(params).encode()
    timestamp = int(sim.clock())
    headers = {"Content-Type": "application/json", "Host": sim.url.removeprefix("http://"), "X-TC-Action": action,
               "X-TC-Version": "2019-09-19", "X-TC-Timestamp": str(timestamp), "X-TC-Region": region}
    signed = ("content-type", "host")
    canonical = signing.canonical_request("POST", "/", "", headers, signed, body)
    headers["Authorization"] = signing.authorization(DEMO_SECRET_ID, DEMO_SECRET_KEY, timestamp, "tiw", canonical,
                                                     signed)
    answer = requests.post(sim.url + "/", data=body, headers=headers, timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    return answer.json()["Response"]


def code(answer: dict[str, Any]) -> str:
    """``success``, or the answer's error code."""
    return answer.get("Error", {}).get("Code", "success")
