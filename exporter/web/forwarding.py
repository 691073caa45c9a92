"""Forwarding to shard peers: a task-API write or a TIW callback that reached the wrong replica.

The owner of a task is ``sharding.Shard.owner``; its URL is ``--shard-peer-url`` with ``{index}``
filled in. When the owner cannot be reached (or answers 5xx), the request is handled here and
reported, so nothing is lost while a peer is down. A forwarded request carries a header and is
never forwarded again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus

import requests

from exporter.model import TaskKey
from exporter.sharding import Shard
from exporter.web.http import RequestContext, Response

log = logging.getLogger(__name__)

FORWARD_TIMEOUT = (1.0, 3.0)
FORWARDED_HEADER = "X-TIW-Exporter-Forwarded"  # a forwarded request is never forwarded again
CALLBACK_PATH = "/callbacks/tiw"


@dataclass(frozen=True)
class Forwarded:
    status: int
    body: bytes
    content_type: str


class ShardForwarder:
    """Sends requests about tasks this replica does not own to the replica that does."""

    def __init__(self, shard: Shard, peer_url: str | None) -> None:
        self.shard = shard
        self.peer_url = peer_url
        self._session = requests.Session()

    def _peer_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        passed = {name: value for name, value in headers.items() if name.lower() in ("authorization", "content-type")}
        return {**passed, FORWARDED_HEADER: str(self.shard.index)}

    def forward(self, key: TaskKey, method: str, path: str, body: bytes,
                headers: Mapping[str, str]) -> Forwarded | None:
        """Send the request to the owner of ``key``; None when that is impossible or fails."""
        if not self.peer_url or headers.get(FORWARDED_HEADER):
            return None
        owner = self.shard.owner(key)
        url = self.peer_url.format(index=owner) + path
        try:
            answer = self._session.request(method, url, data=body, timeout=FORWARD_TIMEOUT,
                                           headers=self._peer_headers(headers))
        except requests.RequestException as exc:
            log.warning("cannot forward %s %s to shard %d: %s", method, path, owner, type(exc).__name__)
            return None
        if answer.status_code >= 500:
            log.warning("shard %d answered %d to a forwarded %s %s", owner, answer.status_code, method, path)
            return None
        return Forwarded(answer.status_code, answer.content, answer.headers.get("Content-Type", "application/json"))

    def broadcast(self, ctx: RequestContext, body: bytes) -> None:
        """Send a request every replica must apply (a delete) to every peer, best effort."""
        if not self.peer_url or ctx.headers.get(FORWARDED_HEADER):
            return
        for index in range(self.shard.count):
            if index == self.shard.index:
                continue
            try:
                self._session.request(ctx.method, self.peer_url.format(index=index) + ctx.path, data=body,
                                      timeout=FORWARD_TIMEOUT, headers=self._peer_headers(ctx.headers))
            except requests.RequestException as exc:
                log.warning("cannot send %s %s to shard %d: %s", ctx.method, ctx.path, index, type(exc).__name__)

    def forward_request(self, key: TaskKey, ctx: RequestContext, body: bytes) -> Response | None:
        """The owner's answer to a task-API request for ``key``; None to handle it here."""
        if self.shard.owns(key):
            return None
        answer = self.forward(key, ctx.method, ctx.path, body, ctx.headers)
        if answer is None:
            log.warning("task %s:%s belongs to shard %d, which is unreachable: kept here", *key, self.shard.owner(key))
            return None
        return Response(HTTPStatus(answer.status), [answer.body], answer.content_type,
                        {"X-TIW-Exporter-Shard": str(self.shard.owner(key))})

    def forward_callback(self, key: TaskKey, body: bytes, headers: Mapping[str, str]) -> bool:
        """True when another shard owns the task and took the callback; else it is applied here."""
        if self.shard.owns(key):
            return False
        answer = self.forward(key, "POST", CALLBACK_PATH, body, headers)
        if answer is not None and answer.status == HTTPStatus.OK:
            return True
        log.warning("callback for task %s:%s belongs to shard %d, which did not take it: applied here", *key,
                    self.shard.owner(key))
        return False
