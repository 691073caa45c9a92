"""The one YAML reader: config, tasks and web config files are refused the same way, on one line."""

from __future__ import annotations

import pytest

from exporter.config import ConfigError, build_settings
from exporter.tasksfile import TasksFileError, load_tasks_file
from exporter.yamlfile import YamlFileError, read_yaml


@pytest.mark.parametrize(("text", "reason"), [
    ("a: 1\na: 2\n", "not valid YAML at line 2: duplicate key 'a'"),
    ("a: [1, 2\n", "not valid YAML at line 2"),
    ("!!python/object:os.system {}\n", "not valid YAML at line 1"),
])
def test_bad_yaml_is_one_line_naming_the_file_and_line(tmp_path, text: str, reason: str) -> None:
    path = tmp_path / "x.yml"
    path.write_text(text)
    with pytest.raises(YamlFileError) as caught:
        read_yaml(path, "config file")
    assert str(caught.value).startswith(f"config file {path}: {reason}")
    assert "\n" not in str(caught.value)


def test_a_duplicate_option_in_a_config_file_is_refused_not_merged(tmp_path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("interval: 5s\ninterval: 30s\n")
    with pytest.raises(ConfigError, match="duplicate key 'interval'"):
        build_settings({}, path)


def test_a_duplicate_key_in_a_tasks_file_entry_is_refused(tmp_path) -> None:
    path = tmp_path / "tasks.yml"
    path.write_text("- {sdk_app_id: 1400000001, task_id: a, task_id: b}\n")
    with pytest.raises(TasksFileError, match="duplicate key 'task_id'"):
        load_tasks_file(path)


def test_an_unreadable_file_names_the_file(tmp_path) -> None:
    with pytest.raises(YamlFileError, match=r"tasks file .*absent.yml: cannot read the file: No such file"):
        read_yaml(tmp_path / "absent.yml", "tasks file")
