"""HTTP endpoints: /metrics, health, the landing page and the task-registration API.

Built on ``http.server`` with a bounded pool of handler threads and per-connection timeouts, so
a slow or hostile client cannot starve Prometheus' scrapes. Handlers only read snapshots and
call the store; nothing here talks to the Tencent Cloud API.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from exporter import __version__
from exporter.metrics import Exposition
from exporter.sharding import Shard
from exporter.tasks import CONFIG_SOURCES, TaskStore
from exporter.tiw import InvalidTaskRef, decimal_int, validate_sdk_app_id, validate_task_id
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


@dataclass
class RequestContext:
    method: str
    path: str
    headers: Any
    read_body: Callable[[], bytes]


@dataclass
class App:
    """Everything the endpoints need, wired by the caller (``exporter.app``)."""

    store: TaskStore
    exposition: Exposition
    ready: Callable[[], bool]
    api_token: Callable[[], str | None] = lambda: None
    extra_routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    authorize: Callable[[RequestContext], None] = lambda ctx: None  # raises HttpError (basic auth)
    only_extra_routes: bool = False  # the --callback-listen server: nothing but the callback endpoint
    shard: Shard | None = None  # writes for tasks another replica owns are forwarded there

    def __post_init__(self) -> None:
        self._exact: dict[tuple[str, str], Route] = {} if self.only_extra_routes else {
            ("GET", "/metrics"): self.metrics,
            ("GET", "/-/healthy"): lambda c: Response(HTTPStatus.OK, [b"Healthy.\n"], "text/plain"),
            ("GET", "/-/ready"): self.readiness,
            ("GET", "/"): self.landing,
            ("GET", "/api/v1/tasks"): self.list_tasks,
            ("POST", "/api/v1/tasks"): self.add_task,
        }
        self._exact.update(self.extra_routes)

    def handle(self, ctx: RequestContext) -> Response:
        if ctx.path != "/-/healthy":
            self.authorize(ctx)  # before routing: without credentials even a 404 says nothing
        route = self._route(ctx)
        if route is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such endpoint: {ctx.path[:100]}")
        return route(ctx)

    def _route(self, ctx: RequestContext) -> Route | None:
        exact = self._exact
        route = exact.get((ctx.method, ctx.path))
        if route is not None:
            return route
        if not self.only_extra_routes and ctx.path.startswith("/api/v1/tasks/") and ctx.method in ("DELETE", "GET"):
            return self.delete_task if ctx.method == "DELETE" else self.get_task
        if any(path == ctx.path for _, path in exact):
            allowed = sorted(m for m, p in exact if p == ctx.path)
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{ctx.method} not allowed on {ctx.path}",
                            {"Allow": ", ".join(allowed)})
        return None

    # --- endpoints ----------------------------------------------------------------------------
    def metrics(self, ctx: RequestContext) -> Response:
        chunks, content_type, gzipped = self.exposition.render(
            ctx.headers.get("Accept", ""), ctx.headers.get("Accept-Encoding", "")
        )
        return Response(HTTPStatus.OK, chunks, content_type, {"Content-Encoding": "gzip"} if gzipped else {})

    def readiness(self, ctx: RequestContext) -> Response:
        if self.ready():
            return Response(HTTPStatus.OK, [b"Ready.\n"], "text/plain")
        return Response(HTTPStatus.SERVICE_UNAVAILABLE, [b"Not ready: first collection pass running.\n"],
                        "text/plain")

    def landing(self, ctx: RequestContext) -> Response:
        rows = "".join(
            f"<tr><td>{r.sdk_app_id}</td><td>{html.escape(r.task_id)}</td><td>{r.status}</td>"
            f"<td>{html.escape(r.last_error.code) if r.last_error else ''}</td>"
            f"<td>{html.escape(', '.join(sorted(r.sources)))}</td></tr>"
            for r in sorted(self.store.snapshot(), key=lambda r: r.key)[:500]
        )
        page = LANDING_PAGE.format(version=__version__, count=len(self.store), rows=rows)
        return Response(HTTPStatus.OK, [page.encode("utf-8")], "text/html; charset=utf-8")

    def list_tasks(self, ctx: RequestContext) -> Response:
        records = sorted(self.store.snapshot(), key=lambda r: r.key)
        return json_response(HTTPStatus.OK, {"tasks": [r.to_json() for r in records]})

    def get_task(self, ctx: RequestContext) -> Response:
        record = self.store.get(_task_key_from_path(ctx.path))
        if record is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "task is not tracked")
        return json_response(HTTPStatus.OK, record.to_json())

    def add_task(self, ctx: RequestContext) -> Response:
        self._require_token(ctx)
        raw = ctx.read_body()
        document = _json(raw)
        if not isinstance(document, dict) or set(document) != {"sdk_app_id", "task_id"}:
            raise HttpError(HTTPStatus.BAD_REQUEST, 'body must be {"sdk_app_id": <int>, "task_id": "<id>"}')
        try:
            key = validate_sdk_app_id(document["sdk_app_id"]), validate_task_id(document["task_id"])
        except InvalidTaskRef as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        forwarded = self._forward(key, ctx, raw)
        if forwarded is not None:
            return forwarded
        created = self.store.add(key, "api")
        record = self.store.get(key)
        document = record.to_json() if record else {"sdk_app_id": key[0], "task_id": key[1]}
        return json_response(HTTPStatus.CREATED if created else HTTPStatus.OK, document)

    def delete_task(self, ctx: RequestContext) -> Response:
        self._require_token(ctx)
        key = _task_key_from_path(ctx.path)
        record = self.store.get(key)
        if record is None:
            forwarded = self._forward(key, ctx, b"")
            if forwarded is not None:
                return forwarded
        if record is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "task is not tracked")
        configured = record.sources & CONFIG_SOURCES
        if configured:
            raise HttpError(HTTPStatus.CONFLICT, f"task comes from {', '.join(sorted(configured))} configuration; "
                                                 "remove it there")
        self.store.remove(key)
        return json_response(HTTPStatus.OK, {"deleted": {"sdk_app_id": key[0], "task_id": key[1]}})

    def _forward(self, key: tuple[int, str], ctx: RequestContext, body: bytes) -> Response | None:
        """The owner's answer for a task another shard owns; None to handle it here."""
        if self.shard is None or self.shard.owns(key):
            return None
        answer = self.shard.forward(key, ctx.method, ctx.path, body, ctx.headers)
        if answer is None:
            log.warning("task %s:%s belongs to shard %d, which is unreachable: kept here", *key,
                        self.shard.owner(key))
            return None
        return Response(HTTPStatus(answer.status), [answer.body], answer.content_type,
                        {"X-TIW-Exporter-Shard": str(self.shard.owner(key))})

    def _require_token(self, ctx: RequestContext) -> None:
        expected = self.api_token()
        if not expected:
            raise HttpError(HTTPStatus.FORBIDDEN, "task API writes are disabled: no API token configured "
                                                  "(--api-token-file or TIW_EXPORTER_API_TOKEN)")
        header = ctx.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected.encode()):
            raise HttpError(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token",
                            {"WWW-Authenticate": 'Bearer realm="tiw-exporter"'})


def _task_key_from_path(path: str) -> tuple[int, str]:
    parts = path[len("/api/v1/tasks/"):].split("/")
    if len(parts) != 2:
        raise HttpError(HTTPStatus.NOT_FOUND, "use /api/v1/tasks/{sdk_app_id}/{task_id}")
    try:
        return validate_sdk_app_id(unquote(parts[0])), validate_task_id(unquote(parts[1]))
    except InvalidTaskRef as exc:
        raise HttpError(HTTPStatus.BAD_REQUEST, str(exc)) from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise HttpError(HTTPStatus.BAD_REQUEST, "body is not valid JSON") from None


LANDING_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>TIW push exporter</title>
<meta http-equiv="refresh" content="10">
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 10px;text-align:left}}</style></head>
<body><h1>TIW push exporter {version}</h1>
<p><a href="/metrics">Metrics</a> &middot; <a href="/api/v1/tasks">Tasks (JSON)</a> &middot;
<a href="/-/healthy">Healthy</a> &middot; <a href="/-/ready">Ready</a></p>
<h2>Tracked tasks ({count})</h2>
<table><tr><th>SdkAppId</th><th>TaskId</th><th>Status</th><th>Last error</th><th>Source</th></tr>
{rows}</table></body></html>
"""


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
        ctx = RequestContext(self.command, url.path, self.headers, self._read_body)
        try:
            response = self.server.app.handle(ctx)
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

    def __init__(self, address: tuple[str, int], app: App, workers: int = 64, timeout: float = 15.0,
                 ssl_context: Any = None, request_deadline: float = 10.0) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.app = app
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
