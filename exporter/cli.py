"""``tiw-exporter`` commands: parse options, build objects, run. No business logic here.

Every error a user can cause ends as one line on stderr and exit status 2 (usage/config) or 1
(the API said no); never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from exporter import __version__, logs
from exporter.config import ConfigError, Settings, build_settings, parse_duration
from exporter.errors import client_retry
from exporter.logs import counted
from exporter.model import PushTask
from exporter.secretfile import SecretFileError
from exporter.settings import DEFAULTS, default_text
from exporter.statedb import StateFileRefused
from exporter.tasksfile import TasksFileError, load_tasks_file
from exporter.tencentcloud.chain import resolve_chain
from exporter.tencentcloud.client import RetryPolicy, TencentCloudClient
from exporter.tencentcloud.credentials import CredentialError
from exporter.tencentcloud.errors import CallFailure
from exporter.tiw import describe_whiteboard_push
from exporter.web.http import ListenError
from exporter.web.webconfig import WebConfigError
from exporter.yamlfile import YamlFileError, read_yaml

ENV_PREFIX = "TIW_EXPORTER_"


def _env(name: str, *extra: str) -> list[str]:
    return [ENV_PREFIX + name.upper().replace("-", "_"), *extra]


def _option(flag: str, *extra_env: str, dest: str | None = None, **kwargs: Any) -> Callable[[Any], Any]:
    """An option that also reads ``TIW_EXPORTER_<NAME>`` (and ``extra_env``); unset means None, so the
    default comes from ``settings.DEFAULTS`` (and the help text says it, from there)."""
    name = flag.lstrip("-")
    decls = (flag, dest) if dest else (flag,)
    field_name = dest or name.replace("-", "_")
    shown = default_text(field_name) if field_name in DEFAULTS else None
    if shown is not None and "help" in kwargs:
        kwargs["help"] = f"{kwargs['help']} [default: {shown}]"
    return click.option(*decls, envvar=_env(name, *extra_env), show_envvar=True, default=None, **kwargs)


def api_options(func: Any) -> Any:
    """Options every command that talks to the Tencent Cloud API shares."""
    for decorator in reversed([
        _option("--endpoint", help="API endpoint."),
        _option("--region", "TENCENTCLOUD_REGION", help="API region."),
        _option("--secret-id", help="SecretId (with --secret-key-file); else --cvm-role, TENCENTCLOUD_SECRET_ID/"
                                    "_SECRET_KEY, the profile file, the CVM role, TKE OIDC."),
        _option("--secret-key-file", help="File holding the SecretKey (re-read when it changes)."),
        _option("--cvm-role", help="CVM instance role name: temporary keys from the metadata service."),
        _option("--connect-timeout", help="Connect timeout."),
        _option("--read-timeout", help="Read timeout."),
    ]):
        func = decorator(func)
    return func


# Every option of ``run``, in --help order. ``check`` takes them all too, so ``run`` can be replaced by
# ``check`` in any command line (tests/test_preflight.py holds ``check`` to every option ``run`` has).
RUN_OPTIONS: tuple[Callable[[Any], Any], ...] = (
    click.option("--config", "config_file", envvar=_env("config"), show_envvar=True, default=None,
                  help="YAML file with the same keys as the long options (flags > env > file)."),
    _option("--listen", help="HOST:PORT to serve on."),
    api_options,
    _option("--sdk-app-id", help="SdkAppId for --task values given without one."),
    _option("--task", dest="tasks", multiple=True, help="Task to track: SDKAPPID:TASKID or TASKID (repeatable)."),
    _option("--tasks-file", help="YAML list of {sdk_app_id, task_id}; re-read on change and SIGHUP."),
    _option("--api-token-file", help="Bearer token for task API writes (or env TIW_EXPORTER_API_TOKEN)."),
    _option("--state-file", help="Persist tracked tasks and latest results here (atomic writes)."),
    _option("--state-save-interval", help="Save the state file this often when it changed."),
    _option("--interval", help="Poll interval of an active task."),
    _option("--rate-limit", help="API requests per second for this credential."),
    _option("--shared-rate-limit", is_flag=True, help="One --rate-limit shared by all API actions of a credential "
            "[default: each action has its own, as Tencent Cloud counts them]."),
    _option("--concurrency", help="Requests in flight."),
    _option("--finished-retention", help="How long a final (stopped, failed, not found) task stays exported "
            ),
    _option("--not-found-grace", help="How long InvalidParameter.TaskNotFound must persist before a task ends as "
             "NOT_FOUND."),
    _option("--web-config-file", help="exporter-toolkit web config (TLS, basic auth)."),
    _option("--callback-key-file", help="TIW callback key, to verify callbacks (or env TIW_EXPORTER_CALLBACK_KEY)."),
    _option("--warning-callback-token-file", help="Secret of TIW's warning-callback URL, POST "
             "/callbacks/tiw/warnings/<token>: queued pushes (or env TIW_EXPORTER_WARNING_CALLBACK_TOKEN)."),
    _option("--callback-key-grace", help="After a callback key file changes, callbacks signed with the previous key "
             "are still accepted this long (0: refused at once)."),
    _option("--callback-listen", help="Extra HOST:PORT serving only /callbacks/tiw."),
    _option("--callback-public-url", help="The URL TIW sends push callbacks to (checked at start against TIW's "
            "setting)."),
    _option("--discover-sdk-app-id", dest="discover_sdk_app_ids", multiple=True,
             help="Discover running push tasks of this SdkAppId (repeatable)."),
    _option("--discover-interval", help="How often to discover."),
    _option("--kinds", help="Which TIW task kinds to watch, comma-separated: push, record (real-time recordings), "
            "transcode (document transcodes)."),
    _option("--liveness-interval", help="How often to confirm running tasks with DescribeRunningTasks "
             "(0: off, poll every task)."),
    # removed in 0.2.0, parsed for one release so an old deployment is told what to do (config.REMOVED_OPTIONS)
    _option("--shard-index", hidden=True),
    _option("--shard-count", hidden=True),
    _option("--shard-peer-url", hidden=True),
    _option("--shard-sync-interval", hidden=True),
    _option("--log-level", help="debug, info, warning or error."),
    _option("--log-format", help="text or json."),
)


def run_options(func: Any) -> Any:
    """Decorate a command with every option of ``run`` (``RUN_OPTIONS``)."""
    for decorator in reversed(RUN_OPTIONS):
        func = decorator(func)
    return func


def fail(message: str, status: int = 2) -> NoReturn:
    click.echo(f"tiw-exporter: error: {message}", err=True)
    sys.exit(status)


def _settings(flags: dict[str, Any], config_file: str | None = None,
              origins: dict[str, str] | None = None) -> Settings:
    env_secrets = {
        "api_token": os.environ.get(ENV_PREFIX + "API_TOKEN"),
        "callback_key": os.environ.get(ENV_PREFIX + "CALLBACK_KEY"),
        "warning_callback_token": os.environ.get(ENV_PREFIX + "WARNING_CALLBACK_TOKEN"),
    }
    origins = {**_env_origins(flags), **(origins or {})}
    try:
        return build_settings({**env_secrets, **flags}, Path(config_file) if config_file else None, origins)
    except ConfigError as exc:
        fail("; ".join(exc.problems))


def _env_origins(flags: dict[str, Any]) -> dict[str, str]:
    """For values that came from the environment, the variable's name (problems then name it, not the flag)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return {}
    found: dict[str, str] = {}
    for param in ctx.command.params:
        if param.name in flags and ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT:
            names = param.envvar if isinstance(param.envvar, (list, tuple)) else [param.envvar]
            found[param.name] = next((n for n in names if n and n in os.environ), str(names[0]))
    return found


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "--version", prog_name="tiw-exporter")
def cli() -> None:
    """Prometheus exporter for Tencent Cloud Interactive Whiteboard (TIW) push tasks."""


@cli.command()
@run_options
def run(config_file: str | None, **flags: Any) -> None:
    """Run the exporter."""
    settings = _settings(flags, config_file)
    logs.configure(settings.log_level, settings.log_format)
    _log_warnings(settings)
    from exporter.runtime import Exporter

    try:
        exporter = Exporter(settings)
    except (CredentialError, WebConfigError, SecretFileError) as exc:
        fail(str(exc))
    except ListenError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot start: {exc.strerror or exc}")
    exporter.install_signal_handlers()  # before start() logs "listening": a SIGTERM then stops cleanly
    try:
        exporter.start()
    except StateFileRefused as exc:  # became a symbolic link after the settings were checked; nothing runs yet
        fail(str(exc))
    exporter.wait()


def _log_warnings(settings: Settings) -> None:
    for warning in settings.warnings:
        logging.getLogger("exporter.config").warning("%s", warning)


@cli.command()
@click.option("--sdk-app-id", required=True, help="The SdkAppId of the task.")
@click.option("--task-id", required=True, help="The TaskId of the push task.")
@click.option("--output", "-o", type=click.Choice(["json", "table"]), default="table", show_default=True)
@api_options
def describe(sdk_app_id: str, task_id: str, output: str, **flags: Any) -> None:
    """Query one push task once and print it (exit 1 with the error code on failure)."""
    settings = _settings({**flags, "tasks": (f"{sdk_app_id}:{task_id}",)}, origins={"tasks": "--sdk-app-id/--task-id"})
    app_id, task = settings.sources.tasks[0]
    try:
        api = settings.api
        credentials = resolve_chain(api.secret_id, api.secret_key_file, cvm_role=api.cvm_role)
        client = TencentCloudClient(credentials, endpoint=api.endpoint, region=api.region,
                                    connect_timeout=api.connect_timeout, read_timeout=api.read_timeout,
                                    retry=RetryPolicy(retryable=client_retry))
    except CredentialError as exc:
        fail(str(exc))
    try:
        result = describe_whiteboard_push(client, app_id, task)
    except CallFailure as failure:
        if output == "json":
            click.echo(json.dumps({"error": {"code": failure.code, "message": failure.message,
                                             "request_id": failure.request_id}}, ensure_ascii=False))
        fail(str(failure), status=1)
    finally:
        client.close()
    click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) if output == "json" else _table(result))


def _table(task: PushTask) -> str:
    rows = [
        ("SdkAppId", task.sdk_app_id), ("TaskId", task.task_id), ("Status", task.status),
        ("FinishReason", task.finish_reason), ("RoomId", task.room_id), ("GroupId", task.group_id),
        ("PushUserId", task.push_user_id), ("PushStartTime", _when(task.push_start_time)),
        ("PushStopTime", _when(task.push_stop_time)), ("ExceptionCnt", task.exception_cnt),
        ("IMSyncTime", _when(task.im_sync_time)), ("Backup", task.backup), ("RequestId", task.request_id),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _when(timestamp: int) -> str:
    """A Unix time for people: UTC and the raw number (0 means "not yet", as the API uses it)."""
    if not timestamp:
        return "-"
    try:
        readable = datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return str(timestamp)
    return f"{readable} ({timestamp})"


@cli.command()
@run_options
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True)
def check(config_file: str | None, output: str, **flags: Any) -> None:
    """Preflight: credentials, endpoint, region, SdkAppIds, clock, the running list and TIW's callbacks, one
    line each.

    Takes every option of `run`, so a `run` command line works with `check` in its place. It checks the
    SdkAppIds of --task, --tasks-file, --discover-sdk-app-id, --sdk-app-id, accounts: and callback_keys:
    and says which it could not check. Options that do not matter to the preflight (--listen, --interval,
    --state-file, --log-level, ...) are accepted and ignored.

    Exit status 0 when all is well, 1 when the API or the network reports a problem, 2 for a local
    misconfiguration.
    """
    from exporter.preflight import exit_status, render_json, render_table, run_checks

    settings = _settings(flags, config_file)
    checks = run_checks(settings)
    click.echo(render_json(checks) if output == "json" else render_table(checks))
    sys.exit(exit_status(checks))


@cli.command("check-config")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--kind", type=click.Choice(["auto", "config", "tasks"]), default="auto", show_default=True,
              help="What FILE is; auto: a YAML list is a tasks file, a mapping a config file.")
def check_config(file: str, kind: str) -> None:
    """Validate a config file or a tasks file and exit (0 valid, 2 invalid); what `run` would accept."""
    path = Path(file)
    if kind == "auto":
        kind = _kind_of(path)
    if kind == "tasks":
        try:
            keys = load_tasks_file(path, on_repeat=_warn)
        except TasksFileError as exc:
            fail(str(exc))
        click.echo(f"{path}: valid tasks file, {counted(len(keys), 'task')}")
        return
    settings = _settings({}, str(path))
    for warning in settings.warnings:
        _warn(warning)
    # checked by _settings; read again here to count the tasks and say what repeats
    from_file = len(load_tasks_file(settings.sources.tasks_file, on_repeat=_warn)) if settings.sources.tasks_file else 0
    click.echo(f"{path}: valid config file ({counted(len(settings.sources.tasks) + from_file, 'task')}, listen "
               f"{settings.web.listen[0]}:{settings.web.listen[1]})")


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def _kind_of(path: Path) -> str:
    """``tasks`` for a YAML list or a ``tasks:`` mapping (what the tasks file accepts), else ``config``."""
    try:
        document = read_yaml(path, "file")
    except YamlFileError:
        return "config"  # the config reader reports the problem with the file's kind named
    return "tasks" if isinstance(document, list) or (isinstance(document, dict) and set(document) == {"tasks"}) \
        else "config"


@cli.command()
@click.option("--listen", default="127.0.0.1:9878", show_default=True, help="HOST:PORT for the simulator.")
@click.option("--secret-id", default="AKIDsimulator", show_default=True)  # simulator.DEMO_SECRET_ID (lazy import)
@click.option("--secret-key", default="simulator-secret-key", show_default=True,  # simulator.DEMO_SECRET_KEY
              help="The simulator's own test key (not a real credential).")
@click.option("--latency", default="0s", show_default=True, help="Added to every answer.")
@click.option("--rate-limit", type=float, default=20.0, show_default=True, help="Requests/s per action (0: off).")
@click.option("--tasks", "task_count", type=click.IntRange(min=0), default=0, help="Extra generated tasks.")
@click.option("--demo-mix/--no-demo-mix", default=True, show_default=True, help="Create the demo's task mix.")
@click.option("--demo-kinds/--no-demo-kinds", default=False, show_default=True,
              help="With the demo mix, also a class's recordings and courseware transcodes.")
@click.option("--sdk-app-id", "sdk_app_ids", type=click.IntRange(min=1), multiple=True, default=(1400000001,),
              show_default=True, help="An SdkAppId it serves (repeatable); the first gets the demo's tasks.")
@click.option("--unregistered-sdk-app-id", "unregistered", type=click.IntRange(min=1), multiple=True,
              help="Answers ResourceUnavailable.NotRegistered (repeatable).")
@click.option("--expired-sdk-app-id", "expired", type=click.IntRange(min=1), multiple=True,
              help="Answers ResourceUnavailable.ServiceExpired (repeatable).")
@click.option("--spawn-every", default=None, help="Keep creating demo tasks this often (e.g. 30s; 0 disables).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--callback-url", default=None, help="Send signed push callbacks here.")
@click.option("--callback-key", default=None, help="Key to sign callbacks with.")
@click.option("--fault", "faults", multiple=True,
              help="Inject a fault: KIND[:ratio=R,count=N,seconds=S,action=A], e.g. http500:ratio=0.1 (repeatable).")
def simulate(listen: str, secret_id: str, secret_key: str, latency: str, rate_limit: float, task_count: int,
             demo_mix: bool, demo_kinds: bool, sdk_app_ids: tuple[int, ...], unregistered: tuple[int, ...],
             expired: tuple[int, ...], spawn_every: str | None, seed: int, callback_url: str | None,
             callback_key: str | None, faults: tuple[str, ...]) -> None:
    """Run the built-in TIW API simulator."""
    from exporter.config import parse_listen
    from exporter.simulator import SimulatorOptions, run

    try:
        address = parse_listen(listen)
    except ValueError as exc:
        fail(f"--listen: {exc}")
    latency_seconds = _duration_option("--latency", latency)
    spawn_seconds = _duration_option("--spawn-every", spawn_every) if spawn_every is not None else None
    try:
        run(SimulatorOptions(
            listen=address, secret_id=secret_id, secret_key=secret_key, latency=latency_seconds,
            rate_limit=rate_limit, tasks=task_count, seed=seed, demo=demo_mix, demo_kinds=demo_kinds,
            callback_url=callback_url,
            callback_key=callback_key, faults=faults, sdk_app_ids=sdk_app_ids,
            unregistered_sdk_app_ids=unregistered, expired_sdk_app_ids=expired, spawn_every=spawn_seconds,
        ))
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot start the simulator on {listen}: {exc.strerror or exc}")


@cli.command()
@click.option("--listen", default="127.0.0.1:9877", show_default=True, help="HOST:PORT for the exporter.")
@click.option("--simulator-listen", default="127.0.0.1:0", show_default=True, help="HOST:PORT for the simulator.")
@click.option("--interval", default="5s", show_default=True, help="Poll interval (short, for a lively demo).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
def demo(listen: str, simulator_listen: str, interval: str, seed: int, log_level: str) -> None:
    """Run the simulator with a realistic task mix and the exporter against it."""
    from exporter.demo import run_demo

    settings = _settings({"listen": listen, "interval": interval, "log_level": log_level})
    logs.configure(settings.log_level, settings.log_format)
    from exporter.config import parse_listen

    try:
        simulator_address = parse_listen(simulator_listen)
    except ValueError as exc:
        fail(f"--simulator-listen: {exc}")
    try:
        run_demo(settings, simulator_address, seed)
    except OSError as exc:
        fail(f"cannot start the demo on {listen} (exporter) / {simulator_listen} (simulator): {exc.strerror or exc}")
    except ValueError as exc:
        fail(str(exc))


def _duration_option(flag: str, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        fail(f"{flag}: {exc}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: click errors become one line and exit status 2."""
    try:
        cli.main(args=argv, prog_name="tiw-exporter", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `tiw-exporter`: the help, not an error
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        sys.exit(0)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        fail(exc.format_message())
    except OSError as exc:  # e.g. check-config on an unreadable file
        fail(f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
