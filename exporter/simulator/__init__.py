"""A simulator of the TIW API 3.0 endpoint: a real HTTP server for the demo, tests and benchmarks.

It answers ``POST /`` like ``tiw.tencentcloudapi.com`` does for three task kinds: whiteboard pushes
(``Describe/Start/StopWhiteboardPush``), real-time recordings (``Describe/Start/Stop/Pause/
ResumeOnlineRecord``) and document transcodes (``CreateTranscode``, ``DescribeTranscode``), plus
``DescribeRunningTasks`` for each TaskType, each kind's callback settings
(``Set/Describe<Kind>Callback(Key)``) and the warning-callback settings (``Set/DescribeWarningCallback``):
TC3-HMAC-SHA256 verification (with ``exporter.tencentcloud.signing``, the same code the client signs
with), the region check, the error envelope, a per-(SecretId, action) rate limit, latency, injected
faults, time-driven task lifecycles, each kind's signed callbacks (``WhiteboardPush*``,
``OnlineRecord*``, ``Transcode*``) and ``TaskQueued*LimitWarning`` callbacks for queued pushes.

Modules, by behaviour (each keeps the decisions it implements in its docstring):
``lifecycle`` (one push over time), ``record_lifecycle`` and ``transcode_lifecycle`` (one recording,
one transcode over time), ``mixes`` (seeded task mixes), ``tasks`` (the push book), ``kind_book`` (the
book of another kind), ``faults``, ``api`` (checks, signatures, rate window, the push actions),
``kind_api`` (the recording and transcode actions), ``stats``, ``task_callbacks`` (each kind's callback
settings per SdkAppId, the callback body), ``warning_callbacks`` (warning settings, when and what to
warn), ``callbacks`` (the sender), ``control`` (the ``/_sim/`` hooks and ``SimulatorClient``), ``http``
(the server), ``core`` (the ``Simulator`` facade) and ``cli`` (the ``simulate`` command).

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
from exporter.simulator.record_lifecycle import RecordScript, record_state
from exporter.simulator.transcode_lifecycle import TranscodeScript, transcode_state
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
    "RecordScript",
    "SimulatedError",
    "Simulator",
    "SimulatorClient",
    "SimulatorOptions",
    "TaskScript",
    "TaskState",
    "TranscodeScript",
    "parse_fault_spec",
    "record_state",
    "run",
    "task_state",
    "transcode_state",
]
