"""The HTTP server: requests in, ``Routes`` answers out, with bounded bodies, deadlines and a thread pool.

Built on ``http.server`` with a bounded pool of handler threads and per-connection timeouts, so
a slow or hostile client cannot starve Prometheus' scrapes. What each path answers is ``routes.py``'s
business; nothing in ``web/`` talks to the Tencent Cloud API.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from exporter import __version__
from exporter.model import decimal_int
from exporter.watchdog import SocketWatchdog

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


class HttpError(Exception):
    """An error answer: status and a one-line message, sent as JSON."""

    def __init__(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Response:
    status: HTTPStatus
    body: list[bytes]
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: HTTPStatus, document: Any) -> Response:
    return Response(status, [json.dumps(document, separators=(",", ":")).encode("utf-8")], "application/json")


Route = Callable[["RequestContext"], Response]


class RequestHandler(Protocol):
    """What the server asks for an answer (``routes.Routes``); raises ``HttpError`` for error answers."""

    def handle(self, ctx: RequestContext) -> Response: ...


@dataclass
class RequestContext:
    method: str
    path: str
    headers: Any
    read_body: Callable[[], bytes]
    query: str = ""  # the URL's query string, undecoded


class _Handler(BaseHTTPRequestHandler):
    server: ExporterHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = f"tiw-exporter/{__version__}"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version  # no trailing space from the empty sys_version

    def handle_one_request(self) -> None:
        # From waiting for the request line until the response starts: one deadline for it all.
        self.server.watchdog.arm(self.connection, self.server.request_deadline)
        try:
            super().handle_one_request()
        finally:
            self.server.watchdog.disarm(self.connection)

    def _dispatch(self) -> None:
        self._body_read = False
        url = urlsplit(self.path)
        ctx = RequestContext(self.command, url.path, self.headers, self._read_body, url.query)
        try:
            response = self.server.routes.handle(ctx)
        except HttpError as exc:
            response = json_response(exc.status, {"error": exc.message})
            response.headers.update(exc.headers)
        except Exception:  # never a traceback to the client, never a dead server thread
            log.exception("internal error handling %s %s", self.command, url.path[:100])
            response = json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})
        if not self._body_read and (self.headers.get("Content-Length", "0").strip() not in ("", "0")
                                    or self.headers.get("Transfer-Encoding")):
            # Answered without reading the body (auth, 404, 405): it must never be parsed as a request.
            self.close_connection = True
        self._send(response)

    def __getattr__(self, name: str) -> Any:
        # Every method reaches the router (405/404 with a JSON error), not http.server's 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _read_body(self) -> bytes:
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted; send Content-Length")
        length = decimal_int(length_header) if length_header is not None else None
        if length is None:
            self.close_connection = True
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes")
        self._body_read = True
        return self.rfile.read(length)

    def _send(self, response: Response) -> None:
        self.server.watchdog.disarm(self.connection)  # a slow reader of a big body is bounded by the timeout
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(sum(len(c) for c in response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            for chunk in response.body:
                self.wfile.write(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s %s", self.address_string(), format % args)


class ExporterHTTPServer(HTTPServer):
    """HTTPServer with a bounded pool of handler threads and socket timeouts."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], routes: RequestHandler, workers: int = 64, timeout: float = 15.0,
                 ssl_context: Any = None, request_deadline: float = 10.0) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.routes = routes
        self.connection_timeout = timeout
        self.request_deadline = request_deadline
        self.watchdog = SocketWatchdog("http-watchdog")
        self.ssl_context = ssl_context
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http")
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        scheme = "https" if self.ssl_context else "http"
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in str(host) else host)
        return f"{scheme}://{shown}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        self._pool.submit(self._process, request, client_address)

    def _process(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(self.connection_timeout)
            if self.ssl_context is not None:
                raw = request
                self.watchdog.arm(raw, self.request_deadline)  # a stalled handshake is a slowloris too
                try:
                    request = self.ssl_context.wrap_socket(raw, server_side=True)
                finally:
                    self.watchdog.disarm(raw)
            self.finish_request(request, client_address)
        except (OSError, ValueError) as exc:
            log.debug("connection from %s ended: %s", client_address[0], type(exc).__name__)
        except Exception:
            log.exception("unexpected error serving %s", client_address[0])
        finally:
            self.shutdown_request(request)

    def start(self) -> ExporterHTTPServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"http-{self.server_address[1]}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.watchdog.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
