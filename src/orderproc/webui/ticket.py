"""The order ticket's arithmetic: what a market order would cost or bring before it is placed.

It mirrors the orders service's published rules (slippage, cost rounded up, proceeds rounded
down, fee rounded up on top) so the estimate matches the fill at the same price."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

from orderproc.common.money import (
    CENT,
    EXACT,
    QUANTITY_STEP,
    fee_for,
    round_cost_up,
    round_proceeds_down,
)

SIDES = ("buy", "sell")
MODES = ("amount", "quantity")
MAX_INPUT = Decimal(10) ** 15


class TicketInvalid(ValueError):
    """What the person typed cannot be an order; the message says why in plain words."""


@dataclass(frozen=True)
class Ticket:
    side: str
    mode: str
    value: Decimal

    @property
    def is_buy(self) -> bool:
        return self.side == "buy"


@dataclass(frozen=True)
class Estimate:
    quantity: Decimal
    price: Decimal
    subtotal: Decimal
    fee: Decimal

    @property
    def total(self) -> Decimal:
        """Cash that leaves (buy) or arrives (sell), fee included."""
        return self.subtotal + self.fee

    @property
    def net_proceeds(self) -> Decimal:
        return self.subtotal - self.fee


def parse_ticket(side: str, mode: str, raw: str) -> Ticket:
    side = side if side in SIDES else "buy"
    mode = mode if mode in MODES else "amount"
    text = raw.replace(",", "").replace("$", "").strip()
    if not text:
        raise TicketInvalid("Enter an amount." if mode == "amount" else "Enter a quantity.")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise TicketInvalid("Enter a number, like 100 or 0.5.") from None
    if not value.is_finite() or value <= 0:
        raise TicketInvalid("Enter a number above zero.")
    if value > MAX_INPUT:
        raise TicketInvalid("That is far more than one order can trade.")
    places = 2 if mode == "amount" else 8
    if value != value.quantize(Decimal(1).scaleb(-places), context=EXACT):
        raise TicketInvalid(f"Use at most {places} decimal places.")
    return Ticket(side, mode, value)


def estimate(ticket: Ticket, *, market_price: Decimal, fee_bps: int, slippage_bps: int) -> Estimate:
    move = Decimal(10_000 + slippage_bps if ticket.is_buy else 10_000 - slippage_bps) / 10_000
    price = market_price * move
    quantity = quantity_for(ticket, price)
    gross = quantity * price
    subtotal = round_cost_up(gross) if ticket.is_buy else round_proceeds_down(gross)
    return Estimate(quantity, price, subtotal, fee_for(subtotal, basis_points=fee_bps))


def quantity_for(ticket: Ticket, price: Decimal) -> Decimal:
    """Units the ticket asks for; a USD amount buys (or sells) whole 10^-8 units."""
    if ticket.mode == "quantity":
        return ticket.value
    quantity = (ticket.value / price).quantize(QUANTITY_STEP, rounding=ROUND_FLOOR, context=EXACT)
    if quantity <= 0:
        raise TicketInvalid(f"{ticket.value.quantize(CENT)} USD is less than the smallest unit.")
    return quantity


def order_body(ticket: Ticket, asset_id: str, *, market_price: Decimal) -> dict[str, str]:
    """The API request: a buy by USD amount is a notional order; a sell by USD amount is
    turned into a quantity at the current price (the API sells by quantity only)."""
    body = {"order_type": f"market_{ticket.side}", "asset_id": asset_id}
    if ticket.is_buy and ticket.mode == "amount":
        return {**body, "notional": str(ticket.value)}
    return {**body, "quantity": str(quantity_for(ticket, market_price))}
