from __future__ import annotations

import os

from hypothesis import settings

pytest_plugins = ["tests.support.fixtures", "tests.support.postgres_fixtures"]

settings.register_profile("ci", max_examples=50, deadline=None)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
