"""``tiw_exporter_sdk_app_info``: the account of every SdkAppId, so that alerts can carry ``account``."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from exporter.appinfo import SdkAppInfoCollector
from exporter.config import build_settings
from exporter.runtime import Exporter
from exporter.store import TaskStore

INFO = "tiw_exporter_sdk_app_info"


def info_series(registry: CollectorRegistry) -> dict[str, str]:
    """SdkAppId -> account, as exported (every value 1)."""
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == INFO:
                assert sample.value == 1
                found[sample.labels["sdk_app_id"]] = sample.labels["account"]
    return found


def test_configured_sdk_app_ids_have_their_account_before_any_task() -> None:
    registry = CollectorRegistry()
    routes = {1400000011: "calm", 1400000022: "busy"}
    registry.register(SdkAppInfoCollector(TaskStore(), lambda app: routes.get(app, "calm"), routes))
    assert info_series(registry) == {"1400000011": "calm", "1400000022": "busy"}


def test_a_tracked_sdk_app_id_appears_with_the_account_that_polls_it_and_stays_after_its_tasks_leave() -> None:
    store = TaskStore()
    store.add((1400000001, "before"), "api")  # tracked before the collector exists (a restored state file)
    registry = CollectorRegistry()
    registry.register(SdkAppInfoCollector(store, lambda app: "main" if app == 1400000001 else "other"))
    store.add((1400000002, "later"), "callback")
    store.add((1400000002, "another"), "callback")
    assert info_series(registry) == {"1400000001": "main", "1400000002": "other"}
    store.remove((1400000002, "later"))
    store.remove((1400000002, "another"))
    # its tiw_push_tasks_finished_total series stay too: the rules keep joining the account onto them
    assert info_series(registry) == {"1400000001": "main", "1400000002": "other"}


def test_a_scrape_costs_the_sdk_app_ids_not_the_tasks() -> None:
    store = TaskStore()
    for n in range(500):
        store.add((1400000001, f"task-{n}"), "api")
    registry = CollectorRegistry()
    registry.register(SdkAppInfoCollector(store, lambda app: "default"))

    def no_walk() -> None:
        raise AssertionError("a scrape walked the tasks")

    store.snapshot = no_walk  # type: ignore[method-assign]
    assert info_series(registry) == {"1400000001": "default"}


def test_the_exporter_exports_the_account_of_each_sdk_app_id(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("secret\n")
    config = tmp_path / "config.yml"
    config.write_text(
        "accounts:\n"
        f"  - {{name: east, secret_id: AKIDeast, secret_key_file: {key}, sdk_app_ids: [1400000011]}}\n"
        f"  - {{name: west, secret_id: AKIDwest, secret_key_file: {key}, sdk_app_ids: [1400000022]}}\n")
    settings = build_settings({"listen": "127.0.0.1:0", "endpoint": "http://127.0.0.1:9",
                               "discover_sdk_app_ids": ("1400000022",)}, config)
    exporter = Exporter(settings)
    try:
        exporter.store.add((1400000033, "unlisted"), "api")  # an SdkAppId no account lists: the first one polls it
        assert info_series(exporter.registry) == {"1400000011": "east", "1400000022": "west",
                                                  "1400000033": "east"}
    finally:
        exporter.stop()
