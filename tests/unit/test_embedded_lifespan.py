"""The embedded app's lifespan: a start-up that fails closes what it opened (the store, Redis
clients, background tasks begun before the failure), as the services' apps do."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderproc.gateway.app import create_app
from orderproc.runtime import Runtime
from orderproc.testing import test_settings as settings_in


async def test_a_start_up_that_fails_closes_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[Runtime] = []
    close = Runtime.close

    async def failing_start(self: Runtime) -> None:
        raise RuntimeError("start-up failed")

    async def recorded_close(self: Runtime) -> None:
        closed.append(self)
        await close(self)

    monkeypatch.setattr(Runtime, "start_background", failing_start)
    monkeypatch.setattr(Runtime, "close", recorded_close)
    app = create_app(settings_in(tmp_path, price_feed="off"))
    with pytest.raises(RuntimeError, match="start-up failed"):
        async with app.router.lifespan_context(app):
            pass
    assert closed == [app.state.runtime]
