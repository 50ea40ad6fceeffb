"""The platform's API documentation: one OpenAPI document and Swagger UI, in both run modes.

Embedded, FastAPI builds the document from every route of the one app (`gateway/app.py`). In
distributed mode the gateway serves it (`PlatformDocs`): it fetches each service's own
`/openapi.json` over its upstream pool and merges them (`merge`): the paths the routing table
sends to that service, the components (a name two services define differently is renamed in
the second, with its references), and the gateway's own operations. The merged document is
cached; it is fetched again when it is a minute old, or a few seconds after a service did not
answer; a service that does not answer is left out, and the document says so (in its
description and in `x-orderproc-services`). Only `/openapi.json` waits for a fetch, for two
seconds at most: nothing on the proxy path does.

Swagger UI's files are vendored (`SWAGGER_DIR`), so the docs work without internet access; both
modes serve the same page (`swagger_ui_page`).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from fastapi.openapi.docs import get_swagger_ui_html

from orderproc import __version__
from orderproc.gateway.routes import Service, route_for
from orderproc.gateway.upstream import Replicas, UpstreamError, UpstreamGarbage

__all__ = [
    "DESCRIPTION",
    "DOCUMENTED",
    "OPENAPI_TAGS",
    "SWAGGER_DIR",
    "PlatformDocs",
    "merge",
    "openapi_tags",
    "swagger_ui_page",
]

Document = dict[str, Any]

SWAGGER_DIR = Path(__file__).parent / "static" / "swagger-ui"
TITLE = "Order Processor"
DOCUMENTED: tuple[Service, ...] = (Service.USERS, Service.INVENTORY, Service.ORDERS)
OPENAPI_TAGS = [
    {"name": "auth", "description": "Register, log in, log out, profile and password."},
    {"name": "cash", "description": "USD balance, deposits, withdrawals and the cash ledger."},
    {"name": "catalog", "description": "Crypto assets, prices and candles."},
    {"name": "orders", "description": "Place, list and cancel orders."},
    {"name": "portfolio", "description": "Positions, P&L and the asset ledger."},
    {
        "name": "streams",
        "description": "Live prices as server-sent events, and tickets for browsers' streams.",
    },
    {"name": "admin", "description": "Users, audit log, assets and reconciliation (admins)."},
    {
        "name": "sandbox",
        "description": "Pause prices, set them, step a tick (admins; only "
        "with ORDERPROC_SANDBOX=true).",
    },
    {"name": "operations", "description": "Health, readiness and metrics."},
]


def openapi_tags(*, sandbox: bool) -> list[dict[str, str]]:
    """The tags in reading order; the sandbox's only where its routes exist."""
    return [tag for tag in OPENAPI_TAGS if sandbox or tag["name"] != "sandbox"]


DESCRIPTION = """
A trading-simulation platform. Register, then press **Authorize** and log in with your username
and password. Deposit USD, browse about 100 crypto assets whose prices move, buy and sell them
(`POST /api/v1/orders`), and follow your portfolio, P&L and ledgers.

Money is exact: amounts, quantities and prices are decimal strings. POSTs that move money take an
optional `Idempotency-Key`, so a retry never acts twice. Errors are RFC 7807
`application/problem+json` with a stable `code` and the `request_id`.
"""


def swagger_ui_page() -> bytes:
    """Swagger UI on `/openapi.json`, from the vendored files under `/docs/static`."""
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Order Processor API",
        swagger_js_url="/docs/static/swagger-ui-bundle.js",
        swagger_css_url="/docs/static/swagger-ui.css",
        swagger_favicon_url="/docs/static/favicon-32x32.png",
        oauth2_redirect_url="/docs/static/oauth2-redirect.html",
        swagger_ui_parameters={"persistAuthorization": True},
    )
    return bytes(page.body)


# -- the gateway's own operations, as the embedded app names them

_JSON_OBJECT = {"type": "object", "additionalProperties": True}
_READINESS = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ready", "degraded", "unavailable"]},
        "services": {
            "type": "object",
            "description": "Each service's readiness (each replica's, when it has several).",
            "additionalProperties": _JSON_OBJECT,
        },
    },
    "required": ["status", "services"],
}
GATEWAY_PATHS: Document = {
    "/health": {
        "get": {
            "tags": ["operations"],
            "summary": "Health",
            "description": "The gateway is alive (it does not ask the services: see /ready).",
            "operationId": "operations_health",
            "responses": {
                "200": {
                    "description": "Alive",
                    "content": {"application/json": {"schema": _JSON_OBJECT}},
                }
            },
        }
    },
    "/ready": {
        "get": {
            "tags": ["operations"],
            "summary": "Ready",
            "description": "Each service's `/ready`, asked at once (2 s each). `degraded` when "
            "only the web UI is not ready; 503 when users, inventory or orders is not. Either "
            "way the answer is this summary, naming each service's state.",
            "operationId": "operations_ready",
            "responses": {
                "200": {
                    "description": "Ready, or degraded",
                    "content": {"application/json": {"schema": _READINESS}},
                },
                "503": {
                    "description": "A service the API needs is not ready; see Retry-After",
                    "content": {"application/json": {"schema": _READINESS}},
                },
            },
        }
    },
    "/metrics": {
        "get": {
            "tags": ["operations"],
            "summary": "Metrics",
            "description": "The gateway's Prometheus metrics.",
            "operationId": "operations_metrics",
            "responses": {"200": {"description": "Prometheus metrics"}},
        }
    },
}


def merge(parts: Mapping[Service, Document | str]) -> Document:
    """One document from each service's (`parts`: a service's document, or why it has none).
    A service keeps the paths the routing table sends to it (its own `/health`, `/ready` and
    `/metrics` are the gateway's here). A component another service already defined differently
    is renamed `{Service}{Name}` in this one, with every reference to it."""
    paths: Document = {}
    components: dict[str, Document] = {}
    services: Document = {}
    missing: list[str] = []
    for service in DOCUMENTED:
        part = parts.get(service, "not asked")
        if isinstance(part, str):
            services[service.value] = {"status": "missing", "detail": part}
            missing.append(f"{service.value} ({part})")
            continue
        part = _renamed_apart(service, part, components)
        for kind, items in part.get("components", {}).items():
            components.setdefault(kind, {}).update(items)
        kept = {p: item for p, item in part["paths"].items() if route_for(p).service is service}
        paths.update(kept)
        services[service.value] = {"status": "ok", "paths": len(kept)}
    paths.update(copy.deepcopy(GATEWAY_PATHS))
    # A tag only where an operation has it: the sandbox's routes exist only with the sandbox on.
    used = {
        tag
        for item in paths.values()
        for operation in item.values()
        if isinstance(operation, dict)
        for tag in operation.get("tags", ())
    }
    description = DESCRIPTION
    if missing:
        description += (
            "\n**Incomplete:** no document from "
            + ", ".join(missing)
            + ": its paths are missing here until it answers again (the gateway asks every few "
            "seconds meanwhile).\n"
        )
    return {
        "openapi": _version(parts),
        "info": {
            "title": TITLE,
            "description": description,
            "version": __version__,
            "x-orderproc-services": services,
        },
        "paths": paths,
        "components": {kind: dict(sorted(items.items())) for kind, items in components.items()},
        "tags": [copy.deepcopy(tag) for tag in OPENAPI_TAGS if tag["name"] in used],
    }


def _version(parts: Mapping[Service, Document | str]) -> str:
    for part in parts.values():
        if isinstance(part, dict) and isinstance(part.get("openapi"), str):
            return str(part["openapi"])
    return "3.1.0"  # what FastAPI writes


def _renamed_apart(service: Service, part: Document, seen: dict[str, Document]) -> Document:
    """`part` with each component that `seen` holds under the same name but different content
    renamed, and its references (and, for security schemes, its requirements) with it."""
    renames: dict[str, dict[str, str]] = {}
    for kind, items in part.get("components", {}).items():
        for name, value in items.items():
            if name in seen.get(kind, {}) and seen[kind][name] != value:
                renames.setdefault(kind, {})[name] = service.value.title() + name
    if not renames:
        return part
    refs = {
        f"#/components/{kind}/{old}": f"#/components/{kind}/{new}"
        for kind, names in renames.items()
        for old, new in names.items()
    }
    schemes = renames.get("securitySchemes", {})

    def walk(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str) and node["$ref"] in refs:
                return {**node, "$ref": refs[node["$ref"]]}
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            if key == "security":
                return [{schemes.get(n, n): v for n, v in req.items()} for req in node]
            return [walk(v) for v in node]
        return node

    renamed: Document = walk(part)
    for kind, names in renames.items():
        items = renamed["components"][kind]
        renamed["components"][kind] = {names.get(n, n): v for n, v in items.items()}
    return renamed


class PlatformDocs:
    """The merged document of the services behind the gateway, cached (see the module)."""

    def __init__(
        self,
        upstreams: Mapping[Service, Replicas],
        *,
        fresh_for: float = 60.0,
        retry_after: float = 5.0,
        timeout: float = 2.0,
        max_bytes: int = 4 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._upstreams = {s: upstreams[s] for s in DOCUMENTED}
        self.fresh_for = fresh_for
        self.retry_after = retry_after
        self.timeout = timeout
        self._max_bytes = max_bytes
        self._clock = clock
        self._body: bytes | None = None
        self._due = 0.0
        self._lock = asyncio.Lock()

    async def body(self) -> bytes:
        """The document as JSON: the cached one, unless it is due for a refresh."""
        if self._body is None or self._clock() >= self._due:
            async with self._lock:  # one fetch at a time; who waited takes its result
                if self._body is None or self._clock() >= self._due:
                    await self.refresh()
        assert self._body is not None
        return self._body

    async def refresh(self) -> Document:
        found = await asyncio.gather(*(self._fetch(r) for r in self._upstreams.values()))
        parts = dict(zip(self._upstreams, found, strict=True))
        document = merge(parts)
        self._body = orjson.dumps(document)
        incomplete = any(isinstance(p, str) for p in found)
        self._due = self._clock() + (self.retry_after if incomplete else self.fresh_for)
        return document

    async def _fetch(self, upstream: Replicas) -> Document | str:
        """A service's document, or why there is none (in words, for the description)."""
        try:
            async with asyncio.timeout(self.timeout):
                status, body = await _get(upstream, "/openapi.json", self.timeout, self._max_bytes)
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except UpstreamError as error:
            return str(error)
        if status != 200:
            return f"its /openapi.json answered {status}"
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "its /openapi.json is not JSON"
        if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
            return "its /openapi.json is not an OpenAPI document"
        return document


async def _get(upstream: Replicas, path: str, timeout: float, limit: int) -> tuple[int, bytes]:
    """GET `path` from `upstream` over its pool: the status and the body."""
    connection = await upstream.acquire()
    host = connection.pool.host_header if connection.pool else upstream.host_header
    try:
        connection.begin(no_body=False)
        connection.write(
            b"GET %s HTTP/1.1\r\nhost: %s\r\nuser-agent: orderproc-gateway\r\n"
            b"accept: application/json\r\n\r\n" % (path.encode(), host)
        )
        status, _ = await connection.head(timeout)
        parts: list[bytes] = []
        size = 0
        while (data := await connection.chunk(timeout)) is not None:
            size += len(data)
            if size > limit:
                raise UpstreamGarbage(f"its {path} is over {limit} bytes")
            parts.append(data)
    except BaseException:  # a timeout's cancellation too: the connection is in an unknown state
        connection.close()
        raise
    upstream.release(connection)
    return status, b"".join(parts)
