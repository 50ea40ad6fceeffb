"""The order ticket: what a person typed, read as the API request for a market order.

The ticket does no trading arithmetic. Its estimate is the orders service's own answer to the
same request (`POST /orders/estimate`, priced by the function that fills), so what it shows is
what the order then does at the same price."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from orderproc.common.money import CENT, EXACT, QUANTITY_STEP
from orderproc.webui.client import ApiError

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


def order_body(ticket: Ticket, asset_id: str, *, bid: Decimal) -> dict[str, str]:
    """The API request, for the estimate and for the order alike. A buy by USD amount is a
    notional order; the API sells by quantity only, so a sale by USD amount asks for the whole
    10^-8 units that amount is worth at the bid, where sales fill (the estimate then says what
    they bring, slippage and fee included)."""
    body = {"order_type": f"market_{ticket.side}", "asset_id": asset_id}
    if ticket.is_buy and ticket.mode == "amount":
        return {**body, "notional": str(ticket.value)}
    if ticket.mode == "quantity":
        return {**body, "quantity": str(ticket.value)}
    units = EXACT.divide(ticket.value, bid).quantize(
        QUANTITY_STEP, rounding=ROUND_FLOOR, context=EXACT
    )
    if units <= 0:
        raise TicketInvalid(f"{ticket.value.quantize(CENT)} USD is less than the smallest unit.")
    return {**body, "quantity": str(units)}


def shortfall(estimate: dict[str, Any]) -> str | None:
    """Why the account cannot take the estimated order, in the words the ticket shows when
    `POST /orders` refuses it for that reason; None when it can."""
    reason = estimate.get("reason")
    return None if not reason else ApiError(422, reason).message
