"""``tiw-exporter demo``: the simulator with a realistic task mix and the exporter against it.

The exporter is given no task list: it learns the tasks the way a production deployment would,
from signed TIW push callbacks and from ``DescribeRunningTasks`` discovery. One task id that does
not exist is tracked explicitly, to show an error code.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace

import click

from exporter.config import Settings
from exporter.runtime import Exporter
from exporter.simulator import DEFAULT_SDK_APP_ID, DEMO_SECRET_ID, DEMO_SECRET_KEY, Simulator
from exporter.tencentcloud.credentials import Credential, StaticCredentials

log = logging.getLogger(__name__)

DEMO_SDK_APP_ID = DEFAULT_SDK_APP_ID
NOT_FOUND_TASK = "demo_task_not_found"


def run_demo(settings: Settings, simulator_listen: tuple[str, int], seed: int, spawn_every: float = 20.0) -> None:
    callback_key = secrets.token_hex(16)
    simulator = Simulator(credentials={DEMO_SECRET_ID: DEMO_SECRET_KEY}, sdk_app_ids=(DEMO_SDK_APP_ID,),
                          listen=simulator_listen, seed=seed).start()
    exporter: Exporter | None = None
    try:
        settings = replace(settings, endpoint=simulator.url, tasks=((DEMO_SDK_APP_ID, NOT_FOUND_TASK),),
                           callback_key=callback_key, discover_sdk_app_ids=(DEMO_SDK_APP_ID,),
                           discover_interval=min(settings.discover_interval, 10.0))
        exporter = Exporter(settings, credentials=StaticCredentials(Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)))
        exporter.start()
        simulator.configure_callbacks(f"{exporter.url}/callbacks/tiw", callback_key)
        simulator.populate_demo()
        simulator.spawn_every(spawn_every)
        click.echo(
            f"TIW simulator: {simulator.url}  (SecretId {DEMO_SECRET_ID}, demo key)\n"
            f"Exporter:      {exporter.url}/\n"
            f"Metrics:       {exporter.url}/metrics\n"
            f"Tasks:         {exporter.url}/api/v1/tasks\n"
            "Tasks arrive by TIW callbacks and DescribeRunningTasks discovery; press Ctrl-C to stop."
        )
        exporter.wait()
    finally:
        if exporter is not None:
            exporter.stop()
        simulator.close()
