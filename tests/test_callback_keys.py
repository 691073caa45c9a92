"""A callback key per SdkAppId (``callback_keys:`` in the config file), the single key as the default.

TIW sets the CallbackKey per SdkAppId (``SetWhiteboardPushCallbackKey --SdkAppId``), so an operator
with several apps has several keys. Signed callbacks are sent over real HTTP to an in-process exporter.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.callbacks import sign
from exporter.config import ConfigError, build_settings
from exporter.runtime import Exporter
from exporter.secretfile import WatchedSecret
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
    assert post(exporter, OWN_APP, OWN_KEY, "old_key") == 200  # the previous key, within --callback-key-grace
    assert post(exporter, OWN_APP, "rotated-key-of-the-first-app", "new_key") == 200
    assert post(exporter, OWN_APP, DEFAULT_KEY, "default_key") == 403  # its own keys only, old or new
    assert post(exporter, OTHER_APP, OWN_KEY, "other_with_old_own") == 403
    assert exporter.callbacks.key_for(OTHER_APP) == (DEFAULT_KEY, None)  # the default did not rotate
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


# --- rotation without a gap: the previous key verifies for --callback-key-grace --------------------------

FIRST, SECOND = "first-callback-key", "second-callback-key"


def forged(exporter: Exporter, task_id: str) -> int:
    expire = int(time.time()) + 60
    event = {"Timestamp": 1, "SdkAppId": OTHER_APP, "ExpireTime": expire, "Sign": "0" * 32,
             "EventType": "WhiteboardPushStarted", "EventData": {"TaskId": task_id}}
    return requests.post(f"{exporter.callback_server.url}/callbacks/tiw", json=event, timeout=5).status_code


def outcomes(exporter: Exporter) -> dict[str, float]:
    text = requests.get(f"{exporter.url}/metrics", timeout=5).text
    return {family_sample.labels["outcome"]: family_sample.value
            for family in text_string_to_metric_families(text) if family.name == "tiw_exporter_callbacks"
            for family_sample in family.samples if family_sample.name == "tiw_exporter_callbacks_total"}


def test_a_rotated_key_file_accepts_the_previous_key_within_the_grace_period_only(tmp_path, caplog):
    key_file = tmp_path / "callback.key"
    key_file.write_text(FIRST + "\n")
    with Simulator(credentials={"AKIDkeys": "keys-key"}, sdk_app_ids=(OTHER_APP,)) as simulator, \
            caplog.at_level(logging.DEBUG):
        settings = build_settings({"listen": "127.0.0.1:0", "callback_listen": "127.0.0.1:0",
                                   "endpoint": simulator.url, "callback_key_file": str(key_file),
                                   "callback_key_grace": "1s"})
        exporter = Exporter(settings, credentials=StaticCredentials(Credential("AKIDkeys", "keys-key"))).start()
        try:
            assert post(exporter, OTHER_APP, FIRST, "before") == 200
            assert forged(exporter, "forged_before") == 403
            replacement = tmp_path / "callback.key.new"
            replacement.write_text(SECOND + "\n")
            os.replace(replacement, key_file)  # a new inode, as a Kubernetes secret volume swaps it
            assert post(exporter, OTHER_APP, FIRST, "in_flight") == 200  # signed before TIW switched
            noticed = time.monotonic()
            assert post(exporter, OTHER_APP, SECOND, "after") == 200
            assert forged(exporter, "forged_during") == 403
            assert outcomes(exporter) == {"accepted": 2, "accepted_previous_key": 1, "bad_sign": 2}
            assert exporter.store.get((OTHER_APP, "in_flight")) is not None
            body = requests.get(f"{exporter.url}/metrics", timeout=5).text
            time.sleep(max(0.0, noticed + 1.2 - time.monotonic()))
            assert post(exporter, OTHER_APP, FIRST, "too_late") == 403
            assert post(exporter, OTHER_APP, SECOND, "still_new") == 200
            assert forged(exporter, "forged_after") == 403
            assert exporter.store.get((OTHER_APP, "too_late")) is None
            assert outcomes(exporter) == {"accepted": 3, "accepted_previous_key": 1, "bad_sign": 4}
            shown = repr(exporter.callback_key) + repr(exporter.callbacks.__dict__) + body
        finally:
            exporter.stop()
    assert "still accepted for 1s" in caplog.text
    for key in (FIRST, SECOND):
        assert key not in caplog.text and key not in shown


def test_the_previous_key_is_kept_for_the_grace_period_after_the_change_is_noticed(tmp_path):
    now = [1000.0]
    path = tmp_path / "key"
    path.write_text("one\n")
    secret = WatchedSecret("callback_key", "callback key", path, clock=lambda: now[0], grace=600.0)
    assert secret.previous() is None
    replace_file(path, "two")
    now[0] = 2000.0
    assert secret.get() == "two" and secret.previous() == "one"  # noticed now: valid until 2600
    now[0] = 2599.0
    assert secret.previous() == "one"
    replace_file(path, "three")  # a second rotation: only the key just replaced is kept
    assert secret.get() == "three" and secret.previous() == "two"  # noticed at 2599: valid until 3199
    now[0] = 3198.9
    assert secret.previous() == "two"
    now[0] = 3199.0
    assert secret.previous() is None and secret.get() == "three"
    assert "one" not in repr(secret) and "two" not in repr(secret) and "three" not in repr(secret)


def test_no_grace_period_and_no_file_keep_no_previous_key(tmp_path):
    path = tmp_path / "key"
    path.write_text("one\n")
    without_grace = WatchedSecret("callback_key", "callback key", path, grace=0.0)
    replace_file(path, "two")
    assert without_grace.get() == "two" and without_grace.previous() is None
    from_environment = WatchedSecret("callback_key", "callback key", value="env-key", grace=600.0)
    assert from_environment.previous() is None


def replace_file(path: Path, text: str) -> None:
    temporary = path.with_suffix(".new")
    temporary.write_text(text + "\n")
    os.replace(temporary, path)


def test_the_grace_period_is_a_duration_option_default_10m_and_0_turns_it_off():
    assert build_settings({}).sources.callback_key_grace == 600.0
    assert build_settings({"callback_key_grace": "0"}).sources.callback_key_grace == 0.0
    assert build_settings({"callback_key_grace": "2m30s"}).sources.callback_key_grace == 150.0
    with pytest.raises(ConfigError, match="--callback-key-grace: a duration cannot be negative"):
        build_settings({"callback_key_grace": "-1s"})
    with pytest.raises(ConfigError, match="--callback-key-grace: must not be negative"):
        build_settings({"callback_key_grace": -60})  # a bare number, as YAML gives it
