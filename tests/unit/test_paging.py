"""List cursors (`common/paging.py`): signed, opaque, and good only for the scope they were made
for; anything else is a 422 at `query.cursor`."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from orderproc.common.paging import CursorCodec, CursorScope
from orderproc.common.storage.records import PageKey
from orderproc.errors import ValidationFailed

SECRET = "a test secret that is long enough to be a real one"
SCOPE = CursorScope(
    route="balance_list_transactions",
    user="0190a1b2-0000-7000-8000-000000000001",
    filters=(("transaction_type", "deposit"),),
    sort="created_at.desc,seq.desc",
)
KEY = PageKey(datetime(2026, 1, 15, 12, 0, 0, 123456, tzinfo=UTC), 42)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def assert_refused(decode: Callable[[], object]) -> None:
    with pytest.raises(ValidationFailed) as refused:
        decode()
    assert [error["loc"] for error in refused.value.errors] == [["query", "cursor"]]
    assert refused.value.code == "VALIDATION_ERROR"


def test_a_key_round_trips_exactly_and_the_cursor_is_url_safe() -> None:
    codec = CursorCodec(SECRET)
    cursor = codec.encode_key(SCOPE, KEY)
    assert codec.decode_key(cursor, SCOPE) == KEY
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert len(cursor) < 100
    # Opaque, not secret: it holds the key, not the scope (the user id is not in it).
    assert SCOPE.user not in base64.urlsafe_b64decode(cursor.split(".")[0] + "==").decode()


def test_the_same_key_in_the_same_scope_makes_the_same_cursor() -> None:
    assert CursorCodec(SECRET).encode_key(SCOPE, KEY) == CursorCodec(SECRET).encode_key(SCOPE, KEY)


@pytest.mark.parametrize(
    "other",
    [
        replace(SCOPE, user="0190a1b2-0000-7000-8000-000000000002"),
        replace(SCOPE, route="orders_list"),
        replace(SCOPE, filters=()),
        replace(SCOPE, filters=(("transaction_type", "withdraw"),)),
        replace(SCOPE, filters=(("transaction_type", "deposit"), ("start", "2026-01-01"))),
        replace(SCOPE, sort="price.asc"),
    ],
    ids=["other user", "other route", "no filters", "other filter", "more filters", "other sort"],
)
def test_a_cursor_is_refused_in_any_other_scope(other: CursorScope) -> None:
    codec = CursorCodec(SECRET)
    cursor = codec.encode_key(SCOPE, KEY)
    assert_refused(lambda: codec.decode_key(cursor, other))


def test_a_new_secret_voids_every_cursor() -> None:
    cursor = CursorCodec(SECRET).encode_key(SCOPE, KEY)
    assert_refused(lambda: CursorCodec(SECRET + "!").decode_key(cursor, SCOPE))


def forged_payload(cursor: str) -> str:
    """Another key under the old tag: what a client would try to skip ahead."""
    tag = cursor.partition(".")[2]
    return f"{b64(orjson.dumps([1, 'k', 0, 1]))}.{tag}"


@pytest.mark.parametrize(
    "spoil",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),
        lambda c: c[:-1],
        lambda c: c[: len(c) // 2],
        lambda c: c.split(".")[0],
        lambda c: "." + c.split(".")[1],
        lambda c: c + "=",
        lambda c: c.replace(".", ".."),
        lambda c: c + "x" * 300,
        forged_payload,
        lambda c: "",
        lambda c: "100",
        lambda c: "\u00b2",
    ],
    ids=[
        "tag changed",
        "tag cut",
        "truncated",
        "no tag",
        "no payload",
        "padding",
        "two dots",
        "too long",
        "payload swapped",
        "empty",
        "an old offset cursor",
        "not ascii",
    ],
)
def test_a_forged_or_broken_cursor_is_refused(spoil: Callable[[str], str]) -> None:
    codec = CursorCodec(SECRET)
    cursor = codec.encode_key(SCOPE, KEY)
    assert_refused(lambda: codec.decode_key(spoil(cursor), SCOPE))


def test_an_offset_cursor_is_not_a_key_cursor_even_in_the_same_scope() -> None:
    codec = CursorCodec(SECRET)
    assert_refused(lambda: codec.decode_key(codec.encode(SCOPE, "o", 50), SCOPE))
    assert codec.decode(codec.encode(SCOPE, "o", 50), SCOPE, "o") == [50]


@pytest.mark.parametrize(
    "position",
    [[-1, 5], [1, -5], [2**62, 5], [1, 2**63], [1], [1, 2, 3]],
    ids=["negative time", "negative seq", "time past 9999", "seq past bigint", "short", "long"],
)
def test_a_signed_but_impossible_key_is_refused(position: list[int]) -> None:
    """Only a holder of the key could sign these; refused all the same, never a 500."""
    codec = CursorCodec(SECRET)
    assert_refused(lambda: codec.decode_key(codec.encode(SCOPE, "k", *position), SCOPE))
