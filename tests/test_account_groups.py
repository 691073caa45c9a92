"""Scale-out by account group: deploy/generate.py and what it writes from deploy/account-groups.example.yaml.

One exporter per group of Tencent Cloud accounts (the API budget is per action per account), each a
StatefulSet with one replica or a Compose service, with its own config, state volume and callback
URL. The checks: the committed output is the generator's, the manifests pass kubernetes-validate and
Compose v2, each group's config passes the exporter's own validation, the pieces agree with each other
(paths, ports, secrets, labels), no SdkAppId is in two groups, and bad descriptions are refused with
one line and exit status 2. Tool helpers come from tests/test_packaging.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import __version__
from exporter.config import build_settings
from tests.monitoring import RULES_FILE, load_yaml
from tests.procs import exporter_cmd
from tests.test_packaging import (
    CRD_GROUPS,
    EXPORTER_PORT,
    assert_options_exist,
    compose_binary,
    exporter_job_regex,
    final_stage,
    image_tag,
    option_value,
    python_tool,
    run_ok,
    selects,
)
from tests.tools import REPO

DEPLOY = REPO / "deploy"
GENERATOR = DEPLOY / "generate.py"
DESCRIPTION = DEPLOY / "account-groups.example.yaml"
GROUPS_DIR = DEPLOY / "kubernetes" / "groups"
COMPOSE_FILE = DEPLOY / "docker-compose.groups.yml"


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("deploy_generate", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> Any:
    return _load_generator()


@pytest.fixture(scope="module")
def description() -> dict[str, Any]:
    """The example description as written (the tests compare the output with it, not with the generator)."""
    return load_yaml(DESCRIPTION)


def group_names(description: dict[str, Any]) -> list[str]:
    return [group["name"] for group in description["groups"]]


def group_docs(name: str) -> dict[str, dict[str, Any]]:
    """The generated Kubernetes resources of group ``name`` by kind."""
    docs = [doc for doc in yaml.safe_load_all((GROUPS_DIR / f"{name}.yaml").read_text(encoding="utf-8")) if doc]
    by_kind = {doc["kind"]: doc for doc in docs}
    assert len(by_kind) == len(docs) == 3, [doc["kind"] for doc in docs]
    return by_kind


def group_settings(name: str) -> Any:
    """The group's generated config file as the exporter reads it."""
    return build_settings({}, DEPLOY / "groups" / name / "config.yaml")


# --- the committed output is the generator's -------------------------------------------------
def test_committed_output_is_what_the_generator_writes(generator: Any) -> None:
    files = generator.render(generator.load(DESCRIPTION))
    assert {"docker-compose.groups.yml", "groups/east/config.yaml", "groups/west/config.yaml",
            "kubernetes/groups/east.yaml", "kubernetes/groups/west.yaml", "kubernetes/groups/kustomization.yaml",
            "kubernetes/groups/servicemonitor.yaml", "kubernetes/groups/prometheusrule.yaml"} <= set(files)
    for relative, text in files.items():
        assert (DEPLOY / relative).read_text(encoding="utf-8") == text, (
            f"deploy/{relative} is stale: run python deploy/generate.py")
    assert generator.leftovers(DEPLOY, files) == []
    assert generator.main(["--check"]) == 0


def test_check_reports_a_stale_file_and_a_removed_group(generator: Any, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    assert generator.main(["--output-dir", str(out)]) == 0
    assert generator.main(["--check", "--output-dir", str(out)]) == 0
    config = out / "groups" / "east" / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("interval: 15s", "interval: 20s"), encoding="utf-8")
    assert generator.main(["--check", "--output-dir", str(out)]) == 1
    assert generator.main(["--output-dir", str(out)]) == 0  # rewritten
    gone = out / "kubernetes" / "groups" / "north.yaml"  # a group since removed from the description
    gone.write_text(generator.GENERATED + " from x: do not edit\n", encoding="utf-8")
    assert generator.main(["--check", "--output-dir", str(out)]) == 1
    assert generator.main(["--output-dir", str(out)]) == 0 and not gone.exists()
    assert generator.main(["--check", "--output-dir", str(out)]) == 0


def test_the_example_describes_two_groups_with_their_own_callback_urls(description: dict[str, Any]) -> None:
    assert group_names(description) == ["east", "west"]
    urls = [group["callback_public_url"] for group in description["groups"]]
    assert len(set(urls)) == 2


# --- each group's config is one the exporter accepts ------------------------------------------
def test_each_group_config_passes_tiw_exporter_check_config(description: dict[str, Any]) -> None:
    for name in group_names(description):
        path = DEPLOY / "groups" / name / "config.yaml"
        result = subprocess.run(exporter_cmd("check-config", str(path)), capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert f"{path}: valid config file" in result.stdout
        assert result.stderr == "", f"warnings for group {name}: {result.stderr}"


def test_each_group_config_holds_the_groups_accounts_url_and_state(description: dict[str, Any]) -> None:
    for group in description["groups"]:
        settings = group_settings(group["name"])
        assert settings.sources.callback_public_url == group["callback_public_url"]
        accounts = {account.name: account for account in settings.api.accounts}
        assert set(accounts) == {account["name"] for account in group["accounts"]}
        for account in group["accounts"]:
            got = accounts[account["name"]]
            assert list(got.sdk_app_ids) == [int(app) for app in account["sdk_app_ids"]]
            assert got.secret_id == account["secret_id"]
            assert got.secret_key_file == Path(f"/etc/tiw-exporter/secrets/{account['name']}.secret-key")
        assert settings.state.state_file == Path("/var/lib/tiw-exporter/state.db")
        assert settings.web.listen == ("0.0.0.0", EXPORTER_PORT) and settings.web.callback_listen is not None
        apps = {app for a in settings.api.accounts for app in a.sdk_app_ids}
        assert set(settings.sources.discover_sdk_app_ids) == apps


def test_no_sdk_app_id_or_credential_is_in_two_groups(description: dict[str, Any]) -> None:
    apps: dict[int, str] = {}
    secret_ids: dict[str, str] = {}
    for name in group_names(description):
        for account in group_settings(name).api.accounts:
            for app in account.sdk_app_ids:
                assert app not in apps, f"SdkAppId {app} is in groups {apps[app]} and {name}"
                apps[app] = name
            assert account.secret_id not in secret_ids, f"{account.secret_id} in {secret_ids.get(account.secret_id)}"
            secret_ids[account.secret_id] = name
    assert len(apps) >= 4


# --- Kubernetes -------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["1.28.0", None], ids=["oldest-supported", "newest-known"])
def test_group_manifests_pass_kubernetes_validate_strictly(description: dict[str, Any], version: str | None) -> None:
    files = [GROUPS_DIR / f"{name}.yaml" for name in group_names(description)]
    for path in sorted(GROUPS_DIR.glob("*.yaml")):
        docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
        if path not in files:  # only CRD kinds and the kustomization are left out
            assert all(doc["apiVersion"].startswith(CRD_GROUPS) or doc["kind"] == "Kustomization" for doc in docs)
    flags = ["--kubernetes-version", version] if version else []
    output = run_ok([python_tool("kubernetes-validate"), "--strict", *flags, *files])
    assert "WARN" not in output and output.count(" passed ") == 3 * len(files), output


def test_kustomization_applies_every_group_and_the_monitoring(description: dict[str, Any]) -> None:
    (kustomization,) = [d for d in yaml.safe_load_all((GROUPS_DIR / "kustomization.yaml").read_text()) if d]
    assert sorted(kustomization["resources"]) == sorted(p.name for p in GROUPS_DIR.glob("*.yaml")
                                                        if p.name != "kustomization.yaml")
    assert {f"{name}.yaml" for name in group_names(description)} <= set(kustomization["resources"])


def test_each_statefulset_has_one_replica_and_a_state_volume(description: dict[str, Any]) -> None:
    for name in group_names(description):
        statefulset = group_docs(name)["StatefulSet"]
        assert statefulset["metadata"]["name"] == f"tiw-exporter-{name}"
        assert statefulset["spec"]["replicas"] == 1, "one writer per account group"
        (container,) = statefulset["spec"]["template"]["spec"]["containers"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        (claim,) = statefulset["spec"]["volumeClaimTemplates"]
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        state_file = str(group_settings(name).state.state_file)
        assert posixpath.dirname(state_file) == mounts[claim["metadata"]["name"]]
        assert state_file.endswith(".db"), "the state file is SQLite"


def test_each_group_is_locked_down_probed_and_sized_like_the_single_statefulset(description: dict[str, Any]) -> None:
    uid, _, gid = final_stage("USER")[0].value.partition(":")
    for name in group_names(description):
        pod = group_docs(name)["StatefulSet"]["spec"]["template"]
        security = pod["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True and (security["runAsUser"], security["runAsGroup"]) == (
            int(uid), int(gid))
        assert pod["spec"]["automountServiceAccountToken"] is False
        (container,) = pod["spec"]["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics"}
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])
        assert image_tag(container["image"]) == __version__


def test_each_group_runs_its_own_config_and_mounts_its_secrets(description: dict[str, Any]) -> None:
    for name in group_names(description):
        docs = group_docs(name)
        pod = docs["StatefulSet"]["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        args = container["args"]
        assert args[0] == "run"
        assert_options_exist("run", args)
        assert not any(arg.startswith("--shard") for arg in args) and "env" not in container
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}

        config = option_value(args, "--config")
        (config_volume,) = [v for n, v in volumes.items() if mounts[n] == posixpath.dirname(config)]
        configmap = docs["ConfigMap"]
        assert config_volume["configMap"]["name"] == configmap["metadata"]["name"]
        text = configmap["data"][posixpath.basename(config)]
        assert text == (DEPLOY / "groups" / name / "config.yaml").read_text(encoding="utf-8"), "one config text"
        annotation = pod["metadata"]["annotations"]["tiw-push-exporter/config-sha256"]
        assert annotation == hashlib.sha256(text.encode()).hexdigest(), "a config edit rolls the pod"

        settings = group_settings(name)
        needed = {option_value(args, "--api-token-file"), option_value(args, "--callback-key-file")}
        needed |= {str(a.secret_key_file) for a in settings.api.accounts if a.secret_key_file}
        secret_volumes = [(n, v["secret"]) for n, v in volumes.items() if "secret" in v]
        assert [s["secretName"] for _, s in secret_volumes] == [f"tiw-exporter-{name}-credentials"]
        mounted = {posixpath.join(mounts[n], item["path"]) for n, s in secret_volumes for item in s["items"]}
        assert needed == mounted

        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"metrics": settings.web.listen[1], "callbacks": settings.web.callback_listen[1]}
        service = docs["Service"]
        assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {"metrics": "metrics",
                                                                                 "callbacks": "callbacks"}
        assert docs["StatefulSet"]["spec"]["serviceName"] == service["metadata"]["name"]


def test_each_group_service_selects_its_own_pod_only(description: dict[str, Any]) -> None:
    names = group_names(description)
    for name in names:
        service = group_docs(name)["Service"]
        for other in names:
            statefulset = group_docs(other)["StatefulSet"]
            pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
            assert selects(statefulset["spec"]["selector"]["matchLabels"], pod_labels)
            assert selects(service["spec"]["selector"], pod_labels) == (other == name), (name, other)
            assert pod_labels["app.kubernetes.io/instance"] == other


def test_servicemonitor_scrapes_every_group_once_under_the_job_the_alerts_expect(description: dict[str, Any]) -> None:
    (monitor,) = [d for d in yaml.safe_load_all((GROUPS_DIR / "servicemonitor.yaml").read_text()) if d]
    assert monitor["kind"] == "ServiceMonitor"
    services = [group_docs(name)["Service"] for name in group_names(description)]
    assert all(selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"]) for s in services)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    for service in services:
        job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
        assert re.fullmatch(exporter_job_regex(), job), job
    assert "targetLabels" not in monitor["spec"], "a group label would split the fleet alerts per group"


def test_groups_prometheusrule_holds_the_current_alerts() -> None:
    (rule,) = [d for d in yaml.safe_load_all((GROUPS_DIR / "prometheusrule.yaml").read_text()) if d]
    assert rule["kind"] == "PrometheusRule" and rule["spec"]["groups"] == load_yaml(RULES_FILE)["groups"]


def test_no_deployment_file_shards_any_more() -> None:
    """Sharding one account over replicas is gone: no manifest or compose file sets a shard option."""
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".py")]
    assert len(files) >= 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path != GENERATOR:  # the generator names them to refuse them
            assert not re.search(r"shard", text, re.IGNORECASE), f"{path} still mentions sharding"


def test_the_single_statefulset_keeps_sqlite_state() -> None:
    (statefulset,) = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "statefulset.yaml").read_text()) if d]
    assert statefulset["spec"]["replicas"] == 1
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert option_value(container["args"], "--state-file").endswith("/state.db")
    assert not any(env["name"].startswith("TIW_EXPORTER_SHARD_") for env in container.get("env", []))


# --- requests and limits follow the sizing line ---------------------------------------------------
# README, Sizing: measured RSS ~53 MiB + 6.8 KB per tracked task. Memory request = limit = 128 MiB + 8 KB
# per task (up to 16 MiB more, rounding); CPU request 45m per account + 3m per 1,000 tasks, limit twice
# that, at least one core. The single StatefulSet and compose files are sized for 50,000 tasks, 5 accounts.
MEASURED_RSS = (53.0, 6_800)  # MiB, bytes per task (bench/bench_memory.py, 50,000 tasks)
DESIGN = (50_000, 5)  # tasks, accounts
DEFAULT_MAX_TASKS = 50_000


def mebibytes(quantity: str) -> float:
    """A Kubernetes (Mi, Gi) or Compose (m, g: binary) memory size in MiB."""
    number, unit = re.fullmatch(r"(\d+)([MG]i|[mg])", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit[0] in "Gg" else 1)


def millicores(quantity: str | float) -> float:
    text = str(quantity)
    return float(text[:-1]) if text.endswith("m") else float(text) * 1000


def assert_sized(resources: dict[str, dict[str, str]], tasks: int, accounts: int) -> None:
    memory = 128 + 8_000 * tasks / 2**20
    cpu = 45 * accounts + 3 * tasks / 1000
    requests_, limits = resources["requests"], resources["limits"]
    assert memory <= mebibytes(limits["memory"]) < memory + 16, (limits["memory"], memory)
    assert requests_["memory"] == limits["memory"], "memory is not compressible: request what the limit allows"
    assert mebibytes(limits["memory"]) >= 1.2 * (MEASURED_RSS[0] + MEASURED_RSS[1] * tasks / 2**20)
    assert cpu <= millicores(requests_["cpu"]) < cpu + 1, (requests_["cpu"], cpu)
    assert millicores(limits["cpu"]) == max(1000, 2 * millicores(requests_["cpu"]))


def test_the_single_statefulset_is_sized_for_50000_tasks_by_the_sizing_line() -> None:
    (statefulset,) = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "statefulset.yaml").read_text()) if d]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert_sized(container["resources"], *DESIGN)


def test_each_group_is_sized_for_its_max_tasks_and_accounts(description: dict[str, Any]) -> None:
    compose_file = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    sizes = set()
    for group in description["groups"]:
        tasks = group.get("max_tasks", DEFAULT_MAX_TASKS)
        (container,) = group_docs(group["name"])["StatefulSet"]["spec"]["template"]["spec"]["containers"]
        assert_sized(container["resources"], tasks, len(group["accounts"]))
        service = compose_file["services"][f"tiw-exporter-{group['name']}"]
        assert mebibytes(service["mem_limit"]) == mebibytes(container["resources"]["limits"]["memory"])
        assert millicores(service["cpus"]) == millicores(container["resources"]["limits"]["cpu"])
        sizes.add(container["resources"]["limits"]["memory"])
    assert len(sizes) > 1, "the example shows a group sized by its own max_tasks"


def test_the_demo_compose_file_is_sized_like_the_single_statefulset() -> None:
    (statefulset,) = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / "statefulset.yaml").read_text()) if d]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    service = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))["services"]["tiw-exporter"]
    assert mebibytes(service["mem_limit"]) == mebibytes(container["resources"]["limits"]["memory"])
    assert millicores(service["cpus"]) == millicores(container["resources"]["limits"]["cpu"])


def test_the_readme_states_the_sizing_line_the_manifests_follow(generator: Any) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for line in ("128 MiB + 8 KB per tracked task", "45m per account + 3m per 1,000 tracked tasks",
                 "twice the request, at least one core"):
        assert line in readme, line
    for tasks, accounts in (DESIGN, (10_000, 1), (200_000, 10)):
        assert_sized(generator.resources(tasks, accounts), tasks, accounts)


# --- Compose ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    output = run_ok([compose_binary(), "--file", COMPOSE_FILE, "config", "--format", "json"], cwd=REPO,
                    env={k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")})
    return json.loads(output)


def test_compose_runs_one_exporter_per_group_with_its_own_state_and_ports(
        compose: dict[str, Any], description: dict[str, Any]) -> None:
    names = group_names(description)
    assert set(compose["services"]) == {f"tiw-exporter-{name}" for name in names}
    state_volumes, host_ports = [], []
    for name in names:
        service = compose["services"][f"tiw-exporter-{name}"]
        settings = group_settings(name)
        command = service["command"]
        assert command[0] == "run"
        assert_options_exist("run", command)
        assert image_tag(service["image"]) == __version__ and Path(service["build"]["context"]) == REPO

        volumes = {v["target"]: v for v in service["volumes"]}
        config = volumes[option_value(command, "--config")]
        assert config["type"] == "bind" and config["read_only"] is True
        assert Path(config["source"]) == DEPLOY / "groups" / name / "config.yaml"
        state = volumes[posixpath.dirname(str(settings.state.state_file))]
        assert state["type"] == "volume"
        state_volumes.append(state["source"])

        targets = {p["target"]: int(p["published"]) for p in service["ports"]}
        assert set(targets) == {settings.web.listen[1], settings.web.callback_listen[1]}
        host_ports += targets.values()

        needed = {option_value(command, "--api-token-file"), option_value(command, "--callback-key-file")}
        needed |= {str(a.secret_key_file) for a in settings.api.accounts if a.secret_key_file}
        assert {s["target"] for s in service["secrets"]} == needed
        for secret in service["secrets"]:
            source = Path(compose["secrets"][secret["source"]]["file"])
            assert source.parent == DEPLOY / "groups" / name / "secrets"
            assert source.name == posixpath.basename(secret["target"]), "the Kubernetes Secret's key names"
    assert len(set(state_volumes)) == len(names), "a state volume per group"
    assert len(set(host_ports)) == len(host_ports), "a host port per group and listener"


def test_the_groups_secret_files_stay_out_of_git(description: dict[str, Any]) -> None:
    for name in group_names(description):
        probe = f"deploy/groups/{name}/secrets/api-token"
        result = subprocess.run(["git", "check-ignore", "-q", "--no-index", probe], cwd=REPO, timeout=30, check=False)
        assert result.returncode == 0, f"{probe} is not ignored"


# --- refusals ---------------------------------------------------------------------------------
def _group(name: str, url: str | None, *accounts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    group: dict[str, Any] = {"name": name, "accounts": list(accounts), **extra}
    if url is not None:
        group["callback_public_url"] = url
    return group


def _account(name: str, *apps: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "sdk_app_ids": list(apps), **extra}


EAST = "https://east.example.com/callbacks/tiw"
WEST = "https://west.example.com/callbacks/tiw"
REFUSED = [
    ("sdk_app_id_in_two_groups", [_group("east", EAST, _account("a", 1400000001)),
                                  _group("west", WEST, _account("b", "1400000001"))],
     "SdkAppId 1400000001 is in group east and in group west"),
    ("account_name_twice_in_a_group", [_group("east", EAST, _account("a", 1), _account("a", 2))],
     "two accounts are named 'a'"),
    ("no_callback_public_url", [_group("east", None, _account("a", 1))], "group east: callback_public_url must be"),
    ("name_not_a_dns_label", [_group("East_1", EAST, _account("a", 1))], "name must be a DNS label"),
    ("name_too_long", [_group("a" * 31, EAST, _account("a", 1))], "name must be a DNS label"),
    ("same_callback_url", [_group("east", EAST, _account("a", 1)), _group("west", EAST + "/", _account("b", 2))],
     "groups east and west have the same callback_public_url"),
    ("same_credential", [_group("east", EAST, _account("a", 1, secret_id="AKID1")),
                         _group("west", WEST, _account("b", 2, secret_id="AKID1"))], "secret_id AKID1 is used by"),
    ("sdk_app_id_in_two_accounts", [_group("east", EAST, _account("a", 1), _account("b", 1))],
     "SdkAppId 1 is listed by accounts a and b"),
    ("sharding", [_group("east", EAST, _account("a", 1), config={"shard_count": 2})], "there is no sharding"),
    ("unknown_config_key", [_group("east", EAST, _account("a", 1), config={"intervall": "5s"})],
     "did you mean 'interval'"),
    ("bad_config_value", [_group("east", EAST, _account("a", 1), config={"interval": "-5s"})],
     "group east: config interval: a duration cannot be negative"),
    ("discovers_another_groups_app", [_group("east", EAST, _account("a", 1), config={"discover_sdk_app_ids": [2]})],
     "config names SdkAppId 2, which no account of the group lists"),
    ("secret_key_file_given", [_group("east", EAST, _account("a", 1, secret_id="X", secret_key_file="/k"))],
     "no secret_key_file or secret_key here"),
    ("unknown_account_key", [_group("east", EAST, _account("a", 1, colour="red"))], "unknown keys ['colour']"),
    ("same_host_port", [_group("east", EAST, _account("a", 1), host_ports={"metrics": 9878}),
                        _group("west", WEST, _account("b", 2))], "both use host port 9878"),
    ("max_tasks_not_a_number", [_group("east", EAST, _account("a", 1), max_tasks="lots")],
     "group east: max_tasks must be a whole number"),
    ("max_tasks_past_one_process", [_group("east", EAST, _account("a", 1), max_tasks=500_000)],
     "more than that: split the group"),
]


@pytest.mark.parametrize(("groups", "message"), [(g, m) for _, g, m in REFUSED], ids=[i for i, _, _ in REFUSED])
def test_generator_refuses_a_bad_description_with_one_line(generator: Any, tmp_path: Path, capsys: Any,
                                                           groups: list[Any], message: str) -> None:
    path = tmp_path / "groups.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    out = tmp_path / "out"
    assert generator.main(["--description", str(path), "--output-dir", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("deploy/generate.py: error: ") and message in captured.err, captured.err
    assert not out.exists(), "nothing is written for a refused description"


def test_generator_process_refuses_with_exit_status_2_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "groups.yaml"
    path.write_text("groups:\n  - name: east\n    accounts: [{name: a, sdk_app_ids: [1]}]\n  - [\n", encoding="utf-8")
    for description in (path, tmp_path / "missing.yaml"):
        result = subprocess.run([sys.executable, GENERATOR, "--description", description, "--output-dir",
                                 tmp_path / "out"], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert str(description.name) in result.stderr and "Traceback" not in result.stderr


def test_generator_accepts_the_smallest_description_and_writes_nothing_else(generator: Any, tmp_path: Path) -> None:
    """The refusals above are not a generator that refuses everything."""
    path = tmp_path / "groups.yaml"
    path.write_text(yaml.safe_dump({"groups": [_group("east", EAST, _account("a", 1400000001))]}), encoding="utf-8")
    out = tmp_path / "out"
    assert generator.main(["--description", str(path), "--output-dir", str(out)]) == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["docker-compose.groups.yml", "groups/.gitignore", "groups/east/config.yaml",
                       "kubernetes/groups/east.yaml", "kubernetes/groups/kustomization.yaml",
                       "kubernetes/groups/prometheusrule.yaml", "kubernetes/groups/servicemonitor.yaml"]
    settings = build_settings({}, out / "groups" / "east" / "config.yaml")
    assert settings.sources.discover_sdk_app_ids == (1400000001,) and settings.api.accounts[0].secret_key_file is None
    compose_file = yaml.safe_load((out / "docker-compose.groups.yml").read_text(encoding="utf-8"))
    assert Path(out, compose_file["services"]["tiw-exporter-east"]["build"]["context"]).resolve() == REPO
