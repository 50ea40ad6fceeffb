"""Idempotency keys: the fingerprint of a request, and replaying a stored outcome."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from orderproc.common.storage.records import IdempotencyRecord
from orderproc.errors import IdempotencyKeyReused, OrderProcError, error_class_for

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-:.]{1,128}$")


def fingerprint(method: str, path: str, body: dict[str, Any]) -> str:
    """Covers method, path and the parsed body, so key order and spacing do not matter."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str)
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(part)
        digest.update(b"\x00")
    return digest.hexdigest()


def replay(record: IdempotencyRecord, *, fingerprint_now: str) -> dict[str, Any]:
    """The first outcome for this key: its result, or its rejection raised again."""
    if record.fingerprint != fingerprint_now:
        raise IdempotencyKeyReused()
    if record.outcome == "error":
        error_class = error_class_for(str(record.payload.get("code")))
        raise _rebuild(error_class, str(record.payload.get("detail", "")))
    return record.payload


def rejection_payload(error: OrderProcError) -> dict[str, Any]:
    return {"code": error.code, "detail": error.detail}


def _rebuild(error_class: type[OrderProcError], detail: str) -> OrderProcError:
    error = error_class.__new__(error_class)
    OrderProcError.__init__(error, detail)
    return error
