"""The shipped inhibition on a real Alertmanager: it mutes only what it should.

``alerts/alertmanager.example.yml`` runs in Debian's Alertmanager on 127.0.0.1 (only its waits shortened
and its webhooks sent to a receiver here, as in ``test_e2e``). Each case POSTs the alerts the rules would
raise, under a ``job`` of its own (every inhibit rule matches on ``job``, so cases cannot mute each other),
and reads through the API which alerts Alertmanager suppresses, and by what. The cases are the wrong
suppressions an SRE review found on a live Alertmanager (one account's refused key muted another account's
push; a fleet failure in one cluster muted another cluster's page; Blind muted the warning naming the
cause) and what inhibition must still do. That one refused key pages once is also down to the rules
(Blind leaves paused SdkAppIds out: the promtool test "one refused key pages once"); here, the alerts
that key raises reach the pager as one page.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.alerting_rig import (
    DEBIAN_ALERTMANAGER_TEMPLATE,
    WebhookReceiver,
    fast_alertmanager_config,
    free_port,
    start_service,
    write_yaml,
)
from tests.harness import eventually
from tests.tools import find_tool

pytestmark = pytest.mark.slow  # an Alertmanager process, and its inhibitor catching up: seconds

TIMEOUT = 20.0
REFUSED = "AuthFailure.SecretIdNotFound"


@dataclass(frozen=True)
class Alertmanager:
    url: str
    webhook: WebhookReceiver


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    binary = find_tool("prometheus-alertmanager")
    assert DEBIAN_ALERTMANAGER_TEMPLATE.is_file(), f"{DEBIAN_ALERTMANAGER_TEMPLATE} is missing (.ci/run links it)"
    tmp = tmp_path_factory.mktemp("inhibition")
    with ExitStack() as stack:
        webhook = stack.enter_context(WebhookReceiver())
        address = f"127.0.0.1:{free_port()}"
        config = write_yaml(tmp / "alertmanager.yml", fast_alertmanager_config(webhook.url))
        start_service(stack, "Alertmanager", [
            binary, f"--config.file={config}", f"--storage.path={tmp / 'data'}",
            f"--web.listen-address={address}", "--cluster.listen-address=",
        ], f"http://{address}")
        yield Alertmanager(f"http://{address}", webhook)


def post(am: Alertmanager, job: str, *alerts: dict[str, str]) -> None:
    """Fire ``alerts`` (label sets) for ten minutes, each with ``job``."""
    ends = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)).isoformat()
    body = [{"labels": {"job": job, **labels}, "endsAt": ends} for labels in alerts]
    answer = requests.post(f"{am.url}/api/v2/alerts", json=body, timeout=10)
    assert answer.status_code == 200, answer.text


def states(am: Alertmanager, job: str) -> dict[str, dict[str, Any]]:
    """The case's alerts by a short name (alertname, plus sdk_app_id or account where there is one)."""
    answer = requests.get(f"{am.url}/api/v2/alerts", params={"filter": f'job="{job}"'}, timeout=10)
    answer.raise_for_status()
    found = {}
    for alert in answer.json():
        labels = alert["labels"]
        name = "/".join(v for v in (labels["alertname"], labels.get("sdk_app_id"), labels.get("cluster")) if v)
        found[name] = {"state": alert["status"]["state"], "inhibitedBy": alert["status"]["inhibitedBy"],
                       "fingerprint": alert["fingerprint"]}
    return found


def settle(am: Alertmanager, job: str, muted: set[str], alive: set[str]) -> dict[str, dict[str, Any]]:
    """The case's alerts once exactly ``muted`` are suppressed and ``alive`` are active (fails with what is)."""
    seen: dict[str, dict[str, Any]] = {}

    def done() -> bool:
        seen.clear()
        seen.update(states(am, job))
        return ({n for n, s in seen.items() if s["state"] == "suppressed"} == muted
                and {n for n, s in seen.items() if s["state"] == "active"} == alive)

    eventually(done, TIMEOUT, 0.2, explain=lambda: f"{job}: expected muted {sorted(muted)}, active {sorted(alive)}; "
                                                   f"got {seen}")
    return seen


def muted_by(seen: dict[str, dict[str, Any]], target: str, source: str) -> bool:
    return seen[source]["fingerprint"] in seen[target]["inhibitedBy"]


def test_a_refused_key_mutes_its_own_accounts_alerts_and_not_another_accounts(alertmanager: Alertmanager) -> None:
    # One exporter, two accounts: A's key is refused while a push of B fails.
    job = "case-accounts"
    post(alertmanager, job,
         {"alertname": "TiwPushCredentialPaused", "severity": "critical", "instance": "i1", "account": "A",
          "code": REFUSED},
         {"alertname": "TiwPushAccountPaused", "severity": "warning", "instance": "i1", "account": "A",
          "sdk_app_id": "1400000111", "code": REFUSED},
         {"alertname": "TiwPushTaskStuckPrepared", "severity": "warning", "instance": "i1", "account": "A",
          "sdk_app_id": "1400000111", "task_id": "a-task", "status": "PREPARED"},
         {"alertname": "TiwPushTaskFailed", "severity": "info", "instance": "i1", "account": "B",
          "sdk_app_id": "1400000222", "task_id": "b-task", "reason": "FAILED"},
         # An alert without `account` (an exporter without tiw_exporter_sdk_app_info) is not muted either.
         {"alertname": "TiwPushTaskNeverAnswered", "severity": "warning", "instance": "i1",
          "sdk_app_id": "1400000333", "task_id": "c-task"})
    seen = settle(alertmanager, job,
                  muted={"TiwPushAccountPaused/1400000111", "TiwPushTaskStuckPrepared/1400000111"},
                  alive={"TiwPushCredentialPaused", "TiwPushTaskFailed/1400000222",
                         "TiwPushTaskNeverAnswered/1400000333"})
    assert muted_by(seen, "TiwPushAccountPaused/1400000111", "TiwPushCredentialPaused")
    assert muted_by(seen, "TiwPushTaskStuckPrepared/1400000111", "TiwPushCredentialPaused")


def test_a_fleet_failure_mutes_its_own_clusters_alerts_and_not_another_clusters(alertmanager: Alertmanager) -> None:
    job = "case-clusters"
    post(alertmanager, job,
         {"alertname": "TiwPushManyTasksFailing", "severity": "critical", "cluster": "a"},
         {"alertname": "TiwPushAppAllPushesFailing", "severity": "warning", "cluster": "a", "account": "A",
          "sdk_app_id": "1400000778"},
         {"alertname": "TiwPushErrorBudgetBurn", "severity": "critical", "cluster": "b", "account": "A",
          "sdk_app_id": "1400000777"})
    seen = settle(alertmanager, job, muted={"TiwPushAppAllPushesFailing/1400000778/a"},
                  alive={"TiwPushManyTasksFailing/a", "TiwPushErrorBudgetBurn/1400000777/b"})
    assert muted_by(seen, "TiwPushAppAllPushesFailing/1400000778/a", "TiwPushManyTasksFailing/a")


def test_blind_mutes_task_alerts_but_never_the_pause_that_names_the_cause(alertmanager: Alertmanager) -> None:
    # A quiet exporter whose active tasks belong to a customer in arrears, beside a task of another app.
    job = "case-cause"
    post(alertmanager, job,
         {"alertname": "TiwPushExporterBlind", "severity": "critical", "instance": "i2"},
         {"alertname": "TiwPushAccountPaused", "severity": "warning", "instance": "i2", "account": "A",
          "sdk_app_id": "1400000555", "code": "ResourceUnavailable.ServiceExpired"},
         {"alertname": "TiwPushTaskDataStale", "severity": "warning", "instance": "i2", "account": "A",
          "sdk_app_id": "1400000556", "task_id": "stale-task"})
    seen = settle(alertmanager, job, muted={"TiwPushTaskDataStale/1400000556"},
                  alive={"TiwPushExporterBlind", "TiwPushAccountPaused/1400000555"})
    assert muted_by(seen, "TiwPushTaskDataStale/1400000556", "TiwPushExporterBlind")


def test_one_refused_key_reaches_the_pager_once(alertmanager: Alertmanager) -> None:
    # What the rules raise for one exporter whose only key is refused: the page, and the consequences
    # it explains (Blind and CoverageLow stay silent: every active task belongs to a paused SdkAppId).
    job = "case-one-key"
    post(alertmanager, job,
         {"alertname": "TiwPushCredentialPaused", "severity": "critical", "instance": "i3", "account": "main",
          "code": REFUSED},
         *({"alertname": "TiwPushAccountPaused", "severity": "warning", "instance": "i3", "account": "main",
            "sdk_app_id": app, "code": REFUSED} for app in ("1400000001", "1400000002")),
         {"alertname": "TiwPushTaskNeverAnswered", "severity": "warning", "instance": "i3", "account": "main",
          "sdk_app_id": "1400000001", "task_id": "learned-from-a-callback"},
         {"alertname": "TiwPushTasksQueued", "severity": "warning", "instance": "i3", "account": "main",
          "sdk_app_id": "1400000002"})
    settle(alertmanager, job, alive={"TiwPushCredentialPaused"},
           muted={"TiwPushAccountPaused/1400000001", "TiwPushAccountPaused/1400000002",
                  "TiwPushTaskNeverAnswered/1400000001", "TiwPushTasksQueued/1400000002"})

    def delivered() -> set[tuple[str, str]]:
        return {(d.path, d.labels["alertname"]) for d in alertmanager.webhook.deliveries()
                if d.labels.get("job") == job and d.status == "firing"}

    eventually(lambda: delivered(), TIMEOUT, 0.2, explain=lambda: f"nothing: {alertmanager.webhook.deliveries()}")
    time.sleep(3)  # group_wait and group_interval are 1s here: anything else of the case is sent by now
    assert delivered() == {("/pager", "TiwPushCredentialPaused")}
