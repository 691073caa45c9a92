"""The fault matrix: each way the path to the API can break, against a real simulator.

Each row runs an in-process exporter (0.5 s interval, 0.5 s connect and 0.4 s read timeouts) that
tracks two PUSHING tasks over real HTTP, injects one fault, and asserts the same four things:

(a) /metrics keeps answering 200 during the fault (``scrape`` asserts it on every read);
(b) the last good values stay: status and exception series unchanged, last_success frozen, while
    further polls keep failing;
(c) the outcome is counted: ``tiw_exporter_api_requests_total{outcome}``,
    ``tiw_push_api_errors_total{code}`` and ``tiw_push_task_error{code}`` on both tasks (throttling is
    no task error, so that row asserts the task error series stay absent; an account-level error
    pauses the SdkAppId after the first failed poll, so only the tasks polled before show it);
(d) once the fault ends, polls succeed again: last_success advances and the error series go away.

Faults of the network path use ``Gate``, a TCP port in front of the simulator that can refuse or
black-hole connections, and ``Resolver``, which makes the ``.invalid`` host name resolve or not.
Checks only some rows need (the limiter slowing down, the account pause, the learned clock offset,
the read cap) are hooks of the row. The clock-skew row heals by itself: the exporter re-syncs its
signing clock from the simulator's ``Date`` header while the skew persists.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from exporter.runtime import Exporter
from exporter.simulator import OVERSIZED_BYTES, Simulator, TaskScript
from exporter.tencentcloud.client import MAX_RESPONSE_BYTES
from exporter.tencentcloud.credentials import Credential
from exporter.tencentcloud.errors import BAD_RESPONSE, ERROR, NETWORK_ERROR, THROTTLED
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.fakes import OffsetClock
from tests.harness import Labels, Samples, eventually, metric, running_exporter, scrape, series

DESCRIBE = "DescribeWhiteboardPush"
DNS_HOST = "tiw-sim.invalid"  # RFC 6761: names under .invalid never resolve
FLAGS = {"interval": "0.5s", "connect_timeout": "0.5s", "read_timeout": "0.4s"}  # read < the 0.5 s trickle step
READ_CHUNK = 65536  # TencentCloudClient._read_capped reads in chunks of this size
SCRIPTS = {  # two PUSHING tasks; the busy one's exception count grows, so frozen values are visible
    "steady": TaskScript(prepare_seconds=0),
    "busy": TaskScript(prepare_seconds=0, exceptions_per_minute=600),
}
GOOD_VALUES = ("tiw_push_task_status", "tiw_push_task_exceptions_total")


# --------------------------------------------------------------------------- the broken network


class Gate:
    """A TCP port in front of the simulator that forwards, refuses (nothing listens) or black-holes.

    Black hole: a listener with ``backlog=0`` whose one queue slot is taken by a connection nobody
    accepts, so the kernel drops further SYNs and the client's connect times out, even on loopback.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        with socket.create_server(("127.0.0.1", 0)) as probe:
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stop = threading.Event()
        self.forward()

    def _track(self, *connections: socket.socket) -> None:
        with self._lock:
            self._connections.update(connections)

    def cut(self) -> None:
        """Close every open connection (pooled keep-alive ones included); the port stays as it is."""
        with self._lock:
            connections, self._connections = self._connections, set()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        """Nothing listens on the port any more: connects are refused."""
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join()  # it may be polling the listener: closing would not free the port yet
            self._acceptor = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.cut()

    refuse = close

    def forward(self) -> None:
        self.close()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, args=(self._listener, self._stop), daemon=True)
        self._acceptor.start()

    def blackhole(self) -> None:
        self.close()
        self._listener = socket.create_server(("127.0.0.1", self.port), backlog=0)
        # fill the backlog, so that further connects hang; a poller's connect may fill it first (one kind's loop
        # or another's): they hang all the same
        with contextlib.suppress(TimeoutError):
            self._track(socket.create_connection(("127.0.0.1", self.port), timeout=1))

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.upstream, timeout=2)
            except TimeoutError:
                continue
            except OSError:
                return
            upstream.settimeout(None)
            self._track(client, upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Resolver:
    """``DNS_HOST`` resolves to 127.0.0.1 until ``fail()``; then the real resolver answers (and fails)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.working = True
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            return real("127.0.0.1" if host == DNS_HOST and self.working else host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    def fail(self) -> None:
        self.working = False

    def recover(self) -> None:
        self.working = True


class ReadSpy:
    """How many body bytes the client consumed of each API answer: proves it stops at the cap."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
        self.sizes: list[int] = []
        lock = threading.Lock()
        original = requests.models.Response.iter_content

        def iter_content(response: requests.Response, *args: Any, **kwargs: Any) -> Iterator[Any]:
            if not response.url.startswith(f"{endpoint}/"):
                yield from original(response, *args, **kwargs)
                return
            with lock:
                index = len(self.sizes)
                self.sizes.append(0)
            for chunk in original(response, *args, **kwargs):
                self.sizes[index] += len(chunk)
                yield chunk

        monkeypatch.setattr(requests.models.Response, "iter_content", iter_content)

    def check(self, hits_cap: bool) -> None:
        largest = max(self.sizes, default=0)
        assert largest <= MAX_RESPONSE_BYTES + READ_CHUNK, f"the client read {largest} bytes of one answer"
        if hits_cap:  # it did get past the cap (by less than a chunk) and stopped long before the end
            assert MAX_RESPONSE_BYTES < largest < OVERSIZED_BYTES


# --------------------------------------------------------------------------- one exporter under test


@dataclass
class Rig:
    sim: Simulator
    clock: OffsetClock
    gate: Gate
    resolver: Resolver
    reads: ReadSpy
    exporter: Exporter
    tasks: tuple[str, ...]
    notes: dict[str, float] = field(default_factory=dict)

    def scrape(self) -> Samples:
        return scrape(self.exporter.url)

    def last_success(self, found: Samples) -> dict[str, float | None]:
        return {task: metric(found, "tiw_push_task_last_success_timestamp_seconds", sdk_app_id=APP, task_id=task)
                for task in self.tasks}

    def good_values(self, found: Samples) -> dict[tuple[str, Labels], float]:
        return {(name, labels): value for name in GOOD_VALUES for task in self.tasks
                for labels, value in series(found, name, task_id=task).items()}

    def statuses(self, found: Samples) -> dict[Labels, float]:
        return series(found, "tiw_push_task_status", sdk_app_id=APP)

    def error_codes(self, found: Samples) -> dict[str, set[str]]:
        return {task: {dict(labels)["code"] for labels in series(found, "tiw_push_task_error", task_id=task)}
                for task in self.tasks}

    def failures(self, found: Samples, code: str) -> float:
        return metric(found, "tiw_push_api_errors_total", sdk_app_id=APP, code=code) or 0.0

    def attempts(self, found: Samples, outcome: str) -> float:
        return metric(found, "tiw_exporter_api_requests_total", action=DESCRIBE, outcome=outcome) or 0.0

    def failing_everywhere(self, row: Row) -> Samples | None:
        """The samples once the fault shows on the tasks it marks (and was counted once per task)."""
        found = self.scrape()
        marked = [row.code in codes for codes in self.error_codes(found).values()]
        held = {"every": all(marked), "some": any(marked), "none": True}[row.error_on]
        return found if held and self.failures(found, row.code) >= len(self.tasks) else None

    def failed_again(self, row: Row, failures: float) -> Samples | None:
        """The samples once every task had time for another failed poll since ``failures`` were counted.

        While the account is paused, one task per pause step is polled (and fails) for all of them.
        """
        found = self.scrape()
        again = 1 if row.error_on == "some" else len(self.tasks)
        return found if self.failures(found, row.code) >= failures + again else None

    def recovered(self, reference: dict[str, float | None]) -> bool:
        found = self.scrape()
        fresh = all((now or 0) > (then or 0) for now, then in zip(self.last_success(found).values(),
                                                                   reference.values()))
        return fresh and not any(self.error_codes(found).values())


@pytest.fixture
def rig_for(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Rig]]:
    """``rig_for(path, **flags)``: a simulator with the two tasks and an exporter that polled both once.

    ``path`` is how the exporter reaches the simulator: ``direct``, through the ``gate``, or through the
    gate by the ``dns`` name.
    """
    with ExitStack() as stack:
        def make(path: str = "direct", **flags: str) -> Rig:
            clock = OffsetClock()
            sim = stack.enter_context(Simulator(credentials={SECRET_ID: SECRET_KEY}, clock=clock))
            tasks = tuple(sim.add_task(APP, script, task_id=name) for name, script in SCRIPTS.items())
            host, port = sim.url.removeprefix("http://").rsplit(":", 1)
            gate = Gate((host, int(port)))
            stack.callback(gate.close)
            endpoint = {"direct": sim.url, "gate": gate.url, "dns": f"http://{DNS_HOST}:{gate.port}"}[path]
            resolver, reads = Resolver(monkeypatch), ReadSpy(monkeypatch, endpoint)
            exporter = stack.enter_context(running_exporter(
                endpoint, Credential(SECRET_ID, SECRET_KEY), tasks=[f"{APP}:{task}" for task in tasks],
                **{**FLAGS, **flags}))
            rig = Rig(sim, clock, gate, resolver, reads, exporter, tasks)
            eventually(lambda: all(rig.last_success(rig.scrape()).values()))
            return rig

        yield make


# --------------------------------------------------------------------------- the rows


def _nothing(rig: Rig) -> None:
    pass


def _clear_faults(rig: Rig) -> None:
    rig.sim.clear_faults()


def _sim_fault(kind: str, **options: Any) -> Callable[[Rig], None]:
    return lambda rig: rig.sim.set_fault(kind, action=DESCRIBE, **options)


@dataclass(frozen=True)
class Row:
    inject: Callable[[Rig], None]
    outcome: str  # the `outcome` label of tiw_exporter_api_requests_total
    code: str  # the `code` label of tiw_push_api_errors_total and tiw_push_task_error
    heal: Callable[[Rig], None] = _clear_faults
    path: str = "direct"
    error_on: str = "every"  # tasks showing tiw_push_task_error{code}: "some" when the account pauses
    persists: bool = True  # False: the exporter heals itself while the fault stays
    hits_cap: bool = False
    during: Callable[[Rig], None] = _nothing  # checks while the fault is on
    after: Callable[[Rig], None] = _nothing  # checks once polls succeed again


def _cut_dns(rig: Rig) -> None:
    rig.resolver.fail()
    rig.gate.cut()  # pooled connections would bypass the resolver


def _skew_clock(rig: Rig) -> None:
    rig.clock.offset = 900.0


def _signature_expired(rig: Rig) -> None:
    eventually(lambda: rig.failures(rig.scrape(), "AuthFailure.SignatureExpire") >= 1)


def _clock_offset_learned(rig: Rig) -> None:
    assert abs(rig.exporter.accounts.by_name["default"].client.clock_offset - 900.0) < 3


def _limiter_slowed(rig: Rig) -> None:
    limiter = rig.exporter.accounts.by_name["default"].kinds["push"].collector.limiter
    rig.notes["rate"] = eventually(lambda: limiter.current_rate if limiter.current_rate < limiter.nominal / 4 else 0)
    assert all(rig.exporter.store.get((APP, task)).last_error is None for task in rig.tasks)


def _limiter_recovering(rig: Rig) -> None:
    limiter = rig.exporter.accounts.by_name["default"].kinds["push"].collector.limiter
    eventually(lambda: limiter.current_rate > rig.notes["rate"])


def _revoke(rig: Rig) -> None:
    rig.sim.revoke(SECRET_ID)


def _restore_credential(rig: Rig) -> None:
    rig.sim.set_credential(SECRET_ID, SECRET_KEY)


def _account_paused(rig: Rig) -> None:
    eventually(lambda: metric(rig.scrape(), "tiw_exporter_account_paused", sdk_app_id=APP,
                              code="AuthFailure.SecretIdNotFound") == 1)


def _account_resumed(rig: Rig) -> None:
    assert not series(rig.scrape(), "tiw_exporter_account_paused")


BAD = "ClientError.BadResponse"
ROWS: dict[str, Row] = {
    "connection_refused": Row(lambda rig: rig.gate.refuse(), NETWORK_ERROR, "ClientError.Network",
                              heal=lambda rig: rig.gate.forward(), path="gate"),
    "dns_failure": Row(_cut_dns, NETWORK_ERROR, "ClientError.Network", heal=lambda rig: rig.resolver.recover(),
                       path="dns"),
    "connect_timeout": Row(lambda rig: rig.gate.blackhole(), NETWORK_ERROR, "ClientError.Timeout",
                           heal=lambda rig: rig.gate.forward(), path="gate"),
    "read_timeout": Row(_sim_fault("slow", seconds=2), NETWORK_ERROR, "ClientError.Timeout"),
    "trickling_response": Row(_sim_fault("trickle"), NETWORK_ERROR, "ClientError.Timeout"),
    "oversized_response": Row(_sim_fault("oversized"), BAD_RESPONSE, "ClientError.ResponseTooLarge", hits_cap=True),
    "http_404_with_body": Row(_sim_fault("http404"), BAD_RESPONSE, BAD),
    "http_500_with_body": Row(_sim_fault("http500"), BAD_RESPONSE, "ClientError.HttpStatus"),
    "http_502_without_body": Row(_sim_fault("http502_empty"), BAD_RESPONSE, "ClientError.HttpStatus"),
    "non_json": Row(_sim_fault("malformed_json"), BAD_RESPONSE, BAD),
    "truncated_json": Row(_sim_fault("truncated_json"), BAD_RESPONSE, BAD),
    "json_of_the_wrong_shape": Row(_sim_fault("wrong_shape"), BAD_RESPONSE, BAD),
    "fields_of_the_wrong_type": Row(_sim_fault("wrong_types"), BAD_RESPONSE, BAD),
    "internal_error": Row(_sim_fault("internal_error"), ERROR, "InternalError"),
    "connection_dropped_without_answer": Row(_sim_fault("drop"), NETWORK_ERROR, "ClientError.Network"),
    "clock_skew_signature_expire": Row(_skew_clock, ERROR, "AuthFailure.SignatureExpire", heal=_nothing,
                                       persists=False, during=_signature_expired, after=_clock_offset_learned),
    "request_limit_storm": Row(_sim_fault("request_limit"), THROTTLED, "RequestLimitExceeded", error_on="none",
                               during=_limiter_slowed, after=_limiter_recovering),
    "credentials_revoked": Row(_revoke, ERROR, "AuthFailure.SecretIdNotFound", heal=_restore_credential,
                               error_on="some", during=_account_paused, after=_account_resumed),
}


def exercise(rig: Rig, row: Row) -> None:
    before = rig.scrape()
    requests_before = rig.attempts(before, row.outcome)
    row.inject(rig)
    if row.persists:
        stalled = eventually(lambda: rig.failing_everywhere(row))
        during = eventually(lambda: rig.failed_again(row, rig.failures(stalled, row.code)))
        assert rig.last_success(during) == rig.last_success(stalled)  # (b)
        assert rig.good_values(during) == rig.good_values(stalled)
        assert rig.statuses(during) == rig.statuses(before)
        codes = rig.error_codes(during)  # (c)
        assert all(found <= {row.code} for found in codes.values()), codes
        assert (row.error_on == "none") == (not any(codes.values())), codes
    row.during(rig)
    reference = rig.last_success(rig.scrape())
    row.heal(rig)
    eventually(lambda: rig.recovered(reference))  # (d)
    row.after(rig)
    found = rig.scrape()
    assert rig.failures(found, row.code) >= (len(rig.tasks) if row.persists else 1)
    rig.reads.check(row.hits_cap)
    assert rig.attempts(found, row.outcome) > requests_before  # last, so a wrong label fails only here


# Each row runs an exporter against a simulator for one to five seconds: the fast tier (-m "not slow")
# keeps one row per kind of break (network, HTTP, body), the whole matrix is slow.
FAST_ROWS = ("connection_refused", "http_500_with_body", "truncated_json")


@pytest.mark.parametrize("name", [name if name in FAST_ROWS else pytest.param(name, marks=pytest.mark.slow)
                                  for name in ROWS])
def test_exporter_keeps_serving_and_last_values_counts_the_fault_and_recovers(rig_for, name: str) -> None:
    row = ROWS[name]
    exercise(rig_for(row.path), row)


@pytest.mark.slow
def test_a_body_trickling_faster_than_the_read_timeout_is_cut_off_by_a_total_deadline(rig_for) -> None:
    rig = rig_for(read_timeout="1s")
    rig.sim.set_fault("trickle", action=DESCRIBE)
    eventually(lambda: rig.failing_everywhere(ROWS["trickling_response"]), timeout=4)
