"""Loading ``Settings`` (``settings.py``): every option of ``tiw-exporter run``, validated once.

Sources, highest first: command-line flags, ``TIW_EXPORTER_*`` environment (both via click),
the ``--config`` YAML file (same keys as the long flags, with ``_`` or ``-``; relative file paths in it
are relative to the file), then defaults.
Loading returns a ``Settings`` or raises ``ConfigError`` listing every problem found, each one
readable on its own line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from exporter.kinds import DEFAULT_KINDS, KINDS, parse_kinds
from exporter.model import (
    KIND_NAMES,
    PUSH,
    InvalidTaskRef,
    TaskKey,
    decimal_int,
    key_kind,
    task_key,
    validate_sdk_app_id,
    validate_task_id,
)
from exporter.secretfile import SecretFileError, read_secret_file
from exporter.settings import DURATIONS, OPTION_NAMES, SECRET_VALUES, AccountSettings, Settings
from exporter.statedb import refusal, symlink_at
from exporter.tasksfile import TasksFileError, load_tasks_file
from exporter.yamlfile import YamlFileError, read_yaml, top_level_key_lines


class ConfigError(Exception):
    """Invalid configuration; ``problems`` holds one readable line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


_DURATION_RE = re.compile(r"\s*(-?)((?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+|[0-9]+(?:\.[0-9]+)?)\s*")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """A duration as Prometheus and Go write them -> seconds: '15s', '1m30s', '250ms', '1h', '2d', or a
    bare number of seconds. A negative one is refused as such (not as "not a duration")."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION_RE.fullmatch(str(value))
        if not match:
            raise ValueError(f"not a duration (use e.g. 15s, 1m30s, 250ms, 1h), got {str(value)[:40]!r}")
        parts = _DURATION_PART.findall(match[2])
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts) if parts else float(match[2])
        if match[1]:
            raise ValueError(f"a duration cannot be negative, got {str(value)[:40]!r}")
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
    """'SDKAPPID:TASKID', or 'TASKID' with the default SdkAppId; either after 'KIND:' for a task of another
    kind than a push ('record:1400000001:TASKID')."""
    text = str(value).strip()
    kind, sep, rest = text.partition(":")
    if sep and kind in KIND_NAMES:
        text = rest
    else:
        kind = PUSH
    if ":" in text:
        sdk_text, _, task_text = text.partition(":")
        return task_key(validate_sdk_app_id(sdk_text), validate_task_id(task_text), kind)
    if default_sdk_app_id is None:
        raise InvalidTaskRef(f"task {text[:70]!r} has no SdkAppId: write SDKAPPID:TASKID or set --sdk-app-id")
    return task_key(default_sdk_app_id, validate_task_id(text), kind)


_LIST_OPTIONS = {"tasks": "task", "discover_sdk_app_ids": "discover_sdk_app_id"}
# Sharding inside one account was removed in 0.2.0: still parsed for one release, so the first start of
# an old deployment says what to do instead of "unknown option". A count above 1 is refused.
REMOVED_OPTIONS = ("shard_index", "shard_count", "shard_peer_url", "shard_sync_interval")
SHARDING_REMOVED = ("sharding one account over replicas was removed in 0.2.0: one process owns every account it "
                    "is configured with (`accounts:` in the config file); to scale out, run one deployment per "
                    "account group (README, \"Scaling out: one deployment per account group\")")
PATH_OPTIONS = ("secret_key_file", "tasks_file", "api_token_file", "state_file", "web_config_file",
                "callback_key_file", "warning_callback_token_file")
API_RATE_LIMIT = 20.0  # requests/s per action, as Tencent documents for DescribeWhiteboardPush and DescribeRunningTasks


def flag_name(name: str) -> str:
    """The command-line flag of a Settings field: ``tasks`` -> ``--task``."""
    return "--" + _LIST_OPTIONS.get(name, name).replace("_", "-")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


def read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``--config`` YAML as (option name -> raw value, option name -> where it is written)."""
    try:
        document = read_yaml(path, "config file")
        lines = top_level_key_lines(path)
    except YamlFileError as exc:
        raise ConfigError([str(exc)]) from None
    if document is None:
        return {}, {}
    if not isinstance(document, dict):
        raise ConfigError([f"config file {path} must be a mapping of option: value"])
    raw: dict[str, Any] = {}
    where: dict[str, str] = {}
    problems = []
    known = set(OPTION_NAMES) | set(_LIST_OPTIONS.values()) | set(REMOVED_OPTIONS)
    for key, value in document.items():
        name = str(key).replace("-", "_")
        at = f"config file {path}, line {lines[str(key)]}" if str(key) in lines else f"config file {path}"
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0].replace('_', '-')!r}?)" if close else ""
            problems.append(f"{at}: unknown option {key!r}{hint}")
            continue
        for plural, singular in _LIST_OPTIONS.items():
            if name == singular:
                name = plural
        if name in PATH_OPTIONS and isinstance(value, str) and value and not value.startswith(("/", "~")):
            value = str(path.parent / value)  # relative to the config file, as Prometheus reads rule_files
        raw[name] = value
        where[name] = f"{at}: {key}"
    if problems:
        raise ConfigError(problems)
    return raw, where


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return value.split()
    return [value]


class _Builder:
    """Converts raw option values into typed ones, collecting every problem instead of stopping.

    Each problem names where the value was written: the flag, the environment variable, or the
    config file with its line, so the user looks at the right place.
    """

    def __init__(self, raw: Mapping[str, Any], where: Mapping[str, str]) -> None:
        self.raw = raw
        self.where = where
        self.values: dict[str, Any] = {}
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def origin(self, name: str) -> str:
        return self.where.get(name, flag_name(name))

    def convert(self, name: str, converter: Any) -> None:
        value = self.raw.get(name)
        if value is None or value == ():
            return
        try:
            self.values[name] = converter(value)
        except (ValueError, TypeError, OverflowError, RuntimeError) as exc:  # RuntimeError: "~nobody/x"
            self.problems.append(f"{self.origin(name)}: {exc}")

    def check(self, name: str, ok: bool, message: str) -> None:
        if name in self.values and not ok:
            self.problems.append(f"{self.origin(name)}: {message}")

    def warn(self, name: str, doubtful: bool, message: str) -> None:
        if name in self.values and doubtful:
            self.warnings.append(f"{self.origin(name)}: {message}")


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


def _public_url(value: Any) -> str:
    text = str(value).strip()
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", text):
        raise ValueError(f"must be the http(s) URL TIW calls, e.g. https://tiw-exporter.example.com/callbacks/tiw, "
                         f"got {text[:80]!r}")
    return text


def _refuse_sharding(b: _Builder) -> None:
    """The removed ``--shard-*`` options: a single shard (count 1, index 0) passes silently, a sharded
    deployment is refused with what to do instead, and the peer options warn that they do nothing."""
    for name in ("shard_count", "shard_index"):
        raw = b.raw.get(name)
        if raw is None:
            continue
        single = 1 if name == "shard_count" else 0
        if str(raw).strip() != str(single):
            b.problems.append(f"{b.origin(name)} {str(raw)[:20]}: {SHARDING_REMOVED}")
            return  # one line says it all
    for name in ("shard_peer_url", "shard_sync_interval"):
        if b.raw.get(name) is not None:
            b.warnings.append(f"{b.origin(name)}: does nothing since 0.2.0 (no peers: {SHARDING_REMOVED}); "
                              "remove it")


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


CALLBACK_KEY_ALL_KINDS = "all"  # callback_keys: {app: {all: file}}: the key of the kinds not named


def _callback_keys(value: Any) -> tuple[tuple[int, Path, str], ...]:
    """``callback_keys:`` maps SdkAppId -> key file for all its kinds, or -> {kind: key file} (``all``: the kinds not
    named); TIW sets one CallbackKey per SdkAppId and kind. Each file must read. Entries are (SdkAppId, file,
    kind), kind "" for every kind."""
    if not isinstance(value, dict) or not value:
        raise ValueError("must be a mapping of SdkAppId: key file")
    keys = []
    for raw_app, raw_files in value.items():
        app = validate_sdk_app_id(raw_app)
        files = raw_files if isinstance(raw_files, dict) else {CALLBACK_KEY_ALL_KINDS: raw_files}
        if not files or isinstance(raw_files, list):
            raise ValueError(f"SdkAppId {app}: must be a key file, or a mapping of kind: key file")
        for kind, raw_path in files.items():
            if kind != CALLBACK_KEY_ALL_KINDS and kind not in KINDS:
                raise ValueError(f"SdkAppId {app}: unknown kind {str(kind)[:40]!r} (known: "
                                 f"{', '.join([*KINDS, CALLBACK_KEY_ALL_KINDS])})")
            kind = "" if kind == CALLBACK_KEY_ALL_KINDS else kind
            path = Path(str(raw_path)).expanduser()
            try:
                read_secret_file(path, f"{kind} callback key of SdkAppId {app}".lstrip())
            except SecretFileError as exc:
                raise ValueError(str(exc)) from None
            keys.append((app, path, kind))
    return tuple(keys)


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


def build_settings(flags: Mapping[str, Any], config_file: Path | None = None,
                   origins: Mapping[str, str] | None = None) -> Settings:
    """Merge flags/env (``flags``, None meaning unset) over the config file over defaults.

    ``origins`` names where each flag value came from (``--interval`` or ``TIW_EXPORTER_INTERVAL``);
    problems and warnings quote it.
    """
    raw, where = read_config_file(config_file) if config_file else ({}, {})
    unknown = set(flags) - set(OPTION_NAMES) - set(REMOVED_OPTIONS) - set(SECRET_VALUES)
    if unknown:
        raise ValueError(f"build_settings got unknown option names {sorted(unknown)}")  # a programming error
    for name, value in flags.items():
        if value is not None and value != ():
            raw[name] = value
            where[name] = (origins or {}).get(name, flag_name(name))
    b = _Builder(raw, where)
    b.convert("listen", parse_listen)
    b.convert("callback_listen", parse_listen)
    b.convert("endpoint", _endpoint)
    b.convert("region", str)
    b.convert("secret_id", str)
    b.convert("cvm_role", str)
    for name in PATH_OPTIONS:
        b.convert(name, lambda v: Path(str(v)).expanduser())
    b.convert("sdk_app_id", validate_sdk_app_id)
    default_sdk = b.values.get("sdk_app_id")
    b.convert("tasks", lambda v: tuple(dict.fromkeys(parse_task_ref(t, default_sdk) for t in _as_list(v))))
    b.convert("discover_sdk_app_ids", lambda v: tuple(dict.fromkeys(validate_sdk_app_id(x) for x in _as_list(v))))
    may_be_zero = {"liveness_interval", "callback_key_grace"}  # 0 turns liveness off; the previous key off at once
    for name in sorted(DURATIONS - may_be_zero):
        b.convert(name, parse_duration)
        b.check(name, b.values.get(name, 1) > 0, "must be greater than zero")
    for name in sorted(may_be_zero):
        b.convert(name, parse_duration)
        b.check(name, b.values.get(name, 0) >= 0, "must not be negative")  # a bare number from YAML may be
    b.convert("rate_limit", _positive_float)
    b.convert("shared_rate_limit", _boolean)
    b.convert("concurrency", _positive_int)
    b.convert("kinds", lambda v: parse_kinds(",".join(map(str, _as_list(v)))))
    _check_task_kinds(b)
    _refuse_sharding(b)
    b.convert("callback_public_url", _public_url)
    b.convert("accounts", _accounts)
    b.convert("callback_keys", _callback_keys)
    b.check("concurrency", 1 <= b.values.get("concurrency", 1) <= 256, "must be between 1 and 256")
    b.convert("log_level", _choice(LOG_LEVELS))
    b.convert("log_format", _choice(LOG_FORMATS))
    _load_secret(b, raw, "api_token_file", "api_token", "API token")
    _load_secret(b, raw, "callback_key_file", "callback_key", "callback key")
    _load_secret(b, raw, "warning_callback_token_file", "warning_callback_token", "warning callback token")
    _check_tasks_file(b)
    _check_state_file(b)
    _warn_implausible(b)
    if b.problems:
        raise ConfigError(b.problems)
    return Settings.from_options(b.values, warnings=tuple(b.warnings))


def _check_task_kinds(b: _Builder) -> None:
    """A configured task of a kind ``--kinds`` does not watch would never be polled: say so at start."""
    watched = b.values.get("kinds", DEFAULT_KINDS)
    for key in b.values.get("tasks", ()):
        if key_kind(key) not in watched:
            b.problems.append(f"{b.origin('tasks')}: task {key[0]}:{key[1]} is a {key_kind(key)} task, which "
                              f"--kinds ({','.join(watched)}) does not watch")


def _check_tasks_file(b: _Builder) -> None:
    """At start a tasks file that is missing or invalid is an error (a reload later keeps the last good set)."""
    path = b.values.get("tasks_file")
    if path is None:
        return
    try:
        # validation only: the watcher (run) and check-config say what repeats
        load_tasks_file(path, watched=b.values.get("kinds", DEFAULT_KINDS))
    except TasksFileError as exc:
        b.problems.append(f"{b.origin('tasks_file')}: {exc}")


def _check_state_file(b: _Builder) -> None:
    """A state file that is a symbolic link (or whose -wal/-shm is) is refused: it would be written through, into
    a file elsewhere or creating a dangling link's target. Links in the directories above it are fine."""
    path = b.values.get("state_file")
    link = symlink_at(path) if path is not None else None
    if link is not None:
        b.problems.append(refusal(path, link, option=b.origin("state_file")))


def _warn_implausible(b: _Builder) -> None:
    """Values that can work (the simulator, benchmarks, private endpoints) but rarely should in production."""
    b.warn("interval", b.values.get("interval", 15.0) < 1.0,
           f"an interval under 1s ({b.values.get('interval')}s) polls every task more than once a second")
    rate = b.values.get("rate_limit", API_RATE_LIMIT)
    b.warn("rate_limit", rate > API_RATE_LIMIT,
           f"{rate:g} requests/s is above the API's documented limit of {API_RATE_LIMIT:g}/s per action: expect "
           "RequestLimitExceeded (the exporter then slows down)")


def _load_secret(b: _Builder, raw: Mapping[str, Any], file_option: str, value_option: str, what: str) -> None:
    """A secret comes from its file option, else from its direct value (env only)."""
    path = b.values.get(file_option)
    if path is not None:
        try:
            b.values[value_option] = read_secret_file(path, what)
        except SecretFileError as exc:
            b.problems.append(f"{b.origin(file_option)}: {exc}")
    elif raw.get(value_option):
        b.values[value_option] = str(raw[value_option]).strip()
