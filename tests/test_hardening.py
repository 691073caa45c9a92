"""Hardening: slow and abusive clients, load, crash safety of the state file, clean shutdown, no leaks.

Bounds here are functional ("answers at all, before a generous client timeout"), not performance
targets: the benchmarks in bench/ measure speed.
"""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bcrypt
import pytest
import requests
from prometheus_client import CollectorRegistry

from exporter import statedb
from exporter.exposition import Exposition
from exporter.simulator import DEMO_SECRET_ID, SimulatorClient
from exporter.store import TaskStore
from exporter.web.http import ExporterHTTPServer
from exporter.web.routes import Routes
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.harness import eventually
from tests.procs import EXPORTER_URL, SIMULATOR_URL, Process, exporter_cmd, exporter_process, running

API_TOKEN = "hardening-api-token-4f9a"


@pytest.fixture
def small_server():
    """A server with few workers and a short request deadline, so abuse shows quickly."""
    store = TaskStore()
    store.add((APP, "t1"), "flag")
    app = Routes(store, Exposition(store, CollectorRegistry()), ready=lambda: True)
    server = ExporterHTTPServer(("127.0.0.1", 0), app, workers=8, request_deadline=1.0).start()
    yield server
    server.stop()


def slow_connections(server: ExporterHTTPServer, count: int) -> list[socket.socket]:
    """Connections that send half a request line and then trickle."""
    host, port = server.server_address[:2]
    sockets = []
    for _ in range(count):
        conn = socket.create_connection((host, port), timeout=10)
        conn.sendall(b"GET /metr")
        sockets.append(conn)
    return sockets


@pytest.mark.slow
def test_slowloris_does_not_starve_scrapes(small_server):
    attackers = slow_connections(small_server, 20)  # more than the 8 workers
    try:
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(0.3):
                for conn in attackers:
                    with contextlib.suppress(OSError):
                        conn.send(b"i")

        feeder = threading.Thread(target=trickle, daemon=True)
        feeder.start()
        for _ in range(3):
            assert requests.get(f"{small_server.url}/metrics", timeout=15).status_code == 200
        stop.set()
        feeder.join()
        closed = 0
        for conn in attackers:
            conn.settimeout(5)
            try:
                closed += conn.recv(1024) == b""
            except (ConnectionResetError, TimeoutError):
                closed += 1
        assert closed == len(attackers)  # the deadline cut every trickling connection
    finally:
        for conn in attackers:
            conn.close()


def test_idle_keep_alive_connections_are_closed_after_the_deadline(small_server):
    host, port = small_server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b"Healthy." not in answer:
            answer += conn.recv(4096)
        assert b"200 OK" in answer
        assert conn.recv(4096) == b""  # nothing more sent: the server hung up on the idle connection


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\n" + b"X-Flood: y\r\n" * 200 + b"\r\n",
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
    b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
    b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
])
def test_abusive_requests_get_4xx_and_the_server_keeps_serving(small_server, request_bytes):
    host, port = small_server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(request_bytes)
        status_line = conn.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.split()[1].startswith(b"4"), status_line
    assert requests.get(f"{small_server.url}/-/healthy", timeout=5).status_code == 200


AMBIGUOUS_FRAMING = {
    "conflicting Content-Length": b"Content-Length: 5\r\nContent-Length: 40\r\n\r\nhello",
    "duplicate Content-Length": b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    "Content-Length list": b"Content-Length: 5, 5\r\n\r\nhello",
    "Content-Length with Transfer-Encoding": b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "obs-fold": b"X-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("framing", AMBIGUOUS_FRAMING.values(), ids=AMBIGUOUS_FRAMING.keys())
def test_ambiguous_framing_gets_400_and_the_connection_closes(small_server, framing):
    """RFC 9112 6.3: what a proxy may read differently is refused, so nothing is smuggled as a second request."""
    host, port = small_server.server_address[:2]
    smuggled = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(b"POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\n" + framing + smuggled)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    assert answer.split(b"\r\n", 1)[0].split()[1] == b"400", answer[:200]
    assert b"Healthy." not in answer  # the connection closed before anything after the request was read


def test_answers_are_sent_without_nagle_delay(small_server):
    """TCP_NODELAY on accepted connections: a keep-alive answer is not held back by delayed ACKs."""
    with requests.Session() as session:
        assert session.get(f"{small_server.url}/-/healthy", timeout=5).status_code == 200
        sockets = small_server.connection_sockets()
        assert sockets and all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets)


# --- the exporter as a process ----------------------------------------------------------------------


@pytest.fixture
def simulator_url():
    with running(exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix"), SIMULATOR_URL) as (_, url):
        yield url


def add_sim_tasks(url: str, count: int) -> list[str]:
    control = SimulatorClient(url)
    return [control.add_task(APP, prepare_seconds=0) for _ in range(count)]


def write_tasks_file(path: Path, task_ids: list[str]) -> Path:
    path.write_text("".join(f"- {{sdk_app_id: {APP}, task_id: {t}}}\n" for t in task_ids))
    return path


def exporter_args(simulator_url: str, key_file: Path, *extra: str) -> list[str]:
    """The flags of ``exporter run`` against ``simulator_url``."""
    return ["--listen", "127.0.0.1:0", "--endpoint", simulator_url, "--secret-id", SECRET_ID, "--secret-key-file",
            str(key_file), *extra]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def unlimited_simulator_url():
    """A simulator without a request rate limit, so the exporter's own budget is the only limit."""
    args = exporter_cmd("simulate", "--listen", "127.0.0.1:0", "--no-demo-mix", "--rate-limit", "0")
    with running(args, SIMULATOR_URL) as (_, url):
        yield url


LOAD_RATE_LIMIT = 200  # exporter requests/s: 400 tasks every second need twice that, so the budget stays full
LOAD_SECONDS = 5  # of scrapes and API writes once the exporter is ready (every task polled once)


@pytest.mark.slow
def test_load_50_scrapers_and_api_writes_while_polling_at_full_budget(unlimited_simulator_url, key_file, tmp_path):
    simulator_url = unlimited_simulator_url
    tasks = write_tasks_file(tmp_path / "tasks.yml", add_sim_tasks(simulator_url, 400))
    args = exporter_args(simulator_url, key_file, "--tasks-file", str(tasks), "--interval", "1s",
                         "--rate-limit", str(LOAD_RATE_LIMIT))
    process, url = exporter_process(*args, env={"TIW_EXPORTER_API_TOKEN": API_TOKEN})
    with process:
        eventually(lambda: requests.get(f"{url}/-/ready", timeout=5).status_code == 200, timeout=60)
        rss_start = rss_kib(process.proc.pid)
        deadline = time.monotonic() + LOAD_SECONDS
        statuses: list[int] = []
        failures: list[str] = []

        def scraper(index: int) -> None:
            session = requests.Session()
            while time.monotonic() < deadline:
                try:
                    if index % 10 == 0:  # one in ten also writes through the task API
                        body = {"sdk_app_id": APP, "task_id": f"load_{index}_{random.randrange(50)}"}
                        answer = session.post(f"{url}/api/v1/tasks", json=body, timeout=30,
                                              headers={"Authorization": f"Bearer {API_TOKEN}"})
                    else:
                        answer = session.get(f"{url}/metrics", timeout=30)
                    statuses.append(answer.status_code)
                except requests.RequestException as exc:
                    failures.append(repr(exc))

        with ThreadPoolExecutor(max_workers=50) as pool:
            list(pool.map(scraper, range(50)))
        rss_end = rss_kib(process.proc.pid)
        metrics = requests.get(f"{url}/metrics", timeout=30).text
    assert not failures, failures[:3]
    assert statuses and all(code in (200, 201) for code in statuses), sorted(set(statuses))
    assert 'outcome="success"' in metrics
    assert rss_end - rss_start < 40 * 1024, (rss_start, rss_end)  # flat: no growth per request


@pytest.mark.slow
def test_kill_9_during_state_writes_never_leaves_a_corrupt_state_file(simulator_url, key_file, tmp_path):
    tasks = write_tasks_file(tmp_path / "tasks.yml", add_sim_tasks(simulator_url, 300))
    state = tmp_path / "state.json"
    args = exporter_args(simulator_url, key_file, "--tasks-file", str(tasks), "--interval", "0.2s",
                         "--rate-limit", "200", "--state-file", str(state), "--state-save-interval", "0.01s")
    rng = random.Random(7)
    for _ in range(6):
        process = exporter_process(*args)[0]
        try:
            time.sleep(rng.uniform(0.3, 1.2))  # kept: the kill lands at a random moment of the state writes
        finally:
            process.proc.send_signal(signal.SIGKILL)
            process.stop()
        db, records = statedb.open_state(state)  # never a torn write
        db.close()
        assert len(records) == 300 and all(r.sources == {"file"} for r in records)
        assert not list(tmp_path.glob("state.json.corrupt-*"))


def test_sigterm_flushes_state_and_exits_cleanly(simulator_url, key_file, tmp_path):
    state = tmp_path / "state.json"
    args = exporter_args(simulator_url, key_file, "--state-file", str(state), "--state-save-interval", "1h")
    process, url = exporter_process(*args, env={"TIW_EXPORTER_API_TOKEN": API_TOKEN})
    try:
        requests.post(f"{url}/api/v1/tasks", json={"sdk_app_id": APP, "task_id": "saved_on_exit"}, timeout=5,
                      headers={"Authorization": f"Bearer {API_TOKEN}"}).raise_for_status()
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(timeout=5) == 0
    finally:
        process.stop()
    db, records = statedb.open_state(state)
    db.close()
    assert "saved_on_exit" in {r.task_id for r in records}
    assert "Traceback" not in process.output


@pytest.mark.parametrize("moment", [r"state file .* restored", EXPORTER_URL], ids=["during-start", "at-listening"])
def test_a_sigterm_while_starting_or_the_moment_it_listens_stops_cleanly(moment, unlimited_sim, key_file, tmp_path):
    """The handlers are installed before start(): a SIGTERM in start or right at "listening" still flushes state."""
    state = tmp_path / "state.db"
    args = exporter_args(unlimited_sim.url, key_file, "--task", f"{APP}:sigterm_task", "--state-file", str(state),
                         "--state-save-interval", "1h")
    process = Process(exporter_cmd("run", *args))  # not exporter_process: the signal may go before "listening"
    try:
        process.wait_for(moment)
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(timeout=10) == 0
    finally:
        process.stop()
    assert "tiw-exporter stopped" in process.output
    db, records = statedb.open_state(state)
    db.close()
    assert {r.task_id for r in records} == {"sigterm_task"}  # only the final flush wrote it (saves every 1h)

def test_no_secret_appears_in_logs_metrics_or_api_at_debug_level(simulator_url, key_file, tmp_path):
    password = "basic-auth-pass-77c1"
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: {bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()}\n")
    callback_key = "callback-key-5e2d"
    task_id = add_sim_tasks(simulator_url, 1)[0]
    args = exporter_args(simulator_url, key_file, "--task", f"{APP}:{task_id}", "--interval", "0.5s",
                         "--log-level", "debug", "--web-config-file", str(web), "--state-file",
                         str(tmp_path / "state.json"))
    secrets = [SECRET_KEY, API_TOKEN, password, callback_key]
    process, url = exporter_process(*args, env={"TIW_EXPORTER_API_TOKEN": API_TOKEN,
                                                "TIW_EXPORTER_CALLBACK_KEY": callback_key})
    with process:
        auth = ("prom", password)
        requests.get(f"{url}/metrics", auth=("prom", password + "x"), timeout=5)
        requests.post(f"{url}/api/v1/tasks", json={"sdk_app_id": APP, "task_id": "x"}, auth=auth, timeout=5,
                      headers={"Authorization": f"Bearer {API_TOKEN}x"})
        requests.post(f"{url}/callbacks/tiw", auth=auth, timeout=5,
                      json={"ExpireTime": 1, "Sign": callback_key, "SdkAppId": APP})
        SimulatorClient(simulator_url).revoke(DEMO_SECRET_ID)
        eventually(lambda: "AuthFailure" in process.output)
        exposed = [process.output, requests.get(f"{url}/metrics", auth=auth, timeout=5).text,
                   requests.get(f"{url}/api/v1/tasks", auth=auth, timeout=5).text]
    exposed.append((tmp_path / "state.json").read_bytes().decode("utf-8", "replace"))
    exposed.append((tmp_path / "state.json-wal").read_bytes().decode("utf-8", "replace")
                   if (tmp_path / "state.json-wal").exists() else "")
    assert "DEBUG" in process.output
    for text in exposed:
        for secret in secrets:
            assert secret not in text
