"""The simulator's HTTP server: ``POST /`` to the API, ``/_sim/`` to the control endpoints.

Clocks: ``Date`` headers use the simulator's injectable clock; delays (latency, slow, trickle)
use real time and are cut short when the simulator closes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from exporter.simulator.api import TiwApi
from exporter.simulator.control import ControlEndpoints
from exporter.simulator.protocol import MAX_BODY_BYTES, Reply, SimulatedError


class Served(Protocol):
    """What the server answers with (``core.Simulator``): named here so http.py needs no import of core."""

    clock: Callable[[], float]
    api: TiwApi
    control: ControlEndpoints
    latency: float

    def pause(self, seconds: float) -> bool: ...

log = logging.getLogger(__name__)

TRICKLE_INTERVAL_SECONDS = 0.5


def url_for(address: tuple[Any, ...]) -> str:
    """A URL a local client can reach: unlike the exporter's own URL, ``::`` becomes ``[::1]``."""
    host, port = address[0], address[1]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SimulatorServer(ThreadingHTTPServer):
    """Daemon handler threads, tracked so close() can cut keep-alive connections and join them."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, listen: tuple[str, int], simulator: Served) -> None:
        self.address_family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self.simulator = simulator
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        super().__init__(listen, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn) we neither need nor want to wait for.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections[request] = threading.current_thread()
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._connections_lock:
            threads = list(self._connections.values())
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    """Routes ``/`` to the API and ``/_sim/`` to the test hooks; never lets a client error escape."""

    protocol_version = "HTTP/1.1"
    server_version = "tiw-simulator"
    sys_version = ""
    timeout = 30.0  # idle keep-alive connections
    server: SimulatorServer

    @property
    def sim(self) -> Served:
        return self.server.simulator

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(self.sim.clock() if timestamp is None else timestamp, usegmt=True)

    def do_POST(self) -> None:
        self._route("POST")

    def do_GET(self) -> None:
        self._route("GET")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _route(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        try:
            if path.startswith("/_sim/"):
                self._control(method, path)
            elif path == "/":
                self._api(method, query)
            else:
                self._send(404, json.dumps({"error": f"no such path {path[:80]}"}).encode())
        except OSError as exc:  # the client went away or timed out: nothing to answer
            log.debug("connection error on %s %s: %s", method, path[:80], exc)
            self.close_connection = True
        except Exception:  # a simulator bug: log it, keep serving
            log.exception("simulator failed on %s %s", method, path[:80])
            self.close_connection = True

    def _read_body(self) -> bytes:
        """The request body, up to MAX_BODY_BYTES; raises SimulatedError for unusable bodies."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise SimulatedError("InvalidRequest", "Transfer-Encoding is not supported; send Content-Length.")
        text = self.headers.get("Content-Length", "0").strip()
        length = int(text) if text.isdigit() else -1
        if length < 0:
            self.close_connection = True
            raise SimulatedError("InvalidRequest", "Content-Length is not a number.")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise SimulatedError("RequestSizeLimitExceeded", f"The request body exceeds {MAX_BODY_BYTES} bytes.")
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionError("the client closed the connection mid-body")
        return body

    def _api(self, method: str, query: str) -> None:
        body, problem = b"", None
        try:
            body = self._read_body()
        except SimulatedError as err:
            problem = err
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._deliver(self.sim.api.answer(method, query, headers, body, problem))

    def _control(self, method: str, path: str) -> None:
        try:
            body = self._read_body() if method in ("POST", "PUT") else b""
        except SimulatedError as err:
            status, answer = 400, {"error": err.message}
        else:
            status, answer = self.sim.control.answer(method, path, body)
        self._send(status, json.dumps(answer, sort_keys=True).encode())

    def _deliver(self, reply: Reply) -> None:
        if not self.sim.pause(self.sim.latency + reply.delay) or reply.drop:
            self._drop()
            return
        self._send(reply.status, reply.body, reply.content_type, trickle=reply.trickle)

    def _send(self, status: int, body: bytes, content_type: str = "application/json", trickle: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not trickle:
            self.wfile.write(body)
            return
        for index in range(len(body)):
            if index and not self.sim.pause(TRICKLE_INTERVAL_SECONDS):
                self._drop()
                return
            self.wfile.write(body[index : index + 1])

    def _drop(self) -> None:
        """Close the connection without an answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
