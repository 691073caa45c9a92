"""Per-action request budgets: Tencent Cloud counts its limit per API action, so do we (or one, shared)."""

from __future__ import annotations

from exporter.accounts import Accounts
from exporter.config import ConfigError, build_settings
from exporter.ratelimit import HEADROOM, ActionBudgets
from exporter.selfmetrics import ExporterMetrics, self_registry
from exporter.store import TaskStore
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from exporter.tiw import DESCRIBE_PUSH, DESCRIBE_RUNNING
from tests.constants import SECRET_ID, SECRET_KEY


def build_accounts(**flags) -> Accounts:
    settings = build_settings(flags)
    credentials = StaticCredentials(Credential(SECRET_ID, SECRET_KEY))
    return Accounts(settings, TaskStore(), ExporterMetrics(self_registry()), credentials)


def test_each_action_has_its_own_budget_by_default():
    budgets = ActionBudgets(20.0)
    push, running = budgets.for_action(DESCRIBE_PUSH), budgets.for_action(DESCRIBE_RUNNING)
    assert push is not running and push is budgets.for_action(DESCRIBE_PUSH)
    assert push.nominal == running.nominal == 20.0 * HEADROOM  # the pacing headroom stays, per action
    push.throttled()
    assert push.current_rate < push.nominal and running.current_rate == running.nominal  # AIMD per action


def test_a_shared_budget_is_one_limiter_for_every_action():
    budgets = ActionBudgets(20.0, shared=True)
    assert budgets.for_action(DESCRIBE_PUSH) is budgets.for_action(DESCRIBE_RUNNING)


def test_accounts_poll_and_list_on_separate_budgets_unless_shared():
    for shared, same in ((None, False), (True, True)):
        account = next(iter(build_accounts(rate_limit="10", shared_rate_limit=shared)))
        try:
            assert (account.kinds["push"].discoverer.limiter is account.kinds["push"].collector.limiter) is same
            assert account.kinds["push"].collector.limiter.nominal == 10 * HEADROOM
        finally:
            account.stop()


def test_shared_rate_limit_from_the_config_file_and_bad_values(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("shared_rate_limit: true\n")
    assert build_settings({}, config).api.shared_rate_limit is True
    assert build_settings({}).api.shared_rate_limit is False
    config.write_text("shared_rate_limit: maybe\n")
    try:
        build_settings({}, config)
    except ConfigError as exc:
        assert "config.yml, line 1: shared_rate_limit: must be true or false, got 'maybe'" in str(exc)
    else:
        raise AssertionError("a bad boolean must be refused")
