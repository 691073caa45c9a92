"""TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0.

Kept free of I/O so the client signs with it and the simulator verifies with it: one
implementation, checked in tests against the official SDK signer and Tencent's worked examples.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

ALGORITHM = "TC3-HMAC-SHA256"
DEFAULT_SIGNED_HEADERS = ("content-type", "host")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def utc_date(timestamp: int) -> str:
    """The credential-scope date: the UTC calendar day of the request timestamp."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload: bytes,
) -> str:
    """Build the canonical request; ``headers`` keys are matched case-insensitively."""
    lowered = {name.lower(): value for name, value in headers.items()}
    # TC3 canonical headers: lower-case names and values, trimmed, in SignedHeaders order.
    canonical_headers = "".join(
        f"{name}:{lowered.get(name, '').strip().lower()}\n" for name in signed_headers
    )
    return "\n".join(
        (
            method.upper(),
            uri,
            query,
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(payload).hexdigest(),
        )
    )


def string_to_sign(timestamp: int, service: str, canonical: str) -> str:
    scope = f"{utc_date(timestamp)}/{service}/tc3_request"
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signature(secret_key: str, timestamp: int, service: str, canonical: str) -> str:
    """Hex signature of ``canonical`` with the key derived for (date, service)."""
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), utc_date(timestamp))
    k_service = _hmac(k_date, service)
    k_signing = _hmac(k_service, "tc3_request")
    return hmac.new(
        k_signing, string_to_sign(timestamp, service, canonical).encode("utf-8"), hashlib.sha256
    ).hexdigest()


def authorization(
    secret_id: str,
    secret_key: str,
    timestamp: int,
    service: str,
    canonical: str,
    signed_headers: Sequence[str] = DEFAULT_SIGNED_HEADERS,
) -> str:
    """The ``Authorization`` header value for a request."""
    sig = signature(secret_key, timestamp, service, canonical)
    return (
        f"{ALGORITHM} Credential={secret_id}/{utc_date(timestamp)}/{service}/tc3_request, "
        f"SignedHeaders={';'.join(signed_headers)}, Signature={sig}"
    )


_AUTH_RE = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<secret_id>[^/\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/"
    r"(?P<service>[a-z0-9]+)/tc3_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class ParsedAuthorization:
    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> ParsedAuthorization | None:
    """Split an ``Authorization`` header; None when it is not a well-formed TC3 header."""
    match = _AUTH_RE.match(value.strip())
    if not match:
        return None
    return ParsedAuthorization(
        secret_id=match["secret_id"],
        date=match["date"],
        service=match["service"],
        signed_headers=tuple(match["signed"].split(";")),
        signature=match["signature"],
    )
