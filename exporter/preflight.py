"""``tiw-exporter check``: what an operator wants to know before deploying, one line per check.

For each account: do the credentials resolve (and from which source), does the endpoint answer in
that region, does the API accept the key for each SdkAppId, is our clock close to the API's, and
does TIW's push callback point at the URL the operator says is public, with the same key (and does
a signed test callback reach it)? ``run`` performs the same checks once at start and logs them;
it never exits for a remote failure.

Each result is ``ok``, ``warn`` or ``fail``; a failure is *local* when it is our configuration
(no credentials) and *remote* when it is what the API or the network said. Secrets never appear.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from exporter.accounts import account_settings
from exporter.callbacks import sign
from exporter.config import Settings
from exporter.errors import CollectorAction, disposition
from exporter.secretfile import SecretFileError, read_secret_file
from exporter.tencentcloud.chain import resolve_chain
from exporter.tencentcloud.client import CallResult, RetryPolicy, TencentCloudClient
from exporter.tencentcloud.credentials import CredentialError, CredentialProvider
from exporter.tencentcloud.errors import ApiError, CallFailure

PROBE_TASK_ID = "preflight_probe_task"  # a task that cannot exist: TaskNotFound proves the key and SdkAppId work
CLOCK_TOLERANCE = 60.0  # TC3 signatures expire at 300 s; a minute off is already worth fixing
PROBE_EVENT = "PreflightCheck"  # a callback type the exporter counts as unknown_event and otherwise ignores
TIMEOUT = (3.0, 10.0)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    local: bool = False  # a failure of our own configuration (exit 2) rather than of the API or network (exit 1)


def exit_status(checks: Iterable[Check]) -> int:
    failed = [c for c in checks if c.status == "fail"]
    if any(c.local for c in failed):
        return 2
    return 1 if failed else 0


def render_table(checks: list[Check]) -> str:
    width = max((len(c.name) for c in checks), default=0)
    return "\n".join(f"{c.status.upper():<4}  {c.name:<{width}}  {c.detail}" for c in checks)


def render_json(checks: list[Check]) -> str:
    return json.dumps({"checks": [asdict(c) for c in checks], "exit_status": exit_status(checks)}, ensure_ascii=False)


def run_checks(settings: Settings, providers: Mapping[str, CredentialProvider] | None = None,
               pace: Callable[[str, str], object] = lambda account, action: None,
               callbacks: bool = True) -> list[Check]:
    """Every check for every configured account, in order.

    ``providers`` are the accounts' credential sources when the caller has them already (``run``);
    ``pace(account, action)`` is called before each API request (``run`` takes a slot of that action's budget);
    ``callbacks`` False skips the push-callback checks (an exporter that does not use callbacks).
    """
    checks: list[Check] = []
    apps = _sdk_app_ids(settings)
    for account in account_settings(settings):
        prefix = "" if account.name == "default" else f"{account.name}: "
        try:
            provider = (providers or {}).get(account.name) or resolve_chain(
                account.secret_id, account.secret_key_file, cvm_role=account.cvm_role)
            provider.get()
        except CredentialError as exc:
            checks.append(Check(f"{prefix}credentials", "fail", str(exc), local=True))
            continue
        checks.append(Check(f"{prefix}credentials", "ok", f"from {provider.description}"))
        endpoint = account.endpoint or settings.api.endpoint
        region = account.region or settings.api.region
        client = TencentCloudClient(provider, endpoint=endpoint, region=region, retry=RetryPolicy(attempts=1),
                                    connect_timeout=settings.api.connect_timeout,
                                    read_timeout=settings.api.read_timeout)
        paced = _Paced(client, lambda action, name=account.name: pace(name, action))
        try:
            owned = [app for app in apps if not account.sdk_app_ids or app in account.sdk_app_ids]
            checks += [_sdk_app_id_check(paced, prefix, app) for app in owned or [0]]
            checks.append(_clock_check(prefix, endpoint))
            if callbacks:
                checks += [check for app in owned for check in _push_callback_checks(paced, prefix, app, settings)]
        finally:
            client.close()
    return checks


class _Paced:
    """A client whose every call first waits for the caller's pace (a slot of that action's budget)."""

    def __init__(self, client: TencentCloudClient, pace: Callable[[str], object]) -> None:
        self.client, self.pace = client, pace
        self.endpoint, self.region = client.endpoint, client.region

    def call(self, action: str, params: dict[str, Any]) -> CallResult:
        self.pace(action)
        return self.client.call(action, params)


def _sdk_app_ids(settings: Settings) -> list[int]:
    apps = {app for app, _ in settings.sources.tasks} | set(settings.sources.discover_sdk_app_ids)
    apps |= {app for account in settings.api.accounts for app in account.sdk_app_ids}
    if settings.sources.sdk_app_id:
        apps.add(settings.sources.sdk_app_id)
    return sorted(apps)


def _sdk_app_id_check(client: _Paced, prefix: str, sdk_app_id: int) -> Check:
    """One DescribeWhiteboardPush of a task that cannot exist: TaskNotFound means key, region and app work."""
    name = f"{prefix}SdkAppId {sdk_app_id}" if sdk_app_id else f"{prefix}API"
    try:
        client.call("DescribeWhiteboardPush", {"SdkAppId": sdk_app_id or 1, "TaskId": PROBE_TASK_ID})
    except ApiError as error:
        if error.code == "InvalidParameter.TaskNotFound" or (not sdk_app_id and error.code.startswith(
                ("UnauthorizedOperation", "ResourceUnavailable", "InvalidParameter"))):
            return Check(name, "ok", f"the API at {client.endpoint} ({client.region}) accepts the key")
        action = disposition(error.code).collector
        hint = " (credential or setup: key, region, endpoint)" if action is CollectorAction.PAUSE_CREDENTIAL else ""
        return Check(name, "fail", f"{error.code}{hint}: {_short(error.message)}")
    except CallFailure as failure:
        return Check(name, "fail", f"{client.endpoint} does not answer: {failure.code}: {_short(failure.message)}")
    return Check(name, "warn", "the probe task unexpectedly exists; the key works")


def _clock_check(prefix: str, endpoint: str) -> Check:
    """Our clock against the Date of any answer of the endpoint (no credentials involved)."""
    name = f"{prefix}clock"
    try:
        answer = requests.get(endpoint, timeout=TIMEOUT)
        server = parsedate_to_datetime(answer.headers["Date"]).timestamp()
    except (requests.RequestException, KeyError, TypeError, ValueError, IndexError) as exc:
        return Check(name, "warn", f"no Date from {endpoint} to compare with ({type(exc).__name__})")
    offset = server - time.time()
    if abs(offset) > CLOCK_TOLERANCE:
        return Check(name, "fail", f"ours is {-offset:+.0f}s off the API's; signatures fail beyond 300s: fix NTP")
    return Check(name, "ok", f"within {abs(offset):.0f}s of the API's")


def _push_callback_checks(client: _Paced, prefix: str, sdk_app_id: int,
                          settings: Settings) -> list[Check]:
    name = f"{prefix}push callback {sdk_app_id}"
    try:
        result = client.call("DescribeWhiteboardPushCallback", {"SdkAppId": sdk_app_id})
    except CallFailure as failure:
        return [Check(name, "warn", f"cannot read TIW's callback settings: {failure.code}")]
    url = str(result.response.get("Callback") or "")
    key = str(result.response.get("CallbackKey") or "")
    public = settings.sources.callback_public_url
    if not public:
        where = f"TIW calls {url}" if url else "TIW sends no push callbacks for it"
        return [Check(name, "warn", f"{where}; set --callback-public-url to check it is this exporter")]
    if url != public:
        shown = url or "nothing"
        return [Check(name, "fail", f"TIW calls {shown}, not {public}: tccli tiw SetWhiteboardPushCallback "
                                    f"--SdkAppId {sdk_app_id} --Callback {public}")]
    ours = _callback_key_of(settings, sdk_app_id)
    if not ours or key != ours:
        return [Check(name, "fail", "TIW's callback key differs from this exporter's (keys not shown): "
                                    f"tccli tiw SetWhiteboardPushCallbackKey --SdkAppId {sdk_app_id} ...")]
    return [Check(name, "ok", f"TIW calls {public} with this exporter's key"),
            _round_trip(f"{prefix}test callback {sdk_app_id}", public, sdk_app_id, ours)]


def _callback_key_of(settings: Settings, sdk_app_id: int) -> str | None:
    """The key this exporter verifies ``sdk_app_id``'s callbacks with: its own (callback_keys:) or the default."""
    for app, path in settings.sources.callback_keys:
        if app == sdk_app_id:
            try:
                return read_secret_file(path, f"callback key of SdkAppId {app}")
            except SecretFileError:
                return None
    return settings.sources.callback_key


def _round_trip(name: str, url: str, sdk_app_id: int, key: str) -> Check:
    """A signed callback of a type the exporter ignores, sent where TIW would send real ones."""
    expire = int(time.time()) + 300
    body = {"SdkAppId": sdk_app_id, "ExpireTime": expire, "Sign": sign(key, expire), "EventType": PROBE_EVENT,
            "Timestamp": int(time.time()), "EventData": {}}
    try:
        answer = requests.post(url, json=body, timeout=TIMEOUT)
    except requests.RequestException as exc:
        return Check(name, "warn", f"{url} cannot be reached from here ({type(exc).__name__}); TIW may still reach it")
    if answer.status_code != 200:
        return Check(name, "fail", f"{url} answered HTTP {answer.status_code} to a correctly signed callback")
    return Check(name, "ok", f"{url} accepted a signed test callback")


def _short(text: str) -> str:
    return " ".join(text.split())[:160]
