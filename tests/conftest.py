from __future__ import annotations

import os

import pytest
from hypothesis import settings

pytest_plugins = ["tests.support.fixtures", "tests.support.postgres_fixtures"]

settings.register_profile("ci", max_examples=50, deadline=None)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# The longest files first: each runs whole in one worker (`--dist loadfile`, in collection
# order), and one of them left for last kept a worker busy while the other sat idle. The system
# tests are the long ones; the thousands of quick unit tests then even out the end of the run.
FIRST = ("system", "contract", "api")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        folder = item.path.parent.name
        return FIRST.index(folder) if folder in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: the order within a folder stays
