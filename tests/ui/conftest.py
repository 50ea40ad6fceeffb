"""Browser tests: Debian's Chromium driven by pytest-playwright against a real `orderproc serve`
process. A failing test leaves a screenshot in `test-artifacts/ui/`."""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.system.harness import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
FEE_BPS = 10


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason="needs Chromium: apt-get install chromium")
    for item in items:
        here = Path(str(item.fspath)).is_relative_to(Path(__file__).parent)
        if here and "page" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("ui-server"),
        ORDERPROC_PRICE_TICK_SECONDS="0.5",
        ORDERPROC_PRICE_STALE_SECONDS="30",
        ORDERPROC_TAKER_FEE_BPS=str(FEE_BPS),
        ORDERPROC_CANDLE_BACKFILL="true",  # a fresh install's history, for the chart's ranges
    ).start()
    wait_for_a_price_tick(server.url)
    yield server
    server.stop()


def wait_for_a_price_tick(url: str, seconds: float = 15) -> None:
    """Trading refuses prices older than the staleness bound; the seeded ones are until the
    feed's first tick, so the tests start after it."""
    asset = f"{url}/api/v1/inventory/assets/BTC"
    first = httpx.get(asset).json()["data"]["last_updated"]
    deadline = time.monotonic() + seconds
    while httpx.get(asset).json()["data"]["last_updated"] == first:
        if time.monotonic() > deadline:
            raise TimeoutError("the price feed did not tick")
        time.sleep(0.1)


def wait_for_history(url: str, asset_id: str, seconds: float = 90) -> None:
    """The backfill writes an asset's days last (in the background, largest assets first):
    once two years of them are there, all its history is."""
    candles = f"{url}/api/v1/inventory/assets/{asset_id}/candles"
    deadline = time.monotonic() + seconds
    while len(httpx.get(candles, params={"interval": "1d", "limit": 1000}).json()["data"]) < 700:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no backfilled history for {asset_id}")
        time.sleep(0.25)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(
    browser_context_args: dict[str, Any], ui_server: ServerProcess
) -> dict[str, Any]:
    return {
        **browser_context_args,
        "base_url": ui_server.url,
        "viewport": {"width": 1280, "height": 800},
        "color_scheme": "light",
        "reduced_motion": "reduce",
    }


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def screenshot_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    if "page" not in request.fixturenames:
        yield
        return
    page: Page = request.getfixturevalue("page")
    page.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def new_username() -> str:
    return f"ui_{uuid.uuid4().hex[:10]}"


def sign_up(page: Page, username: str | None = None) -> str:
    """Registers through the form; the app lands on the cash page, signed in."""
    username = username or new_username()
    page.goto("/register")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Last name").fill("Lovelace")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/cash$"))
    return username


def deposit(page: Page, amount: str) -> None:
    page.goto("/cash")
    page.locator("#f-deposit-amount").fill(amount)
    page.locator("#deposit-card").get_by_role("button", name="Deposit").click()
    expect(page.get_by_role("status").filter(has_text="Deposited")).to_be_visible()


def place_order(page: Page, asset_id: str, *, side: str, mode: str, amount: str) -> None:
    """Fills the ticket on the asset page, waits for the estimate, places the order."""
    if not page.url.endswith(f"/assets/{asset_id}"):
        page.goto(f"/assets/{asset_id}")
    ticket = page.locator("#ticket")
    ticket.locator(f"label[for=side-{side}]").click()
    ticket.locator(f"label[for=mode-{mode}]").click()
    ticket.get_by_label("Amount", exact=True).fill(amount)
    expect(ticket.get_by_test_id("estimate-total")).to_be_visible()
    ticket.get_by_role("button", name="Place order").click()
    verb = "Bought" if side == "buy" else "Sold"
    expect(page.get_by_test_id("order-result")).to_contain_text(verb)
