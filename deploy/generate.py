#!/usr/bin/env python3
"""Write one exporter deployment per account group, for Kubernetes and Compose, from one description.

    python deploy/generate.py           # rewrite the generated files
    python deploy/generate.py --check   # exit 1 if a committed file is stale
    python deploy/generate.py --description my-groups.yaml --output-dir my-deploy/
    python deploy/generate.py --resources 50000 5   # requests and limits for 50,000 tasks on 5 accounts

Tencent Cloud counts its 20 requests/s per API action per account, so the exporter scales out by
account: each group of accounts gets its own process (a StatefulSet with one replica, or one Compose
service) that owns all of the group's accounts, with its own state volume and its own push-callback
URL. Nothing is shared between groups. The description (default deploy/account-groups.example.yaml)
documents its schema at the top. Output, under the output directory (default deploy/):

    groups/<name>/config.yaml         the group's exporter config file (Compose mounts it; Kubernetes
                                      holds the same text in a ConfigMap)
    groups/<name>/secrets/            NOT generated, never committed: the group's key files
    groups/.gitignore                 keeps those secrets out of git
    docker-compose.groups.yml         one exporter service per group
    kubernetes/groups/<name>.yaml     ConfigMap, Service, StatefulSet of the group
    kubernetes/groups/servicemonitor.yaml, prometheusrule.yaml, kustomization.yaml

A description the exporter could not run (an SdkAppId in two groups, two accounts of a group with one
name, a group without callback_public_url, a name that is not a DNS label, ...) is refused with one
line on stderr and exit status 2. tests/test_account_groups.py checks the committed output.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import math
import os
import re
import runpy
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = Path(__file__).resolve().parent
DESCRIPTION = DEPLOY / "account-groups.example.yaml"
COMMAND = "python deploy/generate.py"

sys.path.insert(0, str(REPO))  # the exporter of this checkout validates what it will be given
from exporter import __version__  # noqa: E402
from exporter.config import OPTION_NAMES, ConfigError, build_settings, flag_name  # noqa: E402
from exporter.model import InvalidTaskRef, validate_sdk_app_id  # noqa: E402

# alerts/generate.py: the project's YAML style (Dumper) and its write-or-check; deploy/kubernetes/generate.py:
# the PrometheusRule. run_path keeps them scripts (see deploy/kubernetes/generate.py).
ALERTS = runpy.run_path(str(REPO / "alerts" / "generate.py"), run_name="alerts_generate")
RULE = runpy.run_path(str(DEPLOY / "kubernetes" / "generate.py"), run_name="k8s_generate")

# Where things are inside the container, the same on both platforms (one config text for both).
PORT = 9877            # --listen: /metrics, the task API, probes
CALLBACK_PORT = 9879   # --callback-listen: only POST /callbacks/tiw, the one port to expose publicly
CONFIG_DIR = "/etc/tiw-exporter/config"
CONFIG_FILE = f"{CONFIG_DIR}/config.yaml"
SECRETS_DIR = "/etc/tiw-exporter/secrets"
STATE_DIR = "/var/lib/tiw-exporter"
STATE_FILE = f"{STATE_DIR}/state.db"
API_TOKEN, CALLBACK_KEY = "api-token", "callback-key"  # file names in the group's secrets
UID = 10001  # the Dockerfile's USER

NAME = "tiw-exporter"
APP = "tiw-push-exporter"  # app.kubernetes.io/name, the ServiceMonitor's job: the rules' job="tiw-push-exporter"
PART_OF = "tiw-push-account-groups"
GROUP_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
GROUP_NAME_MAX = 30  # tiw-exporter-<name>-<revision hash> must stay a 63-character label value
ACCOUNT_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # exporter/config.py's rule; also a Secret key

GROUP_KEYS = {"name", "callback_public_url", "accounts", "config", "host_ports", "max_tasks"}

# Sizing (README, "Sizing"): measured, a process's RSS is ~53 MiB + 5.8-6.8 KB per tracked task and its CPU
# ~4.5 % of a core per account + 2.2 us per task per second, plus ~0.5 us per task per second for two
# Prometheus scraping every 15 s. Requests and limits with headroom over that, per group from max_tasks:
MEMORY_BASE_MIB = 128          # memory request = limit = 128 MiB + 8 KB per task, up to a multiple of 16 MiB
MEMORY_PER_TASK_BYTES = 8_000
CPU_PER_ACCOUNT_MILLICORES = 45
CPU_PER_1000_TASKS_MILLICORES = 3  # CPU request = 45m per account + 3m per 1,000 tasks
CPU_LIMIT_MIN_MILLICORES = 1_000   # CPU limit = twice the request, at least one core
DESIGN_TASKS = 50_000  # max_tasks of a group that does not say; deploy/kubernetes/statefulset.yaml's size
MAX_TASKS_CAP = 200_000  # past this one process needs most of a core (see Sizing): split the group


def resources(tasks: int, accounts: int) -> dict[str, dict[str, str]]:
    """Kubernetes requests and limits of one exporter tracking up to ``tasks`` tasks of ``accounts`` accounts."""
    memory = math.ceil((MEMORY_BASE_MIB * 2**20 + MEMORY_PER_TASK_BYTES * tasks) / (16 * 2**20)) * 16
    cpu = CPU_PER_ACCOUNT_MILLICORES * accounts + math.ceil(CPU_PER_1000_TASKS_MILLICORES * tasks / 1000)
    return {"requests": {"cpu": f"{cpu}m", "memory": f"{memory}Mi"},
            "limits": {"cpu": f"{max(CPU_LIMIT_MIN_MILLICORES, 2 * cpu)}m", "memory": f"{memory}Mi"}}
# Config keys the generator writes itself, and keys naming files it does not mount.
OWNED = {"listen": "the generator sets it", "callback_listen": "the generator sets it",
         "state_file": "the generator sets it (a volume per group)",
         "callback_public_url": "set it on the group, not under config",
         "accounts": "set it on the group, not under config",
         "secret_id": "credentials belong to accounts", "secret_key_file": "credentials belong to accounts",
         "cvm_role": "credentials belong to accounts",
         "api_token_file": f"the group's secrets/{API_TOKEN} is passed as --api-token-file",
         "callback_key_file": f"the group's secrets/{CALLBACK_KEY} is passed as --callback-key-file"}
UNMOUNTED = ("tasks_file", "web_config_file", "callback_keys")

GENERATED = "# GENERATED by deploy/generate.py"


class Octal(int):
    """A file mode, written as people write it (0440; YAML 1.1, as Kubernetes reads it)."""


class Dumper(ALERTS["Dumper"]):  # type: ignore[misc,valid-type]
    """alerts/generate.py's style, and file modes in octal."""


Dumper.add_representer(Octal, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:int", f"0{value:o}"))


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=Dumper, sort_keys=False, width=ALERTS["WIDTH"], allow_unicode=True)


class DescriptionError(Exception):
    """A description this generator refuses; the message is one line."""


@dataclass
class Group:
    name: str
    callback_public_url: str
    accounts: list[dict[str, Any]]
    config: dict[str, Any]
    host_ports: dict[str, int]
    max_tasks: int = DESIGN_TASKS
    sdk_app_ids: dict[int, str] = field(default_factory=dict)  # SdkAppId -> account name

    @property
    def resources(self) -> dict[str, dict[str, str]]:
        return resources(self.max_tasks, len(self.accounts))

    @property
    def key_files(self) -> list[str]:
        """The group's secret files: one SecretKey per account with a secret_id, the API token, the callback key."""
        return [f"{a['name']}.secret-key" for a in self.accounts if a.get("secret_id")] + [API_TOKEN, CALLBACK_KEY]


@dataclass
class Description:
    image: str
    groups: list[Group]
    source: str  # how the headers name the description


# --- reading and checking the description ------------------------------------------------------
def load(path: Path) -> Description:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DescriptionError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise DescriptionError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("groups"), list) or not document["groups"]:
        raise DescriptionError(f"{path}: must be a mapping with `groups:`, a non-empty list")
    unknown = set(document) - {"image", "groups"}
    if unknown:
        raise DescriptionError(f"{path}: unknown top-level keys {sorted(map(str, unknown))} (image, groups)")
    image = document.get("image", f"tiw-push-exporter:{__version__}")
    if not isinstance(image, str) or not re.fullmatch(r"[^\s]+", image):
        raise DescriptionError(f"{path}: image must be an image reference like tiw-push-exporter:{__version__}")
    groups = [_group(i, raw) for i, raw in enumerate(document["groups"])]
    _check_across(groups)
    return Description(image, groups, _relative(path))


def _relative(path: Path) -> str:
    """``path`` as the generated comments show it: from the repository's root, else as given."""
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return path.as_posix()


def _group(index: int, raw: Any) -> Group:
    if not isinstance(raw, dict):
        raise DescriptionError(f"groups[{index}] must be a mapping")
    name = raw.get("name")
    if not isinstance(name, str) or not GROUP_NAME_RE.fullmatch(name) or len(name) > GROUP_NAME_MAX:
        raise DescriptionError(f"groups[{index}]: name must be a DNS label of at most {GROUP_NAME_MAX} characters "
                               f"(a-z, 0-9, '-' inside), got {name!r}")
    where = f"group {name}"
    unknown = set(raw) - GROUP_KEYS
    if unknown:
        raise DescriptionError(f"{where}: unknown keys {sorted(map(str, unknown))} ({', '.join(sorted(GROUP_KEYS))})")
    url = raw.get("callback_public_url")
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if not parts or parts.scheme not in ("http", "https") or not parts.netloc:
        raise DescriptionError(f"{where}: callback_public_url must be the http(s) URL TIW sends this group's push "
                               f"callbacks to (e.g. https://tiw-{name}.example.com/callbacks/tiw), got {url!r}")
    accounts = raw.get("accounts")
    if not isinstance(accounts, list) or not accounts:
        raise DescriptionError(f"{where}: accounts must be a non-empty list (as `accounts:` in the exporter's config)")
    config = raw.get("config") or {}
    if not isinstance(config, dict):
        raise DescriptionError(f"{where}: config must be a mapping of exporter config keys")
    group = Group(name, url, [], _extra_config(where, config), {})
    for i, account in enumerate(accounts):
        group.accounts.append(_account(where, i, account, group))
    group.host_ports = _host_ports(where, index, raw.get("host_ports"))
    group.max_tasks = _max_tasks(where, raw.get("max_tasks", DESIGN_TASKS))
    _validate_with_exporter(group)
    return group


def _account(where: str, index: int, raw: Any, group: Group) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise DescriptionError(f"{where}: accounts[{index}] must be a mapping")
    account = {str(k).replace("-", "_"): v for k, v in raw.items()}
    name = account.get("name")
    if not isinstance(name, str) or not ACCOUNT_NAME_RE.fullmatch(name):
        raise DescriptionError(f"{where}: accounts[{index}] needs a name of 1-64 of [A-Za-z0-9_.-], got {name!r}")
    if any(name == other["name"] for other in group.accounts):
        raise DescriptionError(f"{where}: two accounts are named {name!r}; account names are unique in a group")
    if "secret_key_file" in account or "secret_key" in account:
        raise DescriptionError(f"{where}: account {name}: no secret_key_file or secret_key here; the key is the "
                               f"group's file secrets/{name}.secret-key, mounted at {SECRETS_DIR}/{name}.secret-key")
    apps = account.get("sdk_app_ids")
    if not isinstance(apps, list) or not apps:
        raise DescriptionError(f"{where}: account {name}: sdk_app_ids must be a non-empty list")
    account["sdk_app_ids"] = []
    for raw_app in apps:
        try:
            app = validate_sdk_app_id(raw_app)
        except InvalidTaskRef as exc:
            raise DescriptionError(f"{where}: account {name}: {exc}") from None
        if app in group.sdk_app_ids:
            raise DescriptionError(f"{where}: SdkAppId {app} is listed by accounts {group.sdk_app_ids[app]} and {name}")
        group.sdk_app_ids[app] = name
        account["sdk_app_ids"].append(app)
    if account.get("secret_id"):
        account["secret_key_file"] = f"{SECRETS_DIR}/{name}.secret-key"
    return account


def _extra_config(where: str, config: dict[str, Any]) -> dict[str, Any]:
    known = set(OPTION_NAMES) | {flag_name(n)[2:].replace("-", "_") for n in OPTION_NAMES}
    extra = {}
    for key, value in config.items():
        name = str(key).replace("-", "_")
        if name.startswith("shard_"):
            raise DescriptionError(f"{where}: config {key}: there is no sharding; scale out with one group per set "
                                   "of accounts")
        if name in OWNED:
            raise DescriptionError(f"{where}: config {key}: {OWNED[name]}")
        if name in UNMOUNTED:
            raise DescriptionError(f"{where}: config {key}: names a file this deployment does not mount "
                                   "(it mounts the config, the state volume and the group's secrets)")
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DescriptionError(f"{where}: config {key}: not an option of the exporter{hint}")
        extra[name] = value
    return extra


def _host_ports(where: str, index: int, raw: Any) -> dict[str, int]:
    ports = {"metrics": PORT + index, "callbacks": 9977 + index}
    if raw is None:
        return ports
    if not isinstance(raw, dict) or not set(raw) <= set(ports):
        raise DescriptionError(f"{where}: host_ports must be a mapping with metrics and/or callbacks")
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise DescriptionError(f"{where}: host_ports.{key} must be a port number, got {value!r}")
        ports[key] = value
    if ports["metrics"] == ports["callbacks"]:
        raise DescriptionError(f"{where}: host_ports.metrics and host_ports.callbacks must differ")
    return ports


def _max_tasks(where: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_TASKS_CAP:
        raise DescriptionError(f"{where}: max_tasks must be a whole number of tracked tasks from 1 to "
                               f"{MAX_TASKS_CAP:,} (more than that: split the group), got {raw!r}")
    return raw


def _validate_with_exporter(group: Group) -> None:
    """The group's config as the exporter reads it (no files are read: the generator lets none be named)."""
    config = exporter_config(group)
    extra = {_plural(key) for key in group.config}
    origins = {name: f"group {group.name}: {'config ' if name in extra else ''}{name}" for name in config}
    try:
        settings = build_settings(config, None, origins)
    except ConfigError as exc:
        raise DescriptionError("; ".join(exc.problems)) from None
    for warning in settings.warnings:  # values that work but are rarely right (the exporter warns at start)
        print(f"deploy/generate.py: warning: {warning}", file=sys.stderr)
    named = set(settings.sources.discover_sdk_app_ids) | {app for app, _ in settings.sources.tasks}
    if settings.sources.sdk_app_id is not None:
        named.add(settings.sources.sdk_app_id)
    foreign = sorted(named - set(group.sdk_app_ids))
    if foreign:
        raise DescriptionError(f"group {group.name}: config names SdkAppId {foreign[0]}, which no account of the "
                               "group lists (its tasks would be polled with another account's key)")


def _plural(name: str) -> str:
    return next((n for n in OPTION_NAMES if flag_name(n)[2:].replace("-", "_") == name and n != name), name)


def _check_across(groups: list[Group]) -> None:
    names: set[str] = set()
    urls: dict[str, str] = {}
    ports: dict[int, str] = {}
    apps: dict[int, str] = {}
    secret_ids: dict[str, str] = {}
    for group in groups:
        if group.name in names:
            raise DescriptionError(f"two groups are named {group.name}")
        names.add(group.name)
        url = group.callback_public_url.rstrip("/")
        if url in urls:
            raise DescriptionError(f"groups {urls[url]} and {group.name} have the same callback_public_url {url}: "
                                   "TIW must call each group's own exporter")
        urls[url] = group.name
        for port in group.host_ports.values():
            if port in ports:
                raise DescriptionError(f"groups {ports[port]} and {group.name} both use host port {port} (host_ports)")
            ports[port] = group.name
        for app in group.sdk_app_ids:
            if app in apps:
                raise DescriptionError(f"SdkAppId {app} is in group {apps[app]} and in group {group.name}: "
                                       "an SdkAppId belongs to one group")
            apps[app] = group.name
        for account in group.accounts:
            secret_id = str(account.get("secret_id") or "")
            here = f"account {account['name']} of group {group.name}"
            if secret_id and secret_id in secret_ids:
                raise DescriptionError(f"secret_id {secret_id} is used by {secret_ids[secret_id]} and by {here}: "
                                       "one process spends a credential's budget, so a credential is one account")
            if secret_id:
                secret_ids[secret_id] = here


# --- the group's exporter config ----------------------------------------------------------------
def exporter_config(group: Group) -> dict[str, Any]:
    config: dict[str, Any] = {
        "listen": f"0.0.0.0:{PORT}",
        "callback_listen": f"0.0.0.0:{CALLBACK_PORT}",
        "callback_public_url": group.callback_public_url,
        "state_file": STATE_FILE,
        "log_format": "json",
        "discover_sdk_app_ids": list(group.sdk_app_ids),
        "accounts": [dict(account) for account in group.accounts],
    }
    for key, value in group.config.items():
        config[_plural(key)] = value
    return config


def config_text(group: Group, source: str) -> str:
    header = (f"{GENERATED} from {source} (group {group.name}): do not edit, regenerate.\n"
              f"# The exporter config of account group {group.name}: mounted at {CONFIG_FILE} by\n"
              f"# docker-compose.groups.yml, held by ConfigMap {NAME}-{group.name}.\n"
              "# Check it with: tiw-exporter check-config FILE\n")
    return header + dump(exporter_config(group))


def run_args() -> list[str]:
    return ["run", f"--config={CONFIG_FILE}", f"--api-token-file={SECRETS_DIR}/{API_TOKEN}",
            f"--callback-key-file={SECRETS_DIR}/{CALLBACK_KEY}"]


# --- Kubernetes ---------------------------------------------------------------------------------
def labels(group: Group | None = None) -> dict[str, str]:
    found = {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "exporter",
             "app.kubernetes.io/part-of": PART_OF}
    if group:
        found["app.kubernetes.io/instance"] = group.name
    return found


def selector(group: Group) -> dict[str, str]:
    return {"app.kubernetes.io/name": APP, "app.kubernetes.io/component": "exporter",
            "app.kubernetes.io/instance": group.name}


def kubernetes_group(group: Group, image: str, text: str) -> list[dict[str, Any]]:
    name = f"{NAME}-{group.name}"
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels(group)},
                 "data": {"config.yaml": text}}
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels(group)},
        "spec": {"selector": selector(group), "ports": [
            {"name": "metrics", "port": PORT, "targetPort": "metrics", "protocol": "TCP"},
            {"name": "callbacks", "port": CALLBACK_PORT, "targetPort": "callbacks", "protocol": "TCP"},
        ]},
    }
    container = {
        "name": "exporter",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": run_args(),
        "ports": [{"name": "metrics", "containerPort": PORT, "protocol": "TCP"},
                  {"name": "callbacks", "containerPort": CALLBACK_PORT, "protocol": "TCP"}],
        "livenessProbe": {"httpGet": {"path": "/-/healthy", "port": "metrics"},
                          "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/-/ready", "port": "metrics"},
                           "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "resources": group.resources,
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "labels": labels(group)},
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": selector(group)},
            "template": {
                # The config's hash: a changed description rolls the pod (the exporter reads its config at start).
                "metadata": {"labels": labels(group), "annotations": {
                    "tiw-push-exporter/config-sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": name}},
                        {"name": "secrets", "secret": {
                            "secretName": f"{name}-credentials", "defaultMode": Octal(0o440),
                            "items": [{"key": key, "path": key} for key in group.key_files]}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
                    ],
                },
            },
            "volumeClaimTemplates": [{"metadata": {"name": "state"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
        },
    }
    return [configmap, service, statefulset]


def kubernetes_group_text(group: Group, image: str, text: str, source: str) -> str:
    name = f"{NAME}-{group.name}"
    header = (f"{GENERATED} from {source}: do not edit, regenerate.\n"
              f"# Account group {group.name}: one exporter (replicas: 1, the only writer of its accounts' budgets)\n"
              f"# with its own state volume. Service {name} serves /metrics and the task API on {PORT}, and on\n"
              f"# {CALLBACK_PORT} only POST /callbacks/tiw: route {group.callback_public_url}\n"
              f"# to that port (your Ingress), and nothing else from the internet. It is also the StatefulSet's\n"
              "# governing Service (one pod: no per-pod DNS needed). State volume 1Gi: SQLite, ~42 MB at\n"
              f"# 50,000 tasks plus its WAL. Secret {name}-credentials: see kustomization.yaml.\n"
              f"# Resources for max_tasks {group.max_tasks:,} and {len(group.accounts)} account(s) (README, Sizing): "
              f"memory {MEMORY_BASE_MIB} MiB\n"
              f"# + {MEMORY_PER_TASK_BYTES // 1000} KB per task, CPU {CPU_PER_ACCOUNT_MILLICORES}m per account "
              f"+ {CPU_PER_1000_TASKS_MILLICORES}m per 1,000 tasks (limit: twice that, at least one core).\n")
    return header + "---\n".join(dump(doc) for doc in kubernetes_group(group, image, text))


def service_monitor() -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": {"name": f"{NAME}-groups", "labels": labels()},
        "spec": {
            "jobLabel": "app.kubernetes.io/name",
            "selector": {"matchLabels": labels()},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}],
        },
    }


SERVICE_MONITOR_HEADER = f"""\
{GENERATED}: do not edit, regenerate.
# One ServiceMonitor for every group's Service (their part-of label). The job label is
# app.kubernetes.io/name, `{APP}`: the job selector of alerts/tiw-push.rules.yml, so the
# shipped alerts and dashboards see all groups as one fleet (a group is the `pod` label,
# {NAME}-<group>-0; no group target label, or the fleet alerts would split per group). The operator
# picks it up when its labels match the Prometheus resource's serviceMonitorSelector
# (kube-prometheus-stack: `release: <helm release>`): add that label with kustomize.
"""


def prometheus_rule_text() -> str:
    rules = yaml.safe_load(RULE["SOURCE"].read_text(encoding="utf-8"))
    return (f"{GENERATED} from alerts/tiw-push.rules.yml: do not edit, regenerate.\n"
            "# The same rules as deploy/kubernetes/prometheusrule.yaml, so this directory applies on its own.\n"
            + dump(RULE["prometheus_rule"](rules)))


def kustomization_text(description: Description, output: Path) -> str:
    files = [f"{g.name}.yaml" for g in description.groups] + ["servicemonitor.yaml", "prometheusrule.yaml"]
    shown = _relative(output)
    secrets = "".join(
        f"#   kubectl create secret generic {NAME}-{g.name}-credentials --from-file={shown}/groups/{g.name}/secrets/\n"
        for g in description.groups)
    expected = "".join(f"#   {shown}/groups/{g.name}/secrets/: {', '.join(g.key_files)}\n" for g in description.groups)
    header = (f"{GENERATED} from {description.source}: do not edit, regenerate.\n"
              f"# kubectl apply -k {shown}/kubernetes/groups   (after creating each group's Secret)\n"
              "#\n"
              "# One directory of key files per group, named as the Secret's keys (never commit them; the\n"
              "# secrets/ directories are git-ignored). <account>.secret-key is that account's SecretKey,\n"
              "# api-token the bearer token of the group's task API, callback-key the CallbackKey set on\n"
              "# every SdkAppId of the group (SetWhiteboardPushCallbackKey):\n"
              f"{expected}"
              "#\n"
              f"{secrets}"
              "#\n"
              "# Use this directory or deploy/kubernetes (one exporter for all accounts) in a namespace, not\n"
              "# both: their ServiceMonitors would scrape the groups twice. Without the Prometheus Operator drop\n"
              "# servicemonitor.yaml and prometheusrule.yaml (see deploy/kubernetes/kustomization.yaml).\n")
    document = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": files}
    links = ("# Your Grafana as people open it, set once: every alert's dashboard_url starts with it (the\n"
             "# replacement rewrites what comes before /d/tiw-push-exporter/). The ConfigMap is never applied.\n")
    image_name = description.image.split("@")[0]
    if ":" in image_name.rsplit("/", 1)[-1]:  # a tag, not a registry's port
        image_name = image_name.rsplit(":", 1)[0]
    footer = ("# Your registry and tag for the image built from the repository's Dockerfile:\n"
              "# images:\n"
              f"#   - name: {image_name}\n"
              f"#     newName: registry.example.com/{image_name.rsplit('/', 1)[-1]}\n"
              f"#     newTag: {__version__}\n")
    return header + dump(document) + links + dump(RULE["dashboard_url_kustomization"]()) + footer


# --- Compose ------------------------------------------------------------------------------------
def compose(description: Description, output: Path = DEPLOY) -> dict[str, Any]:
    services, volumes, secrets = {}, {}, {}
    for group in description.groups:
        name = f"{NAME}-{group.name}"
        services[name] = {
            "image": description.image,
            "build": {"context": os.path.relpath(REPO, output.resolve())},
            "command": run_args(),
            "ports": [f"{group.host_ports['metrics']}:{PORT}", f"{group.host_ports['callbacks']}:{CALLBACK_PORT}"],
            "volumes": [f"./groups/{group.name}/config.yaml:{CONFIG_FILE}:ro", f"{name}-state:{STATE_DIR}"],
            "secrets": [{"source": f"{name}-{key}", "target": f"{SECRETS_DIR}/{key}"} for key in group.key_files],
            "mem_limit": group.resources["limits"]["memory"].replace("Mi", "m"),  # Compose's m is MiB
            "cpus": int(group.resources["limits"]["cpu"].removesuffix("m")) / 1000,
            "restart": "unless-stopped",
        }
        volumes[f"{name}-state"] = {}
        secrets.update({f"{name}-{key}": {"file": f"./groups/{group.name}/secrets/{key}"} for key in group.key_files})
    return {"name": "tiw-push-groups", "services": services, "volumes": volumes, "secrets": secrets}


def compose_text(description: Description, output: Path) -> str:
    targets = ", ".join(f'"<host>:{g.host_ports["metrics"]}"' for g in description.groups)
    ports = "".join(f"#   {g.name}: metrics and task API :{g.host_ports['metrics']}, callbacks "
                    f":{g.host_ports['callbacks']} <- {g.callback_public_url}\n" for g in description.groups)
    header = (f"{GENERATED} from {description.source}: do not edit, regenerate.\n"
              "# One exporter per account group, each with its own config (./groups/<name>/config.yaml), its own\n"
              "# state volume and its own callback URL. From this directory:\n"
              "#\n"
              "#   docker compose -f docker-compose.groups.yml up -d --build\n"
              "#\n"
              f"{ports}"
              "# Expose only the callback ports to the internet (behind your HTTPS proxy). Put each group's key\n"
              "# files in ./groups/<name>/secrets/ first (see kubernetes/groups/kustomization.yaml for the list;\n"
              f"# readable by UID {UID}). Prometheus scrapes all groups as one job, the rules' job name:\n"
              "#\n"
              f"#   - job_name: {APP}\n"
              f"#     static_configs: [{{targets: [{targets}]}}]\n")
    return header + dump(compose(description, output))


# --- writing ------------------------------------------------------------------------------------
GITIGNORE = f"{GENERATED}: the groups' key files are never committed.\n*/secrets/\n"


def render(description: Description, output: Path = DEPLOY) -> dict[str, str]:
    """Every generated file (path relative to the output directory) and its text."""
    files = {"groups/.gitignore": GITIGNORE, "docker-compose.groups.yml": compose_text(description, output)}
    for group in description.groups:
        text = config_text(group, description.source)
        files[f"groups/{group.name}/config.yaml"] = text
        files[f"kubernetes/groups/{group.name}.yaml"] = kubernetes_group_text(group, description.image, text,
                                                                              description.source)
    files["kubernetes/groups/servicemonitor.yaml"] = SERVICE_MONITOR_HEADER + dump(service_monitor())
    files["kubernetes/groups/prometheusrule.yaml"] = prometheus_rule_text()
    files["kubernetes/groups/kustomization.yaml"] = kustomization_text(description, output)
    return files


def leftovers(output: Path, files: dict[str, str]) -> list[Path]:
    """Generated files of groups no longer described."""
    candidates = [*output.glob("kubernetes/groups/*.yaml"), *output.glob("groups/*/config.yaml")]
    return sorted(path for path in candidates if path.relative_to(output).as_posix() not in files
                  and path.read_text(encoding="utf-8").startswith(GENERATED))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is stale")
    parser.add_argument("--description", type=Path, default=DESCRIPTION, help="the account groups (YAML)")
    parser.add_argument("--output-dir", type=Path, default=DEPLOY, help="where the files go (default deploy/)")
    parser.add_argument("--resources", nargs=2, type=int, metavar=("TASKS", "ACCOUNTS"),
                        help="only print the requests and limits for that many tracked tasks and accounts")
    args = parser.parse_args(argv)
    if args.resources:
        print(dump({"resources": resources(*args.resources)}), end="")
        return 0
    try:
        description = load(args.description)
    except DescriptionError as exc:
        print(f"deploy/generate.py: error: {exc}", file=sys.stderr)
        return 2
    files = render(description, args.output_dir)
    status = 0
    for relative, text in files.items():
        target = args.output_dir / relative
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
        status |= ALERTS["write_or_check"](target, text, args.check, COMMAND)
    for path in leftovers(args.output_dir, files):
        if args.check:
            print(f"{path} belongs to no group of the description: run {COMMAND}", file=sys.stderr)
            status = 1
        else:
            path.unlink()
    return status


if __name__ == "__main__":
    sys.exit(main())
