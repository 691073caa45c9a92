"""``tiw_exporter_sdk_app_info``: which account polls each SdkAppId, read at scrape time.

The per-task and per-SdkAppId series carry ``sdk_app_id`` but not the account, and one exporter serves
several accounts. The alerting rules join this gauge to put ``account`` on their per-task and per-app
alerts, so that Alertmanager can scope an inhibition to one account: a refused key mutes its own
account's alerts, not another's on the same exporter.

One series per SdkAppId, never per task: the SdkAppIds come from the configuration and from the store's
membership changes as tasks arrive, so a scrape costs the number of SdkAppIds. An SdkAppId stays until
the process ends, as its ``tiw_push_tasks_finished_total`` series do.

Example output::

    tiw_exporter_sdk_app_info{account="default",sdk_app_id="1400000001"} 1.0
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.metrics_core import GaugeMetricFamily

from exporter.accounts import account_settings
from exporter.config import Settings
from exporter.model import TaskKey
from exporter.selfmetrics import ScrapeTimeCollector
from exporter.store import TaskStore


def configured_apps(settings: Settings) -> tuple[int, ...]:
    """The SdkAppIds the configuration names (``accounts:``, ``--discover-sdk-app-id``), before any task."""
    return (*(app for a in account_settings(settings) for app in a.sdk_app_ids),
            *settings.sources.discover_sdk_app_ids)


class SdkAppInfoCollector(ScrapeTimeCollector):
    """``tiw_exporter_sdk_app_info{account,sdk_app_id} 1`` for every SdkAppId configured or tracked."""

    def __init__(self, store: TaskStore, account_for: Callable[[int], str], configured: Iterable[int] = ()) -> None:
        self.account_for = account_for  # the routing of ``Accounts.name_for``: fixed for the process
        self._lock = threading.Lock()
        self._apps: set[int] = set(configured)
        store.subscribe(self._on_membership)  # first: a task added meanwhile is in the snapshot or notified
        self._add(record.key for record in store.snapshot())

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily]:
        return (GaugeMetricFamily("tiw_exporter_sdk_app_info",
                                  "The account that polls an SdkAppId (configured, or tracked since the start); "
                                  "always 1.", labels=["account", "sdk_app_id"]),)

    def _on_membership(self, added: list[TaskKey], removed: list[TaskKey]) -> None:
        self._add(added)

    def _add(self, keys: Iterable[TaskKey]) -> None:
        apps = {key[0] for key in keys}
        with self._lock:
            self._apps |= apps

    def collect(self) -> Iterator[GaugeMetricFamily]:
        (info,) = self._families()
        with self._lock:
            apps = sorted(self._apps)
        for sdk_app_id in apps:
            info.add_metric([self.account_for(sdk_app_id), str(sdk_app_id)], 1)
        yield info
