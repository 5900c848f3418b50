"""The import files: GeoNames postal codes (tab-separated) and pickup-point networks (CSV or GeoJSON).

This module owns what a valid import file is. Each reader returns every row or raises ``ImportFileError``
listing the first mistakes with their line numbers (feature index for GeoJSON), so an operator fixes
the file in one go and a bad file never replaces good data.

- GeoNames postal codes (``https://download.geonames.org/export/zip/``, readme.txt there): one line
  per code, tab-separated: country code, postal code, place name, admin name1, admin code1, admin
  name2, admin code2, admin name3, admin code3, latitude, longitude, accuracy (1 estimated .. 6
  centroid of addresses; may be empty). Codes listed twice (a code shared by several places) keep
  the mean of their positions and the first place name.
- Pickup points, CSV (UTF-8, comma-separated, header line): ``id,name,street_address,postal_code,
  city,country,lat,lng`` plus optional ``hours_default``, ``hours_mon``..``hours_sun`` (the
  catalog's window syntax: ``07:00-22:00``, ``closed``, or several windows separated by ``;``),
  ``lead_days_min``, ``lead_days_max``. ``lat``/``lng`` may both be empty (no position known).
- Pickup points, GeoJSON: a FeatureCollection of Point features (``[lng, lat]``, RFC 7946) whose
  ``properties`` hold the CSV's other columns.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from typing import Any, Final

import orjson
from attrs import frozen

from tms_server import postal
from tms_server.catalog.model import WEEKDAYS, Hours
from tms_server.catalog.parse_parts import read_hours
from tms_server.catalog.reader import Context, Table
from tms_server.geo import plausible

__all__ = [
    "POINT_COLUMNS",
    "ImportFileError",
    "PointRow",
    "PostalRow",
    "read_geonames",
    "read_points",
]

_SHOWN_ERRORS: Final = 20
REQUIRED_COLUMNS: Final = ("id", "name", "street_address", "postal_code", "city", "country", "lat", "lng")
OPTIONAL_COLUMNS: Final = (
    "hours_default",
    *(f"hours_{d}" for d in WEEKDAYS),
    "lead_days_min",
    "lead_days_max",
)
POINT_COLUMNS: Final = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


class ImportFileError(ValueError):
    """An import file with mistakes; ``errors`` holds one "line N: column: message" each."""

    def __init__(self, errors: list[str], total: int | None = None) -> None:
        total = len(errors) if total is None else total
        shown = errors[:_SHOWN_ERRORS]
        if total > len(shown):
            shown.append(f"... and {total - len(shown)} more")
        super().__init__("\n".join(shown))
        self.errors = shown


@frozen
class PostalRow:
    """One postal code's position: compact code, degrees, GeoNames accuracy (or None)."""

    country: str
    postal_code: str
    place: str
    lat: float
    lng: float
    accuracy: int | None


@frozen
class PointRow:
    """One pickup point as imported; ``hours`` holds the raw window texts by column suffix."""

    line: int
    id: str
    name: str
    street_address: str
    postal_code: str
    city: str
    country: str
    lat: float | None
    lng: float | None
    hours: dict[str, str]
    lead_days: tuple[int, int] | None

    def opening_hours(self) -> Hours:
        """The parsed opening hours (validated at import, so this cannot fail)."""
        return parse_hours(Context(""), f"line {self.line}", self.hours)


_NUMBER: Final = re.compile(r"-?[0-9]{1,3}(\.[0-9]{1,12})?")
_SMALL_INT: Final = re.compile(r"[0-9]{1,2}")


def _coordinate(text: str, bound: float) -> float | None:
    """Decimal degrees as files write them ("57.6348"); not Python's wider float syntax
    ("5_7.6", "nan", "1e2")."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) and -bound <= value <= bound else None


def _controls(text: str) -> bool:
    """Whether ``text`` holds a control character (newline, ESC, NUL, ...), which would forge log
    lines or terminal output wherever the value is printed."""
    return not text.isprintable()


def read_geonames(lines: Iterable[str]) -> list[PostalRow]:
    """Every code of a GeoNames postal-code file, duplicates merged; ImportFileError on any mistake."""
    errors: list[str] = []
    count = 0
    merged: dict[tuple[str, str], list[Any]] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if _controls(line.replace("\t", "")):
            count += 1
            errors.append(f"line {number}: contains a control character")
            continue
        cells = line.split("\t")
        if len(cells) < 11:
            count += 1
            errors.append(
                f"line {number}: expected 12 tab-separated columns (GeoNames postal codes), got {len(cells)}"
            )
            continue
        country, code = cells[0].strip().upper(), postal.compact(cells[1].strip())
        lat, lng = _coordinate(cells[9], 90.0), _coordinate(cells[10], 180.0)
        problem = (
            "country: expected a two-letter code" if len(country) != 2 or not country.isalpha()
            else "postal code: expected 1-16 letters and digits" if not (code.isalnum() and code.isascii() and 0 < len(code) <= 16)
            else f"postal code: not a valid {country} postal code" if not _plausible_code(country, code)
            else "latitude: expected a number from -90 to 90" if lat is None
            else "longitude: expected a number from -180 to 180" if lng is None
            else None
        )  # fmt: skip
        if problem:
            count += 1
            errors.append(f"line {number}: {problem}")
            continue
        assert lat is not None and lng is not None
        accuracy = cells[11].strip() if len(cells) > 11 else ""
        acc = int(accuracy) if _SMALL_INT.fullmatch(accuracy) else None
        entry = merged.get((country, code))
        if entry is None:
            merged[country, code] = [cells[2].strip()[:200], lat, lng, 1, acc]
        else:
            entry[1], entry[2], entry[3] = entry[1] + lat, entry[2] + lng, entry[3] + 1
    if errors:
        raise ImportFileError(errors, count)
    if not merged:
        raise ImportFileError(["the file holds no postal codes"])
    return [
        PostalRow(country, code, place, lat / n, lng / n, acc)
        for (country, code), (place, lat, lng, n, acc) in merged.items()
    ]


def _plausible_code(country: str, code: str) -> bool:
    """Countries whose codes are all digits of one length must match it; GeoNames' other files
    (GB outward codes, NL's four digits, ...) are taken as they come."""
    return country not in postal.DIGIT_COUNTRIES or postal.normalise(country, code) is not None


def parse_hours(ctx: Context, path: str, cells: dict[str, str]) -> Hours:
    """Opening hours from ``{"default": "07:00-22:00", "sun": "closed", "sat": "09:00-12:00;13:00-16:00"}``."""
    data: dict[str, Any] = {}
    for key, text in cells.items():
        parts = [p.strip() for p in text.replace(",", ";").split(";") if p.strip()]
        if not parts:
            ctx.error(
                f"{path}.{key}", f"expected windows like 08:00-12:00;13:00-18:00 or closed, got {text!r}"
            )
            continue
        data[key] = parts[0] if len(parts) == 1 else parts
    return read_hours(Table(ctx, data, path))


def read_points(data: bytes) -> list[PointRow]:
    """Every point of a CSV or GeoJSON network file; ImportFileError listing the mistakes.

    GeoJSON is recognised by its first non-blank character ``{``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            [f"not UTF-8 text (byte {exc.start}): expected a CSV or GeoJSON file"]
        ) from None
    if "\x00" in text:
        raise ImportFileError(["the file contains NUL characters: expected a CSV or GeoJSON text file"])
    records = _geojson_records(text) if text.lstrip().startswith("{") else _csv_records(text)
    return _validate(records)


def _csv_records(text: str) -> list[tuple[str, int, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ImportFileError(
            ["the file is empty: expected a header line " + ",".join(REQUIRED_COLUMNS)]
        ) from None
    except csv.Error as exc:
        raise ImportFileError([f"line 1: {exc}"]) from None
    problems = [f"line 1: missing column {c!r}" for c in REQUIRED_COLUMNS if c not in header]
    problems += [
        f"line 1: unknown column {c!r} (expected {', '.join(POINT_COLUMNS)})"
        for c in header
        if c not in POINT_COLUMNS
    ]
    if len(set(header)) != len(header):
        problems.append("line 1: a column is named twice")
    if problems:
        raise ImportFileError(problems)
    records = []
    try:
        for row in reader:
            where = f"line {reader.line_num}"
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                records.append(
                    (where, reader.line_num, {"__error__": f"expected {len(header)} columns, got {len(row)}"})
                )
                continue
            records.append((where, reader.line_num, dict(zip(header, (c.strip() for c in row), strict=True))))
    except csv.Error as exc:
        raise ImportFileError([f"line {reader.line_num}: {exc}"]) from None
    return records


def _geojson_records(text: str) -> list[tuple[str, int, dict[str, str]]]:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ImportFileError([f"not valid JSON: {exc}"]) from None
    if (
        not isinstance(doc, dict)
        or doc.get("type") != "FeatureCollection"
        or not isinstance(doc.get("features"), list)
    ):
        raise ImportFileError(["expected a GeoJSON FeatureCollection with a features array"])
    records = []
    for i, feature in enumerate(doc["features"]):
        where = f"features[{i}]"
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(props, dict):
            records.append((where, i + 1, {"__error__": "expected a Feature with a properties object"}))
            continue
        cells = {k: ("" if v is None else str(v)) for k, v in props.items() if k in POINT_COLUMNS}
        unknown = sorted(k for k in props if k not in POINT_COLUMNS or k in ("lat", "lng"))
        if unknown:
            records.append(
                (
                    where,
                    i + 1,
                    {"__error__": f"unknown properties {', '.join(unknown)} (position goes in geometry)"},
                )
            )
            continue
        coords = (
            geometry.get("coordinates")
            if isinstance(geometry, dict) and geometry.get("type") == "Point"
            else None
        )
        if geometry is None:
            cells["lat"] = cells["lng"] = ""
        elif (
            isinstance(coords, list) and len(coords) >= 2 and all(type(c) in (int, float) for c in coords[:2])
        ):
            cells["lng"], cells["lat"] = str(coords[0]), str(coords[1])
        else:
            records.append(
                (where, i + 1, {"__error__": "geometry: expected a Point with [lng, lat] coordinates"})
            )
            continue
        records.append((where, i + 1, cells))
    return records


def _validate(records: list[tuple[str, int, dict[str, str]]]) -> list[PointRow]:
    ctx = Context("")
    rows: list[PointRow] = []
    seen: dict[str, str] = {}
    for where, line, cells in records:
        if "__error__" in cells:
            ctx.errors.append(f"{where}: {cells['__error__']}")
            continue
        row = _point(ctx, where, line, cells)
        if row is None:
            continue
        if row.id in seen:
            ctx.errors.append(f"{where}: id: {row.id!r} is already used on {seen[row.id]}")
            continue
        seen[row.id] = where
        rows.append(row)
    if ctx.errors:
        raise ImportFileError(ctx.errors)
    if not rows:
        raise ImportFileError(["the file holds no pickup points"])
    return rows


def _text(ctx: Context, where: str, cells: dict[str, str], column: str, limit: int) -> str:
    value = cells.get(column, "")
    if not value:
        ctx.error(f"{where}: {column}", "required, got an empty value")
    elif len(value) > limit:
        ctx.error(f"{where}: {column}", f"longer than {limit} characters")
    return value


def _point(ctx: Context, where: str, line: int, cells: dict[str, str]) -> PointRow | None:
    """One point, or None with its mistakes in ``ctx``; ``line`` is its line (feature number for GeoJSON)."""
    before = len(ctx.errors)
    for column, value in cells.items():
        if _controls(value):
            ctx.error(f"{where}: {column}", "contains a control character (newline, escape, ...)")
    if len(ctx.errors) > before:
        return None
    pid = _text(ctx, where, cells, "id", 200)
    name = _text(ctx, where, cells, "name", 200)
    street = _text(ctx, where, cells, "street_address", 500)
    city = _text(ctx, where, cells, "city", 200)
    country = _text(ctx, where, cells, "country", 2).upper()
    code = _text(ctx, where, cells, "postal_code", 64)
    if country and not (len(country) == 2 and country.isalpha() and country.isascii()):
        ctx.error(f"{where}: country", f"expected a two-letter country code such as SE, got {country!r}")
    display = postal.normalise(country, code) if country and code else None
    if code and country and display is None:
        ctx.error(f"{where}: postal_code", f"{code!r} is not a valid postal code in {country}")
    lat, lng = _position(ctx, where, cells)
    if lat is not None and lng is not None and country and not plausible(country, lat, lng):
        ctx.error(f"{where}: lat", f"({lat}, {lng}) is not in {country}: latitude and longitude swapped?")
    hours = {
        c.removeprefix("hours_"): cells[c]
        for c in OPTIONAL_COLUMNS
        if c.startswith("hours_") and cells.get(c)
    }
    parse_hours(ctx, f"{where}: hours", hours)
    lead = _lead_days(ctx, where, cells)
    if len(ctx.errors) > before:
        return None
    return PointRow(line, pid, name, street, display or code, city, country, lat, lng, hours, lead)


def _position(ctx: Context, where: str, cells: dict[str, str]) -> tuple[float | None, float | None]:
    raw_lat, raw_lng = cells.get("lat", ""), cells.get("lng", "")
    if not raw_lat and not raw_lng:
        return None, None
    lat, lng = _coordinate(raw_lat, 90.0), _coordinate(raw_lng, 180.0)
    if lat is None:
        ctx.error(
            f"{where}: lat", f"expected degrees from -90 to 90 (or lat and lng both empty), got {raw_lat!r}"
        )
    if lng is None:
        ctx.error(
            f"{where}: lng", f"expected degrees from -180 to 180 (or lat and lng both empty), got {raw_lng!r}"
        )
    return lat, lng


def _lead_days(ctx: Context, where: str, cells: dict[str, str]) -> tuple[int, int] | None:
    low, high = cells.get("lead_days_min", ""), cells.get("lead_days_max", "")
    if not low and not high:
        return None
    ok = bool(_SMALL_INT.fullmatch(low) and _SMALL_INT.fullmatch(high)) and int(low) <= int(high) <= 60
    if not ok:
        ctx.error(
            f"{where}: lead_days_min",
            f"expected 0 <= lead_days_min <= lead_days_max <= 60, got {low!r} and {high!r}",
        )
        return None
    return int(low), int(high)
