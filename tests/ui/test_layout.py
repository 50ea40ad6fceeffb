"""The layout on a phone, and the README's screenshots (taken here, so they stay true)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.ui.conftest import SCREENSHOTS, deposit, place_order, sign_up

pytestmark = pytest.mark.ui


@pytest.fixture
def phone(browser: Browser, browser_context_args: dict[str, Any]) -> Any:
    context = browser.new_context(
        **{**browser_context_args, "viewport": {"width": 390, "height": 844}},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    yield context.new_page()
    context.close()


def test_a_phone_sized_screen_still_shows_the_order_ticket(phone: Page) -> None:
    sign_up(phone)
    deposit(phone, "500")
    phone.goto("/assets/SOL")
    ticket = phone.locator("#ticket")
    ticket.scroll_into_view_if_needed()
    expect(ticket.get_by_role("button", name="Place order")).to_be_visible()
    box = ticket.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 390
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    place_order(phone, "SOL", side="buy", mode="amount", amount="100")

    phone.goto("/market")
    expect(phone.get_by_test_id("price-BTC")).to_be_in_viewport()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390


def test_screenshots_of_market_asset_and_portfolio(page: Page) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_up(page, f"ada_{uuid.uuid4().hex[:4]}")
    deposit(page, "10000")
    for asset_id, amount in (("BTC", "2500"), ("ETH", "1500"), ("SOL", "800"), ("LINK", "400")):
        place_order(page, asset_id, side="buy", mode="amount", amount=amount)

    page.goto("/market")
    expect(page.locator("tr[data-asset=BTC]")).to_be_visible()
    page.wait_for_timeout(1500)  # let a tick or two arrive
    page.screenshot(path=str(SCREENSHOTS / "market.png"))

    page.goto("/assets/BTC")
    expect(page.locator("#chart")).not_to_have_attribute("data-ready", "0")
    page.locator("#ticket").get_by_label("Amount", exact=True).fill("250")
    expect(page.get_by_test_id("estimate-total")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "asset.png"))

    page.goto("/portfolio")
    expect(page.locator("tr[data-asset=LINK]")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "portfolio.png"))
