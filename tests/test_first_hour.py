"""The operator's first hour: every mistake of the newcomer review gets one line naming what was typed,
where it was typed, the value and what is accepted; implausible values start with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.cli import main
from exporter.config import build_settings, parse_duration
from tests.constants import APP


def run_main(args: list[str], capsys, monkeypatch, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    try:
        main(args)
        status = 0
    except SystemExit as exited:
        status = exited.code or 0
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def files(tmp_path: Path) -> dict[str, str]:
    good = tmp_path / "tasks.yml"
    good.write_text(f"- {{sdk_app_id: {APP}, task_id: abc}}\n")
    typo = tmp_path / "typo.yml"
    typo.write_text(f"- {{sdk_app_id: {APP}, task_id: abc}}\n- {{sdk_app_id: {APP}, taskid: def}}\n")
    indent = tmp_path / "indent.yml"
    indent.write_text(f"- sdk_app_id: {APP}\n   task_id: abc\n")
    config_typo = tmp_path / "config-typo.yml"
    config_typo.write_text("listen: 127.0.0.1:0\nintervall: 30s\n")
    config_bad = tmp_path / "config-bad.yml"
    config_bad.write_text("listen: 127.0.0.1:0\ninterval: fast\n")
    config_missing = tmp_path / "config-missing.yml"
    config_missing.write_text("tasks-file: nowhere.yml\n")
    return {"good": str(good), "typo": str(typo), "indent": str(indent), "config_typo": str(config_typo),
            "config_bad": str(config_bad), "config_missing": str(config_missing), "dir": str(tmp_path)}


# (review item, args, environment, what the one line must say)
MISTAKES = [
    ("F1 missing tasks file", ["run", "--tasks-file", "{dir}/nonexist.yml"], {},
     ["--tasks-file: tasks file", "nonexist.yml: cannot read the file: No such file"]),
    ("F1 tasks file with a typo", ["run", "--tasks-file", "{typo}"], {},
     ["--tasks-file: tasks file", "entry 2 must have exactly sdk_app_id and task_id"]),
    ("F3 --sdk-app-id abc (describe)", ["describe", "--sdk-app-id", "abc", "--task-id", "x"], {},
     ["--sdk-app-id/--task-id: sdk_app_id must be a positive integer, got 'abc'"]),
    ("F3 --task abc:x", ["run", "--task", "abc:x"], {}, ["--task: sdk_app_id must be a positive integer, got 'abc'"]),
    ("F3 --sdk-app-id abc (run)", ["run", "--sdk-app-id", "abc", "--task", "x"], {},
     ["--sdk-app-id: sdk_app_id must be a positive integer, got 'abc'"]),
    ("F3 --sdk-app-id -5", ["run", "--sdk-app-id", "-5", "--task", "x"], {}, ["got '-5'"]),
    ("F3 a value from the environment", ["run"], {"TIW_EXPORTER_INTERVAL": "fast"},
     ["TIW_EXPORTER_INTERVAL: not a duration", "got 'fast'"]),
    ("F3 a comma in TIW_EXPORTER_TASK", ["run"], {"TIW_EXPORTER_TASK": f"{APP}:a,{APP}:b"},
     ["TIW_EXPORTER_TASK: task_id must be 1-64 characters"]),
    ("F5 a value from the config file", ["run", "--config", "{config_bad}"], {},
     ["config-bad.yml, line 2: interval: not a duration", "got 'fast'"]),
    ("F5 a config key typo", ["check-config", "{config_typo}"], {},
     ["line 2: unknown option 'intervall' (did you mean 'interval'?)"]),
    ("F5 a config naming a missing tasks file", ["check-config", "{config_missing}"], {},
     ["config-missing.yml, line 1: tasks-file: tasks file", "nowhere.yml: cannot read the file"]),
    ("F5 bad YAML in a tasks file", ["check-config", "{indent}"], {}, ["indent.yml: not valid YAML at line 2"]),
    ("F7 a negative interval", ["run", "--interval", "-5s"], {}, ["--interval: a duration cannot be negative"]),
    ("F7 an interval of 0", ["run", "--interval", "0s"], {}, ["--interval: must be greater than zero"]),
    ("F11 simulate --latency fast", ["simulate", "--latency", "fast"], {}, ["--latency: not a duration"]),
]


@pytest.mark.parametrize(("item", "args", "env", "expected"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_mistake_is_one_line_naming_what_and_where(item, args, env, expected, tmp_path, capsys,
                                                        monkeypatch) -> None:
    paths = files(tmp_path)
    status, _, stderr = run_main([a.format(**paths) for a in args], capsys, monkeypatch, env)
    assert status == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    for text in expected:
        assert text in stderr, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(("text", "seconds"), [("1m30s", 90), ("250ms", 0.25), ("1h", 3600), ("1h2m3s", 3723),
                                               ("2d", 172800), ("45", 45), ("1.5m", 90)])
def test_durations_are_written_as_prometheus_and_go_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_implausible_values_work_but_start_with_a_warning_naming_the_limit() -> None:
    settings = build_settings({"interval": "500ms", "rate_limit": "1000"},
                              origins={"rate_limit": "TIW_EXPORTER_RATE_LIMIT"})
    assert settings.polling.interval == 0.5 and settings.api.rate_limit == 1000
    assert any(w.startswith("--interval: an interval under 1s") for w in settings.warnings)
    assert any(w.startswith("TIW_EXPORTER_RATE_LIMIT: 1000 requests/s is above the API's documented limit of 20/s")
               for w in settings.warnings)
    assert build_settings({}).warnings == ()


def test_check_config_reads_a_tasks_mapping_as_run_does_and_counts_the_tasks_file(tmp_path, capsys,
                                                                                  monkeypatch) -> None:
    wrapped = tmp_path / "wrapped.yml"
    wrapped.write_text(f"tasks:\n  - {{sdk_app_id: {APP}, task_id: abc}}\n")
    assert run_main(["check-config", str(wrapped)], capsys, monkeypatch)[1].strip().endswith(
        "valid tasks file, 1 task")
    (tmp_path / "t.yml").write_text(f"- {{sdk_app_id: {APP}, task_id: a}}\n- {{sdk_app_id: {APP}, task_id: b}}\n")
    config = tmp_path / "config.yml"
    config.write_text("tasks-file: t.yml\ntask: [1400000009:c]\n")  # relative to the config file
    assert "valid config file (3 tasks" in run_main(["check-config", str(config)], capsys, monkeypatch)[1]


def test_bare_command_prints_the_help_and_exits_0(capsys, monkeypatch) -> None:
    status, out, err = run_main([], capsys, monkeypatch)
    assert status == 0 and out.startswith("Usage: tiw-exporter") and not err


def test_a_taken_callback_port_is_reported_as_the_callback_listener(capsys, monkeypatch, tmp_path) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDsimulator")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "simulator-secret-key")
    try:
        status, _, stderr = run_main(["run", "--listen", "127.0.0.1:0", "--callback-listen", f"127.0.0.1:{port}",
                                      "--endpoint", "http://127.0.0.1:9"], capsys, monkeypatch)
    finally:
        taken.close()
    assert status == 2
    error = stderr.strip().splitlines()[-1]  # after the INFO line naming the credential source
    assert error == f"tiw-exporter: error: --callback-listen: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_the_start_log_names_the_address_really_bound(caplog) -> None:
    import logging

    from exporter.runtime import Exporter
    from exporter.tencentcloud.credentials import Credential, StaticCredentials

    caplog.set_level(logging.INFO, logger="exporter.runtime")
    settings = build_settings({"listen": "0.0.0.0:0", "endpoint": "http://127.0.0.1:9"})
    exporter = Exporter(settings, credentials=StaticCredentials(Credential("AKIDx", "k"))).start()
    try:
        port = exporter.server.server_address[1]
        line = next(r.getMessage() for r in caplog.records if "listening on" in r.getMessage())
    finally:
        exporter.stop()
    assert f"listening on http://0.0.0.0:{port} (all interfaces; http://127.0.0.1:{port} here)" in line
    assert "tracking 0 tasks (add --task, --tasks-file, --discover-sdk-app-id or TIW callbacks)" in line


def test_a_task_listed_twice_is_tracked_once_with_a_warning_naming_both_entries(tmp_path, capsys,
                                                                                monkeypatch) -> None:
    tasks = tmp_path / "tasks.yml"
    tasks.write_text(f"- {{sdk_app_id: {APP}, task_id: a}}\n- {{sdk_app_id: {APP}, task_id: b}}\n"
                     f"- {{sdk_app_id: {APP}, task_id: a}}\n")
    repeat = f"entry 3 repeats entry 1 ({APP}:a); tracked once"
    status, out, err = run_main(["check-config", str(tasks)], capsys, monkeypatch)
    assert status == 0 and out.strip().endswith("valid tasks file, 2 tasks")
    assert err.strip() == f"warning: tasks file {tasks}: {repeat}"
    config = tmp_path / "config.yml"
    config.write_text("tasks-file: tasks.yml\n")
    status, out, err = run_main(["check-config", str(config)], capsys, monkeypatch)
    assert status == 0 and "valid config file (2 tasks" in out
    assert err.strip() == f"warning: tasks file {tasks}: {repeat}"
    # `run` says it once, from the tasks-file watcher (tests/test_tasks.py), not again from validation
    assert build_settings({"tasks_file": str(tasks)}).warnings == ()
