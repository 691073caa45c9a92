"""Who may do what over HTTP: basic-auth users (from the web config) and the task API's token.

The web config file (``webconfig.py``) says *which* users and TLS settings hold; this module checks a
request's ``Authorization`` header against them. The API token authenticates on its own, as
``Bearer <token>`` or as the basic-auth password of user ``api`` (SECURITY.md, "Auth modes").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

import bcrypt

from exporter.web.http import HttpError, RequestContext

REALM = "tiw-exporter"
CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}"'}
BEARER_CHALLENGE = {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
API_USER = "api"  # the basic-auth user whose password is the API token
_BCRYPT_MAX_PASSWORD = 72  # bcrypt ignores (and the bcrypt package refuses) longer passwords
_MAX_CACHED_LOGINS = 1024


@dataclass
class BasicAuthUsers:
    """The users of one config generation plus the logins already verified against them."""

    users: Mapping[str, str]
    dummy_hash: bytes  # checked for unknown users so their answer takes as long as a known user's
    cache_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    verified: set[bytes] = field(default_factory=set)

    @classmethod
    def build(cls, users: Mapping[str, str]) -> BasicAuthUsers:
        cost = max(int(h.split("$")[2]) for h in users.values())
        return cls(users, bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost)))

    def check(self, user: str, password: bytes, bcrypt_lock: threading.Lock) -> bool:
        # Cached by a keyed digest, never the password itself, so a memory dump does not hand out logins.
        digest = hmac.new(self.cache_key, f"{len(user)}:{user}:".encode() + password, hashlib.sha256).digest()
        if digest in self.verified:
            return True
        stored = self.users.get(user)
        hashed = stored.encode() if stored is not None else self.dummy_hash
        with bcrypt_lock:  # one bcrypt at a time, as exporter-toolkit: bound the CPU a flood can burn
            matched = bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], hashed)
        if not matched or stored is None or len(password) > _BCRYPT_MAX_PASSWORD:
            return False
        if len(self.verified) >= _MAX_CACHED_LOGINS:
            self.verified.clear()
        self.verified.add(digest)
        return True


def basic_credentials(header: str) -> tuple[str, bytes] | None:
    """User and password of an ``Authorization: Basic`` header; None for anything else or garbage."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = raw.partition(b":")
    if not colon:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None




@dataclass
class ApiToken:
    """The task API's bearer token (``--api-token-file``), read on each request so rotation takes effect."""

    current: Callable[[], str | None]

    def held_by(self, ctx: RequestContext) -> bool:
        """``Bearer <token>`` or basic auth as user ``api`` with the token as password (constant time)."""
        expected = self.current()
        if not expected:
            return False
        header = ctx.headers.get("Authorization", "") or ""
        scheme, _, presented = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            token = presented.strip().encode()
        else:
            credentials = basic_credentials(header)
            if credentials is None or credentials[0] != API_USER:
                return False
            token = credentials[1]
        return hmac.compare_digest(token, expected.encode())

    def require(self, ctx: RequestContext) -> None:
        """403 while no token is configured (writes are off), 401 without the right one."""
        if not self.current():
            raise HttpError(HTTPStatus.FORBIDDEN, "task API writes are disabled: no API token configured "
                                                  "(--api-token-file or TIW_EXPORTER_API_TOKEN)")
        if not self.held_by(ctx):
            raise HttpError(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token", dict(BEARER_CHALLENGE))
