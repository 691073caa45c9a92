"""``tiw-exporter demo``: the simulator with a realistic task mix and the exporter against it.

The exporter is given no task list: it learns the tasks the way a production deployment would,
from signed TIW callbacks, TIW's warning callbacks (queued pushes) and ``DescribeRunningTasks``
discovery. One task id that does not exist is tracked explicitly, to show an error code. Beside the
pushes, a class's recordings and its courseware transcodes run too: the demo watches every kind
unless ``--kinds`` says otherwise.
"""

from __future__ import annotations

import logging
import secrets

import click

from exporter.config import Settings
from exporter.kinds import DEFAULT_KINDS, KINDS
from exporter.runtime import Exporter
from exporter.simulator import DEFAULT_SDK_APP_ID, DEMO_SECRET_ID, DEMO_SECRET_KEY, Simulator
from exporter.tencentcloud.credentials import Credential, StaticCredentials

log = logging.getLogger(__name__)

DEMO_SDK_APP_ID = DEFAULT_SDK_APP_ID
NOT_FOUND_TASK = "demo_task_not_found"


def run_demo(settings: Settings, simulator_listen: tuple[str, int], seed: int, spawn_every: float = 20.0) -> None:
    callback_key, warning_token = secrets.token_hex(16), secrets.token_hex(16)
    simulator = Simulator(credentials={DEMO_SECRET_ID: DEMO_SECRET_KEY}, sdk_app_ids=(DEMO_SDK_APP_ID,),
                          listen=simulator_listen, seed=seed).start()
    exporter: Exporter | None = None
    try:
        kinds = tuple(KINDS) if settings.polling.kinds == DEFAULT_KINDS else settings.polling.kinds
        settings = settings.with_options(endpoint=simulator.url, tasks=((DEMO_SDK_APP_ID, NOT_FOUND_TASK),),
                                         kinds=kinds, callback_key=callback_key, warning_callback_token=warning_token,
                                         discover_sdk_app_ids=(DEMO_SDK_APP_ID,),
                                         discover_interval=min(settings.sources.discover_interval, 10.0))
        exporter = Exporter(settings, credentials=StaticCredentials(Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY)))
        exporter.install_signal_handlers()  # before start() logs "listening"
        exporter.start()
        for kind in kinds:  # one URL and key for every kind (TIW keeps one of each per kind and SdkAppId)
            simulator.configure_callbacks(f"{exporter.url}/callbacks/tiw", callback_key, kind=kind)
        simulator.configure_warning_callbacks(f"{exporter.url}/callbacks/tiw/warnings/{warning_token}")
        task_ids = simulator.populate_demo()
        simulator.populate_demo_kinds()
        simulator.spawn_every(spawn_every)
        click.echo(banner(simulator.url, exporter.url, task_ids[0]))
        exporter.wait()
    finally:
        if exporter is not None:
            exporter.stop()
        simulator.close()


def banner(simulator_url: str, exporter_url: str, task_id: str) -> str:
    """What the demo prints: where everything is, the simulator's (public, fake) key, two things to try."""
    return (
        f"TIW simulator: {simulator_url}  (SecretId {DEMO_SECRET_ID}, SecretKey {DEMO_SECRET_KEY}: a demo key)\n"
        f"Exporter:      {exporter_url}/   (status page)\n"
        f"Metrics:       {exporter_url}/metrics\n"
        f"Tasks:         {exporter_url}/api/v1/tasks\n"
        "Try:\n"
        f"  tiw-exporter describe --endpoint {simulator_url} --secret-id {DEMO_SECRET_ID} "
        f"--secret-key-file <(echo {DEMO_SECRET_KEY}) --sdk-app-id {DEMO_SDK_APP_ID} --task-id {task_id}\n"
        f"  curl -s {exporter_url}/metrics | grep -E 'tiw_(push|record|transcode)_task_status'\n"
        "Tasks arrive by TIW callbacks and DescribeRunningTasks discovery; press Ctrl-C to stop."
    )
