"""What the bid and ask cost a tick: the CPU of `Catalog.apply_prices` (the read model's part
of a tick: each moved asset rebuilt, its quote derived, the price cache republished) with the
quote derived as it is, and with `bid_ask` replaced by one that returns the mid twice.

    python bench/quote_cost.py [--rounds 200]

Process CPU (`time.process_time`), median over the rounds, at 101 assets (the packaged catalog)
and at 1,000 (the catalog and copies under other ids); every price moves each round.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orderproc.inventory.domain as domain
from orderproc.common.prices import PriceCache
from orderproc.inventory.domain import Asset, load_snapshot
from orderproc.inventory.service import Catalog


def catalog_of(size: int) -> list[Asset]:
    base = load_snapshot()
    return [
        replace(base[i % len(base)], asset_id=f"{base[i % len(base)].asset_id}{i}")
        if i >= len(base)
        else base[i]
        for i in range(size)
    ]


def median_ms(size: int, rounds: int) -> float:
    catalog = Catalog(catalog_of(size), PriceCache())
    start = datetime(2026, 1, 1, tzinfo=UTC)
    spent = []
    for n in range(rounds):
        prices = {i: a.price_usd * Decimal("1.0001") for i, a in catalog.by_id.items()}
        before = time.process_time()
        catalog.apply_prices(prices, start + timedelta(seconds=n))
        spent.append(time.process_time() - before)
    return sorted(spent)[rounds // 2] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    rounds = parser.parse_args().rounds
    real: Callable[[Decimal, Decimal], tuple[Decimal, Decimal]] = domain.bid_ask
    for size in (101, 1000):
        quoted = median_ms(size, rounds)
        domain.bid_ask = lambda mid, spread: (mid, mid)  # type: ignore[assignment]
        bare = median_ms(size, rounds)
        domain.bid_ask = real  # type: ignore[assignment]
        print(
            f"{size:>5} assets: {quoted:.2f} ms with bid and ask, {bare:.2f} ms without "
            f"(+{quoted - bare:.2f} ms)"
        )


if __name__ == "__main__":
    main()
