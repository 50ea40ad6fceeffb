"""A person signs up, funds the account, trades from an asset page and follows the results."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import PASSWORD, deposit, new_username, place_order, sign_up

MONEY = re.compile(r"^[+\u2212]?\$\d{1,3}(,\d{3})*\.\d{2}$")

pytestmark = pytest.mark.ui


def test_register_deposit_buy_see_position_sell_and_see_ledger(page: Page) -> None:
    sign_up(page)
    expect(page.get_by_text("Welcome! Add some cash")).to_be_visible()
    deposit(page, "10000")
    expect(page.get_by_test_id("balance")).to_have_text("$10,000.00")

    page.goto("/assets/ETH")
    ticket = page.locator("#ticket")
    ticket.get_by_label("Amount", exact=True).fill("1000")
    expect(ticket.get_by_test_id("estimate-fee")).to_have_text("$1.00")  # 10 bps of $1,000
    expect(ticket.get_by_test_id("estimate-total")).to_have_text("$1,001.00")
    place_order(page, "ETH", side="buy", mode="amount", amount="1000")
    expect(page.locator("#position")).to_contain_text("Average cost")

    page.goto("/portfolio")
    row = page.locator("tr[data-asset=ETH]")
    expect(row).to_be_visible()
    for figure in ("total-value", "cash", "unrealized-pnl", "realized-pnl"):
        expect(page.get_by_test_id(figure)).to_have_text(MONEY)
    expect(page.get_by_test_id("cash")).to_have_text("$8,999.00")

    place_order(page, "ETH", side="sell", mode="amount", amount="400")
    page.goto("/portfolio")
    expect(page.get_by_test_id("realized-pnl")).not_to_have_text("$0.00")

    page.goto("/cash")
    ledger = page.get_by_test_id("ledger")
    expect(ledger).to_contain_text("Order sale")
    expect(ledger).to_contain_text("Order payment")
    expect(ledger).to_contain_text("Deposit")
    expect(ledger).to_contain_text("Fee")
    expect(ledger.locator("tbody tr")).to_have_count(5)  # deposit, two trades, two fees

    page.goto("/cash?transaction_type=fee")
    expect(page.get_by_test_id("ledger").locator("tbody tr")).to_have_count(2)

    page.goto("/orders?order_type=market_sell")
    expect(page.locator("table.history tbody tr")).to_have_count(1)


def test_wrong_password_shows_an_error_next_to_the_form(page: Page) -> None:
    username = sign_up(page)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))

    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-form").get_by_role("alert")).to_have_text(
        "Wrong username or password."
    )
    # The form comes back with the username kept and the keyboard on the password. Waiting for
    # that focus also waits for htmx to settle the swap: typing before it once sent the password
    # into the username field, where the old form's autofocus moved the caret.
    expect(page.get_by_label("Username")).to_have_value(username)
    expect(page.get_by_label("Password")).to_be_focused()

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/portfolio$"))


def test_refusals_are_shown_in_plain_words_next_to_the_field(page: Page) -> None:
    sign_up(page)
    page.locator("#f-withdraw-amount").fill("50")
    page.locator("#withdraw-card").get_by_role("button", name="Withdraw").click()
    expect(page.locator("#e-withdraw-amount")).to_have_text(
        "You don't have enough cash available for this."
    )
    expect(page.locator("#f-withdraw-amount")).to_be_focused()

    page.goto("/assets/BTC")
    page.locator("#ticket").get_by_label("Amount", exact=True).fill("0.5")
    expect(page.locator("#estimate")).to_contain_text("minimum")  # the API's estimate says so
    page.locator("#ticket").get_by_role("button", name="Place order").click()
    expect(page.locator("#e-amount")).to_contain_text("minimum")


def test_a_new_username_can_not_be_taken_twice(page: Page) -> None:
    username = new_username()
    sign_up(page, username)
    page.get_by_role("button", name="Log out").click()
    page.goto("/register")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"other-{username}@example.com")
    page.get_by_label("First name").fill("B")
    page.get_by_label("Last name").fill("C")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#e-username")).to_have_text("That username is taken. Try another one.")
