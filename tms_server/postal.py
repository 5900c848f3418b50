"""Postal codes: validation and normalisation per country, and the compact form rules compare.

This module owns what a postal code of a country looks like. ``normalise`` returns the code in its
national display form ("111 34", "SW1A 1AA", "1012 AB") or None when it cannot be one of that
country's codes; ``compact`` is the form catalog patterns and ranges are matched against (upper case,
no spaces or hyphens). Countries without a known format accept any non-empty code of letters, digits,
spaces and hyphens: refusing a real address of a country we have no table for would lose a sale.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

__all__ = ["DIGIT_COUNTRIES", "KNOWN_COUNTRIES", "compact", "is_valid", "normalise"]


def _digits(n: int) -> Callable[[str], str | None]:
    pattern = re.compile(rf"\d{{{n}}}")

    def check(code: str) -> str | None:
        bare = code.replace(" ", "")
        return bare if pattern.fullmatch(bare) else None

    return check


def _se(code: str) -> str | None:
    bare = code.replace(" ", "")
    if not re.fullmatch(r"[1-9]\d{4}", bare):
        return None
    return f"{bare[:3]} {bare[3:]}"


def _nl(code: str) -> str | None:
    match = re.fullmatch(r"([1-9]\d{3}) ?([A-Z]{2})", code)
    # SA, SD and SS are not issued (historic connotations).
    if match is None or match.group(2) in ("SA", "SD", "SS"):
        return None
    return f"{match.group(1)} {match.group(2)}"


_GB_OUTWARD = r"(GIR|[A-Z]{1,2}\d[A-Z\d]?)"
_GB_INWARD = r"(\d[A-Z]{2})"


def _gb(code: str) -> str | None:
    bare = code.replace(" ", "")
    if bare == "GIR0AA":
        return "GIR 0AA"
    match = re.fullmatch(_GB_OUTWARD + _GB_INWARD, bare)
    return f"{match.group(1)} {match.group(2)}" if match else None


def _us(code: str) -> str | None:
    match = re.fullmatch(r"(\d{5})(?:[- ]?(\d{4}))?", code)
    if match is None:
        return None
    return f"{match.group(1)}-{match.group(2)}" if match.group(2) else match.group(1)


def _any(code: str) -> str | None:
    return code if re.fullmatch(r"[A-Z0-9][A-Z0-9 \-]{0,15}", code) else None


_FORMATS: Final[dict[str, Callable[[str], str | None]]] = {
    "SE": _se,
    "NO": _digits(4),
    "DK": _digits(4),
    "FI": _digits(5),
    "DE": _digits(5),
    "AT": _digits(4),
    "CH": _digits(4),
    "BE": _digits(4),
    "FR": _digits(5),
    "ES": _digits(5),
    "IT": _digits(5),
    "PL": lambda c: (m.group(1) + "-" + m.group(2)) if (m := re.fullmatch(r"(\d{2})-?(\d{3})", c)) else None,
    "NL": _nl,
    "GB": _gb,
    "US": _us,
}
KNOWN_COUNTRIES: Final = frozenset(_FORMATS)
# Countries whose every code is digits of one fixed length.
DIGIT_COUNTRIES: Final = frozenset({"SE", "NO", "DK", "FI", "DE", "AT", "CH", "BE", "FR", "ES", "IT"})


def normalise(country: str, code: str) -> str | None:
    """``code`` in ``country``'s display form, or None when it is not a valid code there."""
    cleaned = " ".join(code.upper().split())
    if not cleaned:
        return None
    return _FORMATS.get(country.upper(), _any)(cleaned)


def is_valid(country: str, code: str) -> bool:
    """Whether ``code`` is a well-formed postal code of ``country``."""
    return normalise(country, code) is not None


def compact(code: str) -> str:
    """The comparison form: upper case without spaces or hyphens ("111 34" -> "11134")."""
    return re.sub(r"[\s\-]", "", code.upper())
