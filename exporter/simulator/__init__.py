"""A simulator of the TIW API 3.0 endpoint: a real HTTP server for the demo, tests and benchmarks.

It answers ``POST /`` like ``tiw.tencentcloudapi.com`` does for ``DescribeWhiteboardPush``,
``StartWhiteboardPush``, ``StopWhiteboardPush``, ``DescribeRunningTasks``, the push-callback settings
(``Set/DescribeWhiteboardPushCallback(Key)``) and the warning-callback settings
(``Set/DescribeWarningCallback``): TC3-HMAC-SHA256 verification (with ``exporter.tencentcloud.signing``,
the same code the client signs with), the region check, the error envelope, a per-(SecretId, action)
rate limit, latency, injected faults, time-driven task lifecycles, signed ``WhiteboardPushStarted`` /
``WhiteboardPushStopped`` callbacks and ``TaskQueued*LimitWarning`` callbacks for queued pushes.

Modules, by behaviour (each keeps the decisions it implements in its docstring):
``lifecycle`` (one task over time), ``mixes`` (seeded task mixes), ``tasks`` (the task book),
``faults``, ``api`` (checks, signatures, rate window, the actions), ``stats``, ``push_callbacks`` (the
callback settings per SdkAppId, the push callback body), ``warning_callbacks`` (warning settings, when
and what to warn), ``callbacks`` (the sender), ``control`` (the ``/_sim/`` hooks and
``SimulatorClient``), ``http`` (the server), ``core`` (the ``Simulator`` facade) and ``cli`` (the
``simulate`` command).

Nothing in the exporter's runtime may import this package (a ruff banned-api rule enforces it);
only ``exporter.cli``, ``exporter.demo``, tests and benchmarks do.
"""

from exporter.simulator.cli import SimulatorOptions, run
from exporter.simulator.control import SimulatorClient
from exporter.simulator.core import DEFAULT_SDK_APP_ID, DEMO_SECRET_ID, DEMO_SECRET_KEY, Simulator
from exporter.simulator.faults import FAULT_KINDS, OVERSIZED_BYTES, FaultSpec, parse_fault_spec
from exporter.simulator.lifecycle import (
    DOCUMENTED_DESCRIBE_BACKUP,
    SEED_FAILURE_MESSAGE,
    TaskScript,
    TaskState,
    task_state,
)
from exporter.simulator.protocol import API_VERSION, DEFAULT_REGIONS, SimulatedError
from exporter.simulator.warning_callbacks import WARNING_ENVELOPES

__all__ = [
    "API_VERSION",
    "DEFAULT_REGIONS",
    "DEFAULT_SDK_APP_ID",
    "DEMO_SECRET_ID",
    "DEMO_SECRET_KEY",
    "DOCUMENTED_DESCRIBE_BACKUP",
    "FAULT_KINDS",
    "OVERSIZED_BYTES",
    "SEED_FAILURE_MESSAGE",
    "WARNING_ENVELOPES",
    "FaultSpec",
    "SimulatedError",
    "Simulator",
    "SimulatorClient",
    "SimulatorOptions",
    "TaskScript",
    "TaskState",
    "parse_fault_spec",
    "run",
    "task_state",
]
