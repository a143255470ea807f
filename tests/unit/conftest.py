"""Unit tests run without Ray: when a session collects only tests/unit (as `make test`'s first
run does), importing Ray fails, so nothing under test may need it. A session that also runs
integration tests needs Ray and leaves it importable."""
import sys
from pathlib import Path

HERE = Path(__file__).parent.resolve()


def pytest_configure(config):
    paths = [Path(str(arg).split("::")[0]).resolve() for arg in config.args]
    if paths and all(p == HERE or HERE in p.parents for p in paths):
        sys.modules["ray"] = None  # type: ignore[assignment]
