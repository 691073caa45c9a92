"""``tiw-exporter check`` against the simulator: exit 0 all good, 1 a remote problem, 2 a local one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.cli import cli
from exporter.simulator import Simulator
from exporter.tencentcloud.credentials import Credential
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.harness import eventually, running_exporter

CALLBACK_KEY = "preflight-callback-key"


@pytest.fixture
def sim(unlimited_sim: Simulator) -> Simulator:
    return unlimited_sim


def check(sim: Simulator, key_file: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["check", "--endpoint", sim.url, "--secret-id", SECRET_ID, "--secret-key-file",
                                      str(key_file), "--sdk-app-id", str(APP), "--output", "json", *extra],
                                env=env or {})
    return result.exit_code, json.loads(result.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def test_all_good_with_callbacks_pointing_here_and_a_signed_test_callback_accepted(sim, key_file, tmp_path) -> None:
    with running_exporter(sim.url, Credential(SECRET_ID, SECRET_KEY), callback_key=CALLBACK_KEY) as exporter:
        public = f"{exporter.url}/callbacks/tiw"
        sim.configure_callbacks(public, CALLBACK_KEY)  # as SetWhiteboardPushCallback(Key) would
        status, report = check(sim, key_file, "--callback-public-url", public,
                               env={"TIW_EXPORTER_CALLBACK_KEY": CALLBACK_KEY})
        assert status == 0, report
        checks = by_name(report)
        assert checks["credentials"]["detail"].startswith("from --secret-key-file")
        assert checks[f"SdkAppId {APP}"]["status"] == "ok" and checks["clock"]["status"] == "ok"
        assert checks[f"push callback {APP}"]["status"] == "ok"
        assert checks[f"test callback {APP}"]["status"] == "ok"
        eventually(lambda: exporter.metrics.callbacks.labels("other", "unknown_event")._value.get() == 1)
    assert CALLBACK_KEY not in json.dumps(report) and SECRET_KEY not in json.dumps(report)


def test_a_callback_url_elsewhere_is_a_remote_problem_with_the_command_to_fix_it(sim, key_file) -> None:
    sim.configure_callbacks("https://old.example.com/callbacks/tiw", CALLBACK_KEY)
    status, report = check(sim, key_file, "--callback-public-url", "https://new.example.com/callbacks/tiw",
                           env={"TIW_EXPORTER_CALLBACK_KEY": CALLBACK_KEY})
    assert status == 1
    detail = by_name(report)[f"push callback {APP}"]["detail"]
    assert "TIW calls https://old.example.com/callbacks/tiw" in detail and "SetWhiteboardPushCallback" in detail


def test_a_key_the_api_refuses_is_a_remote_problem(sim, tmp_path) -> None:
    wrong = tmp_path / "wrong-key"
    wrong.write_text("not-the-key")
    status, report = check(sim, wrong)
    assert status == 1
    assert by_name(report)[f"SdkAppId {APP}"]["detail"].startswith("AuthFailure.SignatureFailure (credential or setup")


def test_no_credentials_at_all_is_a_local_problem(sim, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    result = CliRunner().invoke(cli, ["check", "--endpoint", sim.url, "--output", "json"], env={
        "TENCENTCLOUD_SECRET_ID": "", "TENCENTCLOUD_SECRET_KEY": ""})
    assert result.exit_code == 2
    assert json.loads(result.stdout)["checks"][0]["local"] is True


def test_run_performs_the_checks_once_at_start_and_logs_them(sim, caplog) -> None:
    caplog.set_level(logging.INFO, logger="exporter.runtime")
    with running_exporter(sim.url, Credential(SECRET_ID, SECRET_KEY), tasks=(f"{APP}:x",)):
        eventually(lambda: any("preflight ok: clock" in r.getMessage() for r in caplog.records))
    assert any(f"preflight ok: SdkAppId {APP}" in r.getMessage() for r in caplog.records)
