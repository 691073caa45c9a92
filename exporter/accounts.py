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

from collections.abc import Iterable
from dataclasses import dataclass

from exporter.collector import Collector
from exporter.config import AccountSettings, Settings
from exporter.discovery import Discoverer
from exporter.freshness import Freshness, FreshnessIndex
from exporter.liveness import Liveness
from exporter.metrics import ExporterMetrics
from exporter.model import TaskKey
from exporter.ratelimit import ActionBudgets, PacedLimiter
from exporter.store import TaskStore
from exporter.tencentcloud.chain import resolve_chain
from exporter.tencentcloud.client import RetryPolicy, TencentCloudClient
from exporter.tencentcloud.credentials import CredentialProvider
from exporter.tiw import DESCRIBE_PUSH, DESCRIBE_RUNNING, describe_running_tasks, describe_whiteboard_push


@dataclass
class Account:
    """One credential's client, paced budget, poller and discoverer."""

    name: str
    sdk_app_ids: tuple[int, ...]
    client: TencentCloudClient
    budgets: ActionBudgets
    collector: Collector
    discoverer: Discoverer
    liveness: Liveness | None

    @property
    def limiter(self) -> PacedLimiter:
        """The DescribeWhiteboardPush budget (the one polling spends)."""
        return self.budgets.for_action(DESCRIBE_PUSH)

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
        self.client.close()


def account_settings(settings: Settings) -> tuple[AccountSettings, ...]:
    """The configured accounts with top-level options filled in as defaults."""
    if not settings.accounts:
        return (AccountSettings("default", (), settings.secret_id, settings.secret_key_file, settings.cvm_role,
                                settings.region, settings.endpoint, settings.rate_limit),)
    return tuple(
        AccountSettings(a.name, a.sdk_app_ids, a.secret_id, a.secret_key_file, a.cvm_role,
                        a.region or settings.region, a.endpoint or settings.endpoint,
                        a.rate_limit or settings.rate_limit)
        for a in settings.accounts
    )


class Accounts:
    """Builds the accounts and routes each SdkAppId to one of them."""

    def __init__(self, settings: Settings, store: TaskStore, metrics: ExporterMetrics,
                 credentials: CredentialProvider | None = None) -> None:
        configured = account_settings(settings)
        self._route = {app: a.name for a in configured for app in a.sdk_app_ids}
        self._fallback = configured[0].name
        self.by_name: dict[str, Account] = {}
        for account in configured:
            provider = credentials or resolve_chain(account.secret_id, account.secret_key_file,
                                                    cvm_role=account.cvm_role)
            self.by_name[account.name] = self._build(settings, account, provider, store, metrics)

    def _build(self, settings: Settings, account: AccountSettings, credentials: CredentialProvider,
               store: TaskStore, metrics: ExporterMetrics) -> Account:
        client = TencentCloudClient(
            credentials, endpoint=account.endpoint or settings.endpoint, region=account.region or settings.region,
            connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
            retry=RetryPolicy(attempts=1),  # the collector reschedules instead
            on_attempt=metrics.observe_attempt, pool_size=settings.concurrency + 4,
        )
        budgets = ActionBudgets(account.rate_limit or settings.rate_limit, shared=settings.shared_rate_limit)
        limiter = budgets.for_action(DESCRIBE_PUSH)
        collector = Collector(
            store, lambda app, task: describe_whiteboard_push(client, app, task), limiter,
            interval=settings.interval, concurrency=settings.concurrency,
            finished_retention=settings.finished_retention, on_api_error=metrics.count_api_error,
            on_anomaly=metrics.count_anomaly,
            in_account=lambda key: self.name_for(key[0]) == account.name,
            account=account.name, not_found_grace=settings.not_found_grace,
        )
        liveness = None
        if settings.liveness_interval > 0:
            liveness = Liveness(store, lambda app, offset, limit: describe_running_tasks(client, app, offset, limit),
                                budgets.for_action(DESCRIBE_RUNNING), interval=settings.liveness_interval,
                                in_account=collector.in_account, urgent=collector.urgent,
                                on_api_error=metrics.count_api_error)
            collector.liveness = liveness
        discover = tuple(app for app in settings.discover_sdk_app_ids if self.name_for(app) == account.name)
        discoverer = Discoverer(
            store, lambda app, offset, limit: describe_running_tasks(client, app, offset, limit),
            budgets.for_action(DESCRIBE_RUNNING),
            discover, settings.discover_interval, on_api_error=metrics.count_api_error,
        )
        return Account(account.name, account.sdk_app_ids, client, budgets, collector, discoverer, liveness)

    def name_for(self, sdk_app_id: int) -> str:
        return self._route.get(sdk_app_id, self._fallback)

    def __iter__(self):
        return iter(self.by_name.values())

    @property
    def collectors(self) -> Iterable[Collector]:
        return [a.collector for a in self]

    def lag(self) -> float:
        return max(c.lag() for c in self.collectors)

    def _liveness_of(self, key: TaskKey) -> Liveness | None:
        return self.by_name[self.name_for(key[0])].liveness

    def last_seen(self, key: TaskKey) -> float | None:
        liveness = self._liveness_of(key)
        return liveness.last_seen(key) if liveness else None

    def covered(self, key: TaskKey) -> bool:
        liveness = self._liveness_of(key)
        return liveness.covered(key) if liveness else False

    def freshness(self, index: FreshnessIndex, now: float, interval: float) -> Freshness:
        """Measured on one copy of every account's liveness times: going through ``last_seen`` and
        ``covered`` (account lookup, clock) for each of 10,000 tasks cost more than rendering them."""
        seen: dict[TaskKey, float] = {}
        covered: set[TaskKey] = set()
        for account in self:
            if account.liveness:
                account_seen, account_covered = account.liveness.seen_and_covered()
                seen.update(account_seen)
                covered |= account_covered
        return index.measure(seen, covered, now, 2 * interval)

    def liveness_unsupported(self) -> dict[int, str]:
        unsupported: dict[int, str] = {}
        for account in self:
            if account.liveness:
                unsupported.update(account.liveness.unsupported())
        return unsupported

    def paused_credentials(self) -> dict[str, str]:
        """Accounts whose whole credential is paused, with the code that paused it."""
        return {a.name: code for a in self if (code := a.collector.credential_pause()) is not None}

    def paused_sdk_app_ids(self) -> dict[int, str]:
        paused: dict[int, str] = {}
        for collector in self.collectors:
            paused.update(collector.paused_sdk_app_ids())
        return paused
