"""The command line: options reach Settings, errors are one line with exit status 2, describe works."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner

from exporter import __version__, cli
from exporter.config import OPTION_NAMES, REMOVED_OPTIONS, parse_duration
from exporter.settings import DEFAULTS, DURATIONS, default_text, format_duration
from exporter.simulator import Simulator, TaskScript
from tests.constants import APP, SECRET_ID, SECRET_KEY
from tests.procs import exporter_cmd


@pytest.fixture(scope="module")
def simulator():
    with Simulator(credentials={SECRET_ID: SECRET_KEY}) as sim:
        sim.task_id = sim.add_task(APP, TaskScript(prepare_seconds=0), task_id="cli_task")
        yield sim


def invoke(*args: str, env: dict | None = None):
    """Run the console-script entry point in-process, like a user would."""
    runner = CliRunner()
    return runner.invoke(cli.cli, list(args), env=env, catch_exceptions=False, standalone_mode=True)


def run_main(args: list[str]) -> tuple[int, str]:
    """Call ``cli.main`` (our one-line error handling) and capture the exit status and stderr."""
    result = subprocess.run(exporter_cmd(*args), capture_output=True, text=True, timeout=60)
    return result.returncode, result.stderr


def describe_args(simulator, key_file, *extra):
    return ["describe", "--endpoint", simulator.url, "--secret-id", SECRET_ID, "--secret-key-file", str(key_file),
            "--sdk-app-id", str(APP), *extra]


def test_every_run_option_is_a_settings_field_or_a_hidden_removed_one():
    params = {p.name: p for p in cli.run.params if p.name != "config_file"}
    assert set(params) <= set(OPTION_NAMES) | set(REMOVED_OPTIONS), set(params) - set(OPTION_NAMES)
    assert all(params[name].hidden for name in REMOVED_OPTIONS)


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_describe_prints_the_task_as_a_table(simulator, key_file):
    result = invoke(*describe_args(simulator, key_file, "--task-id", "cli_task"))
    assert result.exit_code == 0, result.output
    assert "TaskId         cli_task" in result.output
    assert "Status         PUSHING" in result.output


def test_describe_prints_json(simulator, key_file):
    result = invoke(*describe_args(simulator, key_file, "--task-id", "cli_task", "--output", "json"))
    assert json.loads(result.output)["status"] == "PUSHING"


def test_describe_with_a_wrong_key_prints_signature_failure_and_exits_1(simulator, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    status, stderr = run_main(describe_args(simulator, wrong, "--task-id", "cli_task"))
    assert status == 1
    assert "AuthFailure.SignatureFailure" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert "nope" not in stderr


def test_describe_of_an_unknown_task_prints_the_code(simulator, key_file):
    status, stderr = run_main(describe_args(simulator, key_file, "--task-id", "missing"))
    assert status == 1 and "InvalidParameter.TaskNotFound" in stderr


def test_describe_takes_credentials_from_the_environment(simulator):
    env = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}
    result = invoke("describe", "--endpoint", simulator.url, "--sdk-app-id", str(APP), "--task-id", "cli_task",
                    env=env)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("args", "message"), [
    (["describe", "--sdk-app-id", "abc", "--task-id", "x"], "sdk_app_id must be a positive integer"),
    (["describe", "--sdk-app-id", "1", "--task-id", "bad id!"], "task_id must be"),
    (["run", "--interval", "soon"], "--interval: not a duration"),
    (["run", "--listen", "nowhere"], "--listen: listen address must be HOST:PORT"),
    (["run", "--task", "notanapp:"], "sdk_app_id must be a positive integer"),
    (["run", "--concurrency", "0"], "--concurrency: must be between 1 and 256"),
    (["run", "--config", "/nonexistent/config.yml"], "config file /nonexistent/config.yml: cannot read the file"),
    (["run", "--tasks-file", "/x", "--api-token-file", "/nonexistent/token"], "cannot read API token file"),
    (["describe", "--task-id", "x"], "Missing option '--sdk-app-id'"),
    (["run", "--no-such-flag"], "No such option '--no-such-flag'"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["check-config", "/nonexistent.yml"], "does not exist"),
    (["simulate", "--fault", "bogus"], "unknown fault kind 'bogus'"),
    (["simulate", "--latency", "slowly"], "not a duration"),
])
def test_bad_input_is_one_line_and_exit_status_2(args, message):
    status, stderr = run_main(args)
    assert status == 2, stderr
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr


def test_env_options_apply_and_flags_win(monkeypatch):
    captured = {}
    origins = {}

    def capture(flags, config=None, where=None):
        captured.update(flags)
        origins.update(where or {})
        raise SystemExit(0)  # stop before anything starts

    monkeypatch.setattr(cli, "build_settings", capture)
    invoke("run", "--interval", "7s", env={"TIW_EXPORTER_INTERVAL": "9s", "TIW_EXPORTER_RATE_LIMIT": "5",
                                              "TIW_EXPORTER_TASK": "1:a 1:b"})
    assert captured["interval"] == "7s"
    assert captured["rate_limit"] == "5"
    assert captured["tasks"] == ("1:a", "1:b")
    # problems are then reported under the variable's name, not the flag's
    assert origins == {"rate_limit": "TIW_EXPORTER_RATE_LIMIT", "tasks": "TIW_EXPORTER_TASK"}


def test_check_config_accepts_valid_files(tmp_path):
    tasks = tmp_path / "tasks.yml"
    tasks.write_text("- {sdk_app_id: 1400000001, task_id: abc}\n")
    config = tmp_path / "config.yml"
    config.write_text("interval: 30s\ntasks-file: tasks.yml\n")
    assert invoke("check-config", str(tasks)).output.endswith("valid tasks file, 1 task\n")  # not "1 tasks"
    assert "valid config file" in invoke("check-config", str(config)).output


def test_check_config_rejects_a_broken_tasks_file(tmp_path):
    tasks = tmp_path / "tasks.yml"
    tasks.write_text("- {sdk_app_id: -5, task_id: abc}\n")
    status, stderr = run_main(["check-config", str(tasks)])
    assert status == 2 and "entry 1: sdk_app_id must be a positive integer" in stderr


def test_help_shows_each_default_from_the_one_home_of_defaults():
    """The help text is written from settings.DEFAULTS, and a duration reads back as the same value."""
    help_text = " ".join(invoke("run", "--help").output.split())
    shown = 0
    for param in cli.run.params:
        if param.name in DEFAULTS and not param.hidden and default_text(param.name) is not None:
            assert f"[default: {default_text(param.name)}]" in help_text, param.name
            shown += 1
    assert shown >= 15
    for name in DURATIONS:
        assert parse_duration(format_duration(DEFAULTS[name])) == DEFAULTS[name], name
    assert [format_duration(s) for s in (3600, 90, 0.25, 5)] == ["1h", "1m30s", "250ms", "5s"]
