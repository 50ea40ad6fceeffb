"""Paging of lists at the HTTP edge: the one envelope every list answers (`ListPage`), signed
cursors (`CursorCodec`), and the dependencies that read `limit`, `cursor` and, on the lists
that keep it, `offset` (docs/api.md, "Lists and paging").

A cursor is `<payload>.<tag>`, both base64url without padding. The payload is a JSON array:
`[1, "k", <time in µs>, <seq>]`, the last row's key in a list kept newest first (see
`storage.records.PageKey`), or `[1, "o", <offset>]` for the catalog, which pages by offset. The
tag is HMAC-SHA256 over the payload and the cursor's scope: the route, the user (empty for a
public list), the filters (the path's parameters and every query parameter but `limit`,
`cursor` and `offset`, as sent) and the sort. The scope is not in the cursor, only under its
tag, so a cursor used by another user, on another route or with other filters or sort fails
as a forged one does: 422 with `loc: ["query", "cursor"]`. The key is derived from the token
secret, as the device cookies' is (`security/devices.py`), so a new secret voids every cursor.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

import orjson
from fastapi import Query, Request
from pydantic import BaseModel, Field

from orderproc.common.clock import from_micros, to_micros
from orderproc.common.storage.records import Page, PageKey
from orderproc.errors import ValidationFailed

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LEGACY_OFFSET",
    "MAX_LIMIT",
    "NEWEST_FIRST",
    "CursorCodec",
    "CursorScope",
    "KeysetStart",
    "ListPage",
    "ListPaging",
    "cursor_paging",
    "legacy_offset_paging",
    "offset_paging",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 250
MAX_LEGACY_OFFSET = 10_000
MAX_CATALOG_OFFSET = 100_000
MAX_CURSOR_LENGTH = 256
NEWEST_FIRST = "created_at.desc,seq.desc"  # the sort of every stored list

_VERSION = 1
_KEY_LABEL = b"orderproc/list-cursor/v1"
_SHAPE = re.compile(r"[A-Za-z0-9_-]{4,200}\.[A-Za-z0-9_-]{43}")
_PAGING_PARAMETERS = frozenset({"limit", "cursor", "offset"})
_MAX_MICROS = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
_MAX_SEQ = 2**63 - 1

T = TypeVar("T")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def refused(message: str, parameter: str = "cursor") -> ValidationFailed:
    return ValidationFailed(
        f"{parameter}: {message}",
        [{"loc": ["query", parameter], "msg": message, "type": "value_error"}],
    )


@dataclass(frozen=True, slots=True)
class CursorScope:
    """What a cursor is good for: one route, one user, one set of filters, one sort."""

    route: str
    user: str
    filters: tuple[tuple[str, str], ...]
    sort: str

    def signed(self) -> bytes:
        return orjson.dumps([self.route, self.user, self.filters, self.sort])


class CursorCodec:
    """Makes and checks cursors; the key comes from the token secret."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()

    def _tag(self, scope: CursorScope, payload: str) -> str:
        message = scope.signed() + b"\n" + payload.encode("ascii")
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def encode(self, scope: CursorScope, kind: Literal["k", "o"], *position: int) -> str:
        payload = _b64(orjson.dumps([_VERSION, kind, *position]))
        return f"{payload}.{self._tag(scope, payload)}"

    def decode(self, token: str, scope: CursorScope, kind: Literal["k", "o"]) -> list[int]:
        """The position in a cursor this codec made for exactly this scope; any other string
        is a 422 (`ValidationFailed` at `query.cursor`). Tags compare in constant time."""
        if len(token) > MAX_CURSOR_LENGTH or not _SHAPE.fullmatch(token):
            raise refused("not a cursor from this API")
        payload, _, tag = token.partition(".")
        if not hmac.compare_digest(tag, self._tag(scope, payload)):
            raise refused(
                "not a cursor of this list for you with these filters and sort; "
                "pass next_cursor back unchanged, with the same query"
            )
        try:
            decoded = orjson.loads(_unb64(payload))
        except (ValueError, binascii.Error):  # only a key-holder could sign one: a bug
            raise refused("not a cursor from this API") from None
        if (
            not isinstance(decoded, list)
            or decoded[:2] != [_VERSION, kind]
            or not all(type(n) is int and n >= 0 for n in decoded[2:])
        ):
            raise refused("not a cursor from this API")
        return decoded[2:]

    def encode_key(self, scope: CursorScope, key: PageKey) -> str:
        return self.encode(scope, "k", to_micros(key.at), key.seq)

    def decode_key(self, token: str, scope: CursorScope) -> PageKey:
        position = self.decode(token, scope, "k")
        if len(position) != 2 or position[0] > _MAX_MICROS or position[1] > _MAX_SEQ:
            raise refused("not a cursor from this API")
        return PageKey(from_micros(position[0]), position[1])


class ListPage(BaseModel, Generic[T]):
    """One page of a list: every list answers this envelope (docs/api.md, "Lists and
    paging")."""

    data: list[T]
    has_more: bool = Field(
        description="More rows may follow: ask again with `cursor` set to `next_cursor`. A "
        "filtered page can be short, even empty, while more follow"
    )
    next_cursor: str | None = Field(
        description="Opaque and signed; good only for this list, for you, with the same "
        "filters and sort. Null on the last page"
    )
    total_count: int | None = Field(
        description="Rows matching the filters, where the store counts them cheaply "
        "(the in-memory catalog); otherwise null"
    )
    limit: int = Field(description="The page size asked for")
    offset: int | None = Field(
        description="The offset asked for, on the lists that still take one (legacy); "
        "null on a page asked for by cursor and on lists that page by cursor only"
    )


@dataclass(frozen=True, slots=True)
class KeysetStart:
    """Where one page of a stored list starts, and how its answer's paging fields are made."""

    limit: int
    after: PageKey | None
    offset: int
    asked_offset: int | None
    scope: CursorScope
    codec: CursorCodec

    def fields(self, page: Page[Any]) -> dict[str, Any]:
        """`has_more`, `next_cursor`, `total_count`, `limit`, `offset` of the answer."""
        key = page.next_key
        return {
            "has_more": key is not None,
            "next_cursor": None if key is None else self.codec.encode_key(self.scope, key),
            "total_count": page.total_count,
            "limit": self.limit,
            "offset": self.asked_offset,
        }


@dataclass(frozen=True, slots=True)
class ListPaging:
    """The paging parameters of one list request, with what binds its cursor."""

    route: str
    limit: int
    offset: int | None
    cursor: str | None
    filters: tuple[tuple[str, str], ...]
    codec: CursorCodec

    def scope(self, *, user: str, sort: str) -> CursorScope:
        return CursorScope(self.route, user, self.filters, sort)

    def keyset(self, *, user: str, sort: str = NEWEST_FIRST) -> KeysetStart:
        """Where this page of a stored list starts: after the cursor's row, at the (legacy)
        offset, or at the top. A bad cursor is a 422."""
        scope = self.scope(user=user, sort=sort)
        after = None if self.cursor is None else self.codec.decode_key(self.cursor, scope)
        return KeysetStart(self.limit, after, self.offset or 0, self.offset, scope, self.codec)

    def start_offset(self, *, user: str, sort: str) -> int:
        """The offset of this page of a list paged by offset (the catalog): the cursor's, or
        the `offset` asked for."""
        if self.cursor is None:
            return self.offset or 0
        position = self.codec.decode(self.cursor, self.scope(user=user, sort=sort), "o")
        if len(position) != 1 or position[0] > MAX_CATALOG_OFFSET:
            raise refused("not a cursor from this API")
        return position[0]

    def offset_cursor(self, offset: int, *, user: str, sort: str) -> str:
        return self.codec.encode(self.scope(user=user, sort=sort), "o", offset)


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=MAX_CURSOR_LENGTH,
        description="The previous page's `next_cursor`, unchanged, with the same filters",
    ),
]


def _paging(
    request: Request, route: str, limit: int, offset: int | None, cursor: str | None
) -> ListPaging:
    if cursor is not None and offset is not None:
        raise refused("a cursor already says where the page starts; leave offset out")
    query = request.query_params.multi_items()
    path = [(f"path.{name}", str(value)) for name, value in request.path_params.items()]
    filters = tuple(sorted([(k, v) for k, v in query if k not in _PAGING_PARAMETERS] + path))
    codec: CursorCodec = request.app.state.runtime.cursors
    return ListPaging(route, limit, offset, cursor, filters, codec)


def cursor_paging(
    route: str, *, default_limit: int = DEFAULT_LIMIT, max_limit: int = MAX_LIMIT
) -> Callable[..., Awaitable[ListPaging]]:
    """The paging dependency of a list that pages by cursor only; `offset` is a 422. A list
    whose rows are small may allow longer pages (the candles: up to 1,000)."""
    rows = Query(default_limit, ge=1, le=max_limit, description="Rows per page")

    async def paging(request: Request, limit: int = rows, cursor: Cursor = None) -> ListPaging:
        if "offset" in request.query_params:
            raise refused("this list pages by cursor only: pass next_cursor as cursor", "offset")
        return _paging(request, route, limit, None, cursor)

    return paging


def legacy_offset_paging(route: str) -> Callable[..., Awaitable[ListPaging]]:
    """The paging dependency of a list the original platform's clients page by offset: it
    also takes `offset` (at most `MAX_LEGACY_OFFSET`), though never with a cursor."""

    async def paging(
        request: Request,
        limit: Limit = DEFAULT_LIMIT,
        offset: Annotated[
            int | None,
            Query(
                ge=0,
                le=MAX_LEGACY_OFFSET,
                description="Legacy: matching rows to skip (at most 10,000); not with `cursor`. "
                "Prefer `cursor`: an offset's cost grows with it, and rows arriving between "
                "pages shift it",
            ),
        ] = None,
        cursor: Cursor = None,
    ) -> ListPaging:
        return _paging(request, route, limit, offset, cursor)

    return paging


def offset_paging(route: str) -> Callable[..., Awaitable[ListPaging]]:
    """The paging dependency of the in-memory catalog: `offset`, or a cursor holding one."""

    async def paging(
        request: Request,
        limit: Limit = DEFAULT_LIMIT,
        offset: Annotated[
            int | None, Query(ge=0, le=MAX_CATALOG_OFFSET, description="Rows to skip")
        ] = None,
        cursor: Cursor = None,
    ) -> ListPaging:
        return _paging(request, route, limit, offset, cursor)

    return paging


async def turn_before_rendering() -> None:
    """Give the event loop one turn between a list page's read and its rendering, so that the
    two run as two callbacks, each holding the loop about half as long: a heavy user's 50-row
    page costs about 2 ms of CPU, most of it making and serializing the rows, and its slowest
    passes held the loop for 5-6 ms in one callback (bench/dataset.py, "Event loop")."""
    await asyncio.sleep(0)
