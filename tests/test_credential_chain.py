"""The credential chain: flags > --cvm-role > env > profile > discovered CVM role > TKE OIDC.

A fake metadata service (tests/test_cvm_role.FakeMetadata) and a fake STS answering
``AssumeRoleWithWebIdentity`` over real HTTP; the won source is checked in the one INFO line.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from exporter import tiw
from exporter.simulator import DEFAULT_SDK_APP_ID, Simulator
from exporter.tencentcloud.chain import resolve_chain
from exporter.tencentcloud.client import RetryPolicy, TencentCloudClient
from exporter.tencentcloud.credentials import CredentialError, SecretFileCredentials, StaticCredentials
from exporter.tencentcloud.cvm_role import CvmRoleCredentials
from exporter.tencentcloud.tke_oidc import TkeOidcCredentials
from tests.test_cvm_role import ROLE, FakeMetadata

WEB_TOKEN = "eyJ-web-identity-token"
ROLE_ARN = "qcs::cam::uin/100000000001:roleName/tiw-exporter"
UNREACHABLE = "http://127.0.0.1:9"  # nothing listens: "not on a CVM"


class FakeSts:
    """STS ``AssumeRoleWithWebIdentity``: checks what the official SDK sends, hands out one key pair."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], dict[str, Any]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.calls.append((dict(self.headers), body))
                if self.headers["X-TC-Action"] != "AssumeRoleWithWebIdentity" or body["WebIdentityToken"] != WEB_TOKEN:
                    document = {"Response": {"Error": {"Code": "InvalidParameter.WebIdentityTokenError",
                                                       "Message": "bad token"}}}
                else:
                    document = {"Response": {"Credentials": {"TmpSecretId": "AKIDsts", "TmpSecretKey": "stskey",
                                                             "Token": "ststoken"},
                                             "ExpiredTime": 4_000_000_000, "Expiration": "2096-10-02T07:06:40Z"}}
                raw = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def metadata() -> Iterator[FakeMetadata]:
    fake = FakeMetadata()
    yield fake
    fake.close()


@pytest.fixture
def sts() -> Iterator[FakeSts]:
    fake = FakeSts()
    yield fake
    fake.close()


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "credentials"
    path.write_text("[default]\nsecret_id = AKIDprofile\nsecret_key = profilekey\n")
    return path


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret-key"
    path.write_text("filekey\n")
    return path


ENV_KEYS = {"TENCENTCLOUD_SECRET_ID": "AKIDenv", "TENCENTCLOUD_SECRET_KEY": "envkey"}


def tke_env(tmp_path: Path, sts_url: str) -> dict[str, str]:
    token_file = tmp_path / "web-identity-token"
    token_file.write_text(WEB_TOKEN + "\n")
    return {"TKE_REGION": "ap-guangzhou", "TKE_PROVIDER_ID": "oidc-provider", "TKE_ROLE_ARN": ROLE_ARN,
            "TKE_WEB_IDENTITY_TOKEN_FILE": str(token_file), "TIW_EXPORTER_STS_URL": sts_url}


def test_an_explicit_cvm_role_is_not_overridden_by_env_or_profile(metadata, profile):
    provider = resolve_chain(env=ENV_KEYS, profile_paths=(profile,), cvm_role=ROLE, metadata_url=metadata.url)
    assert isinstance(provider, CvmRoleCredentials) and provider.get().secret_id == "AKIDtmp1"


def test_an_explicit_key_file_beats_the_environment(key_file, profile):
    provider = resolve_chain("AKIDfile", key_file, env=ENV_KEYS, profile_paths=(profile,))
    assert isinstance(provider, SecretFileCredentials) and provider.get().secret_key == "filekey"


def test_two_explicit_sources_are_one_clear_error(key_file):
    with pytest.raises(CredentialError, match="exclude each other"):
        resolve_chain("AKIDfile", key_file, env={}, profile_paths=(), cvm_role=ROLE)


def test_the_environment_beats_the_profile_and_either_token_name_is_taken(profile):
    for name in ("TENCENTCLOUD_TOKEN", "TENCENTCLOUD_SECURITY_TOKEN"):
        provider = resolve_chain(env={**ENV_KEYS, name: "envtoken"}, profile_paths=(profile,))
        assert isinstance(provider, StaticCredentials)
        assert (provider.get().secret_id, provider.get().token) == ("AKIDenv", "envtoken")
    assert resolve_chain(env={}, profile_paths=(profile,)).get().secret_id == "AKIDprofile"


def test_the_cvm_role_is_discovered_when_nothing_else_is_configured(metadata, caplog, tmp_path, sts):
    metadata.attached_role = ROLE
    caplog.set_level(logging.INFO, logger="exporter.tencentcloud.chain")
    provider = resolve_chain(env=tke_env(tmp_path, sts.url), profile_paths=(), metadata_url=metadata.url)
    assert isinstance(provider, CvmRoleCredentials) and provider.role == ROLE  # before TKE, as the SDKs
    assert provider.get().token == "token1"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "exporter.tencentcloud.chain"]
    assert line == f"Tencent Cloud credentials: CVM role {ROLE} (named by the metadata service)"


def test_tke_oidc_assumes_the_role_with_the_web_identity_token(tmp_path, sts, caplog):
    caplog.set_level(logging.INFO, logger="exporter.tencentcloud.chain")
    provider = resolve_chain(env=tke_env(tmp_path, sts.url), profile_paths=(), metadata_url=UNREACHABLE)
    assert isinstance(provider, TkeOidcCredentials)
    credential = provider.get()
    assert (credential.secret_id, credential.secret_key, credential.token) == ("AKIDsts", "stskey", "ststoken")
    ((headers, body),) = sts.calls
    assert headers["Authorization"] == "SKIP" and headers["X-TC-Version"] == "2018-08-13"
    assert headers["X-TC-Region"] == "ap-guangzhou"
    assert body["RoleArn"] == ROLE_ARN and body["ProviderId"] == "oidc-provider"
    assert body["WebIdentityToken"] == WEB_TOKEN and body["RoleSessionName"] and body["DurationSeconds"] == 7200
    assert f"Tencent Cloud credentials: TKE OIDC role {ROLE_ARN}" in caplog.text
    assert WEB_TOKEN not in caplog.text + repr(provider) and "stskey" not in caplog.text + repr(provider)
    provider.close()


def test_tke_keys_sign_requests_the_api_accepts(tmp_path, sts):
    provider = resolve_chain(env=tke_env(tmp_path, sts.url), profile_paths=(), metadata_url=UNREACHABLE)
    sim = Simulator(credentials={"AKIDsts": "stskey"}, tokens={"AKIDsts": "ststoken"}).start()
    client = TencentCloudClient(provider, endpoint=sim.url, retry=RetryPolicy(attempts=1))
    try:
        task_id = sim.add_task(DEFAULT_SDK_APP_ID)
        assert tiw.describe_whiteboard_push(client, DEFAULT_SDK_APP_ID, task_id).task_id == task_id
    finally:
        client.close()
        sim.close()
        provider.close()


def test_a_refused_web_identity_token_is_a_credential_error(tmp_path, sts):
    env = tke_env(tmp_path, sts.url)
    Path(env["TKE_WEB_IDENTITY_TOKEN_FILE"]).write_text("stale-token")
    provider = resolve_chain(env=env, profile_paths=(), metadata_url=UNREACHABLE)
    with pytest.raises(CredentialError, match=r"STS refused: InvalidParameter\.WebIdentityTokenError"):
        provider.get()
    provider.close()


def test_partial_tke_variables_name_what_is_missing():
    with pytest.raises(CredentialError, match="TKE_PROVIDER_ID, TKE_WEB_IDENTITY_TOKEN_FILE, TKE_ROLE_ARN not set"):
        resolve_chain(env={"TKE_REGION": "ap-guangzhou"}, profile_paths=(), metadata_url=UNREACHABLE)


def test_nothing_configured_is_one_clear_error():
    with pytest.raises(CredentialError, match="no Tencent Cloud credentials"):
        resolve_chain(env={}, profile_paths=(), metadata_url=UNREACHABLE)
