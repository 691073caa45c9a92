"""The release artifacts: an sdist and a wheel that PyPI would take and that run the demo in a fresh venv.

Built from a copy of exactly the files the package is made of, with PyPA's ``build`` (isolated build
environment, so the declared build requirements are what is used) and checked with ``twine check
--strict``; the wheel is then installed into a new virtualenv and its ``tiw-exporter demo`` serves
/metrics naming this version.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest
import requests

from exporter import __version__
from tests.harness import metric, scrape
from tests.procs import Process

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "exporter")
DEPRECATION_HINTS = ("License classifiers are deprecated", "project.license` as a TOML table is deprecated",
                     "SetuptoolsDeprecationWarning")


def _run(args: list[str | Path], cwd: Path) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path | str]]:
    root = tmp_path_factory.mktemp("release")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, source / name)
    output = _run([sys.executable, "-m", "build", "--outdir", root / "dist", source], cwd=root)
    yield {"dist": root / "dist", "log": output, "root": root}


def test_build_makes_one_sdist_and_one_wheel_of_this_version_without_deprecations(dist) -> None:
    names = sorted(path.name for path in Path(dist["dist"]).iterdir())
    assert names == [f"tiw_push_exporter-{__version__}-py3-none-any.whl", f"tiw_push_exporter-{__version__}.tar.gz"]
    assert not [hint for hint in DEPRECATION_HINTS if hint in str(dist["log"])]


def test_twine_accepts_both_distributions(dist) -> None:
    files = sorted(Path(dist["dist"]).iterdir())
    output = _run([sys.executable, "-m", "twine", "check", "--strict", *files], cwd=Path(dist["root"]))
    assert output.count("PASSED") == 2


def test_the_metadata_names_the_license_the_urls_and_the_readme(dist) -> None:
    wheel = next(Path(dist["dist"]).glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(meta_name).decode())
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in archive.namelist())
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["Version"] == __version__
    assert {url.split(",")[0] for url in metadata.get_all("Project-URL")} >= {"Homepage", "Changelog"}
    assert metadata.get_payload().startswith("# tiw-push-exporter")
    with tarfile.open(next(Path(dist["dist"]).glob("*.tar.gz"))) as sdist:
        members = {Path(m).name for m in sdist.getnames()}
    assert {"LICENSE", "README.md", "pyproject.toml", "cli.py"} <= members


def test_the_wheel_runs_the_demo_in_a_fresh_venv(dist) -> None:
    venv = Path(dist["root"]) / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=Path(dist["root"]))
    wheel = next(Path(dist["dist"]).glob("*.whl"))
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=Path(dist["root"]))
    assert _run([venv / "bin" / "tiw-exporter", "--version"], cwd=Path(dist["root"])).strip() == (
        f"tiw-exporter, version {__version__}")
    process = Process([str(venv / "bin" / "tiw-exporter"), "demo", "--listen", "127.0.0.1:0",
                       "--simulator-listen", "127.0.0.1:0"])
    try:
        url = process.wait_for(r"Metrics: +(?P<url>http://127\.0\.0\.1:\d+)/metrics", timeout=60).group("url")
        assert metric(scrape(url), "tiw_exporter_build_info", version=__version__,
                      python_version=_python_version(venv)) == 1
        assert requests.get(f"{url}/-/healthy", timeout=5).status_code == 200
        process.proc.send_signal(signal.SIGINT)
        assert process.proc.wait(timeout=15) == 0
    finally:
        process.stop()
    assert "Traceback" not in process.output


def _python_version(venv: Path) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()
