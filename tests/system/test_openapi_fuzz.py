"""Schemathesis over the OpenAPI document of a real server, authenticated: no 5xx, and every
answer (status, content type, body) is one the document declares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.schemas import BaseOpenAPISchema

from tests.system.harness import ServerProcess, register_and_login

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(Path(tmp_path_factory.mktemp("fuzz"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth(fuzz_server: ServerProcess) -> dict[str, str]:
    with httpx.Client(base_url=fuzz_server.url) as client:
        headers = register_and_login(client, "fuzzer")
        client.post("/api/v1/balance/deposit", headers=headers, json={"amount": "500"})
        return headers


@pytest.fixture(scope="module")
def api_schema(fuzz_server: ServerProcess) -> BaseOpenAPISchema:
    schema = schemathesis.from_uri(f"{fuzz_server.url}/openapi.json", base_url=fuzz_server.url)
    # Logging out or changing the password would revoke the token the rest of the run uses;
    # the API tests cover both.
    return schema.exclude(path_regex=r"/auth/(logout|password)$")  # type: ignore[no-any-return]


schemathesis.experimental.OPEN_API_3_1.enable()  # FastAPI emits OpenAPI 3.1
schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_the_api_keeps_its_documented_promises(
    case: schemathesis.Case, auth: dict[str, str]
) -> None:
    case.call_and_validate(headers={**(case.headers or {}), **auth})
