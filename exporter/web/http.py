"""The HTTP server: aiohttp's asyncio server in a thread of its own, ``Routes`` answering in a small pool.

Why aiohttp: an idle keep-alive or half-sent (slowloris) connection costs a parked coroutine, not a
thread, so thousands of them cannot starve Prometheus' scrapes or TIW's callbacks; its parser (llhttp)
refuses ambiguous framing (duplicate or conflicting Content-Length, Content-Length with
Transfer-Encoding, obs-fold) with 400, and it sets TCP_NODELAY on every connection. What each path
answers is ``routes.py``'s business; nothing in ``web/`` talks to the Tencent Cloud API.

Deadlines: from accepting a connection (or ending the previous answer) until a request's headers are
complete, aiohttp's keep-alive timer (``request_deadline``) closes a silent or trickling client; the
body read and the route together get ``request_deadline`` too; sending the answer gets ``timeout``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp import web

from exporter import __version__
from exporter.model import decimal_int

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
SERVER_HEADER = f"tiw-exporter/{__version__}"


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


class _Body:
    """The request body, read on demand from a route's thread; an unread body closes the connection."""

    def __init__(self, request: web.BaseRequest, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self._request, self._loop, self._deadline = request, loop, deadline
        self.read_done = False
        self.close = False

    def read(self) -> bytes:
        headers = self._request.headers
        if headers.get("Transfer-Encoding"):
            self.close = True
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted; send Content-Length")
        length_header = headers.get("Content-Length")
        length = decimal_int(length_header) if length_header is not None else None
        if length is None:
            self.close = True
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        if length > MAX_BODY_BYTES:
            self.close = True
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY_BYTES} bytes")
        future = asyncio.run_coroutine_threadsafe(self._request.read(), self._loop)
        try:
            body = future.result(timeout=max(self._deadline - self._loop.time(), 0.0))
        except (concurrent.futures.TimeoutError, TimeoutError):
            future.cancel()
            self.close = True
            raise HttpError(HTTPStatus.REQUEST_TIMEOUT, "body not received before the request deadline") from None
        except Exception:  # the client went away or sent a broken body
            self.close = True
            raise HttpError(HTTPStatus.BAD_REQUEST, "body could not be read") from None
        self.read_done = True
        return body

    @property
    def unread(self) -> bool:
        """A body was announced but not read: it must never be parsed as the next request."""
        headers = self._request.headers
        announced = headers.get("Content-Length", "0").strip() not in ("", "0") or headers.get("Transfer-Encoding")
        return bool(announced) and not self.read_done


class _QuietProtocolLog:
    """aiohttp's per-connection logger: a malformed request is the client's fault, so one DEBUG line, no traceback."""

    def debug(self, message: str, *args: Any, exc_info: BaseException | None = None, **_: Any) -> None:
        reason = str(exc_info).strip().splitlines()[0] if isinstance(exc_info, BaseException) and str(exc_info) else ""
        log.debug("http: " + message + (" (%s)" if reason else ""), *args, *([reason[:200]] if reason else []))

    exception = debug


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Connection-level failures (TLS handshakes, resets) are a client's business: one DEBUG line."""
    exc = context.get("exception")
    log.debug("http: %s%s", context.get("message", "connection error"), f" ({type(exc).__name__})" if exc else "")


class ListenError(OSError):
    """A listener that cannot bind; names the option and the address, so the user looks at the right one."""

    def __init__(self, option: str, address: tuple[str, int], error: OSError) -> None:
        super().__init__(error.errno, error.strerror)
        self.option, self.address, self.reason = option, address, error.strerror or str(error)

    def __str__(self) -> str:
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"{self.option}: cannot listen on {shown}:{port}: {self.reason}"


class ExporterHTTPServer:
    """One listener: aiohttp's low-level server on an event loop in its own thread; routes run in a pool."""

    def __init__(self, address: tuple[str, int], routes: RequestHandler, workers: int = 64, timeout: float = 15.0,
                 ssl_context: ssl.SSLContext | None = None, request_deadline: float = 10.0) -> None:
        self.routes = routes
        self.send_timeout = timeout
        self.request_deadline = request_deadline
        self.ssl_context = ssl_context
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind(address)
            self._socket.listen(1024)
        except OSError:
            self._socket.close()
            raise
        self._socket.setblocking(False)
        self.server_address = self._socket.getsockname()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http")
        self._loop = asyncio.new_event_loop()
        self._web = web.Server(self._serve, keepalive_timeout=request_deadline, access_log=None,
                               logger=_QuietProtocolLog(), handler_cancellation=True, loop=self._loop)
        self._listener: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """A URL a client on this host can use (``0.0.0.0`` becomes ``127.0.0.1``)."""
        host, port = self.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in str(host) else host)
        return f"{self._scheme}://{shown}:{port}"

    @property
    def bound(self) -> str:
        """What the listener is bound to, for logs: ``http://0.0.0.0:9877 (all interfaces)``."""
        host, port = self.server_address[:2]
        if host in ("0.0.0.0", "", "::"):
            return f"{self._scheme}://{'[::]' if host == '::' else '0.0.0.0'}:{port} (all interfaces; {self.url} here)"
        return self.url

    @property
    def _scheme(self) -> str:
        return "https" if self.ssl_context else "http"

    @property
    def connections(self) -> int:
        """Open connections (for tests and benchmarks)."""
        return len(self._web.connections)

    def connection_sockets(self) -> list[socket.socket]:
        """The accepted sockets (tests check their options)."""
        transports = [c.transport for c in self._web.connections if c.transport is not None]
        return [t.get_extra_info("socket") for t in transports]

    def start(self) -> ExporterHTTPServer:
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name=f"http-{self.server_address[1]}",
                                        daemon=True)
        self._thread.start()
        started.wait()
        return self

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.set_exception_handler(_loop_exception)
        self._listener = self._loop.run_until_complete(self._loop.create_server(
            self._web, sock=self._socket, ssl=self.ssl_context, backlog=1024,
            ssl_handshake_timeout=self.request_deadline if self.ssl_context else None))
        started.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._thread is None:
            self._socket.close()
            self._loop.close()
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None
            self._loop.close()
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _shutdown(self) -> None:
        if self._listener is not None:
            self._listener.close()
        connections = self._web.connections
        await self._web.shutdown(timeout=0.5)
        for connection in connections:  # a half-sent request is not waited for
            connection.force_close()

    # --- one request ----------------------------------------------------------------------------
    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        loop = self._loop
        deadline = loop.time() + self.request_deadline
        body = _Body(request, loop, deadline)
        url = urlsplit(request.raw_path)
        ctx = RequestContext(request.method, url.path, request.headers, body.read, url.query)
        work = loop.run_in_executor(self._pool, self._answer, ctx)
        try:
            response = await asyncio.wait_for(work, max(deadline - loop.time(), 0.0))
        except asyncio.TimeoutError:
            log.debug("request %s %s passed its deadline", ctx.method, ctx.path[:100])
            return self._hang_up(request)
        try:
            return await asyncio.wait_for(self._send(request, response, body.close or body.unread),
                                          self.send_timeout)
        except asyncio.TimeoutError:
            return self._hang_up(request)

    def _answer(self, ctx: RequestContext) -> Response:
        try:
            return self.routes.handle(ctx)
        except HttpError as exc:
            response = json_response(exc.status, {"error": exc.message})
            response.headers.update(exc.headers)
            return response
        except Exception:  # never a traceback to the client, never a dead server thread
            log.exception("internal error handling %s %s", ctx.method, ctx.path[:100])
            return json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    @staticmethod
    async def _send(request: web.BaseRequest, response: Response, close: bool) -> web.StreamResponse:
        answer = web.StreamResponse(status=response.status, headers=response.headers)
        answer.headers["Content-Type"] = response.content_type
        answer.headers["Server"] = SERVER_HEADER
        answer.content_length = sum(len(chunk) for chunk in response.body)
        if close:
            answer.force_close()
        await answer.prepare(request)
        if request.method != "HEAD":
            for chunk in response.body:
                await answer.write(chunk)
        await answer.write_eof()
        return answer

    @staticmethod
    def _hang_up(request: web.BaseRequest) -> web.StreamResponse:
        """A request past its deadline ends with the connection, as a client that stopped talking would."""
        if request.transport is not None:
            request.transport.abort()
        answer = web.StreamResponse(status=HTTPStatus.REQUEST_TIMEOUT)
        answer.force_close()
        return answer
