"""Identifiers are UUIDv7 strings: valid, time-ordered across milliseconds, unique."""

from __future__ import annotations

import time
import uuid

from orderproc.common.ids import new_id


def test_an_id_is_a_canonical_uuid_version_7() -> None:
    for _ in range(1000):
        text = new_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_ids_carry_their_millisecond_and_sort_by_it() -> None:
    before = time.time_ns() // 1_000_000
    first = new_id()
    time.sleep(0.002)
    second = new_id()
    after = time.time_ns() // 1_000_000
    assert first < second
    millis = uuid.UUID(first).int >> 80
    assert before <= millis <= after


def test_ids_do_not_repeat() -> None:
    assert len({new_id() for _ in range(10_000)}) == 10_000
