"""The nginx configuration rendered from the routing table, read as text: a location pair per
prefix and one per exact path, each to its service's upstream; streams unbuffered with an hour's
read timeout; the edge's headers set once for every location; nothing from the parameters can
break out of its directive. (tests/system/test_nginx.py runs it in a real nginx.)"""

from __future__ import annotations

import re

import pytest

from orderproc.deploy.__main__ import main as deploy_main
from orderproc.deploy.nginx import render_nginx, upstream_name
from orderproc.gateway.routes import IDENTITY_HEADERS, ROUTES, Service

UPSTREAMS = {
    s: [f"10.0.0.{i + 1}:8080", f"svc-{s.value}.internal:8080"] for i, s in enumerate(Service)
}
LOCATION = re.compile(r"^    location (= )?(\S+) \{\n(.*?)^    \}", re.MULTILINE | re.DOTALL)


def locations(text: str) -> dict[tuple[bool, str], str]:
    return {(bool(m.group(1)), m.group(2)): m.group(3) for m in LOCATION.finditer(text)}


@pytest.fixture(scope="module")
def text() -> str:
    return render_nginx(UPSTREAMS, listen="8080", server_name="shop.example")


def test_each_route_has_its_locations_to_its_service(text: str) -> None:
    found = locations(text)
    expected: dict[tuple[bool, str], str] = {}
    for route in ROUTES:
        if route.path == "/":
            keys = [(False, "/")]
        elif route.exact:
            keys = [(True, route.path)]
        else:
            keys = [(True, route.path), (False, route.path + "/")]
        for key in keys:
            expected[key] = upstream_name(route.service)
    assert {key for key in found if key[1] != "@orderproc_unavailable"} == set(expected)
    for key, upstream in expected.items():
        assert f"proxy_pass http://{upstream};" in found[key], key


def test_streams_are_unbuffered_with_a_long_read_timeout(text: str) -> None:
    found = locations(text)
    for route in ROUTES:
        body = found[(True, route.path)] if route.path != "/" else found[(False, "/")]
        assert ("proxy_buffering off;" in body) is route.stream, route.path
        assert ("proxy_read_timeout 1h;" in body) is route.stream, route.path


def test_headers_are_set_for_every_location_at_once(text: str) -> None:
    """A location with a proxy_set_header of its own would lose every one set for the server."""
    assert all("proxy_set_header" not in body for body in locations(text).values())
    server = text[text.index("server {") :]
    for name in IDENTITY_HEADERS:
        assert f'    proxy_set_header {name} "";\n' in server
    assert "    proxy_set_header X-Forwarded-For $remote_addr;" in server
    assert "    proxy_set_header X-Request-ID $orderproc_request_id;" in server


def test_every_address_is_an_upstream_server(text: str) -> None:
    for service, addresses in UPSTREAMS.items():
        block = text[text.index(f"upstream {upstream_name(service)} {{") :]
        block = block[: block.index("}")]
        assert [line.strip() for line in block.splitlines() if "server " in line] == [
            f"server {a};" for a in addresses
        ]


@pytest.mark.parametrize(
    "address",
    ["10.0.0.1", "10.0.0.1:80; }", "host:0", "host:70000", "a b:80", "-x:80", "[::1]x:80", ""],
)
def test_a_bad_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        render_nginx({**UPSTREAMS, Service.ORDERS: [address]})


def test_every_service_needs_an_address() -> None:
    with pytest.raises(ValueError, match="no upstream address for: webui"):
        render_nginx({**UPSTREAMS, Service.WEBUI: []})


@pytest.mark.parametrize(("listen", "name"), [("80; x", "_"), ("80", "a;b"), ("80", "a { b")])
def test_listen_and_server_name_cannot_break_out(listen: str, name: str) -> None:
    with pytest.raises(ValueError, match=r"^(listen|server name) "):
        render_nginx(UPSTREAMS, listen=listen, server_name=name)


def test_the_command_renders_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["render-nginx", "--listen", "8080", "--server-name", "shop.example"]
    for service, addresses in UPSTREAMS.items():
        for address in addresses:
            argv += [f"--{service.value}", address]
    assert deploy_main(argv) == 0
    assert capsys.readouterr().out == render_nginx(
        UPSTREAMS, listen="8080", server_name="shop.example"
    )
    assert deploy_main(argv[: argv.index("--webui")]) == 2
    assert "no upstream address for: webui, gateway" in capsys.readouterr().err


def test_https_when_given_a_certificate_and_key() -> None:
    text = render_nginx(UPSTREAMS, listen="443", tls=("/etc/tls/shop.crt", "/etc/tls/shop.key"))
    assert "    listen 443 ssl;\n" in text
    assert "    ssl_certificate /etc/tls/shop.crt;\n" in text
    assert "    ssl_certificate_key /etc/tls/shop.key;\n" in text
    assert "ssl" not in render_nginx(UPSTREAMS)
    with pytest.raises(ValueError, match="TLS file"):
        render_nginx(UPSTREAMS, tls=("/etc/tls/a.crt; include /x", "/etc/tls/a.key"))
