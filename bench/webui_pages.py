"""CPU per web UI page in embedded mode, inside one process, with no HTTP and no network.

    .venv/bin/python bench/webui_pages.py [--requests 500] [--rounds 3]

Builds the embedded app on a temporary SQLite database (as `bench/inprocess.py`: real settings
except cheap password hashing and no limits in the way), signs a browser in through the login
form, gives it cash and three positions, then calls the ASGI app directly with its session
cookie, one page at a time, and prints the process CPU time per page (user + system) for
`/portfolio` and `/market` (one API call each: the portfolio, a page of the catalog), best and
worst of the rounds. A page's cost includes its in-process calls to the API through the web UI's
client (`webui/client.py`), which is what this measures; compare two versions of the code in
one sitting, A, B, A.

With `--compare`, the rounds of `/portfolio` alternate, in this one process and app, between the
web UI's one long-lived client (`InProcessApi`) and a client and ASGI transport made for each
call, as the web UI did before (re-created here), so both meet the same load; then it counts
the Python function calls per page of each way under cProfile, a figure that load does not move.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from inprocess import exchange

import orderproc
from orderproc.gateway.app import create_app
from orderproc.testing import test_settings
from orderproc.webui import client as webui_client

Headers = list[tuple[bytes, bytes]]
PASSWORD = "correct horse battery staple"
HIDDEN = re.compile(rb'<input type="hidden" name="(\w+)" value="([^"]*)">')


async def call(
    app: Any, method: str, path: str, headers: Headers, body: bytes = b""
) -> tuple[int, Headers, bytes]:
    """One request from the browser's address straight into the app (`inprocess.exchange`)."""
    return await exchange(app, method, path, headers, body, client=("198.51.100.7", 50000))


async def per_call_client(
    self: webui_client.InProcessApi,
    peer: tuple[str, int],
    method: str,
    url: str,
    **options: Any,
) -> httpx.Response:
    """The web UI's way before one client per app: a client and a transport for each call."""
    transport = httpx.ASGITransport(app=self._app, client=peer)
    base_url = f"http://{webui_client.INTERNAL_HOST}"
    async with httpx.AsyncClient(transport=transport, base_url=base_url, trust_env=False) as client:
        return await client.request(method, url, **options)


async def compare(app: Any, browser: Headers, requests: int, rounds: int) -> None:
    ways = {"one client": webui_client.InProcessApi.request, "client per call": per_call_client}
    figures: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            webui_client.InProcessApi.request = way  # type: ignore[method-assign]
            gc.collect()
            start = time.process_time()
            for _ in range(requests):
                status, _, page = await call(app, "GET", "/portfolio", browser)
                if status != 200:
                    raise SystemExit(f"/portfolio: {status} {page[:200]!r}")
            figures[name].append((time.process_time() - start) / requests * 1e6)
    calls: dict[str, float] = {}
    for name, way in ways.items():
        webui_client.InProcessApi.request = way  # type: ignore[method-assign]
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(100):
            await call(app, "GET", "/portfolio", browser)
        profile.disable()
        calls[name] = pstats.Stats(profile).total_calls / 100  # type: ignore[attr-defined]
    webui_client.InProcessApi.request = ways["one client"]  # type: ignore[method-assign]
    print(f"/portfolio, {requests} pages a round, {rounds} rounds each; CPU µs per page")
    for name, found in figures.items():
        low, middle = min(found), sorted(found)[len(found) // 2]
        shown = " ".join(f"{f:.0f}" for f in found)
        print(f"{name:16} min {low:6.0f}  median {middle:6.0f}   ({shown})")
    for name, count in calls.items():
        print(f"{name:16} {count:,.0f} Python function calls per page (cProfile)")


def session_cookie(headers: Headers) -> bytes:
    for name, value in headers:
        if name == b"set-cookie" and value.startswith(b"op_session="):
            return value.split(b";", 1)[0]
    raise SystemExit("no session cookie")


async def sign_in(app: Any) -> Headers:
    json_headers = [(b"content-type", b"application/json")]
    user = {
        "username": "bench",
        "email": "bench@example.com",
        "password": PASSWORD,
        "first_name": "Bench",
        "last_name": "Mark",
    }
    status, _, body = await call(
        app, "POST", "/api/v1/auth/register", json_headers, orjson.dumps(user)
    )
    assert status == 201, body
    status, headers, page = await call(app, "GET", "/login", [])
    cookie = session_cookie(headers)
    start = page.index(b'action="/login"')
    form = dict(HIDDEN.findall(page[start : page.index(b"</form>", start)]))
    fields = {k.decode(): v.decode() for k, v in form.items()}
    posted = urlencode({**fields, "username": "bench", "password": PASSWORD}).encode()
    form_headers = [(b"content-type", b"application/x-www-form-urlencoded"), (b"cookie", cookie)]
    status, headers, body = await call(app, "POST", "/login", form_headers, posted)
    assert status == 303, body
    cookie = session_cookie(headers) if any(n == b"set-cookie" for n, _ in headers) else cookie
    login = orjson.dumps({"username": "bench", "password": PASSWORD})
    status, _, body = await call(app, "POST", "/api/v1/auth/login", json_headers, login)
    assert status == 200, body
    auth = [(b"authorization", b"Bearer " + orjson.loads(body)["access_token"].encode())]
    deposit = orjson.dumps({"amount": "100000.00"})
    assert (await call(app, "POST", "/api/v1/balance/deposit", auth + json_headers, deposit))[
        0
    ] == 201
    for asset in ("BTC", "ETH", "SOL"):
        order = {"order_type": "market_buy", "asset_id": asset, "notional": "1000.00"}
        status, _, body = await call(
            app, "POST", "/api/v1/orders", auth + json_headers, orjson.dumps(order)
        )
        assert status == 201, body
    return [(b"cookie", cookie)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", action="store_true", help="one client against one per call")
    args = parser.parse_args()
    print(f"orderproc from {Path(orderproc.__file__).parent}; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        settings = test_settings(
            Path(tmp), deposit_daily_limit="1000000000", login_block_enabled=False
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            browser = await sign_in(app)
            if args.compare:
                await compare(app, browser, args.requests, args.rounds)
                return
            print(f"{args.requests} pages a round, {args.rounds} rounds; CPU µs per page")
            for path in ("/portfolio", "/market"):
                figures = []
                for _ in range(args.rounds):
                    gc.collect()
                    start = time.process_time()
                    for _ in range(args.requests):
                        status, _, page = await call(app, "GET", path, browser)
                        if status != 200:
                            raise SystemExit(f"{path}: {status} {page[:200]!r}")
                    figures.append((time.process_time() - start) / args.requests * 1e6)
                shown = " ".join(f"{f:.0f}" for f in figures)
                print(f"{path:12} min {min(figures):6.0f}  max {max(figures):6.0f}   ({shown})")


if __name__ == "__main__":
    asyncio.run(main())
