"""A micro-cache for the public catalog: repeated GETs of the asset list and of one asset are
answered from memory until the next price tick.

The first request for a path and query string in a tick goes through the app as usual
(validation, errors, rendering); its 200 answer is kept byte for byte and served to the same
request until the catalog's version moves. Rate limits and security headers still apply: this
sits inside those middlewares."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CATALOG_PATH = "/api/v1/inventory/assets"
MAX_ENTRIES = 1024


class CatalogResponseCache:
    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self._state = state  # app.state; its runtime (and catalog) is built at start-up
        self._version = -1
        self._answers: dict[tuple[str, bytes], tuple[bytes, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not path.startswith(CATALOG_PATH)
            or path.endswith("/candles")
        ):
            await self.app(scope, receive, send)
            return
        version = self._state.runtime.catalog.version
        if version != self._version:
            self._version, self._answers = version, {}
        key = (path, scope.get("query_string", b""))
        cached = self._answers.get(key)
        if cached is not None:
            body, route = cached
            scope["route"] = route  # for the metrics label
            await _send_json(send, body)
            return
        await self._fill(scope, receive, send, key, version)

    async def _fill(
        self, scope: Scope, receive: Receive, send: Send, key: tuple[str, bytes], version: int
    ) -> None:
        status = 0
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        still_current = self._state.runtime.catalog.version == version == self._version
        if status == 200 and still_current and len(self._answers) < MAX_ENTRIES:
            self._answers[key] = (b"".join(chunks), scope.get("route"))


async def _send_json(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
