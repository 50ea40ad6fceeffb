"""Prices and the chart move on screen without a reload."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.ui


def poll(condition: Callable[[], bool], *, seconds: float = 20) -> bool:
    """Checks from the test side (the pages' CSP forbids the eval behind wait_for_function)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def dollars(shown: str) -> Decimal:
    """A price as the pages show it (`$51,616.32`)."""
    return Decimal(shown.removeprefix("$").replace(",", ""))


def test_a_price_moves_on_screen_without_a_reload(page: Page) -> None:
    page.goto("/market")
    prices = page.locator("[data-testid^=price-]")
    expect(prices.first).to_be_visible()
    page.evaluate("window.__sameDocument = true")
    before = prices.all_inner_texts()[:20]
    assert poll(lambda: prices.all_inner_texts()[:20] != before), "no price moved in 20 s"
    assert page.evaluate("window.__sameDocument") is True  # no navigation happened


def test_market_search_filters_the_table_in_place(page: Page) -> None:
    page.goto("/market")
    page.get_by_label("Search").fill("bitcoin")
    expect(page.locator("tr[data-asset=ETH]")).to_have_count(0)
    expect(page.locator("tr[data-asset=BTC]")).to_be_visible()
    expect(page).to_have_url("/market?q=bitcoin&category=&sort=rank")
    page.go_back()
    expect(page.locator("tr[data-asset=ETH]")).to_be_visible()
    expect(page.get_by_role("heading", name="Market")).to_have_count(1)


def test_the_chart_canvas_is_drawn_and_follows_live_prices(page: Page) -> None:
    page.goto("/assets/BTC")
    chart = page.locator("#chart")
    expect(chart.locator("canvas").first).to_be_visible()
    expect(chart).not_to_have_attribute("data-ready", "0")
    painted = page.evaluate(
        """() => [...document.querySelectorAll('#chart canvas')].some(c => {
            const ctx = c.getContext('2d');
            if (!ctx || !c.width || !c.height) return false;
            const data = ctx.getImageData(0, 0, c.width, c.height).data;
            for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
            return false;
        })"""
    )
    assert painted
    ticks = re.compile(r"^([2-9]|\d{2,})$")  # at least two live ticks drawn
    expect(chart).to_have_attribute("data-ticks", ticks, timeout=20_000)

    # The bid and the ask move with the price, and the bid is never above the ask.
    bid, ask = page.get_by_test_id("bid-BTC"), page.get_by_test_id("ask-BTC")
    page.evaluate("window.__sameDocument = true")
    before = bid.inner_text(), ask.inner_text()
    assert poll(lambda: (bid.inner_text(), ask.inner_text()) != before), "no quote moved in 20 s"
    assert page.evaluate("window.__sameDocument") is True  # swapped in, not reloaded
    assert dollars(before[0]) <= dollars(before[1])
    assert dollars(bid.inner_text()) <= dollars(ask.inner_text())
    page.get_by_role("button", name="1h").click()
    expect(page.get_by_role("button", name="1h")).to_have_attribute("aria-pressed", "true")
    expect(chart).not_to_have_attribute("data-ready", "0")
