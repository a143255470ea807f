"""One three-node cluster (ray.cluster_utils.Cluster) and one POM system on it for every
chaos test; torn down after the last of them (package scope: before tests/integration starts
its own Ray instance in the same `make test` session).

Business time runs 300 times faster from a Wednesday afternoon; each job is at least 20,000
contacts on the voice simulator. POM_CRASH_DIR is set before the raylets start, so every
worker process inherits it: a test arms a crash point of the managers' cycle by creating a
file of that name in it (`services.manager.crash_point`).
"""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from pom_actors.services.manager import CRASH_DIR_ENV

from . import cluster as chaos


def pytest_configure(config):
    config.addinivalue_line("markers", "chaos: faults injected into a three-node cluster mid-job (tests/chaos)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/chaos" in str(item.fspath):
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="package")
def system():
    data_dir = tempfile.mkdtemp(prefix="pom-chaos-")
    os.chmod(data_dir, 0o755)                   # the embedded server runs as its own user
    crash_dir = tempfile.mkdtemp(prefix="pom-crash-")
    saved = os.environ.get(CRASH_DIR_ENV)
    os.environ[CRASH_DIR_ENV] = crash_dir
    try:
        # an answered call of an agent-based job waits 600 business s (2 real s) for an agent:
        # the rule's 2 s are 7 real ms at 300x, less than a manager cycle (test_agents.py)
        started = chaos.start(data_dir, kafka=False, voice_bridge_wait_s=600.0)
    except BaseException:
        _restore(saved)
        raise
    started.crash_dir = crash_dir
    try:
        yield started
    finally:
        started.stop()
        _restore(saved)
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(crash_dir, ignore_errors=True)


def _restore(saved: str | None) -> None:
    if saved is None:
        os.environ.pop(CRASH_DIR_ENV, None)
    else:
        os.environ[CRASH_DIR_ENV] = saved
