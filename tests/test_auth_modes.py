"""Auth modes that compose: basic auth with the task API, and probes with or without basic auth.

With ``--web-config-file`` basic auth on, the API token still authenticates on its own (``Bearer``
or as the basic-auth password of user ``api``), and the probes the shipped Kubernetes manifests and
compose stack (the image's HEALTHCHECK) send, without credentials, answer 200 either way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml

from exporter.config import build_settings
from exporter.runtime import Exporter
from exporter.simulator import Simulator
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from tests.constants import APP
from tests.harness import eventually

REPO = Path(__file__).resolve().parent.parent
TOKEN = "auth-modes-api-token"
PASSWORD = "prometheus-password"


def start(tmp_path: Path, basic_auth: bool, endpoint: str) -> Exporter:
    flags: dict[str, str] = {"listen": "127.0.0.1:0", "api_token": TOKEN}
    if basic_auth:
        config = tmp_path / "web.yml"
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        config.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
        flags["web_config_file"] = str(config)
    return Exporter(build_settings({**flags, "endpoint": endpoint}),
                    credentials=StaticCredentials(Credential("AKIDauth", "auth-key"))).start()


@pytest.fixture
def simulator() -> Iterator[str]:
    with Simulator(credentials={"AKIDauth": "auth-key"}) as sim:
        yield sim.url


@pytest.fixture
def exporters(simulator, tmp_path) -> Iterator[dict[bool, Exporter]]:
    running = {on: start(tmp_path, on, simulator) for on in (False, True)}
    try:
        yield running
    finally:
        for exporter in running.values():
            exporter.stop()


def add(exporter: Exporter, task_id: str, **options) -> int:
    return requests.post(f"{exporter.url}/api/v1/tasks", json={"sdk_app_id": APP, "task_id": task_id}, timeout=5,
                         **options).status_code


def test_with_basic_auth_on_the_api_token_still_writes(exporters):
    exporter = exporters[True]
    assert requests.get(f"{exporter.url}/metrics", timeout=5).status_code == 401
    assert requests.get(f"{exporter.url}/metrics", auth=("prometheus", PASSWORD), timeout=5).status_code == 200
    assert add(exporter, "bearer", headers={"Authorization": f"Bearer {TOKEN}"}) == 201
    assert add(exporter, "as_api_user", auth=("api", TOKEN)) == 201
    assert add(exporter, "reader_cannot_write", auth=("prometheus", PASSWORD)) == 401
    assert add(exporter, "wrong_token", auth=("api", TOKEN + "x")) == 401
    assert add(exporter, "wrong_bearer", headers={"Authorization": f"Bearer {TOKEN}x"}) == 401
    deleted = requests.delete(f"{exporter.url}/api/v1/tasks/{APP}/bearer", auth=("api", TOKEN), timeout=5)
    assert deleted.status_code == 200
    assert {r.key[1] for r in exporter.store.snapshot()} == {"as_api_user"}


def test_without_basic_auth_both_token_forms_write(exporters):
    exporter = exporters[False]
    assert add(exporter, "bearer", headers={"Authorization": f"Bearer {TOKEN}"}) == 201
    assert add(exporter, "as_api_user", auth=("api", TOKEN)) == 201
    assert add(exporter, "no_token") == 401


def shipped_probe_paths() -> set[str]:
    """What the StatefulSet's probes and the image's HEALTHCHECK (used by the compose stack) request."""
    documents = yaml.safe_load_all((REPO / "deploy/kubernetes/statefulset.yaml").read_text())
    statefulset = next(d for d in documents if d and d.get("kind") == "StatefulSet")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    paths = {container[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe", "startupProbe")
             if probe in container}
    healthcheck = next(line for line in (REPO / "Dockerfile").read_text().splitlines() if "/-/" in line)
    paths |= set(re.findall(r"/-/[a-z]+", healthcheck))
    compose = yaml.safe_load((REPO / "deploy/docker-compose.yml").read_text())
    exporter_service = compose["services"]["tiw-exporter"]
    assert "healthcheck" not in exporter_service or "/-/" in str(exporter_service["healthcheck"])
    paths |= set(re.findall(r"/-/[a-z]+", str(exporter_service.get("healthcheck", ""))))
    return paths


@pytest.mark.parametrize("basic_auth", [False, True], ids=["no-basic-auth", "basic-auth"])
def test_shipped_probes_answer_without_credentials(exporters, basic_auth):
    paths = shipped_probe_paths()
    assert paths == {"/-/healthy", "/-/ready"}
    exporter = exporters[basic_auth]
    for path in sorted(paths):
        eventually(lambda path=path: requests.get(f"{exporter.url}{path}", timeout=5).status_code == 200)
    assert requests.get(f"{exporter.url}/", timeout=5).status_code == (401 if basic_auth else 200)
