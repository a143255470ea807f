"""Shared test settings: integration tests are marked by their folder."""
import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
