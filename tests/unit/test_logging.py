"""Log lines are JSON with the request's id and user; the access log follows the log level."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from orderproc.common.context import request_id_var, user_var
from orderproc.common.logging import AccessLog, JsonFormatter, configure_logging


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_an_access_line_has_the_shape_of_every_other_line() -> None:
    request_id_var.set("req-1")
    user_var.set("user-1")
    stream = io.StringIO()
    log = AccessLog(stream)
    log.configure(service="gateway", enabled=True)
    log.write("POST", "/api/v1/orders", 201, 0.01234)
    line = json.loads(stream.getvalue())
    record = logging.makeLogRecord({"name": "x", "levelname": "INFO", "msg": "request"})
    other = json.loads(JsonFormatter("gateway").format(record))
    assert set(other) <= set(line)
    assert line["ts"].endswith("+00:00")
    assert len(line["ts"]) == len(other["ts"])
    assert {k: line[k] for k in ("level", "service", "logger", "msg")} == {
        "level": "info",
        "service": "gateway",
        "logger": "orderproc.access",
        "msg": "request",
    }
    assert (line["request_id"], line["user"]) == ("req-1", "user-1")
    assert (line["method"], line["path"], line["status"], line["ms"]) == (
        "POST",
        "/api/v1/orders",
        201,
        12.34,
    )
    assert stream.getvalue().count("\n") == 1


@pytest.mark.usefixtures("restore_root_logger")
def test_the_access_log_is_quiet_above_info(monkeypatch: pytest.MonkeyPatch) -> None:
    from orderproc.common import logging as logs

    stream = io.StringIO()
    log = AccessLog(stream)
    monkeypatch.setattr(logs, "access_log", log)
    configure_logging(service="gateway", level="WARNING")
    log.write("GET", "/health", 200, 0.001)
    assert stream.getvalue() == ""
    configure_logging(service="gateway", level="INFO")
    log.write("GET", "/health", 200, 0.001)
    assert json.loads(stream.getvalue())["path"] == "/health"
