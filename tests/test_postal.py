"""Postal codes: validation and normalisation per country."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tms_server import postal

VALID = [
    ("SE", "111 34", "111 34"),
    ("SE", "11134", "111 34"),
    ("se", " 111  34 ", "111 34"),
    ("NO", "0150", "0150"),
    ("DK", "2100", "2100"),
    ("FI", "00100", "00100"),
    ("DE", "10115", "10115"),
    ("AT", "1010", "1010"),
    ("NL", "1012ab", "1012 AB"),
    ("NL", "1012 AB", "1012 AB"),
    ("GB", "sw1a1aa", "SW1A 1AA"),
    ("GB", "M1 1AE", "M1 1AE"),
    ("GB", "GIR 0AA", "GIR 0AA"),
    ("US", "90210", "90210"),
    ("US", "90210-1234", "90210-1234"),
    ("US", "902101234", "90210-1234"),
    ("XX", "ab-12", "AB-12"),
]
INVALID = [
    ("SE", "1113"),
    ("SE", "011 34"),
    ("SE", "111 345"),
    ("NO", "01500"),
    ("DK", "210"),
    ("FI", "0010"),
    ("DE", "1011"),
    ("AT", "10100"),
    ("NL", "0123 AB"),
    ("NL", "1012 SS"),
    ("GB", "12345"),
    ("US", "9021"),
    ("US", "ABCDE"),
    ("SE", ""),
    ("XX", "!!"),
]


@pytest.mark.parametrize(("country", "code", "expected"), VALID)
def test_valid_codes_normalise(country: str, code: str, expected: str) -> None:
    """Valid codes come back in the national display form."""
    assert postal.normalise(country, code) == expected
    assert postal.is_valid(country, code)


@pytest.mark.parametrize(("country", "code"), INVALID)
def test_invalid_codes(country: str, code: str) -> None:
    """Codes that cannot exist in the country are refused."""
    assert postal.normalise(country, code) is None
    assert not postal.is_valid(country, code)


def test_compact_form() -> None:
    """The compact form drops spaces and hyphens and upper-cases."""
    assert postal.compact("111 34") == "11134"
    assert postal.compact("sw1a 1aa") == "SW1A1AA"
    assert postal.compact("90210-1234") == "902101234"


@given(country=st.sampled_from([*sorted(postal.KNOWN_COUNTRIES), "XX"]), code=st.text(max_size=20))
def test_normalise_never_raises_and_is_idempotent(country: str, code: str) -> None:
    """Any text is either refused or normalised to a fixed point."""
    once = postal.normalise(country, code)
    if once is not None:
        assert postal.normalise(country, once) == once


@given(digits=st.from_regex(r"[1-9][0-9]{4}", fullmatch=True))
def test_every_swedish_five_digit_code_is_valid(digits: str) -> None:
    """Swedish codes are five digits not starting with 0, shown as NNN NN."""
    assert postal.normalise("SE", digits) == f"{digits[:3]} {digits[3:]}"
