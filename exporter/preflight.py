"""``tiw-exporter check``: what an operator wants to know before deploying, one line per check.

For each account: do the credentials resolve (and from which source), does the endpoint answer in
that region, does the API accept the key for each SdkAppId, is our clock close to the API's, does
``DescribeRunningTasks`` answer (when liveness or discovery uses it), and does TIW's push callback
point at the URL the operator says is public, with the same key (and does a signed test callback
reach it)? The same for the callback of each other kind ``--kinds`` watches (``Describe<Kind>Callback``;
one not set at all is only a warning: that kind is polled anyway). Is TIW's warning callback (queued
pushes) set? ``run`` performs the same checks once at start and logs them; it never exits for a remote
failure.

The SdkAppIds checked are every one ``run`` would know at start: ``--task``, the tasks file,
``--discover-sdk-app-id``, ``--sdk-app-id``, each account's ``sdk_app_ids`` and ``callback_keys:``.
One line names them and says what cannot be checked: SdkAppIds that arrive only by callback (or the
task API) at run time, and those of an account whose credentials do not resolve.

Each result is ``ok``, ``warn`` or ``fail``; a failure is *local* when it is our configuration
(no credentials) and *remote* when it is what the API or the network said. A check that calls the
API names the CAM action it needs (``permission``; SECURITY.md lists them), and a warning or failure
says it. Secrets never appear.
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
from exporter.config import AccountSettings, Settings
from exporter.errors import UNKNOWN, CollectorAction, DiscoveryAction, disposition
from exporter.kinds import KINDS, TaskKind
from exporter.model import PUSH
from exporter.secretfile import SecretFileError, read_secret_file
from exporter.tasksfile import TasksFileError, load_tasks_file
from exporter.tencentcloud.chain import resolve_chain
from exporter.tencentcloud.client import CallResult, RetryPolicy, TencentCloudClient
from exporter.tencentcloud.credentials import CredentialError, CredentialProvider
from exporter.tencentcloud.errors import ApiError, CallFailure

PROBE_TASK_ID = "preflight_probe_task"  # a task that cannot exist: TaskNotFound proves the key and SdkAppId work
CLOCK_TOLERANCE = 60.0  # TC3 signatures expire at 300 s; a minute off is already worth fixing
PROBE_EVENT = "PreflightCheck"  # a callback type the exporter counts as unknown_event and otherwise ignores
TIMEOUT = (3.0, 10.0)
SHOWN_APPS = 10  # the scope line names this many SdkAppIds, then counts the rest

# The actions the checks call (SECURITY.md's least-privilege policy lists each with what breaks without it).
DESCRIBE_PUSH = "DescribeWhiteboardPush"
DESCRIBE_RUNNING = "DescribeRunningTasks"
DESCRIBE_PUSH_CALLBACK = "DescribeWhiteboardPushCallback"
DESCRIBE_WARNING_CALLBACK = "DescribeWarningCallback"
# Each watched kind's own callback setting (spelled out so SECURITY.md's policy test finds them)
DESCRIBE_KIND_CALLBACKS = {"record": "DescribeOnlineRecordCallback", "transcode": "DescribeTranscodeCallback"}
assert {k.name: k.callback_describe_action for k in KINDS.values() if k.name != PUSH} == DESCRIBE_KIND_CALLBACKS, \
    "kinds.py names these actions"
WARNINGS_SUFFIX = "/warnings/"  # TIW's warning callbacks go to <--callback-public-url>/warnings/<token>
CALLBACK_ONLY = "SdkAppIds that reach this exporter only by callback are not checked"
API_ONLY = "SdkAppIds added only through the task API are not checked"
NOTHING_CHECKED = ("no SdkAppId to check: nothing app-level was checked (name them with --sdk-app-id, --task, "
                   "--tasks-file, --discover-sdk-app-id or accounts:)")


def permission(action: str) -> str:
    """The CAM action a call of ``action`` needs."""
    return f"tiw:{action}"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    local: bool = False  # a failure of our own configuration (exit 2) rather than of the API or network (exit 1)
    permission: str = ""  # the CAM action this check's request needs ("" for none)


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
    """Every check for every configured account, in order, then one line on which SdkAppIds were checked.

    ``providers`` are the accounts' credential sources when the caller has them already (``run``);
    ``pace(account, action)`` is called before each API request (``run`` takes a slot of that action's budget);
    ``callbacks`` False skips the callback checks, of every kind and of warnings (an exporter without callbacks).
    """
    apps, checks = sdk_app_ids(settings)
    accounts = account_settings(settings)
    owners = {app: account.name for account in accounts for app in account.sdk_app_ids}
    unchecked: dict[int, str] = {}
    for account in accounts:
        owned = [app for app in apps if owners.get(app, accounts[0].name) == account.name]  # as Accounts routes
        found = _account_checks(settings, account, owned, (providers or {}).get(account.name),
                                lambda action, name=account.name: pace(name, action), callbacks)
        if found[0].status == "fail" and found[0].local:  # its credentials: nothing else of it was asked
            unchecked |= {app: f"account {account.name} has no credentials" for app in owned}
        checks += found
    checks.append(_scope_check(settings, apps, unchecked))
    return checks


def _account_checks(settings: Settings, account: AccountSettings, owned: list[int],
                    provider: CredentialProvider | None, pace: Callable[[str], object],
                    callbacks: bool) -> list[Check]:
    """One account's checks: credentials, then (when they resolve) its SdkAppIds, clock, list and callbacks."""
    prefix = "" if account.name == "default" else f"{account.name}: "
    try:
        provider = provider or resolve_chain(account.secret_id, account.secret_key_file, cvm_role=account.cvm_role)
        provider.get()
    except CredentialError as exc:
        return [Check(f"{prefix}credentials", "fail", str(exc), local=True)]
    checks = [Check(f"{prefix}credentials", "ok", f"from {provider.description}")]
    endpoint = account.endpoint or settings.api.endpoint
    client = TencentCloudClient(provider, endpoint=endpoint, region=account.region or settings.api.region,
                                retry=RetryPolicy(attempts=1), connect_timeout=settings.api.connect_timeout,
                                read_timeout=settings.api.read_timeout)
    paced = _Paced(client, pace)
    try:
        app_checks = [_sdk_app_id_check(paced, prefix, app) for app in owned or [0]]
        checks += app_checks
        for app in (app for app, check in zip(owned, app_checks) if check.status != "fail"):
            checks += [_kind_action_check(paced, prefix, app, KINDS[name]) for name in settings.polling.kinds
                       if name != PUSH]
        checks.append(_clock_check(prefix, endpoint))
        listing = _running_list_user(settings, owned)
        if listing is not None:
            checks.append(_running_tasks_check(paced, prefix, *listing))
        if callbacks:  # not for an SdkAppId that already failed: its line says why
            for app in (app for app, check in zip(owned, app_checks) if check.status != "fail"):
                checks += _push_callback_checks(paced, prefix, app, settings)
                for kind in (KINDS[name] for name in settings.polling.kinds if name != PUSH):
                    checks += _kind_callback_checks(paced, prefix, app, settings, kind)
                checks.append(_warning_callback_check(paced, prefix, app, settings))
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


def sdk_app_ids(settings: Settings) -> tuple[dict[int, list[str]], list[Check]]:
    """Every SdkAppId ``run`` knows at start -> where it was named; plus a warning if the tasks file cannot
    be read now (``check`` validated it already; ``run``'s file may have changed since)."""
    found: dict[int, list[str]] = {}

    def add(apps: Iterable[int], source: str) -> None:
        for app in apps:
            if source not in found.setdefault(app, []):
                found[app].append(source)

    sources = settings.sources
    add((key[0] for key in sources.tasks), "task")
    problems: list[Check] = []
    if sources.tasks_file:
        try:
            add((key[0] for key in load_tasks_file(sources.tasks_file)), "tasks file")
        except TasksFileError as exc:
            problems.append(Check("tasks file", "warn", f"{exc}: its SdkAppIds are not checked"))
    add(sources.discover_sdk_app_ids, "discovery")
    add([sources.sdk_app_id] if sources.sdk_app_id else [], "sdk_app_id")
    for account in settings.api.accounts:
        add(account.sdk_app_ids, f"account {account.name}")
    add((app for app, _, _ in sources.callback_keys), "callback_keys")
    return dict(sorted(found.items())), problems


def _scope_check(settings: Settings, apps: Mapping[int, list[str]], unchecked: Mapping[int, str]) -> Check:
    """Which SdkAppIds were checked, and which could not be: never an all-clear for what nobody named."""
    # the default key verifies push callbacks of any SdkAppId; a warning token lets warnings name any
    by_callback = bool(settings.sources.callback_key or getattr(settings.sources, "warning_callback_token", None))
    later = ([CALLBACK_ONLY] if by_callback else []) + ([API_ONLY] if settings.web.api_token else [])
    if not apps:
        return Check("SdkAppIds", "warn", "; ".join([NOTHING_CHECKED, *later]))
    checked = [app for app in apps if app not in unchecked]
    parts = []
    if checked:
        shown = ", ".join(f"{app} ({', '.join(apps[app])})" for app in checked[:SHOWN_APPS])
        more = f" and {len(checked) - SHOWN_APPS} more" if len(checked) > SHOWN_APPS else ""
        parts.append(f"checked {shown}{more}")
    if unchecked:
        parts.append("not checked: " + ", ".join(f"{app} ({why})" for app, why in sorted(unchecked.items())))
    return Check("SdkAppIds", "warn" if unchecked else "ok", "; ".join(parts + later))


def _needs(needs: str, failure: CallFailure) -> str:
    """What a refused call adds to its line: ": CAM denies tiw:X" when CAM said no, " [needs tiw:X]" for a
    code the error table does not know (it may be a permission too); nothing when the code says what is wrong
    (a refused key, an SdkAppId not of this account, a throttle) or there was no answer at all."""
    if _cam_refused(failure.code):
        return f": CAM denies {needs}"
    unknown = isinstance(failure, ApiError) and disposition(failure.code) is UNKNOWN
    return f" [needs {needs}]" if unknown else ""


def _cam_refused(code: str) -> bool:
    """CAM said no to the action (not: the SdkAppId is not this account's, UnauthorizedOperation.SdkAppId)."""
    return code in ("UnauthorizedOperation", "AuthFailure.UnauthorizedOperation") or (
        code.startswith(("UnauthorizedOperation.", "AuthFailure.UnauthorizedOperation."))
        and code != "UnauthorizedOperation.SdkAppId")


def _sdk_app_id_check(client: _Paced, prefix: str, sdk_app_id: int) -> Check:
    """One DescribeWhiteboardPush of a task that cannot exist: TaskNotFound means key, region and app work."""
    name = f"{prefix}SdkAppId {sdk_app_id}" if sdk_app_id else f"{prefix}API"
    needs = permission(DESCRIBE_PUSH)
    try:
        client.call(DESCRIBE_PUSH, {"SdkAppId": sdk_app_id or 1, "TaskId": PROBE_TASK_ID})
    except ApiError as error:
        if _cam_refused(error.code):
            return Check(name, "fail", f"{error.code}: CAM denies {needs}: no task can be polled",
                         permission=needs)
        if error.code == "InvalidParameter.TaskNotFound" or (not sdk_app_id and error.code.startswith(
                ("UnauthorizedOperation", "ResourceUnavailable", "InvalidParameter"))):
            return Check(name, "ok", f"the API at {client.endpoint} ({client.region}) accepts the key",
                         permission=needs)
        action = disposition(error.code).collector
        hint = " (credential or setup: key, region, endpoint)" if action is CollectorAction.PAUSE_CREDENTIAL else ""
        return Check(name, "fail", f"{error.code}{hint}: {_short(error.message)}{_needs(needs, error)}",
                     permission=needs)
    except CallFailure as failure:
        return Check(name, "fail", f"{client.endpoint} does not answer: {failure.code}: {_short(failure.message)}",
                     permission=needs)
    return Check(name, "warn", "the probe task unexpectedly exists; the key works", permission=needs)


def _kind_action_check(client: _Paced, prefix: str, sdk_app_id: int, kind: TaskKind) -> Check:
    """One Describe of a task that cannot exist, with the action of a watched kind beside pushes: CAM may
    allow pushes and refuse it (a policy written before recordings were watched). Only a warning: that
    kind's tasks pause, pushes are polled on."""
    name, needs = f"{prefix}{kind.noun}s {sdk_app_id}", permission(kind.describe_action)
    try:
        client.call(kind.describe_action, {"SdkAppId": sdk_app_id, "TaskId": PROBE_TASK_ID})
    except CallFailure as failure:
        if failure.code == "InvalidParameter.TaskNotFound":
            return Check(name, "ok", f"{kind.describe_action} answers", permission=needs)
        if _cam_refused(failure.code):
            return Check(name, "warn", f"{failure.code}: CAM denies {needs}: this SdkAppId's {kind.noun}s cannot be "
                         f"polled (pushes are not affected); add the action or leave {kind.name} out of --kinds",
                         permission=needs)
        return Check(name, "warn", f"{kind.describe_action}: {failure.code}: {_short(failure.message)}"
                     f"{_needs(needs, failure)}", permission=needs)
    return Check(name, "warn", "the probe task unexpectedly exists; the action works", permission=needs)


def _running_list_user(settings: Settings, owned: list[int]) -> tuple[int, str] | None:
    """(the SdkAppId to ask, who uses the list) when liveness or discovery calls DescribeRunningTasks for
    this account; None when neither does, or the account has no SdkAppId to ask about."""
    discovered = [app for app in owned if app in settings.sources.discover_sdk_app_ids]
    users = (["liveness"] if settings.polling.liveness_interval > 0 else []) + (["discovery"] if discovered else [])
    if not users or not owned:
        return None
    return (discovered or owned)[0], " and ".join(users)


def _running_tasks_check(client: _Paced, prefix: str, sdk_app_id: int, users: str) -> Check:
    """One DescribeRunningTasks per account (liveness and discovery need it; CAM may grant it separately)."""
    name, needs = f"{prefix}running list", permission(DESCRIBE_RUNNING)
    effects = "liveness falls back to polling one by one" + (
        "; discovery finds no task" if "discovery" in users else "")
    try:
        client.call(DESCRIBE_RUNNING, {"SdkAppID": sdk_app_id, "TaskType": "WhiteboardPush", "Limit": 1})
    except ApiError as error:
        if _cam_refused(error.code):
            return Check(name, "warn", f"{error.code}: CAM denies {needs} (used by {users}): {effects}",
                         permission=needs)
        if disposition(error.code).discovery is DiscoveryAction.POLL_INSTEAD:
            return Check(name, "warn", f"{error.code}: this endpoint has no {DESCRIBE_RUNNING} (international "
                                       f"accounts): {effects}", permission=needs)
        return Check(name, "warn", f"{DESCRIBE_RUNNING} of SdkAppId {sdk_app_id} failed: {error.code}: "
                                   f"{_short(error.message)}{_needs(needs, error)}", permission=needs)
    except CallFailure as failure:
        return Check(name, "warn", f"{DESCRIBE_RUNNING} got no answer: {failure.code}", permission=needs)
    return Check(name, "ok", f"{DESCRIBE_RUNNING} answers for SdkAppId {sdk_app_id} ({users})", permission=needs)


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
    name, needs = f"{prefix}push callback {sdk_app_id}", permission(DESCRIBE_PUSH_CALLBACK)
    try:
        result = client.call(DESCRIBE_PUSH_CALLBACK, {"SdkAppId": sdk_app_id})
    except CallFailure as failure:
        return [Check(name, "warn", f"cannot read TIW's callback settings: {failure.code}{_needs(needs, failure)}",
                      permission=needs)]
    url = str(result.response.get("Callback") or "")
    key = str(result.response.get("CallbackKey") or "")
    public = settings.sources.callback_public_url
    if not public:
        where = f"TIW calls {url}" if url else "TIW sends no push callbacks for it"
        return [Check(name, "warn", f"{where}; set --callback-public-url to check it is this exporter",
                      permission=needs)]
    if url != public:
        shown = url or "nothing"
        return [Check(name, "fail", f"TIW calls {shown}, not {public}: tccli tiw SetWhiteboardPushCallback "
                                    f"--SdkAppId {sdk_app_id} --Callback {public}", permission=needs)]
    ours = _callback_key_of(settings, sdk_app_id)
    if not ours or key != ours:
        return [Check(name, "fail", "TIW's callback key differs from this exporter's (keys not shown): "
                                    f"tccli tiw SetWhiteboardPushCallbackKey --SdkAppId {sdk_app_id} ...",
                      permission=needs)]
    return [Check(name, "ok", f"TIW calls {public} with this exporter's key", permission=needs),
            _round_trip(f"{prefix}test callback {sdk_app_id}", public, sdk_app_id, ours)]


def _kind_callback_checks(client: _Paced, prefix: str, sdk_app_id: int, settings: Settings,
                          kind: TaskKind) -> list[Check]:
    """A watched kind's own callback (``Set<Kind>Callback`` / ``Set<Kind>CallbackKey``), as the push one is checked:
    does TIW call --callback-public-url with the key this exporter verifies that kind with? Not set at all is a
    warning only: the kind is polled anyway, its end shows at the next poll instead of at once."""
    name, needs = f"{prefix}{kind.noun} callback {sdk_app_id}", permission(kind.callback_describe_action)
    try:
        result = client.call(kind.callback_describe_action, {"SdkAppId": sdk_app_id})
    except CallFailure as failure:
        return [Check(name, "warn", f"cannot read TIW's {kind.noun} callback settings: {failure.code}"
                                    f"{_needs(needs, failure)}", permission=needs)]
    url = str(result.response.get("Callback") or "")
    key = str(result.response.get("CallbackKey") or "")
    public = settings.sources.callback_public_url
    set_url = f"tccli tiw Set{kind.callback_settings}Callback --SdkAppId {sdk_app_id} --Callback {public}"
    if not public:
        where = f"TIW calls {url}" if url else f"TIW sends no {kind.noun} callbacks for it"
        return [Check(name, "warn", f"{where}; set --callback-public-url to check it is this exporter",
                      permission=needs)]
    if not url:
        return [Check(name, "warn", f"TIW sends no {kind.noun} callbacks for it: a {kind.noun}'s end shows at the "
                                    f"next poll, not at once; to have it at once: {set_url}", permission=needs)]
    if url != public:
        return [Check(name, "fail", f"TIW calls {url}, not {public}: {set_url}", permission=needs)]
    ours = _callback_key_of(settings, sdk_app_id, kind.name)
    if not ours or key != ours:
        return [Check(name, "fail", f"TIW's {kind.noun} callback key differs from this exporter's (keys not shown): "
                                    f"tccli tiw {kind.callback_key_action} --SdkAppId {sdk_app_id} ...",
                      permission=needs)]
    return [Check(name, "ok", f"TIW calls {public} with this exporter's {kind.noun} key", permission=needs),
            _round_trip(f"{prefix}test {kind.noun} callback {sdk_app_id}", public, sdk_app_id, ours)]


def _warning_callback_check(client: _Paced, prefix: str, sdk_app_id: int, settings: Settings) -> Check:
    """TIW's warning callback (TaskQueued*LimitWarning, set with SetWarningCallback): is it set, and here?

    Here is ``<--callback-public-url>/warnings/<token>`` (queue_warnings.py: the token in the URL authenticates
    the unsigned warnings); the token is never shown.
    """
    name, needs = f"{prefix}warning callback {sdk_app_id}", permission(DESCRIBE_WARNING_CALLBACK)
    try:
        result = client.call(DESCRIBE_WARNING_CALLBACK, {"SdkAppId": sdk_app_id})
    except CallFailure as failure:
        why = _needs(needs, failure) if _cam_refused(failure.code) else \
            f" (TIW may serve it to allow-listed accounts only){_needs(needs, failure)}"
        return Check(name, "warn", f"cannot read TIW's warning-callback setting: {failure.code}{why}",
                     permission=needs)
    url = str(result.response.get("Callback") or "")
    if not url:
        return Check(name, "warn", "TIW sends no warning callbacks for it: queued pushes are reported only by the "
                                   "running list", permission=needs)
    shown, public = _without_token(url), settings.sources.callback_public_url
    if not public:
        return Check(name, "warn", f"TIW sends queued-task warnings to {shown}; set --callback-public-url to check "
                                   "it is this exporter", permission=needs)
    here = f"{public.rstrip('/')}{WARNINGS_SUFFIX}"
    fix = f"tccli tiw SetWarningCallback --SdkAppId {sdk_app_id} --Callback {here}<token> --CallbackKey ''"
    if not url.startswith(here):
        return Check(name, "warn", f"TIW sends queued-task warnings to {shown}, not {here}<token>: {fix}",
                     permission=needs)
    token = getattr(settings.sources, "warning_callback_token", None)
    if not token:
        return Check(name, "warn", f"TIW sends queued-task warnings to {shown}, but this exporter has no "
                                   "--warning-callback-token-file: it refuses them", permission=needs)
    if url != here + token:
        return Check(name, "warn", f"TIW's warning-callback URL holds another token than this exporter's (tokens "
                                   f"not shown): {fix}", permission=needs)
    return Check(name, "ok", f"TIW sends queued-task warnings to {shown}", permission=needs)


def _without_token(url: str) -> str:
    """A warning-callback URL fit to print: its token (what follows ``/warnings/``) replaced by ``<token>``."""
    head, found, _ = url.partition(WARNINGS_SUFFIX)
    return f"{head}{WARNINGS_SUFFIX}<token>" if found else url


def _callback_key_of(settings: Settings, sdk_app_id: int, kind: str = PUSH) -> str | None:
    """The key this exporter verifies ``sdk_app_id``'s callbacks of ``kind`` with (as ``CallbackEndpoint.key_for``):
    its own for that kind, else its own for every kind (callback_keys:), else the default."""
    own = {entry_kind: path for app, path, entry_kind in settings.sources.callback_keys if app == sdk_app_id}
    for slot in (kind, ""):
        if slot in own:
            try:
                return read_secret_file(own[slot], f"{slot} callback key of SdkAppId {sdk_app_id}".lstrip())
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
