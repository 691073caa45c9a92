"""Several Tencent Cloud accounts in one process, each with its own credential and request budget.

Without an ``accounts:`` section there is one account built from the top-level options. With it,
each account polls the tasks of its SdkAppIds; an SdkAppId no account lists goes to the first one.
Budgets are independent: a throttled account slows only its own limiters. Tencent Cloud counts
its limit per action (API + region + sub-account), so by default each action an account calls has
its own ``--rate-limit`` limiter (``ActionBudgets``); ``--shared-rate-limit`` makes them one, for
an account known to share it. This process is the only one spending these budgets (one writer per
account): to scale out, run one process per group of accounts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from exporter.collector import Collector
from exporter.config import AccountSettings, Settings
from exporter.discovery import Discoverer
from exporter.kinds import KINDS
from exporter.liveness import Liveness
from exporter.model import PUSH, TaskKey, key_kind
from exporter.pollstate import PollStates
from exporter.ratelimit import ActionBudgets, checked_at_send
from exporter.selfmetrics import ExporterMetrics
from exporter.store import TaskStore
from exporter.tencentcloud.chain import resolve_chain
from exporter.tencentcloud.client import RetryPolicy, TencentCloudClient
from exporter.tencentcloud.credentials import CredentialProvider
from exporter.tiw import DESCRIBE_RUNNING, describe_running_tasks, describe_task


@dataclass
class KindLoops:
    """One watched kind of one account: its poller on its Describe action's budget, its discoverer and
    its liveness on the shared ``DescribeRunningTasks`` budget."""

    collector: Collector
    discoverer: Discoverer
    liveness: Liveness | None

    def start(self) -> None:
        self.collector.start()
        self.discoverer.start()
        if self.liveness:
            self.liveness.start()

    def stop(self) -> None:
        if self.liveness:
            self.liveness.stop()
        self.discoverer.stop()
        self.collector.stop()


@dataclass
class Account:
    """One credential's client, paced budgets, and the loops of each watched kind (``--kinds``)."""

    name: str
    sdk_app_ids: tuple[int, ...]
    client: TencentCloudClient
    budgets: ActionBudgets
    kinds: dict[str, KindLoops] = field(default_factory=dict)  # in KINDS order: pushes first

    def urgent(self, key: TaskKey) -> None:
        """Liveness found ``key`` gone from the running list: its kind's collector asks it first."""
        loops = self.kinds.get(key_kind(key))
        if loops is not None:
            loops.collector.urgent(key)

    def start(self) -> None:
        for loops in self.kinds.values():
            loops.start()

    def stop(self) -> None:
        for loops in reversed(self.kinds.values()):
            loops.stop()
        self.client.close()


def account_settings(settings: Settings) -> tuple[AccountSettings, ...]:
    """The configured accounts with top-level options filled in as defaults (the one place they are)."""
    api = settings.api
    if not api.accounts:
        return (AccountSettings("default", (), api.secret_id, api.secret_key_file, api.cvm_role, api.region,
                                api.endpoint, api.rate_limit),)
    return tuple(
        AccountSettings(a.name, a.sdk_app_ids, a.secret_id, a.secret_key_file, a.cvm_role, a.region or api.region,
                        a.endpoint or api.endpoint, a.rate_limit or api.rate_limit)
        for a in api.accounts
    )


class Accounts:
    """Builds the accounts and routes each SdkAppId to one of them."""

    def __init__(self, settings: Settings, store: TaskStore, metrics: ExporterMetrics,
                 credentials: CredentialProvider | None = None) -> None:
        configured = account_settings(settings)
        self._route = {app: a.name for a in configured for app in a.sdk_app_ids}
        self._fallback = configured[0].name
        self.states = PollStates([a.name for a in configured])  # what scrapes read of the accounts' polling
        self.by_name: dict[str, Account] = {}
        for account in configured:
            provider = credentials or resolve_chain(account.secret_id, account.secret_key_file,
                                                    cvm_role=account.cvm_role)
            self.by_name[account.name] = self._build(settings, account, provider, store, metrics)

    def _build(self, settings: Settings, account: AccountSettings, credentials: CredentialProvider,
               store: TaskStore, metrics: ExporterMetrics) -> Account:
        client = TencentCloudClient(
            credentials, endpoint=account.endpoint, region=account.region,  # defaults filled by account_settings
            connect_timeout=settings.api.connect_timeout, read_timeout=settings.api.read_timeout,
            retry=RetryPolicy(attempts=1),  # the collector reschedules instead
            on_attempt=metrics.observe_attempt, pool_size=settings.api.concurrency + 4,
        )
        budgets = ActionBudgets(account.rate_limit, shared=settings.api.shared_rate_limit)
        built = Account(account.name, account.sdk_app_ids, client, budgets)
        for kind in settings.polling.kinds:
            built.kinds[kind] = self._kind_loops(settings, account.name, kind, built, metrics, store)
        return built

    def _kind_loops(self, settings: Settings, account: str, kind: str, built: Account, metrics: ExporterMetrics,
                    store: TaskStore) -> KindLoops:
        """A kind's loops pause on their own: CAM may allow one kind's action and refuse another's (a policy
        written for pushes only), and a refusal of DescribeOnlineRecord must not stop the pushes."""
        spec, client, budgets = KINDS[kind], built.client, built.budgets
        limiter = budgets.for_action(spec.describe_action)
        # Each send first passes its action's send-time window, in the thread that sends (ratelimit.py)
        describe = checked_at_send(limiter, partial(describe_task, client, kind))
        list_budget = budgets.for_action(DESCRIBE_RUNNING)
        list_pages = tuple(checked_at_send(list_budget, partial(_list_page, client, task_type))
                           for task_type in spec.running_task_types)
        # pushes publish as the account (their liveness also counts the queued pushes); other kinds beside them
        publish: Callable[..., None] = partial(self.states.publish, account, None if kind == PUSH else kind)
        collector = Collector(
            store, describe, limiter,
            interval=settings.polling.interval, concurrency=settings.api.concurrency,
            finished_retention=settings.polling.finished_retention, on_api_error=metrics.count_api_error,
            on_anomaly=metrics.count_anomaly,
            in_account=lambda key: key_kind(key) == kind and self.name_for(key[0]) == account,
            account=account, not_found_grace=settings.polling.not_found_grace, publish=publish,
        )
        liveness = None
        if settings.polling.liveness_interval > 0:
            liveness = Liveness(store, list_pages, list_budget,
                                interval=settings.polling.liveness_interval,
                                in_account=collector.in_account, urgent=built.urgent,
                                on_api_error=metrics.count_api_error,
                                publish=publish,
                                credential_paused=collector.credential_waiting,
                                credential_refused=collector.credential_refused,
                                credential_answered=collector.credential_answered)
            collector.liveness = liveness
        discover = tuple(app for app in settings.sources.discover_sdk_app_ids if self.name_for(app) == account)
        discoverer = Discoverer(
            store, list_pages, list_budget,
            discover, settings.sources.discover_interval, on_api_error=metrics.count_api_error,
            credential_paused=collector.credential_waiting, kind=kind,
        )
        return KindLoops(collector, discoverer, liveness)

    def name_for(self, sdk_app_id: int) -> str:
        return self._route.get(sdk_app_id, self._fallback)

    def __iter__(self):
        return iter(self.by_name.values())

    @property
    def collectors(self) -> Iterable[Collector]:
        """Every kind's collector of every account."""
        return [loops.collector for a in self for loops in a.kinds.values()]


def _list_page(client: TencentCloudClient, task_type: str, sdk_app_id: int, offset: int,
               limit: int) -> tuple[list, int]:
    return describe_running_tasks(client, sdk_app_id, offset, limit, task_type=task_type)

