"""``tiw-exporter demo``: the simulator with a realistic task mix and the exporter against it."""

from __future__ import annotations

import logging
from dataclasses import replace

import click

from exporter.app import Exporter
from exporter.config import Settings
from exporter.credentials import Credential, StaticCredentials
from exporter.simulator import Simulator

log = logging.getLogger(__name__)

DEMO_SDK_APP_ID = 1400000001
DEMO_SECRET_ID = "AKIDdemo"
DEMO_SECRET_KEY = "demo-secret-key-not-a-real-credential"
NOT_FOUND_TASK = "demo_task_not_found"


def run_demo(settings: Settings, simulator_listen: tuple[str, int], seed: int) -> None:
    simulator = Simulator(credentials={DEMO_SECRET_ID: DEMO_SECRET_KEY}, sdk_app_ids=(DEMO_SDK_APP_ID,),
                          listen=simulator_listen, seed=seed).start()
    try:
        task_ids = simulator.populate_demo()
        tasks = (*((DEMO_SDK_APP_ID, t) for t in task_ids), (DEMO_SDK_APP_ID, NOT_FOUND_TASK))
        settings = replace(settings, endpoint=simulator.url, tasks=tasks)
        exporter = Exporter(settings, credentials=StaticCredentials(Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)))
        exporter.start()
        click.echo(
            f"TIW simulator: {simulator.url}  (SecretId {DEMO_SECRET_ID}, demo key)\n"
            f"Exporter:      {exporter.url}/\n"
            f"Metrics:       {exporter.url}/metrics\n"
            f"Tasks:         {exporter.url}/api/v1/tasks\n"
            f"Tracking {len(tasks)} demo tasks; press Ctrl-C to stop."
        )
        exporter.wait()
    finally:
        simulator.close()
