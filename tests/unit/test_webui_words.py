"""Every plain-words message of the web UI is for an error code the API really answers."""

from __future__ import annotations

from orderproc import errors
from orderproc.errors.exceptions import OrderProcError
from orderproc.webui.client import PLAIN_WORDS


def _codes(base: type[OrderProcError]) -> set[str]:
    found = {base.code}
    for sub in base.__subclasses__():
        found |= _codes(sub)
    return found


def test_every_plain_words_code_is_an_api_error_code() -> None:
    assert errors  # the package's modules are imported, so every subclass is registered
    assert set(PLAIN_WORDS) - _codes(OrderProcError) == set()
