"""The ``simulate`` command: run a simulator until SIGINT/SIGTERM. All of the simulator's printing lives here."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from exporter.simulator.core import DEFAULT_SDK_APP_ID, DEMO_SECRET_ID, DEMO_SECRET_KEY, Simulator
from exporter.simulator.faults import FaultSpec, fault_spec
from exporter.simulator.lifecycle import check_non_negative
from exporter.simulator.protocol import DEFAULT_REGIONS

DEMO_SPAWN_SECONDS = 30.0
SHOWN_TASKS = 10


@dataclass(frozen=True)
class SimulatorOptions:
    """What ``simulate`` runs; ValueError on bad values (faults are checked here, before anything binds).

    ``faults`` are ``parse_fault_spec`` texts, (kind, ratio) pairs or FaultSpecs. With ``demo``, the
    demo mix is created and new tasks keep arriving every 30 s unless ``spawn_every`` says otherwise
    (0 disables). With ``demo_kinds`` too, the demo also shows a class's recordings and courseware
    transcodes (off by default, so the demo's pushes alone stay what they were). ``regions``: the
    ``X-TC-Region`` values served (None: any).
    """

    listen: tuple[str, int] = ("127.0.0.1", 0)
    secret_id: str = DEMO_SECRET_ID
    secret_key: str = DEMO_SECRET_KEY
    latency: float = 0.0
    rate_limit: float = 20.0
    tasks: int = 0
    seed: int = 0
    demo: bool = False
    callback_url: str | None = None
    callback_key: str | None = None
    faults: Sequence[str | tuple[str, float | None] | FaultSpec] = ()
    sdk_app_ids: Sequence[int] = (DEFAULT_SDK_APP_ID,)
    unregistered_sdk_app_ids: Sequence[int] = ()
    expired_sdk_app_ids: Sequence[int] = ()
    spawn_every: float | None = None
    regions: Sequence[str] | None = DEFAULT_REGIONS
    demo_kinds: bool = False

    def __post_init__(self) -> None:
        self.fault_specs()
        if self.spawn_every is not None:
            check_non_negative("spawn_every", self.spawn_every)

    def fault_specs(self) -> list[FaultSpec]:
        return [fault_spec(fault) for fault in self.faults]

    @property
    def spawn_seconds(self) -> float:
        if self.spawn_every is not None:
            return self.spawn_every
        return DEMO_SPAWN_SECONDS if self.demo else 0.0


def _print(line: str) -> None:
    print(line, flush=True)


def run(options: SimulatorOptions, stop: threading.Event | None = None, out: Callable[[str], None] = _print) -> None:
    """Run the simulator until SIGINT/SIGTERM (or ``stop`` is set); ValueError on bad arguments."""
    simulator = Simulator(
        credentials={options.secret_id: options.secret_key},
        sdk_app_ids=options.sdk_app_ids,
        unregistered_sdk_app_ids=options.unregistered_sdk_app_ids,
        expired_sdk_app_ids=options.expired_sdk_app_ids,
        rate_limit=options.rate_limit,
        latency=options.latency,
        seed=options.seed,
        listen=options.listen,
        callback_url=options.callback_url,
        callback_key=options.callback_key,
        regions=options.regions,
    )
    stop = stop or threading.Event()
    # The handlers go in before "listening" is printed: a SIGTERM sent the moment it appears stops cleanly.
    with simulator, _SignalStop(stop):
        for spec in options.fault_specs():
            simulator.set_fault(**spec.given())
        created: list[str] = []
        if options.tasks:
            created += simulator.populate(options.tasks, options.sdk_app_ids[0])
        if options.demo:
            created += simulator.populate_demo()
        others = simulator.populate_demo_kinds() if options.demo and options.demo_kinds else []
        if options.spawn_seconds:
            simulator.spawn_every(options.spawn_seconds)
        _announce(simulator, options, created, out)
        if others:
            out(f"... and {len(others)} recordings and transcodes (GET {simulator.url}/_sim/stats)")
        while not stop.wait(0.5):
            pass
        out("simulator stopping")


def _announce(simulator: Simulator, options: SimulatorOptions, created: list[str], out: Callable[[str], None]) -> None:
    out(f"TIW API simulator listening on {simulator.url}")
    # Only the built-in demo key is printed: it is public anyway; a key the user chose never is.
    builtin = options.secret_key == DEMO_SECRET_KEY
    shown = f", secret key {options.secret_key} (the built-in demo key)" if builtin else ""
    out(f"credentials: secret id {options.secret_id}{shown}")
    app = options.sdk_app_ids[0]
    for task_id in created[:SHOWN_TASKS]:
        out(f"task: {app}:{task_id}")
    if len(created) > SHOWN_TASKS:
        out(f"... and {len(created) - SHOWN_TASKS} more tasks (GET {simulator.url}/_sim/stats)")


class _SignalStop:
    """Set ``stop`` on SIGINT/SIGTERM while inside; a no-op outside the main thread."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, lambda *_: self._stop.set())

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
