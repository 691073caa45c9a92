"""``Settings``: every option of ``tiw-exporter run``, validated once, frozen.

Sources, highest first: command-line flags, ``TIW_EXPORTER_*`` environment (both via click),
the ``--config`` YAML file (same keys as the long flags, with ``_`` or ``-``), then defaults.
Loading returns a ``Settings`` or raises ``ConfigError`` listing every problem found, each one
readable on its own line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from exporter.model import InvalidTaskRef, TaskKey, decimal_int, validate_sdk_app_id, validate_task_id
from exporter.tencentcloud.client import DEFAULT_ENDPOINT, DEFAULT_REGION
from exporter.tencentcloud.credentials import CredentialError, read_secret_file
from exporter.yamlfile import YamlFileError, read_yaml


class ConfigError(Exception):
    """Invalid configuration; ``problems`` holds one readable line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """'15s', '1h', '500ms', '2m', or a bare number of seconds -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"not a duration (use e.g. 15s, 2m, 1h): {str(value)[:40]!r}")
        seconds = float(match[1]) * _UNITS[match[2]]
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"not a finite duration: {value!r}")
    return seconds


def parse_listen(value: str) -> tuple[str, int]:
    """'HOST:PORT', ':PORT' or '[::1]:PORT' -> (host, port)."""
    text = str(value).strip()
    host, sep, port_text = text.rpartition(":")
    port = decimal_int(port_text) if sep else None
    if port is None:
        raise ValueError(f"listen address must be HOST:PORT, got {text[:60]!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, port


def parse_task_ref(value: str, default_sdk_app_id: int | None) -> TaskKey:
    """'SDKAPPID:TASKID', or 'TASKID' with the default SdkAppId."""
    text = str(value).strip()
    if ":" in text:
        sdk_text, _, task_text = text.partition(":")
        return validate_sdk_app_id(sdk_text), validate_task_id(task_text)
    if default_sdk_app_id is None:
        raise InvalidTaskRef(f"task {text[:70]!r} has no SdkAppId: write SDKAPPID:TASKID or set --sdk-app-id")
    return default_sdk_app_id, validate_task_id(text)


@dataclass(frozen=True)
class AccountSettings:
    """One Tencent Cloud account (credential) with its own request budget and SdkAppIds."""

    name: str
    sdk_app_ids: tuple[int, ...] = ()
    secret_id: str | None = None
    secret_key_file: Path | None = None
    cvm_role: str | None = None
    region: str | None = None
    endpoint: str | None = None
    rate_limit: float | None = None


@dataclass(frozen=True)
class Settings:
    listen: tuple[str, int] = ("0.0.0.0", 9877)
    endpoint: str = DEFAULT_ENDPOINT
    region: str = DEFAULT_REGION
    secret_id: str | None = None
    secret_key_file: Path | None = None
    cvm_role: str | None = None
    sdk_app_id: int | None = None
    tasks: tuple[TaskKey, ...] = ()
    tasks_file: Path | None = None
    api_token_file: Path | None = None
    api_token: str | None = field(default=None, repr=False)
    state_file: Path | None = None
    state_save_interval: float = 5.0
    interval: float = 15.0
    rate_limit: float = 20.0
    shared_rate_limit: bool = False
    concurrency: int = 8
    finished_retention: float = 3600.0
    not_found_grace: float = 120.0
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    web_config_file: Path | None = None
    callback_key_file: Path | None = None
    callback_key: str | None = field(default=None, repr=False)
    callback_listen: tuple[str, int] | None = None
    discover_sdk_app_ids: tuple[int, ...] = ()
    discover_interval: float = 60.0
    liveness_interval: float = 5.0
    log_level: str = "info"
    log_format: str = "text"
    shard_index: int = 0
    shard_count: int = 1
    shard_peer_url: str | None = None
    shard_sync_interval: float = 30.0
    accounts: tuple[AccountSettings, ...] = ()


OPTION_NAMES = tuple(f.name for f in fields(Settings) if f.name not in ("api_token", "callback_key"))
_LIST_OPTIONS = {"tasks": "task", "discover_sdk_app_ids": "discover_sdk_app_id"}
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def read_config_file(path: Path) -> dict[str, Any]:
    """The ``--config`` YAML as a mapping of option name -> raw value."""
    try:
        document = read_yaml(path, "config file")
    except YamlFileError as exc:
        raise ConfigError([str(exc)]) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError([f"config file {path} must be a mapping of option: value"])
    raw: dict[str, Any] = {}
    problems = []
    known = set(OPTION_NAMES) | set(_LIST_OPTIONS.values())
    for key, value in document.items():
        name = str(key).replace("-", "_")
        if name not in known:
            problems.append(f"config file {path}: unknown option {key!r}")
            continue
        for plural, singular in _LIST_OPTIONS.items():
            if name == singular:
                name = plural
        raw[name] = value
    if problems:
        raise ConfigError(problems)
    return raw


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return value.split()
    return [value]


class _Builder:
    """Converts raw option values into typed ones, collecting every problem instead of stopping."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw
        self.values: dict[str, Any] = {}
        self.problems: list[str] = []

    def convert(self, name: str, converter: Any) -> None:
        value = self.raw.get(name)
        if value is None or value == ():
            return
        try:
            self.values[name] = converter(value)
        except (ValueError, TypeError, OverflowError, RuntimeError) as exc:  # RuntimeError: "~nobody/x"
            self.problems.append(f"--{name.replace('_', '-')}: {exc}")

    def check(self, name: str, ok: bool, message: str) -> None:
        if name in self.values and not ok:
            self.problems.append(f"--{name.replace('_', '-')}: {message}")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(f"must be true or false, got {str(value)[:40]!r}")


def _positive_int(value: Any) -> int:
    number = None if isinstance(value, bool) else decimal_int(str(value))
    if number is None:
        raise ValueError(f"must be a positive integer, got {str(value)[:40]!r}")
    return number


def _non_negative_int(value: Any) -> int:
    number = None if isinstance(value, bool) else decimal_int(str(value))
    if number is None:
        raise ValueError(f"must be a non-negative integer, got {str(value)[:40]!r}")
    return number


def _endpoint(value: Any) -> str:
    """The API endpoint: ``http(s)://HOST[:PORT]`` (the one check, for top-level and per-account)."""
    text = str(value)
    if not re.match(r"^https?://[^/\s]+/?$", text):
        raise ValueError(f"must be http(s)://HOST[:PORT], got {text[:60]!r}")
    return text


def _peer_url_template(value: Any) -> str:
    text = str(value)
    if "{index}" not in text or not re.match(r"^https?://", text):
        raise ValueError(f"must be an http(s) URL containing {{index}}, got {text[:80]!r}")
    return text.rstrip("/")


_ACCOUNT_KEYS = {f.name for f in fields(AccountSettings)}


def _account(index: int, raw: Any) -> AccountSettings:
    if not isinstance(raw, dict):
        raise ValueError(f"accounts[{index}] must be a mapping")
    data = {str(k).replace("-", "_"): v for k, v in raw.items()}
    unknown = set(data) - _ACCOUNT_KEYS
    if unknown:
        raise ValueError(f"accounts[{index}]: unknown keys {sorted(unknown)}")
    name = str(data.get("name") or f"account{index}")
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", name):
        raise ValueError(f"accounts[{index}]: name must be 1-64 of [A-Za-z0-9_.-]")
    apps = data.get("sdk_app_ids") or []
    if not isinstance(apps, list):
        raise ValueError(f"accounts[{index}] ({name}): sdk_app_ids must be a list")
    try:
        sdk_app_ids = tuple(validate_sdk_app_id(a) for a in apps)
    except InvalidTaskRef as exc:
        raise ValueError(f"accounts[{index}] ({name}): {exc}") from None
    if bool(data.get("secret_id")) != bool(data.get("secret_key_file")):
        raise ValueError(f"accounts[{index}] ({name}): secret_id and secret_key_file go together")
    if "secret_key" in raw:
        raise ValueError(f"accounts[{index}] ({name}): put the key in a file (secret_key_file)")
    endpoint = data.get("endpoint")
    if endpoint is not None:
        try:
            endpoint = _endpoint(endpoint)
        except ValueError as exc:
            raise ValueError(f"accounts[{index}] ({name}): endpoint {exc}") from None
    return AccountSettings(
        name=name, sdk_app_ids=sdk_app_ids,
        secret_id=str(data["secret_id"]) if data.get("secret_id") else None,
        secret_key_file=Path(str(data["secret_key_file"])).expanduser() if data.get("secret_key_file") else None,
        cvm_role=str(data["cvm_role"]) if data.get("cvm_role") else None,
        region=str(data["region"]) if data.get("region") else None,
        endpoint=endpoint or None,
        rate_limit=_positive_float(data["rate_limit"]) if data.get("rate_limit") is not None else None,
    )


def _accounts(value: Any) -> tuple[AccountSettings, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of accounts")
    accounts = tuple(_account(i, raw) for i, raw in enumerate(value))
    names = [a.name for a in accounts]
    if len(set(names)) != len(names):
        raise ValueError("account names must be unique")
    claimed = [app for a in accounts for app in a.sdk_app_ids]
    if len(set(claimed)) != len(claimed):
        raise ValueError("an SdkAppId belongs to at most one account")
    return accounts


def _positive_float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a number, got {str(value)[:40]!r}") from None
    if not number > 0 or number == float("inf"):
        raise ValueError(f"must be a positive number, got {value!r}")
    return number


def _choice(options: tuple[str, ...]) -> Any:
    def convert(value: Any) -> str:
        text = str(value).lower()
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {str(value)[:30]!r}")
        return text

    return convert


def build_settings(flags: Mapping[str, Any], config_file: Path | None = None) -> Settings:
    """Merge flags/env (``flags``, None meaning unset) over the config file over defaults."""
    raw: dict[str, Any] = read_config_file(config_file) if config_file else {}
    unknown = set(flags) - set(OPTION_NAMES) - {"api_token", "callback_key"}
    if unknown:
        raise ValueError(f"build_settings got unknown option names {sorted(unknown)}")  # a programming error
    for name, value in flags.items():
        if value is not None and value != ():
            raw[name] = value
    b = _Builder(raw)
    b.convert("listen", parse_listen)
    b.convert("callback_listen", parse_listen)
    b.convert("endpoint", _endpoint)
    b.convert("region", str)
    b.convert("secret_id", str)
    b.convert("cvm_role", str)
    for name in ("secret_key_file", "tasks_file", "api_token_file", "state_file", "web_config_file",
                 "callback_key_file"):
        b.convert(name, lambda v: Path(str(v)).expanduser())
    b.convert("sdk_app_id", validate_sdk_app_id)
    default_sdk = b.values.get("sdk_app_id")
    b.convert("tasks", lambda v: tuple(dict.fromkeys(parse_task_ref(t, default_sdk) for t in _as_list(v))))
    b.convert("discover_sdk_app_ids", lambda v: tuple(dict.fromkeys(validate_sdk_app_id(x) for x in _as_list(v))))
    for name in ("interval", "finished_retention", "not_found_grace", "connect_timeout", "read_timeout",
                 "discover_interval", "state_save_interval", "shard_sync_interval"):
        b.convert(name, parse_duration)
        b.check(name, b.values.get(name, 1) > 0, "must be greater than zero")
    b.convert("liveness_interval", parse_duration)
    b.check("liveness_interval", b.values.get("liveness_interval", 0) >= 0, "must not be negative")
    b.convert("rate_limit", _positive_float)
    b.convert("shared_rate_limit", _boolean)
    b.convert("concurrency", _positive_int)
    b.convert("shard_count", _positive_int)
    b.convert("shard_index", _non_negative_int)
    b.check("shard_count", b.values.get("shard_count", 1) >= 1, "must be at least 1")
    if b.values.get("shard_index", 0) >= b.values.get("shard_count", 1):
        b.problems.append("--shard-index: must be below --shard-count")
    b.convert("shard_peer_url", _peer_url_template)
    b.convert("accounts", _accounts)
    b.check("concurrency", 1 <= b.values.get("concurrency", 1) <= 256, "must be between 1 and 256")
    b.convert("log_level", _choice(LOG_LEVELS))
    b.convert("log_format", _choice(LOG_FORMATS))
    _load_secret(b, raw, "api_token_file", "api_token", "API token")
    _load_secret(b, raw, "callback_key_file", "callback_key", "callback key")
    if b.problems:
        raise ConfigError(b.problems)
    return Settings(**b.values)


def _load_secret(b: _Builder, raw: Mapping[str, Any], file_option: str, value_option: str, what: str) -> None:
    """A secret comes from its file option, else from its direct value (env only)."""
    path = b.values.get(file_option)
    if path is not None:
        try:
            b.values[value_option] = read_secret_file(path, what)
        except CredentialError as exc:
            b.problems.append(f"--{file_option.replace('_', '-')}: {exc}")
    elif raw.get(value_option):
        b.values[value_option] = str(raw[value_option]).strip()
