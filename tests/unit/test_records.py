"""The storage records' `__init__` (`records.fast_init`): what `dataclass` would make, faster."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from orderproc.common.storage import records

RECORDS = [
    value
    for value in vars(records).values()
    if inspect.isclass(value)
    and dataclasses.is_dataclass(value)
    and value.__module__ == records.__name__
]


def test_every_record_of_the_module_has_the_fast_init() -> None:
    """(Not `PageKey`, which is only compared; the tests below hold for `dataclass`'s own.)"""
    fast = {r.__name__ for r in RECORDS if "__setattr__" not in r.__init__.__code__.co_names}
    assert {"CandleRecord", "PriceUpdate", "AuditEvent", "UserRecord", "Page"} <= fast
    assert {record.__name__ for record in RECORDS} - fast == {"PageKey"}


@pytest.mark.parametrize("record", RECORDS, ids=lambda record: record.__name__)
def test_sets_every_field_by_position_and_by_name(record: type[Any]) -> None:
    fields = dataclasses.fields(record)
    values = [object() for _ in fields]
    by_position = record(*values)
    by_name = record(**{field.name: value for field, value in zip(fields, values, strict=True)})
    for field, value in zip(fields, values, strict=True):
        assert getattr(by_position, field.name) is value
        assert getattr(by_name, field.name) is value
    assert by_position == by_name
    assert hash(by_position) == hash(by_name)


@pytest.mark.parametrize("record", RECORDS, ids=lambda record: record.__name__)
def test_leaves_out_what_has_a_default_and_stays_frozen(record: type[Any]) -> None:
    fields = dataclasses.fields(record)
    required = {
        field.name: object()
        for field in fields
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    }
    made, again = record(**required), record(**required)
    for field in fields:
        if field.default is not dataclasses.MISSING:
            assert getattr(made, field.name) == field.default
        elif field.default_factory is not dataclasses.MISSING:
            assert getattr(made, field.name) == field.default_factory()
            assert getattr(made, field.name) is not getattr(again, field.name)  # a fresh one
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.__setattr__(fields[0].name, object())
    changed = dataclasses.replace(made, **{fields[0].name: "changed"})
    assert getattr(changed, fields[0].name) == "changed"
    with pytest.raises(TypeError):
        record(**required, not_a_field=1)
    if required:
        with pytest.raises(TypeError):
            record()
