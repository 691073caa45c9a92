"""Secrets that rotate: the API token, callback key and SecretKey files are re-read when they change.

Over real HTTP against an in-process exporter: the old value stops working for the very next
request (a callback key: once its grace period is over, here 0), the new one works, a broken file
keeps the last good value and says so in a metric.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from exporter.callbacks import sign
from exporter.config import build_settings
from exporter.runtime import Exporter
from exporter.secretfile import SecretFileError, WatchedSecret, read_secret_file
from exporter.simulator import Simulator
from exporter.tencentcloud.credentials import Credential, CredentialError, SecretFileCredentials, StaticCredentials
from tests.constants import APP

BOM = "\ufeff"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"token": tmp_path / "api-token", "callback": tmp_path / "callback-key"}
    paths["token"].write_text("first-token\n")
    paths["callback"].write_text("first-callback-key\n")
    return paths


@pytest.fixture
def exporter(files: dict[str, Path]) -> Iterator[Exporter]:
    with Simulator(credentials={"AKIDsecrets": "secrets-key"}) as simulator:
        settings = build_settings({"listen": "127.0.0.1:0", "endpoint": simulator.url,
                                   "api_token_file": str(files["token"]),
                                   "callback_key_file": str(files["callback"]), "callback_key_grace": "0"})
        running = Exporter(settings, credentials=StaticCredentials(Credential("AKIDsecrets", "secrets-key"))).start()
        try:
            yield running
        finally:
            running.stop()


def rewrite(path: Path, text: str, newline: str = "\n") -> None:
    """Replace the file atomically (a new inode), as Kubernetes' secret volumes do."""
    temporary = path.with_suffix(".new")
    temporary.write_bytes(text.encode("utf-8") + newline.encode())
    os.replace(temporary, path)


def add_task(exporter: Exporter, token: str, task_id: str) -> int:
    return requests.post(f"{exporter.url}/api/v1/tasks", json={"sdk_app_id": APP, "task_id": task_id},
                         headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code


def callback(exporter: Exporter, key: str, task_id: str) -> int:
    expire = int(time.time()) + 60
    event = {"Timestamp": 1, "SdkAppId": APP, "ExpireTime": expire, "Sign": sign(key, expire),
             "EventType": "WhiteboardPushStarted", "EventData": {"TaskId": task_id}}
    return requests.post(f"{exporter.url}/callbacks/tiw", json=event, timeout=5).status_code


def secret_metrics(exporter: Exporter) -> str:
    return requests.get(f"{exporter.url}/metrics", timeout=5).text


def test_a_rotated_api_token_replaces_the_old_one_at_once(exporter, files):
    assert add_task(exporter, "first-token", "before") == 201
    rewrite(files["token"], BOM + "second-token", "\r\n")  # a BOM and CRLF, as Notepad saves it
    assert add_task(exporter, "first-token", "old_token") == 401
    assert add_task(exporter, "second-token", "new_token") == 201
    assert 'tiw_exporter_secret_reload_success{secret="api_token"} 1.0' in secret_metrics(exporter)


def test_a_rotated_callback_key_replaces_the_old_one_at_once_without_a_grace_period(exporter, files):
    assert callback(exporter, "first-callback-key", "before") == 200
    rewrite(files["callback"], BOM + "second-callback-key", "\r\n")
    assert callback(exporter, "first-callback-key", "old_key") == 403
    assert callback(exporter, "second-callback-key", "new_key") == 200
    assert exporter.store.get((APP, "old_key")) is None and exporter.store.get((APP, "new_key")) is not None


def test_a_broken_secret_file_keeps_the_last_good_value_and_says_so(exporter, files):
    before = secret_metrics(exporter)
    assert 'tiw_exporter_secret_reload_success{secret="callback_key"} 1.0' in before
    rewrite(files["token"], "", "")
    assert add_task(exporter, "first-token", "still_works") == 201
    after = secret_metrics(exporter)
    assert 'tiw_exporter_secret_reload_success{secret="api_token"} 0.0' in after
    assert 'tiw_exporter_secret_last_reload_timestamp_seconds{secret="api_token"}' in after
    assert "first-token" not in after


def test_the_secret_key_file_rotates_and_is_read_without_bom_or_crlf(tmp_path):
    key_file = tmp_path / "secret-key"
    key_file.write_bytes(b"\xef\xbb\xbffirst-key\r\n")
    provider = SecretFileCredentials("AKIDfile", key_file)
    assert provider.get().secret_key == "first-key"
    rewrite(key_file, "rotated-secret-key", "\r\n")
    assert provider.get().secret_key == "rotated-secret-key"
    assert "rotated" not in repr(provider)
    (tmp_path / "empty").write_text("\r\n")
    with pytest.raises(CredentialError, match="is empty"):
        SecretFileCredentials("AKIDfile", tmp_path / "empty")


@pytest.mark.parametrize(("raw", "expected"), [
    (b"key\n", "key"), (b"key\r\n", "key"), (b"\xef\xbb\xbfkey\r\n", "key"), (b"  key \r\n\r\n", "key"),
])
def test_secret_files_may_have_a_bom_and_crlf(tmp_path, raw, expected):
    path = tmp_path / "secret"
    path.write_bytes(raw)
    assert read_secret_file(path, "test secret") == expected


def test_a_secret_file_that_is_not_text_is_one_clear_error(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(b"\xff\xfe\x00k")
    with pytest.raises(SecretFileError, match="is not UTF-8 text"):
        WatchedSecret("test", "test secret", path)
