"""API schemas of the orders service."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from orderproc.common.clock import isoformat_z
from orderproc.common.fields import (
    DecimalInputSchema,
    DecimalText,
    MoneyText,
    PlainDecimal,
    QuantityText,
)
from orderproc.common.money import (
    format_money,
    format_price,
    format_quantity,
    from_cents,
    from_units,
)
from orderproc.common.paging import ListPage
from orderproc.common.storage.records import AssetEntry, OrderRecord
from orderproc.common.vocabulary import ASSET_ID_INPUT_REGEX
from orderproc.orders.domain import MARKET_TYPES, OrderType
from orderproc.orders.portfolio import PositionView, Reconciliation
from orderproc.orders.pricing import PricedOrder

Quantity = Annotated[
    Decimal,
    PlainDecimal,
    Field(
        gt=0,
        lt=Decimal("1e12"),
        decimal_places=8,
        description="Units of the asset, more than 0 and less than 10^12, at most 8 places",
    ),
    DecimalInputSchema(example="0.05"),
]
Notional = Annotated[
    Decimal,
    PlainDecimal,
    Field(
        gt=0,
        le=Decimal("1e9"),
        decimal_places=2,
        description="USD to spend before the fee, more than 0 and at most 10^9, at most 2 places",
    ),
    DecimalInputSchema(example="100.00"),
]
LimitPrice = Annotated[
    Decimal,
    PlainDecimal,
    Field(
        gt=0,
        lt=Decimal("1e12"),
        decimal_places=18,
        description="USD per unit, more than 0 and less than 10^12, at most 18 places",
    ),
    DecimalInputSchema(example="64000.00"),
]
AssetIdText = Annotated[str, StringConstraints(pattern=ASSET_ID_INPUT_REGEX)]
ClientOrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-:.]{1,64}$")]


class OrderCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"order_type": "market_buy", "asset_id": "BTC", "notional": "100.00"},
                {"order_type": "market_sell", "asset_id": "ETH", "quantity": "0.25"},
            ]
        },
    )

    order_type: OrderType
    asset_id: AssetIdText
    quantity: Quantity | None = None
    notional: Notional | None = None
    price: LimitPrice | None = None
    stop_price: LimitPrice | None = None
    time_in_force: Literal["gtc", "day", "ioc", "fok"] = "gtc"
    expires_at: AwareDatetime | None = None
    client_order_id: ClientOrderId | None = None

    @model_validator(mode="after")
    def _one_size(self) -> Self:
        if (self.quantity is None) == (self.notional is None):
            raise ValueError("give exactly one of quantity or notional")
        if self.notional is not None and self.order_type is not OrderType.MARKET_BUY:
            raise ValueError("notional is for market_buy orders; others take a quantity")
        if self.order_type in MARKET_TYPES and (self.price or self.stop_price):
            raise ValueError("market orders take no price or stop_price")
        return self

    def canonical(self) -> dict[str, str | None]:
        """The order's meaning, independent of how numbers were spelled."""
        return {
            "order_type": self.order_type.value,
            "asset_id": self.asset_id.upper(),
            "quantity": None if self.quantity is None else format_quantity(self.quantity),
            "notional": None if self.notional is None else format_money(self.notional),
            "price": None if self.price is None else format_price(self.price),
            "stop_price": None if self.stop_price is None else format_price(self.stop_price),
            "time_in_force": self.time_in_force,
            "expires_at": None if self.expires_at is None else isoformat_z(self.expires_at),
            "client_order_id": self.client_order_id,
        }


class OrderRead(BaseModel):
    order_id: str
    client_order_id: str | None
    order_type: str
    asset_id: str
    quantity: QuantityText
    notional: MoneyText | None
    price: Annotated[DecimalText | None, Field(description="Fill price per unit, USD")]
    total_amount: Annotated[MoneyText, Field(description="Cash that moved, before the fee")]
    fee: MoneyText
    status: Literal["open", "filled", "cancelled", "expired", "rejected"]
    created_at: str
    updated_at: str
    filled_at: str | None

    @classmethod
    def of(cls, o: OrderRecord) -> OrderRead:
        return cls(
            order_id=o.order_id,
            client_order_id=o.client_order_id,
            order_type=o.order_type,
            asset_id=o.asset_id,
            quantity=format_quantity(from_units(o.quantity_units)),
            notional=None
            if o.notional_cents is None
            else format_money(from_cents(o.notional_cents)),
            price=None if o.price is None else format_price(o.price),
            total_amount=format_money(from_cents(o.total_cents)),
            fee=format_money(from_cents(o.fee_cents)),
            status=o.status,
            created_at=isoformat_z(o.created_at),
            updated_at=isoformat_z(o.updated_at),
            filled_at=None if o.filled_at is None else isoformat_z(o.filled_at),
        )


class OrderEnvelope(BaseModel):
    data: OrderRead


class OrdersPage(ListPage[OrderRead]):
    """A page of your orders, newest first."""


class EstimateReason(BaseModel):
    """Why the account cannot take the fill now: what `POST /orders` would refuse it with."""

    code: Annotated[
        Literal["INSUFFICIENT_FUNDS", "INSUFFICIENT_HOLDINGS", "POSITION_LIMIT_EXCEEDED"],
        Field(description="The problem code `POST /orders` would answer"),
    ]
    detail: Annotated[
        str, Field(examples=["the order needs 100.10 USD with fees; 50.00 USD is available"])
    ]


class EstimateRead(BaseModel):
    order_type: Literal["market_buy", "market_sell"]
    side: Literal["buy", "sell"]
    asset_id: str
    quantity: Annotated[QuantityText, Field(description="Units the order would fill")]
    notional: Annotated[MoneyText | None, Field(description="The notional asked for, if any")]
    price: Annotated[DecimalText, Field(description="Fill price per unit, USD, slippage included")]
    price_as_of: Annotated[str, Field(description="When that price was set")]
    total_amount: Annotated[
        MoneyText, Field(description="Cash for the units before the fee: cost or proceeds")
    ]
    fee: MoneyText
    cash_change: Annotated[
        MoneyText, Field(description="Signed change to the cash balance, fee included")
    ]
    available_cash: Annotated[MoneyText, Field(description="Available cash now")]
    available_cash_after: Annotated[
        MoneyText | None, Field(description="Available cash after the fill; null if insufficient")
    ]
    available_quantity: Annotated[QuantityText, Field(description="Units available now")]
    available_quantity_after: Annotated[
        QuantityText | None,
        Field(description="Units available after the fill; null if insufficient"),
    ]
    sufficient: Annotated[bool, Field(description="Whether the account can take the fill now")]
    reason: Annotated[EstimateReason | None, Field(description="Why not, when not sufficient")]

    @classmethod
    def of(cls, priced: PricedOrder, body: OrderCreate) -> EstimateRead:
        fill, refusal = priced.fill, priced.refusal()
        side: Literal["buy", "sell"] = "buy" if fill.is_buy else "sell"
        return cls(
            order_type="market_buy" if fill.is_buy else "market_sell",
            side=side,
            asset_id=priced.quote.asset_id,
            quantity=format_quantity(from_units(fill.quantity_units)),
            notional=None if body.notional is None else format_money(body.notional),
            price=format_price(fill.price),
            price_as_of=isoformat_z(priced.quote.as_of),
            total_amount=format_money(from_cents(fill.total_cents)),
            fee=format_money(from_cents(fill.fee_cents)),
            cash_change=format_money(from_cents(fill.cash_delta_cents)),
            available_cash=format_money(from_cents(priced.account.available_cents)),
            available_cash_after=None
            if refusal is not None
            else format_money(from_cents(priced.available_cents_after)),
            available_quantity=format_quantity(from_units(priced.available_units)),
            available_quantity_after=None
            if refusal is not None
            else format_quantity(from_units(priced.available_units_after)),
            sufficient=refusal is None,
            reason=None
            if refusal is None
            else EstimateReason.model_validate({"code": refusal.code, "detail": refusal.detail}),
        )


class EstimateEnvelope(BaseModel):
    data: EstimateRead


class PositionRead(BaseModel):
    asset_id: str
    asset_name: str
    quantity: QuantityText
    available: QuantityText
    average_cost: DecimalText
    current_price: DecimalText | None
    market_value: MoneyText
    unrealized_pnl: MoneyText
    realized_pnl: MoneyText
    percentage: Annotated[
        DecimalText,
        Field(description="Share of the portfolio's total value, %", examples=["12.50"]),
    ]

    @classmethod
    def of(cls, v: PositionView) -> PositionRead:
        return cls(
            asset_id=v.asset_id,
            asset_name=v.asset_name,
            quantity=format_quantity(v.quantity),
            available=format_quantity(v.available),
            average_cost=format_price(v.average_cost),
            current_price=None if v.current_price is None else format_price(v.current_price),
            market_value=format_money(v.market_value),
            unrealized_pnl=format_money(v.unrealized_pnl),
            realized_pnl=format_money(v.realized_pnl),
            percentage=str(v.percentage),
        )


class PortfolioRead(BaseModel):
    cash: MoneyText
    available_cash: MoneyText
    assets: list[PositionRead]
    total_value: MoneyText
    realized_pnl: MoneyText
    unrealized_pnl: MoneyText


class HoldingRead(BaseModel):
    asset_id: str
    asset_name: str
    quantity: QuantityText
    available: QuantityText
    average_cost: DecimalText
    current_price: DecimalText | None
    total_value: MoneyText
    unrealized_pnl: MoneyText
    realized_pnl: MoneyText

    @classmethod
    def of(cls, v: PositionView) -> HoldingRead:
        return cls(
            asset_id=v.asset_id,
            asset_name=v.asset_name,
            quantity=format_quantity(v.quantity),
            available=format_quantity(v.available),
            average_cost=format_price(v.average_cost),
            current_price=None if v.current_price is None else format_price(v.current_price),
            total_value=format_money(v.market_value),
            unrealized_pnl=format_money(v.unrealized_pnl),
            realized_pnl=format_money(v.realized_pnl),
        )


class AssetTransactionRead(BaseModel):
    transaction_id: str
    order_id: str
    transaction_type: Literal["BUY", "SELL"]
    asset_id: str
    quantity: QuantityText
    price: DecimalText
    total_amount: MoneyText
    fee: MoneyText
    quantity_after: QuantityText
    created_at: str

    @classmethod
    def of(cls, e: AssetEntry) -> AssetTransactionRead:
        return cls(
            transaction_id=e.entry_id,
            order_id=e.order_id,
            transaction_type="BUY" if e.kind == "buy" else "SELL",
            asset_id=e.asset_id,
            quantity=format_quantity(from_units(abs(e.quantity_units))),
            price=format_price(e.price),
            total_amount=format_money(from_cents(e.total_cents)),
            fee=format_money(from_cents(e.fee_cents)),
            quantity_after=format_quantity(from_units(e.quantity_after_units)),
            created_at=isoformat_z(e.created_at),
        )


class AssetTransactionsPage(ListPage[AssetTransactionRead]):
    """A page of your buys and sells of one asset, newest first."""


class MismatchRead(BaseModel):
    what: Literal["cash", "position"]
    asset_id: str | None
    stored: str
    ledger: str
    problem: str


class ReconcileRead(BaseModel):
    username: str
    clean: bool
    positions_checked: int
    mismatches: list[MismatchRead]

    @classmethod
    def of(cls, username: str, r: Reconciliation) -> ReconcileRead:
        return cls(
            username=username,
            clean=r.clean,
            positions_checked=r.positions_checked,
            mismatches=[
                MismatchRead(
                    what=m.what,
                    asset_id=m.asset_id,
                    stored=m.stored,
                    ledger=m.ledger,
                    problem=m.problem,
                )
                for m in r.mismatches
            ],
        )
