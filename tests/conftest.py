"""Shared test settings: integration tests are marked by their folder."""
import os

import pytest


def pytest_collection_modifyitems(items):
    """Integration tests are marked; chaos tests run first whatever order the command line
    names them in: their cluster must come and go before tests/integration starts its
    session's Ray instance (tests/chaos/conftest.py). Run after an integration test, the
    agent chaos tests found no call connected."""
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: "tests/chaos" not in str(item.fspath))      # stable: order kept within


# Property tests search new examples on a developer's machine; under CI they run the same
# examples every time, so a submission is judged on what was run before it was made.
if os.environ.get("CI"):
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, deadline=None)
    settings.load_profile("ci")
