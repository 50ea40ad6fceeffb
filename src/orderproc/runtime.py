"""The embedded runtime: every service's parts on one core, in one process. Built by the
embedded composition root (`orderproc.gateway.app`) and kept in `app.state.runtime`; each
service's API module reads it through the protocol it declares (`UsersRuntime`,
`InventoryRuntime`, `OrdersRuntime`, `WebuiRuntime`), which this class satisfies field for
field."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from orderproc.common.clock import Clock
from orderproc.common.redis_shared import rate_limiter_for
from orderproc.common.runtime import Core, jwt_secret_for, open_core, parts_of
from orderproc.common.settings import Settings
from orderproc.common.throttle import RateLimiter
from orderproc.inventory import api as inventory_api
from orderproc.inventory.app import InventoryParts, build_inventory
from orderproc.orders import api as orders_api
from orderproc.orders.app import OrdersParts, build_orders
from orderproc.users import api as users_api
from orderproc.users.app import UsersParts, build_users
from orderproc.webui.runtime import WebuiRuntime

__all__ = ["Runtime", "build_runtime", "jwt_secret_for"]


@dataclass(kw_only=True, eq=False)
class Runtime(Core, UsersParts, InventoryParts, OrdersParts):
    """Users, inventory and orders on one core; orders read inventory's price cache directly.
    The gateway's own part is the rate limiter (its login blocking is the users' throttle)."""

    rate_limiter: RateLimiter
    # The web UI's way to the API: none, it is this same app (called in-process).
    upstream: httpx.AsyncClient | None = None

    async def start_background(self) -> None:
        """Start what runs on its own: the purge of expired idempotency records and revocations
        (unless its interval is 0) and the price ticker (unless the feed is off)."""
        self.start_users()
        await self.start_inventory(self.settings)

    async def close(self) -> None:
        await self.stop_users()
        await self.stop_inventory()
        await self.rate_limiter.aclose()
        await self.close_core()


async def build_runtime(
    settings: Settings, *, clock: Clock | None = None, service: str = "orderproc"
) -> Runtime:
    core = await open_core(settings, clock=clock, service=service)
    users = build_users(core)
    inventory = await build_inventory(core)
    orders = build_orders(core, prices=inventory.prices)
    return Runtime(
        **parts_of(core),
        **parts_of(users),
        **parts_of(inventory),
        **parts_of(orders),
        rate_limiter=rate_limiter_for(settings, users.login_throttle, metrics=core.metrics),
    )


def _satisfies(
    runtime: Runtime,
) -> tuple[
    users_api.UsersRuntime, inventory_api.InventoryRuntime, orders_api.OrdersRuntime, WebuiRuntime
]:
    return runtime, runtime, runtime, runtime  # mypy checks it against each service's protocol
