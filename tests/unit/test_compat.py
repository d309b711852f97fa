"""keyless.compat behaves as the standard library of Python 3.11+ does: ``StrEnum`` members are
their values for str(), format(), f-strings, JSON, comparison and hashing; ``UTC`` is UTC."""

from __future__ import annotations

import datetime
import enum
import json
import sys

import pytest

from keyless.compat import UTC, StrEnum


class Colour(StrEnum):
    RED = "red"
    DARK_BLUE = "dark blue"


def test_str_format_and_fstrings_give_the_value() -> None:
    assert str(Colour.RED) == "red"
    assert format(Colour.DARK_BLUE) == "dark blue"
    assert f"{Colour.RED}|{Colour.RED:>5}|{Colour.RED!s}" == "red|  red|red"
    assert "%s" % Colour.RED == "red"  # noqa: UP031 - the old formatting too
    assert repr(Colour.RED) == "<Colour.RED: 'red'>"


def test_members_are_strings_that_equal_hash_and_serialise_as_their_values() -> None:
    assert isinstance(Colour.RED, str)
    value: str = "red"
    assert value == Colour.RED
    assert {"red": 1}[Colour.RED] == 1
    assert Colour("dark blue") is Colour.DARK_BLUE
    assert json.dumps({"c": Colour.RED, Colour.DARK_BLUE: [Colour.RED]}) == (
        '{"c": "red", "dark blue": ["red"]}'
    )
    assert Colour.RED.upper() == "RED"
    assert sorted([Colour.RED, Colour.DARK_BLUE]) == [Colour.DARK_BLUE, Colour.RED]
    with pytest.raises(ValueError, match="'green' is not a valid Colour"):
        Colour("green")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="enum.StrEnum is new in 3.11")
def test_the_same_as_the_standard_library_strenum() -> None:
    standard_enum = getattr(enum, "StrEnum")  # noqa: B009 - absent on 3.10 for mypy
    standard = standard_enum("Standard", {"RED": "red", "DARK_BLUE": "dark blue"})
    for ours, theirs in zip(Colour, standard, strict=True):
        assert (str(ours), format(ours), f"{ours:>12}", json.dumps(ours)) == (
            str(theirs),
            format(theirs),
            f"{theirs:>12}",
            json.dumps(theirs),
        )
        assert hash(ours) == hash(theirs)


def test_utc_is_the_utc_timezone() -> None:
    assert UTC is datetime.timezone.utc
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert moment.isoformat() == "2026-01-02T03:04:05+00:00"
    assert moment.utcoffset() == datetime.timedelta(0)
