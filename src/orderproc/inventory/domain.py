"""Catalog rules: the Asset, the packaged snapshot, asset ids, and listing (filter, sort, page).

Everything here is pure: no storage, no HTTP. Money fields are exact `Decimal`s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache
from importlib.resources import files
from typing import Any

import orjson

from orderproc.common.quotes import bid_ask, spread_for
from orderproc.common.vocabulary import ASSET_ID_PATTERN as ASSET_ID_PATTERN
from orderproc.common.vocabulary import CATEGORIES as CATEGORIES
from orderproc.common.vocabulary import normalize_asset_id as normalize_asset_id
from orderproc.errors import AssetNotFound, ValidationFailed

MAX_PAGE_SIZE = 250
DEFAULT_PAGE_SIZE = 50
SNAPSHOT_FILE = "catalog_data.json"


@dataclass(frozen=True)
class Asset:
    """One tradeable asset with its market data; prices in USD. Not slotted: a tick rebuilds
    every asset by copying its field dictionary (`service._with_market_move`), which is several
    times cheaper than setting 30 slots one by one."""

    asset_id: str
    symbol: str
    name: str
    category: str
    description: str
    image: str
    price_usd: Decimal
    last_updated: datetime
    is_active: bool = True
    market_cap: Decimal | None = None
    market_cap_rank: int | None = None
    total_volume_24h: Decimal | None = None
    high_24h: Decimal | None = None
    low_24h: Decimal | None = None
    price_change_24h: Decimal | None = None
    price_change_percentage_24h: Decimal | None = None
    circulating_supply: Decimal | None = None
    total_supply: Decimal | None = None
    max_supply: Decimal | None = None
    ath: Decimal | None = None
    ath_date: datetime | None = None
    atl: Decimal | None = None
    atl_date: datetime | None = None
    coingecko_id: str | None = None
    illustrative: tuple[str, ...] = field(default=())
    spread_bps: Decimal | None = None  # set by a sandbox admin; None: the model's spread
    frozen: bool = False  # a sandbox admin paused the feed: trading ignores the price's age
    # The quote around `price_usd` (common/quotes.py), derived on every construction (a
    # `replace` too), so it can never lag the price, the rank or the spread.
    bid: Decimal = field(init=False)
    ask: Decimal = field(init=False)
    # The spread in basis points: the sandbox's, or the model's for this asset. Kept, not a
    # property: a tick reads it for every asset, and a tick's copy keeps it (the price moves,
    # the spread does not).
    spread: Decimal = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spread = spread_for(self.category, self.market_cap_rank, self.spread_bps)
        bid, ask = bid_ask(self.price_usd, spread)
        object.__setattr__(self, "spread", spread)
        object.__setattr__(self, "bid", bid)
        object.__setattr__(self, "ask", ask)

    # As a quote (common/prices.QuoteView), which the catalog publishes its assets as.
    @property
    def price(self) -> Decimal:
        return self.price_usd

    @property
    def as_of(self) -> datetime:
        return self.last_updated

    def with_price(self, price: Decimal, moment: datetime) -> Asset:
        return replace(self, price_usd=price, last_updated=moment)


def find_asset(assets_by_id: Mapping[str, Asset], raw_id: str) -> Asset:
    """Case-insensitive lookup: malformed → ValidationFailed, unknown → AssetNotFound."""
    asset_id = normalize_asset_id(raw_id)
    try:
        return assets_by_id[asset_id]
    except KeyError:
        raise AssetNotFound(f"no asset {asset_id}") from None


# --- the packaged snapshot -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    source: Mapping[str, str]
    as_of: datetime
    note: str
    assets: tuple[Asset, ...]


def load_snapshot() -> list[Asset]:
    """The catalog shipped with the package, so a machine with no network can trade."""
    return list(read_snapshot().assets)


@cache
def read_snapshot() -> Snapshot:
    raw = orjson.loads(files("orderproc.inventory").joinpath(SNAPSHOT_FILE).read_bytes())
    return Snapshot(
        source=raw["source"],
        as_of=parse_time(raw["as_of"]),
        note=raw["note"],
        assets=tuple(asset_from_record(record) for record in raw["assets"]),
    )


def asset_from_record(record: Mapping[str, Any]) -> Asset:
    """One snapshot record (decimal strings, ISO times) to an Asset, checking what it holds."""
    asset_id = normalize_asset_id(record["symbol"])
    category = record["category"]
    if category not in CATEGORIES:
        raise ValueError(f"{asset_id}: unknown category {category!r}")
    price = Decimal(record["current_price"])
    if price <= 0:
        raise ValueError(f"{asset_id}: price must be positive")
    return Asset(
        asset_id=asset_id,
        symbol=record["symbol"],
        name=record["name"],
        category=category,
        description=record["description"],
        image=record["image"],
        price_usd=price,
        last_updated=parse_time(record["last_updated"]),
        market_cap=_decimal(record.get("market_cap")),
        market_cap_rank=record.get("market_cap_rank"),
        total_volume_24h=_decimal(record.get("total_volume")),
        high_24h=_decimal(record.get("high_24h")),
        low_24h=_decimal(record.get("low_24h")),
        price_change_24h=_decimal(record.get("price_change_24h")),
        price_change_percentage_24h=_decimal(record.get("price_change_percentage_24h")),
        circulating_supply=_decimal(record.get("circulating_supply")),
        total_supply=_decimal(record.get("total_supply")),
        max_supply=_decimal(record.get("max_supply")),
        ath=_decimal(record.get("ath")),
        ath_date=_time(record.get("ath_date")),
        atl=_decimal(record.get("atl")),
        atl_date=_time(record.get("atl_date")),
        coingecko_id=record.get("coingecko_id"),
        illustrative=tuple(record.get("illustrative", ())),
    )


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time without a zone: {text!r}")
    return moment.astimezone(UTC)


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _time(text: str | None) -> datetime | None:
    return None if text is None else parse_time(text)


# --- listing ---------------------------------------------------------------------------------


class SortField(StrEnum):
    MARKET_CAP_RANK = "market_cap_rank"
    PRICE = "price"
    NAME = "name"
    CHANGE_24H = "change_24h"
    VOLUME = "volume"


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


SortKey = Decimal | int | str
_SORT_KEYS: dict[SortField, Callable[[Asset], SortKey | None]] = {
    SortField.MARKET_CAP_RANK: lambda asset: asset.market_cap_rank,
    SortField.PRICE: lambda asset: asset.price_usd,
    SortField.NAME: lambda asset: asset.name.casefold(),
    SortField.CHANGE_24H: lambda asset: asset.price_change_percentage_24h,
    SortField.VOLUME: lambda asset: asset.total_volume_24h,
}
# Rank and name read best ascending; the numbers people rank by read best largest first.
DEFAULT_SORT_ORDER = {
    SortField.MARKET_CAP_RANK: SortOrder.ASC,
    SortField.NAME: SortOrder.ASC,
    SortField.PRICE: SortOrder.DESC,
    SortField.CHANGE_24H: SortOrder.DESC,
    SortField.VOLUME: SortOrder.DESC,
}


@dataclass(frozen=True, slots=True)
class AssetQuery:
    search: str | None = None
    category: str | None = None
    active_only: bool = True
    sort_by: SortField = SortField.MARKET_CAP_RANK
    sort_order: SortOrder | None = None  # None: the field's default order
    limit: int = DEFAULT_PAGE_SIZE
    offset: int = 0


@dataclass(frozen=True, slots=True)
class AssetPage:
    items: list[Asset]
    total_count: int  # assets matching search, category and active_only
    active_count: int  # active assets matching search and category
    has_more: bool


def list_assets(assets: Iterable[Asset], query: AssetQuery) -> AssetPage:
    """Filter, sort (stable, missing values last whatever the order) and page."""
    _check_query(query)
    matching = [asset for asset in assets if _matches(asset, query)]
    active_count = sum(1 for asset in matching if asset.is_active)
    if query.active_only:
        matching = [asset for asset in matching if asset.is_active]
    ordered = sort_assets(matching, query.sort_by, query.sort_order)
    end = query.offset + query.limit
    return AssetPage(
        items=ordered[query.offset : end],
        total_count=len(ordered),
        active_count=active_count,
        has_more=end < len(ordered),
    )


def sort_assets(
    assets: Iterable[Asset], sort_by: SortField, sort_order: SortOrder | None = None
) -> list[Asset]:
    """Ties fall back to asset_id ascending, so every order is total and repeatable."""
    key = _SORT_KEYS[sort_by]
    descending = (sort_order or DEFAULT_SORT_ORDER[sort_by]) is SortOrder.DESC
    by_id = sorted(assets, key=lambda asset: asset.asset_id)
    present = [asset for asset in by_id if key(asset) is not None]
    missing = [asset for asset in by_id if key(asset) is None]
    # Python's sort is stable also with reverse=True, so equal keys keep asset_id order.
    present.sort(key=lambda asset: key(asset), reverse=descending)  # type: ignore[arg-type,return-value]
    return present + missing


def _matches(asset: Asset, query: AssetQuery) -> bool:
    if query.category is not None and asset.category != query.category.strip().lower():
        return False
    needle = (query.search or "").strip().casefold()
    return not needle or needle in asset.asset_id.casefold() or needle in asset.name.casefold()


def _check_query(query: AssetQuery) -> None:
    errors: list[dict[str, Any]] = []
    if not 1 <= query.limit <= MAX_PAGE_SIZE:
        errors.append(_field_error("limit", f"must be between 1 and {MAX_PAGE_SIZE}"))
    if query.offset < 0:
        errors.append(_field_error("offset", "must not be negative"))
    if query.category is not None and query.category.strip().lower() not in CATEGORIES:
        errors.append(_field_error("category", f"must be one of {', '.join(sorted(CATEGORIES))}"))
    if errors:
        raise ValidationFailed("invalid asset query", errors=errors)


def _field_error(name: str, message: str, *, where: str = "query") -> dict[str, Any]:
    """A field error in the shape of the API's validation errors."""
    return {"loc": [where, name], "msg": message, "type": "value_error"}
