"""JSON logs: one line per event, with the request id, service and user where known."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from orderproc.common.context import request_id_var, user_var

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
    "request_id",
    "user",
}


def line_head(
    moment: datetime,
    *,
    level: str,
    service: str,
    logger: str,
    msg: str,
    request_id: str | None = None,
    user: str | None = None,
) -> dict[str, Any]:
    """The fields every log line starts with; the request id and user default to the
    request's context."""
    event: dict[str, Any] = {
        "ts": moment.isoformat(timespec="milliseconds"),
        "level": level,
        "service": service,
        "logger": logger,
        "msg": msg,
    }
    request_id = request_id or request_id_var.get()
    if request_id:
        event["request_id"] = request_id
    user = user or user_var.get()
    if user:
        event["user"] = user
    return event


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        event = line_head(
            datetime.fromtimestamp(record.created, UTC),
            level=record.levelname.lower(),
            service=self.service,
            logger=record.name,
            msg=record.getMessage(),
            request_id=getattr(record, "request_id", None),
            user=getattr(record, "user", None),
        )
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                event[key] = value
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(event, default=str).decode()


def configure_logging(*, service: str, level: str = "INFO") -> None:
    """JSON lines on stderr, formatted and written inline.

    Measured under load: a log thread formatting lines cost a third of order throughput (539
    against 832 orders/s with the access log off), because it holds the GIL while the event
    loop waits to get it back after each SQLite call. Access lines skip `logging`: AccessLog."""
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [writer]
    root.setLevel(level)
    access_log.configure(service=service, enabled=root.isEnabledFor(logging.INFO))
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class AccessLog:
    """The access log: one line per request, in the same JSON shape as every other log line,
    written straight to the stream (stderr unless given). Through `logging` a line cost about
    30 µs of a request, this way about 8 µs (measured), and it is written on every request."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream  # None: sys.stderr as it is when a line is written
        self._service = "orderproc"
        self._enabled = True

    def configure(self, *, service: str, enabled: bool) -> None:
        self._service = service
        self._enabled = enabled

    def write(self, method: str, path: str, status: int, seconds: float) -> None:
        if not self._enabled:
            return
        event = line_head(
            datetime.now(UTC),
            level="info",
            service=self._service,
            logger="orderproc.access",
            msg="request",
        )
        event.update(method=method, path=path, status=status, ms=round(seconds * 1000, 2))
        out = self._stream or sys.stderr
        out.write(orjson.dumps(event).decode() + "\n")
        out.flush()


access_log = AccessLog()
