"""Unit tests run without Ray: when a session collects only tests/unit (as `make test`'s first
run does), importing Ray fails, so nothing under test may need it. A session that also runs
integration tests needs Ray and leaves it importable."""
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent.resolve()


def pytest_configure(config):
    paths = [Path(str(arg).split("::")[0]).resolve() for arg in config.args]
    if paths and all(p == HERE or HERE in p.parents for p in paths):
        sys.modules["ray"] = None  # type: ignore[assignment]


@pytest.fixture
def pom_run(monkeypatch):
    """`pom run` up to the checks it makes before starting anything (Ray is not importable in
    unit tests: a check that passes fails the test there): no signal handlers installed, no
    .env of the working tree. Returns `cli.main`."""
    from api import cli
    from pom_actors import supervise

    class Signals:
        def install(self):
            pass

    monkeypatch.setattr(supervise, "StopSignals", Signals)
    monkeypatch.chdir("/")
    return cli.main


@pytest.fixture
def http():
    """The gateway with an admin's token and no database: `deps.db` gives a placeholder, so a
    route answers from its checks alone, or from a store a test monkeypatches."""
    from fastapi.testclient import TestClient

    from api import auth, deps
    from api.app import create_app
    from pom_actors.config import Settings

    app = create_app(Settings(database_url="postgresql://unused@127.0.0.1:1/none", demo=False))
    app.dependency_overrides[deps.db] = lambda: object()
    return TestClient(app, headers=auth.for_tests(app))
