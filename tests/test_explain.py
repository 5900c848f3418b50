"""``catalog explain`` traces and the pure ``tms-admin catalog`` commands (example, check, replay)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tms_server import wire
from tms_server.admin.catalog_cmd import cmd_check, cmd_example, cmd_explain_file, main
from tms_server.catalog import example_catalog_text, explain, explain_text, parse_catalog

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def example_body() -> dict[str, object]:
    return json.loads((FIXTURES / "catalog_example_request.json").read_text(encoding="utf-8"))


def test_explain_covers_every_option() -> None:
    """Every catalog option appears once, offered ones first with their rank."""
    cat = parse_catalog(example_catalog_text())
    result = explain(cat, wire.parse(example_body(), wire.ShippingOptionsRequest), now=NOW)
    assert sorted(t.option_id for t in result.options) == sorted(o.id for o in cat.options)
    assert [t.offered for t in result.options] == sorted((t.offered for t in result.options), reverse=True)
    assert result.preview is False


def test_explain_text_for_the_example_request() -> None:
    """The text names each decision, its deciding condition and the price steps."""
    text = explain_text(parse_catalog(example_catalog_text()), example_body(), now=NOW)
    lines = text.splitlines()
    assert (
        lines[0]
        == "catalog 'nordljus 2026-11' (sha256 "
        + parse_catalog(example_catalog_text()).digest[:12]
        + "), now 2026-11-24T09:30:00Z"
    )
    assert (
        "request: SEK, order total 10000, weight 2000 g, to SE 111 34, customer person, sender warehouse-13"
        in lines
    )
    assert "#1 postnord-service-point 'PostNord Ombud': OFFERED" in lines
    assert "    price: base 4900 SEK; = 4900 SEK" in lines
    assert "    delivery: Levereras om 1-2 arbetsdagar, om du beställer före 14:00" in lines
    assert "-- instabox-locker 'Instabox Paketskåp': HIDDEN" in lines
    assert (
        "    decided by: when.parcel_dimensions_max: unit 5000x5000x5000 mm does not fit 600x400x400 mm in any orientation"
        in lines
    )
    assert "    decided by: when.customer_types: customer type person is not one of organization" in lines
    assert "    decided by: fallback: other options are offered" in lines
    bulky = lines[lines.index("-- dhl-freight-bulky 'DHL Frakt (skrymmande gods)': HIDDEN") + 1]
    assert bulky == (
        "    decided by: when[0].line_tags: line tags have none of bulky; "
        "when[1].total_weight_min: shipment weight (g) 2000 outside 35001.."
    )


def test_explain_price_steps() -> None:
    """A price built from a bracket, a surcharge and free shipping lists each step."""
    body = example_body()
    body["recipient"]["postal_code"] = "981 31"  # type: ignore[index]
    body["order"]["total_weight"] = 12000  # type: ignore[index]
    text = explain_text(parse_catalog(example_catalog_text()), body, now=NOW)
    assert (
        "    price: base 6900 SEK; weight 12000 g >= 10000 g: 9900; + 2900 Glesbygdstillägg; = 12800 SEK"
        in text
    )


def test_explain_preview() -> None:
    """Without a postal code the trace says preview and shows no pickup points."""
    body = example_body()
    del body["recipient"]["postal_code"]  # type: ignore[attr-defined]
    text = explain_text(parse_catalog(example_catalog_text()), body, now=NOW)
    assert "preview: yes (postal code or country not known yet)" in text
    assert "pickup points:" not in text


def test_explain_malformed_request() -> None:
    """A malformed request raises WireError naming the field."""
    with pytest.raises(wire.WireError, match=r"order\.total_amount"):
        explain_text(
            parse_catalog(example_catalog_text()),
            {"session_id": "s", "currency": "SEK", "order": {}},
            now=NOW,
        )


def test_cmd_explain_file() -> None:
    """Explaining from a catalog text and request JSON gives the same trace."""
    text = cmd_explain_file(example_catalog_text(), json.dumps(example_body()), NOW)
    assert text == explain_text(parse_catalog(example_catalog_text()), example_body(), now=NOW)


def test_cmd_example_prints_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    """``catalog example`` prints the packaged example verbatim."""
    assert cmd_example(argparse.Namespace()) == 0
    assert capsys.readouterr().out == example_catalog_text()


def test_cmd_check_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid catalog checks OK with its label and option count."""
    path = tmp_path / "shop.toml"
    path.write_text(example_catalog_text(), encoding="utf-8")
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: OK, 'nordljus 2026-11', 10 options, sha256 ")


def test_cmd_check_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid catalog prints every error with file, path and line, and fails."""
    path = tmp_path / "shop.toml"
    path.write_text(example_catalog_text().replace("base = 4900", "base = -4900", 1), encoding="utf-8")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "base = -4900" in t)
    assert f"{path}: options[0].price.SEK.base: must not be negative (line {line})" in err


def test_cmd_check_replay(capsys: pytest.CaptureFixture[str]) -> None:
    """Replaying recorded requests prints each answer."""
    catalog = FIXTURES.parent.parent / "tms_server" / "catalog" / "example.toml"
    args = argparse.Namespace(file=catalog, replay=FIXTURES / "catalog_replay", against=None, now=NOW)
    assert cmd_check(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("01_example.json: postnord-service-point #1 4900 [pn-sthlm-hotorget,")
    assert out[3] == "03_bulky.json: dhl-freight-bulky #1 49900"


def test_cmd_check_replay_against_old(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Against an older catalog, only the answers that change are listed."""
    new = tmp_path / "new.toml"
    new.write_text(example_catalog_text().replace("base = 6900", "base = 7900", 1), encoding="utf-8")
    old = tmp_path / "old.toml"
    old.write_text(example_catalog_text(), encoding="utf-8")
    args = argparse.Namespace(file=new, replay=FIXTURES / "catalog_replay", against=old, now=NOW)
    assert cmd_check(args) == 0
    out = capsys.readouterr().out.splitlines()[1:]
    assert out[0] == "01_example.json: ~postnord-home #2 6900 -> #2 7900"
    assert out[2] == "03_bulky.json: unchanged"
