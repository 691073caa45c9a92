"""Settings: flags > env > file > defaults, and every bad value named in one readable problem."""

from __future__ import annotations

import pytest

from exporter.config import ConfigError, Settings, build_settings, parse_duration, parse_listen


def test_defaults_follow_the_design():
    settings = build_settings({})
    assert settings == Settings()
    assert settings.polling.interval == 15 and settings.api.rate_limit == 20 and settings.api.concurrency == 8
    assert settings.polling.finished_retention == 3600
    assert settings.api.region == "ap-guangzhou"
    assert settings.api.endpoint == "https://tiw.tencentcloudapi.com"


@pytest.mark.parametrize(("text", "seconds"), [("15s", 15), ("1h", 3600), ("500ms", 0.5), ("2m", 120), (7, 7),
                                               ("1.5s", 1.5), ("3", 3), ("1d", 86400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["fast", "15 parsecs", "", "-1s", True, "nan"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "address"), [("127.0.0.1:9877", ("127.0.0.1", 9877)), (":80", ("0.0.0.0", 80)),
                                               ("[::1]:9000", ("::1", 9000))])
def test_listen_addresses(text, address):
    assert parse_listen(text) == address


@pytest.mark.parametrize("text", ["localhost", "host:port", "h:70000"])
def test_bad_listen_addresses(text):
    with pytest.raises(ValueError):
        parse_listen(text)


def test_tasks_accept_both_forms_and_deduplicate():
    settings = build_settings({"sdk_app_id": "1400000001", "tasks": ("1400000002:abc", "def", "1400000002:abc")})
    assert settings.sources.tasks == ((1400000002, "abc"), (1400000001, "def"))


def test_bare_task_without_sdk_app_id_is_a_problem():
    with pytest.raises(ConfigError, match="has no SdkAppId"):
        build_settings({"tasks": ("abc",)})


def test_flags_win_over_config_file(tmp_path):
    config = tmp_path / "c.yml"
    config.write_text("interval: 30s\nrate-limit: 10\nlisten: 127.0.0.1:1234\n")
    settings = build_settings({"interval": "5s"}, config)
    assert settings.polling.interval == 5
    assert settings.api.rate_limit == 10
    assert settings.web.listen == ("127.0.0.1", 1234)


def test_config_file_task_list(tmp_path):
    config = tmp_path / "c.yml"
    config.write_text("sdk_app_id: 1400000001\ntasks: [abc, '1400000009:xyz']\n")
    assert build_settings({}, config).sources.tasks == ((1400000001, "abc"), (1400000009, "xyz"))


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        build_settings({"interval": "soon", "concurrency": "-3", "log_level": "loud", "listen": "nowhere"})
    problems = info.value.problems
    assert len(problems) == 4
    assert any(p.startswith("--interval:") for p in problems)
    assert any(p.startswith("--concurrency:") for p in problems)
    assert any(p.startswith("--log-level:") for p in problems)
    assert any(p.startswith("--listen:") for p in problems)


@pytest.mark.parametrize(("content", "message"), [
    ("interval: [1, 2\n", "not valid YAML at line"),
    ("- a\n- b\n", "must be a mapping"),
    ("intervall: 5s\n", "unknown option 'intervall'"),
])
def test_bad_config_files_are_named(tmp_path, content, message):
    config = tmp_path / "c.yml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=message):
        build_settings({}, config)


def test_missing_config_file_is_a_problem(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*: cannot read the file"):
        build_settings({}, tmp_path / "absent.yml")


def test_api_token_file_is_read_and_hidden_from_repr(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-token\n")
    settings = build_settings({"api_token_file": str(token_file)})
    assert settings.web.api_token == "s3cr3t-token"
    assert "s3cr3t" not in repr(settings)


def test_empty_api_token_file_is_a_problem(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        build_settings({"api_token_file": str(token_file)})


def test_endpoint_must_be_a_base_url():
    with pytest.raises(ConfigError, match="--endpoint"):
        build_settings({"endpoint": "ftp://x"})
    assert build_settings({"endpoint": "http://127.0.0.1:8080"}).api.endpoint == "http://127.0.0.1:8080"
