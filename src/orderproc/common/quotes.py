"""Quotes: the bid and the ask the market shows around its mid price, and the spread model that
sets their distance.

Every feed gives a mid price (the simulator's, or CoinGecko's, which has no quotes); the same
model turns it into a bid and an ask, in the inventory service that publishes them and in a
process that reads prices back from the store. The spread is a full width in basis points of
the mid (bid = mid * (1 - s/2), ask = mid * (1 + s/2)), set by the asset's market-cap rank and
category, tighter for larger caps, tightest for stablecoins. It is a model of what exchanges
show, not market data; a sandbox admin may set an asset's spread instead (`spread_bps` on the
asset). Deterministic: the same mid and spread always give the same quote.

Bid and ask are rounded the way prices are (12 significant digits, at most 18 decimal places),
the bid down and the ask up, so bid ≤ mid ≤ ask always; the bid is never below the smallest
price step, so never zero.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from functools import lru_cache

from orderproc.common.money import EXACT, PRICE_STEP

__all__ = [
    "MAX_SPREAD_BPS",
    "PLACE_STEPS",
    "RANK_BANDS",
    "STABLECOIN_SPREAD_BPS",
    "UNRANKED_SPREAD_BPS",
    "bid_ask",
    "model_spread_bps",
    "spread_for",
    "to_price_grid",
]

# The model, in basis points of the mid (full width, bid to ask).
STABLECOIN_SPREAD_BPS = Decimal(1)
RANK_BANDS: tuple[tuple[int, Decimal], ...] = (
    (10, Decimal(2)),  # ranks 1-10
    (50, Decimal(5)),  # 11-50
    (100, Decimal(10)),  # 51-100
    (250, Decimal(20)),  # 101-250
)
UNRANKED_SPREAD_BPS = Decimal(40)  # beyond 250, or no rank
CATEGORY_FACTOR = {"meme": Decimal(2)}  # memecoins trade wider than their rank says
MAX_SPREAD_BPS = Decimal(1000)  # the widest a sandbox admin may set: 10 %

# The grid of prices: 12 significant digits, at most 18 places (`to_price_grid`; the feeds'
# `round_price` rounds to it half-even, quotes directed).
SIGNIFICANT_DIGITS = 12
MAX_PLACES = 18


@lru_cache(maxsize=4096)
def model_spread_bps(category: str, market_cap_rank: int | None) -> Decimal:
    """The spread the model gives an asset of this category and rank."""
    if category == "stablecoin":
        return STABLECOIN_SPREAD_BPS
    band = next(
        (bps for top, bps in RANK_BANDS if market_cap_rank is not None and market_cap_rank <= top),
        UNRANKED_SPREAD_BPS,
    )
    return band * CATEGORY_FACTOR.get(category, 1)


def spread_for(category: str, market_cap_rank: int | None, chosen: Decimal | None) -> Decimal:
    """An asset's spread: the one a sandbox admin `chosen`, else the model's."""
    return model_spread_bps(category, market_cap_rank) if chosen is None else chosen


def bid_ask(mid: Decimal, spread_bps: Decimal) -> tuple[Decimal, Decimal]:
    """The bid and the ask `spread_bps` apart around `mid` (a price > 0). About 1 µs."""
    if not spread_bps:
        return mid, mid
    factors = _FACTORS.get(spread_bps)  # every asset, every tick: a dict, not an lru_cache
    below, above = _factors(spread_bps) if factors is None else factors
    # One directed rounding of the exact product to 12 significant digits; where that grid is
    # not the prices' one (below 10^-6 it would pass 18 places, from 10^12 up it would round
    # whole units), the exact product is rounded to the prices' grid instead.
    bid, ask = _DOWN.multiply(mid, below), _UP.multiply(mid, above)
    if not _PLAIN_FROM <= bid.adjusted() < SIGNIFICANT_DIGITS:
        bid = to_price_grid(EXACT.multiply(mid, below), ROUND_FLOOR)
    if not _PLAIN_FROM <= ask.adjusted() < SIGNIFICANT_DIGITS:
        ask = to_price_grid(EXACT.multiply(mid, above), ROUND_CEILING)
    return (bid if bid > _ZERO else PRICE_STEP), ask


def _factors(spread_bps: Decimal) -> tuple[Decimal, Decimal]:
    half = EXACT.divide(spread_bps, Decimal(20_000))
    if len(_FACTORS) >= 256:  # a sandbox admin may set any spread: keep the cache small
        _FACTORS.clear()
    factors = _FACTORS[spread_bps] = (1 - half, 1 + half)
    return factors


_FACTORS: dict[Decimal, tuple[Decimal, Decimal]] = {}
_ZERO = Decimal(0)


_DOWN = Context(prec=SIGNIFICANT_DIGITS, rounding=ROUND_FLOOR)
_UP = Context(prec=SIGNIFICANT_DIGITS, rounding=ROUND_CEILING)
_PLAIN_FROM = SIGNIFICANT_DIGITS - 1 - MAX_PLACES  # the smallest exponent 12 digits fit in


def to_price_grid(value: Decimal, rounding: str) -> Decimal:
    """`value` to 12 significant digits, at most 18 places and at least whole units, rounded
    by `rounding`."""
    places = min(MAX_PLACES, max(0, SIGNIFICANT_DIGITS - 1 - value.adjusted()))
    return value.quantize(PLACE_STEPS[places], rounding=rounding, context=EXACT)


# 10^-places for every places allowed (`PLACE_STEPS[places]`): the simulator rounds every price
# of every tick, and making the step each time was 0.2 of its 1.7 µs (timeit).
PLACE_STEPS = tuple(Decimal(1).scaleb(-places) for places in range(MAX_PLACES + 1))
