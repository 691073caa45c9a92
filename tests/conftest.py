"""Shared pytest setup: hypothesis profiles, the ``slow`` tier and fixtures used by several modules.

Profiles: ``ci`` (the default under ``CI=true``) runs each property test's own example count;
``dev`` (the default otherwise) caps examples for a fast inner loop. Neither fails a test for
slow input generation: the machines are shared and noisy, and time is for benchmarks, not tests.
Pick one explicitly with ``--hypothesis-profile``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from exporter.simulator import Simulator
from tests.constants import SECRET_KEY

settings.register_profile("ci", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=25)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs a command configures logging globally (logs.configure); the next test must not inherit it."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.fixture(scope="session")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A secret key file holding ``SECRET_KEY``, newline-terminated as an editor saves it. Read-only."""
    path = tmp_path_factory.mktemp("secrets") / "secret-key"
    path.write_text(SECRET_KEY + "\n")
    return path


@pytest.fixture
def unlimited_sim() -> Iterator[Simulator]:
    """An in-process simulator without a rate limit (tests that count requests set their own)."""
    simulator = Simulator(rate_limit=0).start()
    try:
        yield simulator
    finally:
        simulator.close()


@pytest.fixture
def sim_options() -> dict[str, Any]:
    """Options every simulator of ``make_sim`` starts with; a test module overrides this fixture."""
    return {}


@pytest.fixture
def make_sim(sim_options: dict[str, Any]) -> Iterator[Callable[..., Simulator]]:
    """Start simulators with ``sim_options`` and the given options; all are closed after the test."""
    started: list[Simulator] = []

    def make(**options: Any) -> Simulator:
        sim = Simulator(**{**sim_options, **options}).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.close()


@pytest.fixture
def sim(make_sim: Callable[..., Simulator]) -> Simulator:
    return make_sim()
