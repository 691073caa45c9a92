"""A callback key per SdkAppId (``callback_keys:`` in the config file), the single key as the default.

TIW sets the CallbackKey per SdkAppId (``SetWhiteboardPushCallbackKey --SdkAppId``), so an operator
with several apps has several keys. Signed callbacks are sent over real HTTP to an in-process exporter.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from exporter.callbacks import sign
from exporter.config import ConfigError, build_settings
from exporter.runtime import Exporter
from exporter.simulator import Simulator
from exporter.tencentcloud.credentials import Credential, StaticCredentials

OWN_APP, OTHER_APP = 1400000001, 1400000002
OWN_KEY, DEFAULT_KEY = "key-of-the-first-app", "the-default-key"


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Exporter]:
    (tmp_path / "own.key").write_text(OWN_KEY + "\n")
    config = tmp_path / "config.yml"
    config.write_text(f"callback_keys:\n  {OWN_APP}: {tmp_path / 'own.key'}\n")
    with Simulator(credentials={"AKIDkeys": "keys-key"}, sdk_app_ids=(OWN_APP, OTHER_APP)) as simulator:
        settings = build_settings({"listen": "127.0.0.1:0", "callback_listen": "127.0.0.1:0",
                                   "endpoint": simulator.url, "callback_key": DEFAULT_KEY}, config)
        running = Exporter(settings, credentials=StaticCredentials(Credential("AKIDkeys", "keys-key"))).start()
        try:
            yield running
        finally:
            running.stop()


def post(exporter: Exporter, app: int, key: str, task_id: str) -> int:
    expire = int(time.time()) + 60
    event = {"Timestamp": 1, "SdkAppId": app, "ExpireTime": expire, "Sign": sign(key, expire),
             "EventType": "WhiteboardPushStarted", "EventData": {"TaskId": task_id}}
    return requests.post(f"{exporter.callback_server.url}/callbacks/tiw", json=event, timeout=5).status_code


def test_each_sdk_app_id_is_verified_with_its_own_key_and_the_rest_with_the_default(exporter):
    assert post(exporter, OWN_APP, OWN_KEY, "own_with_own") == 200
    assert post(exporter, OWN_APP, DEFAULT_KEY, "own_with_default") == 403  # its own key only
    assert post(exporter, OTHER_APP, DEFAULT_KEY, "other_with_default") == 200
    assert post(exporter, OTHER_APP, OWN_KEY, "other_with_own") == 403
    assert {r.key[1] for r in exporter.store.snapshot()} == {"own_with_own", "other_with_default"}


def test_a_per_app_key_rotates_and_reports_its_reload(exporter, tmp_path):
    replacement = tmp_path / "own.key.new"
    replacement.write_text("\ufeffrotated-key-of-the-first-app\r\n")
    os.replace(replacement, tmp_path / "own.key")
    assert post(exporter, OWN_APP, OWN_KEY, "old_key") == 403
    assert post(exporter, OWN_APP, "rotated-key-of-the-first-app", "new_key") == 200
    metrics = requests.get(f"{exporter.url}/metrics", timeout=5).text
    assert f'tiw_exporter_secret_reload_success{{secret="callback_key/{OWN_APP}"}} 1.0' in metrics


@pytest.mark.parametrize(("text", "problem"), [
    ("callback_keys: [1400000001]\n", "must be a mapping of SdkAppId: key file"),
    ("callback_keys:\n  nope: /dev/null\n", "config.yml, line 1: callback_keys:"),
    ("callback_keys:\n  1400000001: /nonexistent/key\n", "cannot read callback key of SdkAppId 1400000001 file"),
])
def test_bad_callback_keys_are_one_line_config_errors(tmp_path, text, problem):
    config = tmp_path / "config.yml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        build_settings({}, config)
    assert problem in str(caught.value) and "\n" not in str(caught.value).strip()
