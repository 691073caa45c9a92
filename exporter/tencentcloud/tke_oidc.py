"""Temporary keys for a TKE pod with an OIDC identity: STS ``AssumeRoleWithWebIdentity``.

The last source of the official SDKs' default chain (``DefaultTkeOIDCRoleArnProvider``): TKE's pod
identity webhook sets ``TKE_REGION``, ``TKE_PROVIDER_ID``, ``TKE_WEB_IDENTITY_TOKEN_FILE`` and
``TKE_ROLE_ARN``; the token file is re-read for every refresh (the kubelet rotates it). The STS call
is not signed (``Authorization: SKIP``): the web identity token is the proof.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests

from exporter.secretfile import SecretFileError, read_secret_file
from exporter.tencentcloud.credentials import Credential, CredentialError
from exporter.tencentcloud.refreshing import Lease, RefreshFailed, RefreshingCredentials

log = logging.getLogger(__name__)

TKE_VARIABLES = ("TKE_REGION", "TKE_PROVIDER_ID", "TKE_WEB_IDENTITY_TOKEN_FILE", "TKE_ROLE_ARN")
DEFAULT_STS_URL = "https://sts.tencentcloudapi.com"
STS_URL_ENV = "TIW_EXPORTER_STS_URL"  # tests and private endpoints
STS_VERSION = "2018-08-13"
DURATION_SECONDS = 7200
MAX_ANSWER_BYTES = 64 * 1024


class TkeOidcCredentials(RefreshingCredentials):
    """Keys of the role ``TKE_ROLE_ARN`` assumed with the pod's web identity token; thread-safe."""

    log = log
    source = "STS AssumeRoleWithWebIdentity"

    def __init__(self, region: str, provider_id: str, token_file: Path, role_arn: str, sts_url: str | None = None,
                 *, timeout: tuple[float, float] = (3.0, 10.0), clock: Callable[[], float] = time.time,
                 **refresh: float) -> None:
        super().__init__(f"TKE OIDC role {role_arn}", clock=clock, **refresh)
        self.region, self.provider_id, self.token_file, self.role_arn = region, provider_id, token_file, role_arn
        self.url = (sts_url or os.environ.get(STS_URL_ENV) or DEFAULT_STS_URL).rstrip("/") + "/"
        self._timeout = timeout
        self._session = requests.Session()

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> TkeOidcCredentials | None:
        """None unless TKE set any ``TKE_*`` variable; all four are needed once one is set."""
        values = {name: env.get(name, "").strip() for name in TKE_VARIABLES}
        if not any(values.values()):
            return None
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise CredentialError(f"TKE OIDC: {', '.join(missing)} not set (the other TKE_* variables are)")
        return cls(values["TKE_REGION"], values["TKE_PROVIDER_ID"], Path(values["TKE_WEB_IDENTITY_TOKEN_FILE"]),
                   values["TKE_ROLE_ARN"], env.get(STS_URL_ENV) or None)

    def __repr__(self) -> str:
        return f"TkeOidcCredentials(role_arn={self.role_arn!r}, url={self.url!r})"

    __str__ = __repr__

    def close(self) -> None:
        self._session.close()

    def _fetch(self, now: float) -> Lease:
        try:
            web_token = read_secret_file(self.token_file, "TKE web identity token")
        except SecretFileError as exc:
            raise RefreshFailed(str(exc)) from None
        params = {"ProviderId": self.provider_id, "WebIdentityToken": web_token, "RoleArn": self.role_arn,
                  "RoleSessionName": f"tiw-exporter-{int(now * 1e6)}", "DurationSeconds": DURATION_SECONDS}
        answer = self._post(params, now)
        credentials = answer.get("Credentials")
        if not isinstance(credentials, dict):
            raise RefreshFailed("STS answer lacks Credentials")
        values = [credentials.get(name) for name in ("TmpSecretId", "TmpSecretKey", "Token")]
        if not all(isinstance(v, str) and v.strip() for v in values):
            raise RefreshFailed("STS answer lacks TmpSecretId, TmpSecretKey or Token")
        expired = answer.get("ExpiredTime")
        if isinstance(expired, bool) or not isinstance(expired, (int, float)):
            raise RefreshFailed("STS answer lacks ExpiredTime")
        return self.lease(Credential(*(str(v).strip() for v in values)), float(expired), now)

    def _post(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        headers = {"Content-Type": "application/json; charset=utf-8", "Authorization": "SKIP",
                   "X-TC-Action": "AssumeRoleWithWebIdentity", "X-TC-Version": STS_VERSION,
                   "X-TC-Region": self.region, "X-TC-Timestamp": str(int(now))}
        try:
            with self._session.post(self.url, data=json.dumps(params), headers=headers, timeout=self._timeout,
                                    stream=True) as answer:
                status = answer.status_code
                raw = answer.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
        except (requests.RequestException, OSError) as exc:
            raise RefreshFailed(f"STS unreachable: {type(exc).__name__}") from None
        if status != 200 or len(raw) > MAX_ANSWER_BYTES:
            raise RefreshFailed(f"STS answered HTTP {status}" if status != 200 else "STS answer too large")
        try:
            response = json.loads(raw).get("Response")
        except (ValueError, UnicodeDecodeError, AttributeError):
            raise RefreshFailed("STS answer is not a JSON object") from None
        if not isinstance(response, dict):
            raise RefreshFailed("STS answer lacks Response")
        error = response.get("Error")
        if isinstance(error, dict):
            raise RefreshFailed(f"STS refused: {str(error.get('Code'))[:80]}")
        return response
