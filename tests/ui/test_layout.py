"""The layout on a phone, the chart's ranges over a fresh install's history, and the README's
screenshots (taken here, so they stay true)."""

from __future__ import annotations

import uuid
from typing import Any, cast

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.system.harness import ServerProcess
from tests.ui.conftest import SCREENSHOTS, deposit, place_order, sign_up, wait_for_history

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


# Each money table on a phone, and the columns that must stay on screen there.
MONEY_TABLES = (
    ("/portfolio", "table.positions", ("Quantity", "Value", "Unrealized P&L")),
    ("/orders", "table.history", ("Quantity", "Total")),
    ("/cash", "[data-testid=ledger]", ("Amount",)),
)


def fits_on_screen(page: Page, table: str) -> bool:
    """The table is no wider than the box around it (nothing scrolled or clipped away), and
    that box ends inside the window."""
    return bool(
        page.locator(table).evaluate(
            "t => t.scrollWidth <= t.parentElement.clientWidth"
            " && t.getBoundingClientRect().right <= window.innerWidth"
        )
    )


def test_on_a_phone_the_money_tables_keep_their_key_columns_unclipped(phone: Page) -> None:
    sign_up(phone)
    deposit(phone, "1000")
    place_order(phone, "SOL", side="buy", mode="amount", amount="300")
    place_order(phone, "ETH", side="buy", mode="amount", amount="200")
    place_order(phone, "SOL", side="sell", mode="amount", amount="100")
    for path, table, columns in MONEY_TABLES:
        phone.goto(path)
        expect(phone.locator(table)).to_be_visible()
        assert fits_on_screen(phone, table), path
        for column in columns:
            header = phone.locator(table).locator("th", has_text=column).first
            expect(header).to_be_visible()
            box = header.bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= 390, (path, column)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, path


def test_the_chart_ranges_over_the_backfilled_history_with_volume_and_a_legend(
    page: Page, ui_server: ServerProcess
) -> None:
    wait_for_history(ui_server.url, "BTC")
    page.goto("/assets/BTC")
    chart = page.locator("#chart")
    expect(chart).to_have_attribute("data-shown", "1m")
    # 48 h of minutes, 90 days of hours, 2 years of days and of weeks: each a few pages.
    for interval, least in (("1h", 2160), ("1d", 730), ("1w", 104), ("1m", 2880)):
        page.locator(f"[data-interval='{interval}']").click()
        expect(chart).to_have_attribute("data-shown", interval)
        bars = int(chart.get_attribute("data-ready") or 0)
        assert bars >= least, interval
        assert chart.get_attribute("data-volumes") == str(bars)
        button = page.locator(f"[data-interval='{interval}']")
        expect(button).to_have_attribute("aria-pressed", "true")
    legend = page.get_by_test_id("chart-legend")
    latest = legend.locator("[data-field=t]").inner_text()
    for field in ("O", "H", "L", "C", "V"):
        expect(legend.locator(f"[data-field={field}]")).to_be_visible()
    box = chart.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
    expect(legend.locator("[data-field=t]")).not_to_have_text(latest)  # the bar under the pointer
    expect(legend.locator("[data-field=V]")).to_contain_text("$")


def test_screenshots_of_market_asset_and_portfolio(
    page: Page, phone: Page, ui_server: ServerProcess
) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_up(page, f"ada_{uuid.uuid4().hex[:4]}")
    deposit(page, "10000")
    for asset_id, amount in (("BTC", "2500"), ("ETH", "1500"), ("SOL", "800"), ("LINK", "400")):
        place_order(page, asset_id, side="buy", mode="amount", amount=amount)

    page.goto("/market")
    expect(page.locator("tr[data-asset=BTC]")).to_be_visible()
    page.wait_for_timeout(1500)  # let a tick or two arrive
    page.screenshot(path=str(SCREENSHOTS / "market.png"))

    wait_for_history(ui_server.url, "BTC")
    page.goto("/assets/BTC")
    page.locator("[data-interval='1h']").click()
    expect(page.locator("#chart")).to_have_attribute("data-shown", "1h")
    page.locator("#ticket").get_by_label("Amount", exact=True).fill("250")
    expect(page.get_by_test_id("estimate-total")).to_be_visible()
    box = page.locator("#chart").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.45)
    page.screenshot(path=str(SCREENSHOTS / "asset.png"))

    page.goto("/portfolio")
    expect(page.locator("tr[data-asset=LINK]")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "portfolio.png"))

    # The same person on a phone: the session cookie (a Cookie read back is the same fields as
    # one to set, though typed apart).
    phone.context.add_cookies(cast(Any, page.context.cookies()))
    phone.goto("/portfolio")
    expect(phone.locator("tr[data-asset=LINK]")).to_be_visible()
    phone.screenshot(path=str(SCREENSHOTS / "portfolio-phone.png"))
