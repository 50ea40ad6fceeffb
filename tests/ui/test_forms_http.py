"""The forms as a plain browser without JavaScript would post them: CSRF, idempotency keys and
logout, checked over HTTP against the real server."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.system.harness import ServerProcess, register_and_login
from tests.ui.conftest import PASSWORD

pytestmark = pytest.mark.ui
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


def hidden_fields(html: str, form_action: str) -> dict[str, str]:
    """The hidden inputs of the form that posts to `form_action`."""
    start = html.index(f'action="{form_action}"')
    return dict(HIDDEN.findall(html[start : html.index("</form>", start)]))


@pytest.fixture
def browser_like(ui_server: ServerProcess) -> Iterator[httpx.Client]:
    """A signed-in client with 2,000 USD, holding the session cookie as a browser would."""
    username = f"http_{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=ui_server.url, follow_redirects=True) as client:
        form = hidden_fields(client.get("/register").text, "/register")
        client.post(
            "/register",
            data={
                **form,
                "username": username,
                "email": f"{username}@example.com",
                "first_name": "No",
                "last_name": "Script",
                "password": PASSWORD,
            },
        ).raise_for_status()
        cash = client.get("/cash").text
        deposit = hidden_fields(cash, "/cash/deposit")
        client.post("/cash/deposit", data={**deposit, "amount": "2000"})
        yield client


def test_the_same_rendered_order_form_posted_twice_makes_one_order(
    browser_like: httpx.Client,
) -> None:
    form = hidden_fields(browser_like.get("/assets/BTC").text, "/assets/BTC/order")
    order = {**form, "side": "buy", "mode": "amount", "amount": "100"}
    headers = {"hx-request": "true"}
    first = browser_like.post("/assets/BTC/order", data=order, headers=headers)
    second = browser_like.post("/assets/BTC/order", data=order, headers=headers)
    assert first.status_code == second.status_code == 200
    assert "Bought" in first.text
    orders = browser_like.get("/orders").text
    assert orders.count('<span class="tag buy">') == 1


def test_a_plain_form_post_without_javascript_redirects_back_with_a_message(
    browser_like: httpx.Client,
) -> None:
    form = hidden_fields(browser_like.get("/cash").text, "/cash/withdraw")
    page = browser_like.post("/cash/withdraw", data={**form, "amount": "25"})
    assert str(page.url).endswith("/cash")
    assert "Withdrew $25.00. Your balance is now $1,975.00." in page.text
    assert '<td class="num down">\u2212$25.00</td>' in page.text


def test_logout_drops_the_server_side_session(browser_like: httpx.Client) -> None:
    cookie = browser_like.cookies["op_session"]
    form = hidden_fields(browser_like.get("/portfolio").text, "/logout")
    browser_like.post("/logout", data=form)
    stale = httpx.get(str(browser_like.base_url.join("/portfolio")), cookies={"op_session": cookie})
    assert stale.status_code == 303
    assert stale.headers["location"].startswith("/login")


PAGER_LINK = re.compile(r'<a class="btn" href="\?([^"]*)" rel="(prev|next)">')


def pager_links(html: str) -> dict[str, str]:
    """The query strings of the pager's Newer (`prev`) and Older (`next`) links."""
    return {rel: query.replace("&amp;", "&") for query, rel in PAGER_LINK.findall(html)}


def test_the_ledger_pages_older_and_newer_by_cursor(ui_server: ServerProcess) -> None:
    username = f"pages_{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=ui_server.url, follow_redirects=True) as client:
        auth = register_and_login(client, username)
        for cents in range(1, 46):  # three pages of 20: $0.45 down to $0.01, newest first
            amount = f"0.{cents:02d}"
            client.post("/api/v1/balance/deposit", json={"amount": amount}, headers=auth)
        client.cookies.clear()
        form = hidden_fields(client.get("/login").text, "/login")
        client.post("/login", data={**form, "username": username, "password": PASSWORD})

        def amounts(html: str) -> list[str]:
            return re.findall(r'<td class="num up">\+\$(0\.\d\d)</td>', html)

        pages = [client.get("/cash?transaction_type=deposit").text]
        assert pager_links(pages[0]).keys() == {"next"}
        for _ in range(2):
            older = pager_links(pages[-1])["next"]
            assert "transaction_type=deposit" in older
            assert "cursor=" in older
            assert "offset" not in older
            pages.append(client.get(f"/cash?{older}").text)
        assert [amounts(page) for page in pages] == [
            [f"0.{c:02d}" for c in range(45, 25, -1)],
            [f"0.{c:02d}" for c in range(25, 5, -1)],
            [f"0.{c:02d}" for c in range(5, 0, -1)],
        ]
        assert pager_links(pages[2]).keys() == {"prev"}
        back = client.get(f"/cash?{pager_links(pages[2])['prev']}").text
        assert amounts(back) == amounts(pages[1])
        newest = client.get(f"/cash?{pager_links(back)['prev']}").text
        assert amounts(newest) == amounts(pages[0])
        assert pager_links(newest).keys() == {"next"}

        # A cursor that no longer holds (here, one signed for other filters) leads back to the
        # newest page of the same list, not to an error page.
        other = pager_links(client.get("/cash").text)["next"]
        stale = client.get(f"/cash?transaction_type=deposit&{other}")
        assert stale.url.path == "/cash"
        assert "cursor" not in str(stale.url.query)
        assert amounts(stale.text) == amounts(pages[0])
