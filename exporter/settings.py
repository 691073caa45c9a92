"""``Settings``: every option of ``tiw-exporter run``, grouped by what it is about, with its default.

The groups are for the code that reads them (``settings.api.endpoint``, ``settings.state.state_file``);
users never see them: flags, ``TIW_EXPORTER_*`` variables and config-file keys keep the flat option
names (``--endpoint``, ``state_file:``). ``OPTION_NAMES`` lists those names, ``FIELD_GROUP`` says
which group holds each, and ``DEFAULTS`` is the one home of the defaults: the CLI's help text is
written from it. Parsing and validation live in ``config.py``.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from exporter.kinds import DEFAULT_KINDS
from exporter.model import TaskKey
from exporter.tencentcloud import DEFAULT_ENDPOINT, DEFAULT_REGION


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
class ApiSettings:
    """How the Tencent Cloud API is reached, signed and paced."""

    endpoint: str = DEFAULT_ENDPOINT
    region: str = DEFAULT_REGION
    secret_id: str | None = None
    secret_key_file: Path | None = None
    cvm_role: str | None = None
    rate_limit: float = 20.0
    shared_rate_limit: bool = False
    concurrency: int = 8
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    accounts: tuple[AccountSettings, ...] = ()


@dataclass(frozen=True)
class PollingSettings:
    """How often tasks are asked about, and when one is done."""

    interval: float = 15.0
    liveness_interval: float = 5.0
    finished_retention: float = 3600.0
    not_found_grace: float = 120.0
    kinds: tuple[str, ...] = DEFAULT_KINDS  # which TIW task kinds are watched (kinds.py)


@dataclass(frozen=True)
class SourceSettings:
    """Where tracked tasks come from: flags, the tasks file, discovery and TIW's callbacks."""

    sdk_app_id: int | None = None
    tasks: tuple[TaskKey, ...] = ()
    tasks_file: Path | None = None
    discover_sdk_app_ids: tuple[int, ...] = ()
    discover_interval: float = 60.0
    callback_key_file: Path | None = None
    callback_key: str | None = field(default=None, repr=False)
    warning_callback_token_file: Path | None = None  # the secret in TIW's warning-callback URL (queue_warnings.py)
    warning_callback_token: str | None = field(default=None, repr=False)
    callback_key_grace: float = 600.0  # after a key file changes, its previous key still verifies this long
    callback_keys: tuple[tuple[int, Path, str], ...] = ()  # config file only: (SdkAppId, key file, kind; "": all)
    callback_public_url: str | None = None  # where TIW should send push callbacks (checked at start, `check`)


@dataclass(frozen=True)
class WebSettings:
    """What our HTTP listeners serve and who may use them."""

    listen: tuple[str, int] = ("0.0.0.0", 9877)
    callback_listen: tuple[str, int] | None = None
    web_config_file: Path | None = None
    api_token_file: Path | None = None
    api_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class StateSettings:
    """The state file that carries registrations and results over a restart."""

    state_file: Path | None = None
    state_save_interval: float = 5.0


GROUPS: dict[str, type] = {"api": ApiSettings, "polling": PollingSettings, "sources": SourceSettings,
                           "web": WebSettings, "state": StateSettings}


@dataclass(frozen=True)
class Settings:
    """Every option, validated and frozen; ``warnings`` are values that work but are implausible."""

    api: ApiSettings = field(default_factory=ApiSettings)
    polling: PollingSettings = field(default_factory=PollingSettings)
    sources: SourceSettings = field(default_factory=SourceSettings)
    web: WebSettings = field(default_factory=WebSettings)
    state: StateSettings = field(default_factory=StateSettings)
    log_level: str = "info"
    log_format: str = "text"
    warnings: tuple[str, ...] = ()  # logged once at start

    @classmethod
    def from_options(cls, options: dict[str, Any], warnings: tuple[str, ...] = ()) -> Settings:
        """Settings from flat option names (``endpoint``, ``state_file``...); unset names keep their default."""
        return cls(warnings=warnings).with_options(**options)

    def with_options(self, **options: Any) -> Settings:
        """A copy with flat-named options replaced, each in its group."""
        unknown = set(options) - set(FIELD_GROUP)
        if unknown:
            raise TypeError(f"unknown option names {sorted(unknown)}")  # a programming error
        changes: dict[str, Any] = {}
        for group in GROUPS:
            mine = {name: value for name, value in options.items() if FIELD_GROUP[name] == group}
            if mine:
                changes[group] = replace(getattr(self, group), **mine)
        changes.update({name: value for name, value in options.items() if FIELD_GROUP[name] is None})
        return replace(self, **changes)


TOP_LEVEL = ("log_level", "log_format")
FIELD_GROUP: dict[str, str | None] = {
    **{f.name: group for group, cls in GROUPS.items() for f in fields(cls)},
    **{name: None for name in TOP_LEVEL},
}
# read from files or the environment, never an option of their own
SECRET_VALUES = ("api_token", "callback_key", "warning_callback_token")
OPTION_NAMES = tuple(name for name in FIELD_GROUP if name not in SECRET_VALUES)


def _default(name: str) -> Any:
    group = FIELD_GROUP[name]
    owner = Settings if group is None else GROUPS[group]
    (found,) = [f for f in fields(owner) if f.name == name]
    return found.default if found.default is not MISSING else found.default_factory()  # type: ignore[misc]


DEFAULTS: dict[str, Any] = {name: _default(name) for name in OPTION_NAMES}
DURATIONS = frozenset({"interval", "liveness_interval", "finished_retention", "not_found_grace", "connect_timeout",
                       "read_timeout", "discover_interval", "state_save_interval", "callback_key_grace"})


def format_duration(seconds: float) -> str:
    """Seconds as Prometheus writes a duration: 3600 -> '1h', 90 -> '1m30s', 0.25 -> '250ms'."""
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole, text = int(seconds), ""
    for unit, size in (("h", 3600), ("m", 60)):
        if whole >= size:
            text += f"{whole // size}{unit}"
            whole %= size
    return text + (f"{whole}s" if whole or not text else "")


def default_text(name: str) -> str | None:
    """How the default of option ``name`` reads in help and docs; None when it has none worth saying."""
    value = DEFAULTS[name]
    if value is None or value is False or value == ():
        return None
    if name in DURATIONS:
        return format_duration(value)
    if name == "kinds":
        return ",".join(value)
    if isinstance(value, tuple):  # a listen address
        return f"{value[0]}:{value[1]}"
    return f"{value:g}" if isinstance(value, float) else str(value)
