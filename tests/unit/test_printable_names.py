"""Names and texts without control, invisible formatting or unassigned characters
(`orderproc.common.fields.PrintableName` and `PrintableText`)."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import TypeAdapter, ValidationError

from orderproc.common.fields import PrintableName, PrintableText, refused_character

NAME = TypeAdapter(Annotated[str, PrintableName])
TEXT = TypeAdapter(Annotated[str, PrintableText])

REFUSED = {
    "NUL": "\x00",
    "escape": "\x1b",
    "newline": "\n",
    "tab": "\t",
    "DEL": "\x7f",
    "C1 control": "\x85",
    "left-to-right embedding": "\u202a",
    "right-to-left override": "\u202e",
    "left-to-right isolate": "\u2066",
    "pop directional isolate": "\u2069",
    "right-to-left mark": "\u200f",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "private use": "\ue000",
    "unassigned": "\U000e0fff",
    "lone surrogate": "\ud800",
}


@pytest.mark.parametrize("char", REFUSED.values(), ids=REFUSED.keys())
def test_a_name_refuses_each_kind(char: str) -> None:
    with pytest.raises(ValidationError, match=f"U\\+{ord(char):04X} at position 4"):
        NAME.validate_python(f"Ada{char}Lovelace")


@pytest.mark.parametrize(
    "name",
    [
        "Ada Lovelace",
        "Zoë O'Brien-Smith",
        "José María",
        "Łukasz Żółć",
        "Ærøskøbing",
        "Nguyễn Thị Minh Khai",
        "محمد",  # right-to-left script, no override
        "עברית",
        "李小龍",
        "Ὀδυσσεύς",
        "Dogecoin 🐕",
        "non\u00a0breaking",  # a no-break space is a space (Zs)
    ],
)
def test_a_name_accepts_letters_of_every_script(name: str) -> None:
    assert NAME.validate_python(name) == name


def test_free_text_keeps_line_breaks_and_tabs_only() -> None:
    text = "First line.\r\nSecond\tline."
    assert TEXT.validate_python(text) == text
    for char in ("\x00", "\u202e", "\u2066", "\u200b", "\u2028"):
        with pytest.raises(ValidationError):
            TEXT.validate_python(f"a{char}b")


def test_refused_character_names_the_first_one() -> None:
    assert refused_character("ok") is None
    assert refused_character("a\u202eb\x00") == "U+202E at position 2"
    assert refused_character("a\nb", allow=frozenset("\n")) is None
