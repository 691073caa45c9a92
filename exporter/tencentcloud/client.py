"""Tencent Cloud API 3.0 client: signed JSON POSTs over one pooled ``requests`` adapter.

Every way a call can fail ends as a ``CallFailure`` with a ``code`` (Tencent's own error code, or
one of ours under ``ClientError.*``) and an ``outcome`` (the label of
``tiw_exporter_api_requests_total``). Callers never see a raw ``requests`` or JSON exception.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from exporter.backoff import exponential_backoff
from exporter.tencentcloud import DEFAULT_ENDPOINT, DEFAULT_REGION, signing
from exporter.tencentcloud.credentials import CredentialError, CredentialProvider
from exporter.tencentcloud.errors import (
    SUCCESS,
    ApiError,
    BadResponse,
    CallFailure,
    CredentialFailure,
    HttpStatusFailure,
    NetworkFailure,
    StaleConnection,
    TimeoutFailure,
)
from exporter.watchdog import SocketWatchdog

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1 << 20  # a DescribeWhiteboardPush answer is < 2 KiB; cap what a broken proxy can make us read

_ERROR_CODE_RE = re.compile(r"[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9_]+){0,3}")
MAX_CLOCK_OFFSET = 86400.0  # a server Date further off than a day is broken, not a clock to follow

# Called after every attempt with (action, outcome, seconds): the exporter counts requests with it.
AttemptObserver = Callable[[str, str, float], None]


def _never(code: str) -> bool:
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, for the failures whose code ``retryable`` allows.

    Which codes may be resent at once is the caller's to say: the exporter passes
    ``exporter.errors.client_retry`` (the error table). By default nothing is resent.
    """

    attempts: int = 3
    base_seconds: float = 0.2
    cap_seconds: float = 5.0
    retryable: Callable[[str], bool] = _never

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0, exponential_backoff(self.base_seconds, attempt, self.cap_seconds))


@dataclass(frozen=True)
class CallResult:
    """A successful call: the ``Response`` object, how long the HTTP exchange took, and ``value``,
    what the caller's ``parse`` made of the response (None without one)."""

    response: dict[str, Any]
    request_id: str
    seconds: float
    value: Any = None


@dataclass
class TencentCloudClient:
    """Signs and sends API 3.0 calls for one service/version/region and credential source."""

    credentials: CredentialProvider
    service: str = "tiw"
    version: str = "2019-09-19"
    endpoint: str = DEFAULT_ENDPOINT
    region: str = DEFAULT_REGION
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    on_attempt: AttemptObserver = lambda action, outcome, seconds: None
    pool_size: int = 16
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint {self.endpoint!r} is not an http(s) URL")
        self._url = requests.Request("POST", f"{parts.scheme}://{parts.netloc}/").prepare().url or ""
        self._host = parts.netloc
        self._session = requests.Session()
        self._adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=self.pool_size)
        self._session.mount("http://", self._adapter)
        self._session.mount("https://", self._adapter)
        # What Session.request works out again for every call, once: the session's default headers, the
        # proxy for this one URL (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY) and the CA bundle (REQUESTS_CA_BUNDLE,
        # CURL_CA_BUNDLE). Each call then goes straight to the adapter: no cookies, redirects or hooks to merge.
        self._base_headers = dict(self._session.headers)
        settings = self._session.merge_environment_settings(self._url, {}, True, True, None)
        self._send_options = {"stream": True, "verify": settings["verify"], "cert": settings["cert"],
                              "proxies": settings["proxies"]}
        self._watchdog = SocketWatchdog("api-deadlines")  # bounds a whole answer, not only each read
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self.clock_offset = 0.0  # server time minus ours, learned from SignatureExpire answers

    def __repr__(self) -> str:
        return (f"TencentCloudClient(endpoint={self.endpoint!r}, region={self.region!r}, "
                f"credentials={self.credentials!r})")

    def close(self) -> None:
        self._watchdog.stop()
        self._session.close()

    def call(self, action: str, params: dict[str, Any],
             parse: Callable[[dict[str, Any]], Any] | None = None) -> CallResult:
        """One logical call, with retries for the failures ``retry.retryable`` allows; raises ``CallFailure``.

        ``parse`` validates the response inside the attempt, so an answer it rejects (``BadResponse``)
        is counted as ``bad_response``, not as a success.
        """
        attempt = 0
        while True:
            try:
                return self._attempt(action, params, parse)
            except CallFailure as failure:
                attempt += 1
                if not self.retry.retryable(failure.code) or attempt >= self.retry.attempts:
                    raise
                with self._rng_lock:
                    pause = self.retry.delay(attempt - 1, self._rng)
                log.debug("retrying %s after %s in %.2fs", action, failure.code, pause)
                self.sleep(pause)

    def _attempt(self, action: str, params: dict[str, Any],
                 parse: Callable[[dict[str, Any]], Any] | None) -> CallResult:
        started = time.monotonic()
        outcome = SUCCESS
        try:
            try:
                result = self._exchange(action, params)
            except StaleConnection:
                # The server closed an idle pooled keep-alive connection before our request reached it.
                # Read-only actions go again at once on a fresh connection: nothing was processed.
                if not action.startswith("Describe"):
                    raise
                result = self._exchange(action, params)
            return replace(result, value=parse(result.response)) if parse else result
        except CallFailure as failure:
            outcome = failure.outcome
            raise
        finally:
            self.on_attempt(action, outcome, time.monotonic() - started)

    def _headers(self, action: str, body: bytes) -> dict[str, str]:
        try:
            credential = self.credentials.get()
        except CredentialError as exc:
            raise CredentialFailure("ClientError.Credential", str(exc)) from None
        timestamp = int(self.clock() + self.clock_offset)
        headers = {
            **self._base_headers,
            "Content-Type": "application/json",
            "Host": self._host,
            "X-TC-Action": action,
            "X-TC-Version": self.version,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self.region,
        }
        if credential.token:
            headers["X-TC-Token"] = credential.token
        canonical = signing.canonical_request(
            "POST", "/", "", headers, signing.DEFAULT_SIGNED_HEADERS, body
        )
        try:
            headers["Authorization"] = signing.authorization(
                credential.secret_id, credential.secret_key, timestamp, self.service, canonical
            )
        except (ValueError, OverflowError, OSError):  # e.g. a timestamp past year 9999: no date to sign
            raise CallFailure("ClientError.Signing", f"cannot sign with timestamp {timestamp}") from None
        return headers

    def _exchange(self, action: str, params: dict[str, Any]) -> CallResult:
        body = json.dumps(params, separators=(",", ":")).encode("utf-8")
        headers = self._headers(action, body)
        started = time.monotonic()
        try:
            request = requests.PreparedRequest()  # the parts of prepare() a fixed URL without cookies or auth needs
            request.prepare_method("POST")
            request.url = self._url
            request.prepare_headers(headers)  # refuses a value with a line break (InvalidHeader, a RequestException)
            request.prepare_body(body, None)
            timeout = (self.connect_timeout, self.read_timeout)
            with self._adapter.send(request, timeout=timeout, **self._send_options) as http:
                raw = self._read_within(http, started + self.connect_timeout + self.read_timeout)
                status, date_header = http.status_code, http.headers.get("Date")
        except requests.exceptions.InvalidHeader:  # its message quotes the value: the token, a secret
            raise CredentialFailure("ClientError.Credential", "a line break or control character in the "
                                    "credential's token or the region; not sent") from None
        except requests.Timeout as exc:
            raise TimeoutFailure("ClientError.Timeout", _short(exc)) from None
        except requests.ConnectionError as exc:
            reason = exc.args[0] if exc.args else None
            # A read timeout while streaming the body surfaces as ConnectionError(ReadTimeoutError).
            if isinstance(reason, urllib3.exceptions.ReadTimeoutError):
                raise TimeoutFailure("ClientError.Timeout", _short(exc)) from None
            if isinstance(reason, urllib3.exceptions.ProtocolError) and _closed_before_answer(reason):
                raise StaleConnection("ClientError.Network", _short(exc)) from None
            raise NetworkFailure("ClientError.Network", _short(exc)) from None
        except requests.RequestException as exc:
            raise NetworkFailure("ClientError.Network", _short(exc)) from None
        seconds = time.monotonic() - started
        if status >= 500:
            raise HttpStatusFailure("ClientError.HttpStatus", f"HTTP {status} from {self._host}")
        response = _parse_envelope(raw, status)
        request_id = response.get("RequestId") if isinstance(response.get("RequestId"), str) else ""
        error = response.get("Error")
        if error is not None:
            code = error.get("Code") if isinstance(error, dict) else None
            # Codes become label values: anything not shaped like a Tencent Cloud code must not add series.
            if not isinstance(code, str) or len(code) > 80 or not _ERROR_CODE_RE.fullmatch(code):
                raise BadResponse("ClientError.BadResponse", "Response.Error lacks a well-formed Code", request_id)
            if code == "AuthFailure.SignatureExpire":
                self._resync_clock(date_header)
            message = error.get("Message") if isinstance(error.get("Message"), str) else ""
            raise ApiError(code, message, request_id)
        if status != 200:
            raise BadResponse("ClientError.BadResponse", f"HTTP {status} with a non-error envelope", request_id)
        return CallResult(response=response, request_id=request_id, seconds=seconds)

    def _read_within(self, http: requests.Response, deadline: float) -> bytes:
        """The body, bounded in size and in total time: a per-read timeout alone lets a trickle go on."""
        sock = _socket_of(http)
        if sock is not None:
            self._watchdog.arm(sock, max(deadline - time.monotonic(), 0.0))
        try:
            chunks, size = [], 0
            for chunk in http.iter_content(chunk_size=65536):
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise BadResponse("ClientError.ResponseTooLarge", f"response exceeds {MAX_RESPONSE_BYTES} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
        except requests.RequestException:
            if time.monotonic() >= deadline:
                raise TimeoutFailure("ClientError.Timeout", "the answer was still arriving at the deadline") from None
            raise
        finally:
            if sock is not None:
                self._watchdog.disarm(sock)

    def _resync_clock(self, date_header: str | None) -> None:
        """Learn the server's clock from its ``Date`` header after a SignatureExpire."""
        if not date_header:
            return
        from email.utils import parsedate_to_datetime

        try:
            server = parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError, IndexError):
            return
        offset = server - self.clock()
        if abs(offset) > MAX_CLOCK_OFFSET:
            log.warning("ignoring an implausible server Date header (%.0fs off)", offset)
            return
        if abs(offset) > 60:
            log.warning("local clock is %.0fs off the API server's; signing with the server's time", -offset)
        self.clock_offset = offset if abs(offset) > 60 else 0.0  # forget it once our clock is right again


def _parse_envelope(raw: bytes, status: int) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        detail = f"HTTP {status}, {len(raw)} bytes of non-JSON"
        raise BadResponse("ClientError.BadResponse", detail) from None
    if not isinstance(document, dict) or not isinstance(document.get("Response"), dict):
        raise BadResponse("ClientError.BadResponse", f"HTTP {status}, JSON without a Response object")
    return document["Response"]


def _socket_of(http: requests.Response) -> socket.socket | None:
    """The socket under a streamed response (urllib3 2.x), if reachable."""
    connection = getattr(http.raw, "connection", None) or getattr(http.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _closed_before_answer(error: urllib3.exceptions.ProtocolError) -> bool:
    cause = error.args[1] if len(error.args) > 1 else None
    return isinstance(cause, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError))


def _short(exc: Exception) -> str:
    """An exception's class and first line, bounded: URLs in requests' messages carry no secrets."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}"
