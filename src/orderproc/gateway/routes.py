"""The gateway's routing table, as data: which service answers a path.

One table serves every router in front of the services: the gateway's proxy (`service_for`,
on every request), the nginx configuration and the Kubernetes Ingress (`orderproc.deploy`
renders both from `ROUTES`, and tests keep the committed files equal to what it renders).

Matching is by whole path segments, longest prefix first: `/api/v1/orders` answers
`/api/v1/orders` and `/api/v1/orders/42` but not `/api/v1/ordersx`; an exact entry answers its
own path only (`/api/v1/balance`, while `/api/v1/balance/asset/BTC` belongs to orders). This is
what a Kubernetes Ingress means by `pathType: Prefix` and `Exact`, and what nginx does with
`location = /p` plus `location /p/`. Under `/api`, a path no service claims is the gateway's
own to answer (404); every path outside `/api` goes to the web UI, except the gateway's own
operations (`/health`, `/ready`, `/metrics`, `/docs`, `/openapi.json`).

Paths are matched as the services route them: the decoded path without the query string
(ASGI's `scope["path"]`), case-sensitive.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "API_PREFIX",
    "IDENTITY_HEADERS",
    "ROUTES",
    "Route",
    "Service",
    "route_for",
    "service_for",
]

API_PREFIX = "/api/v1"


class Service(StrEnum):
    """A process of the platform; each value is also the name of its package."""

    USERS = "users"
    INVENTORY = "inventory"
    ORDERS = "orders"
    WEBUI = "webui"
    GATEWAY = "gateway"  # the router itself: its own operations and unknown API paths


@dataclass(frozen=True, slots=True)
class Route:
    path: str  # absolute, no trailing slash (but "/")
    service: Service
    exact: bool = False  # this path only; otherwise the path and everything below it
    stream: bool = False  # server-sent events: pass through unbuffered, keep open for long

    def matches(self, path: str) -> bool:
        """The reference rule that `route_for` speeds up."""
        if path == self.path:
            return True
        return not self.exact and path.startswith(self.path.rstrip("/") + "/")


def _api(service: Service, *paths: str, exact: bool = False, stream: bool = False) -> list[Route]:
    return [Route(API_PREFIX + p, service, exact=exact, stream=stream) for p in paths]


_DECLARED: list[Route] = [
    # Auth, profile, cash, user administration.
    *_api(Service.USERS, "/auth", "/balance/deposit", "/balance/withdraw"),
    *_api(Service.USERS, "/balance/transactions", "/admin/users", "/admin/audit"),
    *_api(Service.USERS, "/balance", exact=True),
    # The catalog, prices and their administration.
    *_api(Service.INVENTORY, "/inventory", "/admin/assets", "/admin/sandbox"),
    *_api(Service.INVENTORY, "/stream/prices", stream=True),
    # Orders, positions, the asset ledger, reconciliation, the user's own order events.
    *_api(Service.ORDERS, "/orders", "/portfolio", "/balance/asset", "/assets"),
    *_api(Service.ORDERS, "/admin/reconcile", "/stream/ticket"),
    *_api(Service.ORDERS, "/stream/orders", stream=True),
    # The gateway's own: operations and docs, and any other API path (answered 404).
    Route("/api", Service.GATEWAY),
    *(Route(p, Service.GATEWAY, exact=True) for p in ("/health", "/ready", "/metrics")),
    Route("/openapi.json", Service.GATEWAY, exact=True),
    Route("/docs", Service.GATEWAY),
    # The web UI: its live prices, and every other path.
    Route("/live", Service.WEBUI, stream=True),
    Route("/", Service.WEBUI),
]

# Longest first (ties by path, so renderings are stable): the first that matches wins.
ROUTES: tuple[Route, ...] = tuple(sorted(_DECLARED, key=lambda r: (-len(r.path), r.path)))
ROOT = next(r for r in ROUTES if r.path == "/")

# Headers that claim who the client is or where it came from. A router in front of the services
# drops each one a client sends; only the router itself may set the forwarding ones.
IDENTITY_HEADERS: tuple[str, ...] = (
    "X-User-Id",
    "X-User-Role",
    "X-User",
    "X-Username",
    "X-Auth-User",
    "X-Authenticated-User",
    "X-Forwarded-User",
    "X-Remote-User",
    "Remote-User",
    "X-Real-IP",
    "Forwarded",
)

# Lookup: a path's own entry, then each shorter segment prefix: one dict probe per segment.
_WHOLE: dict[str, Route] = {r.path: r for r in ROUTES}
_BELOW: dict[str, Route] = {r.path: r for r in ROUTES if not r.exact and r.path != "/"}


def _check(routes: tuple[Route, ...]) -> None:
    seen: set[str] = set()
    for route in routes:
        if not route.path.startswith("/") or (route.path != "/" and route.path.endswith("/")):
            raise ValueError(f"route path {route.path!r}: absolute, without a trailing slash")
        if route.path in seen:
            raise ValueError(f"route path {route.path!r} is declared twice")
        seen.add(route.path)


_check(ROUTES)


def route_for(path: str) -> Route:
    """The entry that answers `path` (a decoded path without its query)."""
    found = _WHOLE.get(path)
    if found is not None:
        return found
    end = len(path)
    while (end := path.rfind("/", 0, end)) > 0:
        found = _BELOW.get(path[:end])
        if found is not None:
            return found
    return ROOT


def service_for(path: str) -> Service:
    """The service that answers `path` (a decoded path without its query)."""
    return route_for(path).service
