"""``tiw-exporter check`` against the simulator: exit 0 all good, 1 a remote problem, 2 a local one."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.cli import cli
from exporter.config import build_settings
from exporter.runtime import Exporter
from exporter.simulator import Simulator
from exporter.tencentcloud.credentials import Credential, StaticCredentials
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


# --- the SdkAppIds checked are every one `run` knows; what cannot be checked is said, never an all-clear ---

OTHER_APP = 1400000002  # not an SdkAppId of the simulator's account


def run_check(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["check", "--output", "json", *args], env=env or {})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def api_args(sim: Simulator, key_file: Path) -> list[str]:
    return ["--endpoint", sim.url, "--secret-id", SECRET_ID, "--secret-key-file", str(key_file)]


def tasks_file(tmp_path: Path, *apps: int) -> Path:
    path = tmp_path / "tasks.yml"
    path.write_text("".join(f"- {{sdk_app_id: {app}, task_id: t{index}}}\n" for index, app in enumerate(apps)))
    return path


def test_a_tasks_file_only_config_checks_the_files_sdk_app_ids_and_callback_url(sim, key_file, tmp_path) -> None:
    """P1: the shipped Kubernetes setup names tasks only through the tasks file; check must see them."""
    config = tmp_path / "config.yml"
    config.write_text(f"endpoint: {sim.url}\nsecret_id: {SECRET_ID}\nsecret_key_file: {key_file}\n"
                      f"tasks_file: {tasks_file(tmp_path, APP, OTHER_APP)}\n"
                      "callback_public_url: https://wrong.example.com/callbacks/tiw\n")
    status, report = run_check("--config", str(config), env={"TIW_EXPORTER_CALLBACK_KEY": CALLBACK_KEY})
    checks = by_name(report)
    assert status == 1
    assert checks[f"SdkAppId {APP}"]["status"] == "ok"
    assert checks[f"SdkAppId {OTHER_APP}"]["status"] == "fail"
    assert checks[f"SdkAppId {OTHER_APP}"]["detail"].startswith("UnauthorizedOperation.SdkAppId")
    assert checks[f"push callback {APP}"]["status"] == "fail"  # TIW calls nothing, not the public URL
    assert f"push callback {OTHER_APP}" not in checks  # its SdkAppId line already says what is wrong
    scope = checks["SdkAppIds"]
    assert scope["status"] == "ok"
    assert f"{APP} (tasks file)" in scope["detail"] and f"{OTHER_APP} (tasks file)" in scope["detail"]
    assert "SdkAppIds that reach this exporter only by callback are not checked" in scope["detail"]


def test_run_checks_the_tasks_files_sdk_app_ids_at_start_too(sim, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="exporter.runtime")
    with running_exporter(sim.url, Credential(SECRET_ID, SECRET_KEY), tasks_file=str(tasks_file(tmp_path, OTHER_APP))):
        eventually(lambda: any("preflight ok: SdkAppIds" in r.getMessage() for r in caplog.records))
    logged = [r.getMessage() for r in caplog.records]
    assert any(f"preflight fail: SdkAppId {OTHER_APP}: UnauthorizedOperation.SdkAppId" in m for m in logged), logged


def test_check_accepts_every_option_of_run_so_run_can_be_replaced_by_check() -> None:
    from exporter.cli import run

    def options(command) -> dict[str, tuple]:
        return {p.name: (tuple(p.opts), tuple(p.secondary_opts), p.multiple, p.is_flag, p.hidden)
                for p in command.params if p.param_type_name == "option"}

    checks = options(cli.commands["check"])
    assert {name: checks.get(name) for name in options(run)} == options(run)
    assert set(checks) - set(options(run)) == {"output"}
    help_text = CliRunner().invoke(cli, ["check", "--help"]).output
    assert "accepted and ignored" in help_text and "--tasks-file" in help_text


def test_check_with_runs_full_command_line(sim, key_file, tmp_path) -> None:
    """A `run` command line with `check` in its place: every SdkAppId source is checked, the rest ignored."""
    callback_key, token = tmp_path / "callback-key", tmp_path / "api-token"
    callback_key.write_text(CALLBACK_KEY + "\n")
    token.write_text("an-api-token-of-enough-length\n")
    state = tmp_path / "state.db"
    run_line = [
        *api_args(sim, key_file), "--region", "ap-guangzhou", "--connect-timeout", "2s", "--read-timeout", "5s",
        "--listen", "127.0.0.1:1", "--sdk-app-id", str(APP), "--task", "t_by_flag", "--task", f"{APP}:t_other",
        "--tasks-file", str(tasks_file(tmp_path, APP)), "--api-token-file", str(token), "--state-file", str(state),
        "--state-save-interval", "10s", "--interval", "30s", "--rate-limit", "10", "--shared-rate-limit",
        "--concurrency", "4", "--finished-retention", "2h", "--not-found-grace", "5m",
        "--callback-key-file", str(callback_key), "--callback-key-grace", "1m", "--callback-listen", "127.0.0.1:1",
        "--discover-sdk-app-id", str(APP), "--discover-interval", "2m", "--liveness-interval", "10s",
        "--log-level", "debug", "--log-format", "json",
    ]
    status, report = run_check(*run_line)
    assert status == 0, report
    checks = by_name(report)
    assert checks[f"SdkAppId {APP}"]["status"] == "ok"
    assert checks["running list"]["status"] == "ok" and "liveness and discovery" in checks["running list"]["detail"]
    scope = checks["SdkAppIds"]["detail"]
    assert f"{APP} (task, tasks file, discovery, sdk_app_id)" in scope
    assert "only by callback are not checked" in scope and "only through the task API are not checked" in scope
    assert not state.exists()  # accepted and ignored: check writes no state and listens nowhere
    assert CALLBACK_KEY not in json.dumps(report)


def test_sdk_app_ids_of_every_source_are_checked(sim, key_file, tmp_path) -> None:
    """--discover-sdk-app-id, accounts: and callback_keys: name SdkAppIds too (the simulator knows only APP)."""
    own_key = tmp_path / "own.key"
    own_key.write_text(CALLBACK_KEY)
    config = tmp_path / "config.yml"
    config.write_text(f"endpoint: {sim.url}\ncallback_keys:\n  1400000003: {own_key}\naccounts:\n"
                      f"  - {{name: main, secret_id: {SECRET_ID}, secret_key_file: {key_file}, "
                      f"sdk_app_ids: [{APP}, 1400000004]}}\n")
    status, report = run_check("--config", str(config), "--discover-sdk-app-id", "1400000005")
    checks = by_name(report)
    assert status == 1
    assert {name for name in checks if name.startswith("main: SdkAppId ")} == {
        f"main: SdkAppId {app}" for app in (APP, 1400000003, 1400000004, 1400000005)}
    detail = checks["SdkAppIds"]["detail"]
    for named in ("1400000003 (callback_keys)", "1400000004 (account main)", "1400000005 (discovery)"):
        assert named in detail


def test_no_sdk_app_id_at_all_says_nothing_app_level_was_checked(sim, key_file) -> None:
    status, report = run_check(*api_args(sim, key_file), env={"TIW_EXPORTER_CALLBACK_KEY": CALLBACK_KEY})
    checks = by_name(report)
    assert status == 0 and checks["API"]["status"] == "ok"
    scope = checks["SdkAppIds"]
    assert scope["status"] == "warn"
    assert "nothing app-level was checked" in scope["detail"]
    assert "SdkAppIds that reach this exporter only by callback are not checked" in scope["detail"]
    assert "running list" not in checks  # nothing to ask DescribeRunningTasks about


def test_sdk_app_ids_of_an_account_without_credentials_are_named_as_not_checked(sim, key_file) -> None:
    from exporter.config import build_settings
    from exporter.preflight import run_checks
    from exporter.settings import AccountSettings
    from exporter.tencentcloud.credentials import CredentialError

    class Refused:
        description = "a role that cannot be assumed"

        def get(self):
            raise CredentialError("no credentials for account east: the role cannot be assumed")

    main = AccountSettings("main", (APP,), secret_id=SECRET_ID, secret_key_file=key_file)
    east = AccountSettings("east", (OTHER_APP,))
    settings = build_settings({"endpoint": sim.url}).with_options(accounts=(main, east))
    checks = {c.name: c for c in run_checks(settings, providers={"east": Refused()}, callbacks=False)}
    assert checks[f"main: SdkAppId {APP}"].status == "ok"
    assert checks["east: credentials"].status == "fail" and checks["east: credentials"].local
    assert f"east: SdkAppId {OTHER_APP}" not in checks
    scope = checks["SdkAppIds"]
    assert scope.status == "warn"
    assert f"checked {APP} (account main)" in scope.detail
    assert f"not checked: {OTHER_APP} (account east has no credentials)" in scope.detail


# --- each check names the CAM action it needs (SECURITY.md's least-privilege policy lists the same) ---

def refusing(monkeypatch: pytest.MonkeyPatch, action: str, code: str) -> None:
    """The simulator answers everything but ``action``, which CAM refuses with ``code`` (a fake client: the
    simulator's faults have no UnauthorizedOperation)."""
    from exporter.tencentcloud.client import TencentCloudClient
    from exporter.tencentcloud.errors import ApiError

    real = TencentCloudClient.call

    def call(self, name, params, *args, **kwargs):
        if name == action:
            raise ApiError(code, "You are not authorized to perform this operation. (CAM)", "req-1")
        return real(self, name, params, *args, **kwargs)

    monkeypatch.setattr(TencentCloudClient, "call", call)


@pytest.mark.parametrize("code", ["UnauthorizedOperation", "AuthFailure.UnauthorizedOperation"])
def test_a_cam_denied_running_list_is_a_warning_naming_the_permission_and_its_effect(
        sim, key_file, monkeypatch, code) -> None:
    refusing(monkeypatch, "DescribeRunningTasks", code)
    status, report = check(sim, key_file)
    listing = by_name(report)["running list"]
    assert status == 0 and listing["status"] == "warn"
    assert "tiw:DescribeRunningTasks" in listing["detail"] and listing["permission"] == "tiw:DescribeRunningTasks"
    assert "liveness falls back to polling one by one" in listing["detail"]


def test_an_endpoint_without_the_running_list_is_a_warning_through_the_simulator(sim, key_file) -> None:
    sim.set_fault("invalid_action", action="DescribeRunningTasks")  # an international account
    status, report = check(sim, key_file, "--discover-sdk-app-id", str(APP))
    listing = by_name(report)["running list"]
    assert status == 0 and listing["status"] == "warn"
    assert listing["detail"].startswith("InvalidAction")
    assert "liveness falls back to polling one by one; discovery finds no task" in listing["detail"]


def test_without_liveness_and_discovery_the_running_list_is_not_asked(sim, key_file) -> None:
    status, report = check(sim, key_file, "--liveness-interval", "0")
    assert status == 0 and "running list" not in by_name(report)
    assert sim.stats()["requests"].get("DescribeRunningTasks", 0) == 0


@pytest.mark.parametrize(("action", "check_name"), [("DescribeWhiteboardPushCallback", f"push callback {APP}"),
                                                    ("DescribeOnlineRecordCallback", f"recording callback {APP}"),
                                                    ("DescribeWarningCallback", f"warning callback {APP}")])
def test_a_callback_setting_the_account_may_not_read_is_a_warning_naming_its_permission(
        sim, key_file, monkeypatch, action, check_name) -> None:
    refusing(monkeypatch, action, "UnauthorizedOperation")
    status, report = check(sim, key_file)
    setting = by_name(report)[check_name]
    assert status == 0 and setting["status"] == "warn"
    assert f"CAM denies tiw:{action}" in setting["detail"]


def test_a_cam_denied_probe_fails_naming_its_permission(sim, key_file, monkeypatch) -> None:
    refusing(monkeypatch, "DescribeWhiteboardPush", "AuthFailure.UnauthorizedOperation")
    status, report = check(sim, key_file)
    probe = by_name(report)[f"SdkAppId {APP}"]
    assert status == 1 and "CAM denies tiw:DescribeWhiteboardPush" in probe["detail"]


def test_every_api_check_carries_its_permission(sim, key_file) -> None:
    _, report = check(sim, key_file, "--discover-sdk-app-id", str(APP))
    permissions = {c["name"]: c["permission"] for c in report["checks"]}
    assert permissions == {
        "credentials": "", "clock": "", "SdkAppIds": "",
        f"SdkAppId {APP}": "tiw:DescribeWhiteboardPush", "running list": "tiw:DescribeRunningTasks",
        f"push callback {APP}": "tiw:DescribeWhiteboardPushCallback",
        f"recording callback {APP}": "tiw:DescribeOnlineRecordCallback",  # --kinds watches recordings by default
        f"recordings {APP}": "tiw:DescribeOnlineRecord",
        f"warning callback {APP}": "tiw:DescribeWarningCallback",
    }


# --- TIW's warning callback (queued pushes; SetWarningCallback) ---

def test_no_warning_callback_is_a_warning_that_queues_show_only_on_the_running_list(sim, key_file) -> None:
    status, report = check(sim, key_file)
    warning = by_name(report)[f"warning callback {APP}"]
    assert status == 0 and warning["status"] == "warn"
    assert "queued pushes are reported only by the running list" in warning["detail"]


def test_a_warning_callback_elsewhere_is_a_warning_with_the_command_to_fix_it(sim, key_file) -> None:
    sim.configure_warning_callbacks("https://old.example.com/callbacks/tiw/warnings/old-secret-token")
    _, report = check(sim, key_file, "--callback-public-url", "https://new.example.com/callbacks/tiw")
    warning = by_name(report)[f"warning callback {APP}"]
    assert warning["status"] == "warn"
    assert "https://old.example.com/callbacks/tiw/warnings/<token>" in warning["detail"]
    assert "SetWarningCallback --SdkAppId" in warning["detail"]
    assert "old-secret-token" not in json.dumps(report)  # the URL's token is a secret


def test_a_warning_callback_pointing_here_with_our_token_is_ok(sim, key_file) -> None:
    from dataclasses import fields

    from exporter.settings import SourceSettings

    if "warning_callback_token" not in {f.name for f in fields(SourceSettings)}:
        pytest.skip("needs --warning-callback-token-file (queue_warnings.py, being added)")
    public, token = "https://exporter.example.com/callbacks/tiw", "warning-url-token"
    sim.configure_warning_callbacks(f"{public}/warnings/{token}")
    env = {"TIW_EXPORTER_WARNING_CALLBACK_TOKEN": token}
    _, report = check(sim, key_file, "--callback-public-url", public, env=env)
    warning = by_name(report)[f"warning callback {APP}"]
    assert warning["status"] == "ok", warning
    assert token not in json.dumps(report)
    sim.configure_warning_callbacks(f"{public}/warnings/another-token")
    _, report = check(sim, key_file, "--callback-public-url", public, env=env)
    assert "another token than this exporter's" in by_name(report)[f"warning callback {APP}"]["detail"]


def test_securitys_least_privilege_policy_lists_every_action_the_exporter_calls() -> None:
    """Every TIW action name in the package (but the simulator) is in SECURITY.md's policy and table."""
    import ast
    import re

    root = Path(__file__).resolve().parent.parent
    called = set()
    for path in (root / "exporter").rglob("*.py"):
        if "simulator" in path.parts:
            continue
        called |= {node.value for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)
                   and re.fullmatch(r"(Describe|Start|Stop|Set|Create|Modify|Delete|Apply)[A-Z][A-Za-z]+", node.value)
                   and not node.value.endswith("Time")}  # answer fields (CreateTime, RecordStartTime), not actions
    assert called >= {"DescribeWhiteboardPush", "DescribeRunningTasks", "DescribeWhiteboardPushCallback"}
    security = (root / "SECURITY.md").read_text()
    section = security.split("## Least privilege: the CAM policy")[1].split("\n## ")[0]
    policy = json.loads(re.search(r"```json\n(.*?)```", section, re.S)[1])
    assert set(policy["statement"][0]["action"]) == {f"tiw:{action}" for action in called}
    for action in called:
        assert f"| `tiw:{action}` |" in section  # a row saying what breaks without it


# --- the callbacks of the other kinds --kinds watches (Describe<Kind>Callback) ---

RECORD_KEY = "preflight-record-key"


def test_each_watched_kinds_callback_pointing_here_with_its_key_is_ok_and_reaches_the_exporter(
        sim, key_file, tmp_path) -> None:
    (tmp_path / "record.key").write_text(RECORD_KEY + "\n")
    config = tmp_path / "config.yml"
    config.write_text(f"callback_keys:\n  {APP}:\n    record: {tmp_path / 'record.key'}\n")
    settings = build_settings({"listen": "127.0.0.1:0", "endpoint": sim.url, "callback_key": CALLBACK_KEY,
                               "kinds": "push,record,transcode"}, config)
    exporter = Exporter(settings, credentials=StaticCredentials(Credential(SECRET_ID, SECRET_KEY))).start()
    try:
        public = f"{exporter.url}/callbacks/tiw"
        sim.configure_callbacks(public, CALLBACK_KEY)
        sim.configure_callbacks(public, RECORD_KEY, kind="record")  # as SetOnlineRecordCallback(Key) would
        sim.configure_callbacks(public, CALLBACK_KEY, kind="transcode")  # the default key: every kind without one
        status, report = check(sim, key_file, "--callback-public-url", public, "--config", str(config),
                               "--kinds", "push,record,transcode", env={"TIW_EXPORTER_CALLBACK_KEY": CALLBACK_KEY})
        checks = by_name(report)
        assert status == 0, report
        for name in ("push", "recording", "transcode"):
            assert checks[f"{name} callback {APP}"]["status"] == "ok", checks[f"{name} callback {APP}"]
        assert checks[f"recording callback {APP}"]["detail"] == f"TIW calls {public} with this exporter's recording key"
        assert checks[f"transcode callback {APP}"]["permission"] == "tiw:DescribeTranscodeCallback"
        for name in (f"test recording callback {APP}", f"test transcode callback {APP}"):
            assert checks[name]["status"] == "ok", checks[name]  # signed with that kind's key
        eventually(lambda: exporter.metrics.callbacks.labels("other", "unknown_event")._value.get() == 3)
    finally:
        exporter.stop()
    assert RECORD_KEY not in json.dumps(report) and CALLBACK_KEY not in json.dumps(report)


def test_a_kinds_callback_with_another_key_than_that_kinds_fails_with_the_command_to_fix_it(sim, key_file,
                                                                                            tmp_path) -> None:
    """The record key of an SdkAppId with one: TIW's recording callbacks signed with the push key are refused."""
    (tmp_path / "record.key").write_text(RECORD_KEY + "\n")
    config = tmp_path / "config.yml"
    config.write_text(f"callback_keys:\n  {APP}:\n    record: {tmp_path / 'record.key'}\n")
    public = "https://exporter.example.com/callbacks/tiw"
    sim.configure_callbacks(public, CALLBACK_KEY)
    sim.configure_callbacks(public, CALLBACK_KEY, kind="record")
    status, report = check(sim, key_file, "--callback-public-url", public, "--config", str(config),
                           env={"TIW_EXPORTER_CALLBACK_KEY": CALLBACK_KEY})
    checks = by_name(report)
    assert status == 1 and checks[f"push callback {APP}"]["status"] == "ok"
    recording = checks[f"recording callback {APP}"]
    assert recording["status"] == "fail"
    assert "recording callback key differs" in recording["detail"]
    assert f"tccli tiw SetOnlineRecordCallbackKey --SdkAppId {APP}" in recording["detail"]
    assert RECORD_KEY not in json.dumps(report) and CALLBACK_KEY not in json.dumps(report)


def test_a_kinds_callback_elsewhere_fails_and_one_not_set_warns_that_its_end_waits_for_a_poll(sim, key_file) -> None:
    public = "https://exporter.example.com/callbacks/tiw"
    sim.configure_callbacks(public, CALLBACK_KEY)
    sim.configure_callbacks("https://old.example.com/callbacks/tiw", CALLBACK_KEY, kind="record")
    status, report = check(sim, key_file, "--callback-public-url", public, "--kinds", "push,record,transcode",
                           env={"TIW_EXPORTER_CALLBACK_KEY": CALLBACK_KEY})
    checks = by_name(report)
    recording, transcode = checks[f"recording callback {APP}"], checks[f"transcode callback {APP}"]
    assert status == 1 and recording["status"] == "fail"
    assert recording["detail"] == (f"TIW calls https://old.example.com/callbacks/tiw, not {public}: tccli tiw "
                                   f"SetOnlineRecordCallback --SdkAppId {APP} --Callback {public}")
    assert transcode["status"] == "warn"
    assert "TIW sends no transcode callbacks for it: a transcode's end shows at the next poll" in transcode["detail"]
    assert f"SetTranscodeCallback --SdkAppId {APP} --Callback {public}" in transcode["detail"]


def test_only_the_watched_kinds_callbacks_are_checked(sim, key_file) -> None:
    _, report = check(sim, key_file, "--kinds", "push")
    assert not [name for name in by_name(report) if name.startswith(("recording callback", "transcode callback"))]
    _, report = check(sim, key_file, "--kinds", "record")
    checks = by_name(report)
    assert checks[f"recording callback {APP}"]["status"] == "warn"  # no --callback-public-url to compare with
    assert "set --callback-public-url to check it is this exporter" in checks[f"recording callback {APP}"]["detail"]
    assert f"transcode callback {APP}" not in checks



def test_a_cam_policy_without_a_watched_kinds_action_warns_and_names_it(sim, key_file, monkeypatch) -> None:
    """A policy written for pushes: DescribeOnlineRecord refused by CAM is a warning naming the action (the
    recordings pause, the pushes do not), never a failure of the preflight."""
    refusing(monkeypatch, "DescribeOnlineRecord", "UnauthorizedOperation")
    status, report = check(sim, key_file)
    recordings = by_name(report)[f"recordings {APP}"]
    assert status == 0 and recordings["status"] == "warn"
    assert "CAM denies tiw:DescribeOnlineRecord" in recordings["detail"] and "--kinds" in recordings["detail"]
    assert by_name(report)[f"SdkAppId {APP}"]["status"] == "ok"
    status, report = check(sim, key_file, "--kinds", "push")
    assert f"recordings {APP}" not in by_name(report)
