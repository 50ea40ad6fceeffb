"""API schemas of the inventory service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints

from orderproc.common.clock import isoformat_z
from orderproc.common.fields import (
    DecimalInputSchema,
    DecimalText,
    PlainDecimal,
    PrintableName,
    PrintableText,
)
from orderproc.common.money import format_price
from orderproc.common.paging import ListPage
from orderproc.common.quotes import MAX_SPREAD_BPS
from orderproc.common.vocabulary import ASSET_ID_INPUT_REGEX
from orderproc.common.vocabulary import Category as Category
from orderproc.inventory.candles import Candle
from orderproc.inventory.domain import Asset


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format_price(value)


def market_cap(asset: Asset) -> Decimal | None:
    """The asset's market capitalisation at its price now: the price times the circulating
    supply where that is known (as CoinGecko counts it), else the one stored with it. Made when
    answered, not on every tick."""
    supply = asset.circulating_supply
    if supply is None:
        return asset.market_cap
    return (asset.price_usd * supply).quantize(_CENT)


_CENT = Decimal("0.01")


def _time(value: datetime | None) -> str | None:
    return None if value is None else isoformat_z(value)


class AssetRead(BaseModel):
    asset_id: str
    symbol: str
    name: str
    category: str
    description: str
    image: str
    is_active: bool
    price_usd: Annotated[DecimalText, Field(description="The mid price, between bid and ask")]
    bid: Annotated[DecimalText, Field(description="Where a market sell fills (before slippage)")]
    ask: Annotated[DecimalText, Field(description="Where a market buy fills (before slippage)")]
    market_cap: DecimalText | None
    market_cap_rank: int | None
    total_volume_24h: DecimalText | None
    high_24h: DecimalText | None
    low_24h: DecimalText | None
    price_change_24h: DecimalText | None
    price_change_percentage_24h: DecimalText | None
    circulating_supply: DecimalText | None
    total_supply: DecimalText | None
    max_supply: DecimalText | None
    ath: DecimalText | None
    ath_date: str | None
    atl: DecimalText | None
    atl_date: str | None
    last_updated: str

    @classmethod
    def of(cls, a: Asset) -> AssetRead:
        return cls(
            asset_id=a.asset_id,
            symbol=a.symbol,
            name=a.name,
            category=a.category,
            description=a.description,
            image=a.image,
            is_active=a.is_active,
            price_usd=format_price(a.price_usd),
            bid=format_price(a.bid),
            ask=format_price(a.ask),
            market_cap=_dec(market_cap(a)),
            market_cap_rank=a.market_cap_rank,
            total_volume_24h=_dec(a.total_volume_24h),
            high_24h=_dec(a.high_24h),
            low_24h=_dec(a.low_24h),
            price_change_24h=_dec(a.price_change_24h),
            price_change_percentage_24h=_dec(a.price_change_percentage_24h),
            circulating_supply=_dec(a.circulating_supply),
            total_supply=_dec(a.total_supply),
            max_supply=_dec(a.max_supply),
            ath=_dec(a.ath),
            ath_date=_time(a.ath_date),
            atl=_dec(a.atl),
            atl_date=_time(a.atl_date),
            last_updated=isoformat_z(a.last_updated),
        )


class AssetEnvelope(BaseModel):
    data: AssetRead


class AssetsPage(ListPage[AssetRead]):
    """A page of the catalog, in the order asked for. The catalog lives in memory and sorts by
    prices that move every tick, so it pages by offset (its cursor holds one)."""

    total_count: int = Field(description="Assets matching the search, category and activity")
    active_count: int = Field(description="Active assets matching the search and category")
    offset: int = Field(description="Where this page starts in the sorted catalog")


class CandleRead(BaseModel):
    t: str = Field(description="Open time")
    open: DecimalText
    high: DecimalText
    low: DecimalText
    close: DecimalText
    volume: DecimalText = Field(description="USD traded in the candle (simulated)")

    @classmethod
    def of(cls, c: Candle) -> CandleRead:
        return cls(
            t=isoformat_z(c.open_time),
            open=format_price(c.open),
            high=format_price(c.high),
            low=format_price(c.low),
            close=format_price(c.close),
            volume=format_price(c.volume),
        )


class CandlesRead(ListPage[CandleRead]):
    """A page of candles, oldest first (see the route for which way `next_cursor` goes)."""

    asset_id: str
    interval: Literal["1m", "1h", "1d", "1w"]


Price = Annotated[
    Decimal,
    PlainDecimal,
    Field(
        gt=0,
        lt=Decimal("1e12"),
        decimal_places=18,
        description="USD, more than 0 and less than 10^12, at most 18 decimal places",
    ),
    DecimalInputSchema(example="0.25"),
]
Volume = Annotated[
    Decimal,
    PlainDecimal,
    Field(
        ge=0,
        lt=Decimal("1e15"),
        decimal_places=2,
        description="USD traded in 24 h, which the simulated candles' volume follows: 0 or "
        "more, less than 10^15, at most 2 decimal places",
    ),
    DecimalInputSchema(example="1250000.00"),
]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), PrintableName
]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000), PrintableText]


class AssetCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "asset_id": "DEMO",
                    "name": "Demo Coin",
                    "category": "other",
                    "price_usd": "0.25",
                    "description": "A coin for the demo.",
                    "market_cap_rank": 500,
                    "total_volume_24h": "1250000.00",
                }
            ]
        },
    )

    asset_id: Annotated[str, StringConstraints(pattern=ASSET_ID_INPUT_REGEX)]
    name: Text
    category: Category
    price_usd: Price
    description: LongText = ""
    image: AnyHttpUrl | None = None
    is_active: bool = True
    market_cap_rank: Annotated[int, Field(ge=1, le=100_000)] | None = None
    # Omitted: that of the catalog's asset nearest in rank, or the catalog's median without a
    # rank (`service.usual_volume`), so a new asset's candles have volume too.
    total_volume_24h: Volume | None = None


class AssetUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"is_active": False}, {"name": "Demo Coin Classic"}]},
    )

    name: Text | None = None
    category: Category | None = None
    description: LongText | None = None
    image: AnyHttpUrl | None = None
    is_active: bool | None = None
    market_cap_rank: Annotated[int, Field(ge=1, le=100_000)] | None = None
    total_volume_24h: Volume | None = None


# --- the sandbox (ORDERPROC_SANDBOX=true) ----------------------------------------------------

SpreadBps = Annotated[
    Decimal,
    PlainDecimal,
    Field(
        ge=0,
        le=MAX_SPREAD_BPS,
        decimal_places=2,
        description=f"Full width, bid to ask, in basis points of the mid: 0 to "
        f"{MAX_SPREAD_BPS} (10 %), at most 2 decimal places",
    ),
    DecimalInputSchema(example="10"),
]


class SandboxPriceSet(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"price_usd": "50000", "spread_bps": "10"},
                {"price_usd": "0.25"},
                {"price_usd": "3000", "spread_bps": None},
            ]
        },
    )

    price_usd: Price
    spread_bps: Annotated[
        SpreadBps | None,
        Field(description="Omitted: the asset keeps the spread it has; null: the model's again"),
    ] = None


class SandboxStateRead(BaseModel):
    paused: bool = Field(description="Whether the feed is paused (prices frozen)")
    moved: int = Field(description="Assets this step moved; 0 for a pause or a resume")
    as_of: str = Field(description="When the newest price was set")


class SandboxStateEnvelope(BaseModel):
    data: SandboxStateRead
