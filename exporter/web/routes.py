"""What each path answers: /metrics, health, the landing page, the task API and extra routes (callbacks).

Auth runs before routing, so without credentials even a 404 says nothing about which paths exist.
The probes (``/-/healthy``, ``/-/ready``) are always open: orchestrators send no credentials. The API
token authenticates on its own, as ``Bearer <token>`` or as the basic-auth password of user ``api``,
so the task API stays usable when basic auth guards the rest (SECURITY.md, "Auth modes").
Handlers only read snapshots and call the store; nothing here talks to the Tencent Cloud API.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from exporter.callbacks import CallbackEndpoint
from exporter.exposition import Exposition
from exporter.lifecycle import CONFIG_SOURCES
from exporter.model import (
    KIND_NAMES,
    PUSH,
    InvalidTaskRef,
    TaskKey,
    task_key,
    validate_kind,
    validate_sdk_app_id,
    validate_task_id,
)
from exporter.queue_warnings import WARNING_PATH, WarningEndpoint
from exporter.store import TaskStore
from exporter.web.auth import ApiToken
from exporter.web.http import HttpError, RequestContext, Response, Route, json_response
from exporter.web.landing import landing_page
from exporter.web.status import Health

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})  # probes: reveal liveness and readiness only
CALLBACK_PATH = "/callbacks/tiw"


@dataclass
class Routes:
    """What each path answers; everything the endpoints need is wired by ``exporter.runtime``."""

    store: TaskStore
    exposition: Exposition
    ready: Callable[[], bool]
    api_token: Callable[[], str | None] = lambda: None
    callbacks: CallbackEndpoint | None = None  # POST /callbacks/tiw, when TIW's callbacks are wired
    warnings: WarningEndpoint | None = None  # POST /callbacks/tiw/warnings/<token>, when a token is configured
    queued: Callable[[], dict[int, int]] = dict  # push tasks queued at TIW per SdkAppId (the status page says so)
    authorize: Callable[[RequestContext], None] = lambda ctx: None  # raises HttpError (basic auth)
    only_callbacks: bool = False  # the --callback-listen server: nothing but the callback endpoint
    kinds: tuple[str, ...] = KIND_NAMES  # the watched kinds (--kinds): the task API adds no other
    clock: Callable[[], float] = time.time  # "now" of the status page's ages
    # the exporter's health at a given "now" for the status page's banner, from published snapshots only
    health: Callable[[float], Health] = lambda now: Health()

    def __post_init__(self) -> None:
        self.token = ApiToken(self.api_token)
        self._exact: dict[tuple[str, str], Route] = {} if self.only_callbacks else {
            ("GET", "/metrics"): self.metrics,
            ("GET", "/-/healthy"): lambda c: Response(HTTPStatus.OK, [b"Healthy.\n"], "text/plain"),
            ("GET", "/-/ready"): self.readiness,
            ("GET", "/"): self.landing,
            ("GET", "/api/v1/tasks"): self.list_tasks,
            ("POST", "/api/v1/tasks"): self.add_task,
        }
        if self.callbacks is not None:
            self._exact[("POST", CALLBACK_PATH)] = self.callback

    def handle(self, ctx: RequestContext) -> Response:
        if ctx.path not in OPEN_PATHS and not self.token.held_by(ctx):
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
        if (ctx.method == "POST" and ctx.path.startswith(WARNING_PATH) and self.warnings is not None
                and self.warnings.enabled()):
            return self.warning
        if not self.only_callbacks and ctx.path.startswith("/api/v1/tasks/") and ctx.method in ("DELETE", "GET"):
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

    def callback(self, ctx: RequestContext) -> Response:
        assert self.callbacks is not None  # routed only when set
        status, document = self.callbacks.handle(ctx.read_body())
        return json_response(status, document)

    def warning(self, ctx: RequestContext) -> Response:
        assert self.warnings is not None  # routed only when set
        status, document = self.warnings.handle(unquote(ctx.path[len(WARNING_PATH):]), ctx.read_body())
        return json_response(status, document)

    def readiness(self, ctx: RequestContext) -> Response:
        if self.ready():
            return Response(HTTPStatus.OK, [b"Ready.\n"], "text/plain")
        return Response(HTTPStatus.SERVICE_UNAVAILABLE, [b"Not ready: starting or stopping.\n"],
                        "text/plain")

    def landing(self, ctx: RequestContext) -> Response:
        now = self.clock()
        page = landing_page(self.store.snapshot(), now, ctx.query, queued=self.queued(), health=self.health(now))
        return Response(HTTPStatus.OK, [page], "text/html; charset=utf-8")

    def list_tasks(self, ctx: RequestContext) -> Response:
        records = sorted(self.store.snapshot(), key=lambda r: r.key)
        return json_response(HTTPStatus.OK, {"tasks": [r.to_json() for r in records]})

    def get_task(self, ctx: RequestContext) -> Response:
        record = self.store.get(_task_key_from_path(ctx.path))
        if record is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "task is not tracked")
        return json_response(HTTPStatus.OK, record.to_json())

    def add_task(self, ctx: RequestContext) -> Response:
        self.token.require(ctx)
        document = _json(ctx.read_body())
        if not isinstance(document, dict) or set(document) - {"kind"} != {"sdk_app_id", "task_id"}:
            raise HttpError(HTTPStatus.BAD_REQUEST, 'body must be {"sdk_app_id": <int>, "task_id": "<id>"} and '
                            'optionally "kind": "push" | "record" | "transcode"')
        try:
            kind = validate_kind(document.get("kind", PUSH))
            key = task_key(validate_sdk_app_id(document["sdk_app_id"]), validate_task_id(document["task_id"]), kind)
        except InvalidTaskRef as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        if kind not in self.kinds:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"kind {kind} is not watched by this exporter (--kinds "
                            f"{','.join(self.kinds)})")
        created = self.store.add(key, "api")
        record = self.store.get(key)
        document = record.to_json() if record else {"sdk_app_id": key[0], "task_id": key[1], "kind": kind}
        return json_response(HTTPStatus.CREATED if created else HTTPStatus.OK, document)

    def delete_task(self, ctx: RequestContext) -> Response:
        self.token.require(ctx)
        key = _task_key_from_path(ctx.path)
        record = self.store.get(key)
        if record is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "task is not tracked")
        configured = record.sources & CONFIG_SOURCES
        if configured:
            raise HttpError(HTTPStatus.CONFLICT, f"task comes from {', '.join(sorted(configured))} configuration; "
                                                 "remove it there")
        self.store.remove(key)
        return json_response(HTTPStatus.OK, {"deleted": {"sdk_app_id": key[0], "task_id": key[1],
                                                         "kind": record.kind}})


def _task_key_from_path(path: str) -> TaskKey:
    """``{sdk_app_id}/{task_id}`` names a push, ``{kind}/{sdk_app_id}/{task_id}`` a task of any kind."""
    parts = [unquote(part) for part in path[len("/api/v1/tasks/"):].split("/")]
    if len(parts) not in (2, 3):
        raise HttpError(HTTPStatus.NOT_FOUND, "use /api/v1/tasks/{sdk_app_id}/{task_id} (a push) or "
                        "/api/v1/tasks/{kind}/{sdk_app_id}/{task_id}")
    try:
        kind = validate_kind(parts.pop(0)) if len(parts) == 3 else PUSH
        return task_key(validate_sdk_app_id(parts[0]), validate_task_id(parts[1]), kind)
    except InvalidTaskRef as exc:
        raise HttpError(HTTPStatus.BAD_REQUEST, str(exc)) from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise HttpError(HTTPStatus.BAD_REQUEST, "body is not valid JSON") from None
