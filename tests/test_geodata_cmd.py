"""``tms-admin postal-areas`` and ``tms-admin pickup-points``: imports validated with line numbers and
applied atomically, listing and showing, catalogs that name imported networks, and running servers
picking a new network up."""

from __future__ import annotations

import asyncio
import json
import zipfile
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import FIXTURES, TABLES, token_for
from tests.kss import options_request
from tms_server import catalog_store
from tms_server.admin.cli import main
from tms_server.catalog import example_catalog_text
from tms_server.geodata import store as geo_store
from tms_server.geodata.files import ImportFileError, read_geonames, read_points

HEADER = "id,name,street_address,postal_code,city,country,lat,lng,hours_default,hours_sun,lead_days_min,lead_days_max"
POINTS = [
    "v-1,ICA Visby,Österväg 3,621 45,Visby,SE,57.6330,18.3010,08:00-21:00,10:00-18:00,,",
    "v-2,Coop Visby Öster,Stenkumlaväg 2,621 41,Visby,SE,57.6360,18.2930,07:00-22:00,closed,2,3",
    "v-3,Hemse Ombud,Storgatan 1,623 50,Hemse,SE,57.2370,18.3740,09:00-12:00;13:00-18:00,,,",
    "s-1,Pressbyrån T-Centralen,Vasagatan 1,111 20,Stockholm,SE,59.3310,18.0590,06:00-23:00,,,",
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``tms-admin ARGV``; return (status, stdout, stderr)."""
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def query(dsn: str, sql: str) -> Any:
    async def go() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.fixture
def admin_db(dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """An emptied test database that tms-admin reaches through TMS_DATABASE_URL."""
    monkeypatch.setenv("TMS_DATABASE_URL", dsn)
    monkeypatch.setenv("TMS_OPERATOR", "ann")
    query(dsn, f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    return dsn


def write(tmp_path: Path, name: str, lines: list[str]) -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_postal_areas_import_and_list(admin_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A GeoNames file imports per country; list shows counts; a second import replaces, not adds."""
    sample = str(FIXTURES / "geonames_se_sample.txt")
    status, out, _ = run(capsys, "postal-areas", "import", sample)
    assert status == 0
    assert "imported 1 postal codes of NO" in out and "imported 20 postal codes of SE" in out
    assert run(capsys, "postal-areas", "import", sample)[0] == 0
    assert query(admin_db, "SELECT count(*) FROM postal_areas")[0][0] == 21
    status, out, _ = run(capsys, "postal-areas", "list")
    assert status == 0 and "SE       20     geonames_se_sample.txt  operator:ann" in out


def test_postal_areas_import_from_a_zip(
    admin_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GeoNames ships SE.zip holding SE.txt and readme.txt: the zip imports as is."""
    archive = tmp_path / "SE.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("SE.txt", (FIXTURES / "geonames_se_sample.txt").read_text(encoding="utf-8"))
        z.writestr("readme.txt", "GeoNames postal codes")
    status, out, _ = run(capsys, "postal-areas", "import", str(archive))
    assert status == 0 and "imported 20 postal codes of SE" in out


def test_bad_geonames_file_names_each_line_and_imports_nothing(
    admin_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Wrong columns, a bad latitude and a bad country are each reported with their line; nothing is written."""
    good = (FIXTURES / "geonames_se_sample.txt").read_text(encoding="utf-8").splitlines()
    bad = [good[0], "SE\t111 36\tStockholm", good[1].replace("59.3345", "95.1"), "S1" + good[2][2:]]
    status, _, err = run(capsys, "postal-areas", "import", write(tmp_path, "bad.txt", bad))
    assert status == 1
    assert "line 2: expected 12 tab-separated columns (GeoNames postal codes), got 3" in err
    assert "line 3: latitude: expected a number from -90 to 90" in err
    assert "line 4: country: expected a two-letter code" in err
    assert query(admin_db, "SELECT count(*) FROM postal_areas")[0][0] == 0
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    status, _, err = run(capsys, "postal-areas", "import", str(binary))
    assert status == 1 and "not UTF-8 text" in err


def test_pickup_points_import_list_show(
    admin_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSV network imports with its hours and lead days; list and show (and --near) describe it."""
    status, out, _ = run(
        capsys, "pickup-points", "import", "gotland", write(tmp_path, "g.csv", [HEADER, *POINTS])
    )
    assert status == 0, out
    assert out.startswith("imported network gotland: 4 points (4 with a position) in SE, sha256 ")
    status, out, _ = run(capsys, "pickup-points", "list")
    assert "gotland  4       g.csv   operator:ann" in out
    status, out, _ = run(capsys, "pickup-points", "show", "gotland", "--limit", "2")
    assert "v-1  ICA Visby" in out and "... and 2 more (--limit N)" in out
    run(capsys, "postal-areas", "import", str(FIXTURES / "geonames_se_sample.txt"))
    status, out, _ = run(capsys, "pickup-points", "show", "gotland", "--near", "621 41", "--limit", "3")
    assert status == 0
    rows = [line.split()[:2] for line in out.splitlines()[3:]]
    assert rows == [["0.2", "v-2"], ["0.4", "v-1"], ["44.5", "v-3"]]
    status, _, err = run(capsys, "pickup-points", "show", "nope")
    assert status == 1 and "no pickup-point network 'nope'" in err


def test_invalid_network_file_lists_every_mistake(
    admin_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad coordinates, postal code, hours, lead days and a duplicate id are named by line; nothing imported."""
    lines = [
        HEADER,
        POINTS[0],
        POINTS[1].replace("57.6360", "north"),
        POINTS[2].replace("623 50", "62"),
        POINTS[3].replace("06:00-23:00", "6-23"),
        POINTS[0],
        POINTS[1].replace(",2,3", ",3,2").replace("v-2", "v-9"),
    ]
    status, _, err = run(capsys, "pickup-points", "import", "gotland", write(tmp_path, "bad.csv", lines))
    assert status == 1
    assert "line 3: lat: expected degrees from -90 to 90 (or lat and lng both empty), got 'north'" in err
    assert "line 4: postal_code: '62' is not a valid postal code in SE" in err
    assert "line 5: hours.default: expected a time like \"14:00\", got '6'" in err
    assert "line 6: id: 'v-1' is already used on line 2" in err
    assert "line 7: lead_days_min: expected 0 <= lead_days_min <= lead_days_max <= 60" in err
    assert query(admin_db, "SELECT count(*) FROM pickup_networks")[0][0] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id,name\n", "line 1: missing column 'street_address'"),
        (HEADER + ",phone\n", "line 1: unknown column 'phone'"),
        ("", "the file is empty"),
        (HEADER + "\n", "the file holds no pickup points"),
        (HEADER + "\nv-1,x\n", "line 2: expected 12 columns, got 2"),
    ],
)
def test_network_file_shape_errors(content: str, message: str) -> None:
    """A missing or unknown column, an empty file and a short row are clear errors."""
    with pytest.raises(ImportFileError) as err:
        read_points(content.encode())
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("x-1,A,Gatan 1,621 45,Visby,SE,18.3010,57.6330,,", "latitude and longitude swapped?"),
        ("x-1,A\u001b[31m,Gatan 1,621 45,Visby,SE,57.6,18.3,,", "name: contains a control character"),
        ("x-1,A,Gatan 1,621 45,Visby,SE,5_7.6,18.3,,", "lat: expected degrees"),
        ("x-1,A,Gatan 1,621 45,Visby,SE,57.6,18.3,;,", "hours.default: expected windows"),
        ("x-1,A,Gatan 1,621 45,Visby,SE,57.6,18.3,,\u00b2", "lead_days_min: expected 0 <= lead_days_min"),
    ],
)
def test_network_cells_that_would_mislead(row: str, message: str) -> None:
    """Swapped coordinates, control characters, Python-only number syntax, an empty hours cell and a
    superscript digit are refused with the line, never a traceback."""
    header = "id,name,street_address,postal_code,city,country,lat,lng,hours_default,lead_days_min"
    text = header + "\n" + row.encode().decode("unicode_escape").encode("latin-1").decode("utf-8") + "\n"
    with pytest.raises(ImportFileError) as err:
        read_points(text.encode())
    assert message in str(err.value) and "line 2" in str(err.value)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("SE\t111 34\tSto\x00ckholm\t\t\t\t\t\t\t59.3\t18.0\t4", "line 1: contains a control character"),
        ("SE\t111 34\tStockholm\t\t\t\t\t\t\t5_9.3\t18.0\t4", "line 1: latitude"),
        ("SE\tX\tStockholm\t\t\t\t\t\t\t59.3\t18.0\t4", "line 1: postal code: not a valid SE postal code"),
        ("SE\t111 34\tStockholm\t\t\t\t\t\t\t59.3\t18.0\t\u00b2", None),
    ],
)
def test_geonames_lines_that_would_mislead(line: str, message: str | None) -> None:
    """NUL and other control characters, Python-only number syntax and an impossible code are refused by
    line; an odd accuracy is ignored, not a traceback."""
    text = line.encode().decode("unicode_escape").encode("latin-1").decode("utf-8")
    if message is None:
        assert read_geonames([text])[0].accuracy is None
        return
    with pytest.raises(ImportFileError) as err:
        read_geonames([text])
    assert message in str(err.value)


def test_geojson_network(admin_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A GeoJSON FeatureCollection of Points imports like the CSV ([lng, lat] order)."""
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [18.3010, 57.6330]},
                "properties": {
                    "id": "v-1",
                    "name": "ICA Visby",
                    "street_address": "Österväg 3",
                    "postal_code": "62145",
                    "city": "Visby",
                    "country": "se",
                },
            }
        ],
    }
    path = tmp_path / "g.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    status, _, err = run(capsys, "pickup-points", "import", "gotland", str(path))
    assert status == 0, err
    row = query(admin_db, "SELECT postal_code, country, lat, lng FROM pickup_points")[0]
    assert tuple(row) == ("621 45", "SE", 57.6330, 18.3010)


def test_reimport_replaces_and_a_failed_one_keeps_the_old(
    admin_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second import replaces the points whole; an invalid third leaves the second in place."""
    run(capsys, "pickup-points", "import", "gotland", write(tmp_path, "a.csv", [HEADER, *POINTS]))
    run(capsys, "pickup-points", "import", "gotland", write(tmp_path, "b.csv", [HEADER, POINTS[3]]))
    assert [r[0] for r in query(admin_db, "SELECT id FROM pickup_points")] == ["s-1"]
    status, _, _ = run(capsys, "pickup-points", "import", "gotland", write(tmp_path, "c.csv", [HEADER, "x"]))
    assert status == 1
    assert [r[0] for r in query(admin_db, "SELECT id FROM pickup_points")] == ["s-1"]


NETWORK_CATALOG = example_catalog_text().replace('pickup_points = "postnord-se"', 'pickup_points = "gotland"')


def test_catalog_check_and_load_need_the_named_network(
    admin_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A catalog naming a network that is neither inline nor imported fails check and load; once
    imported, both pass."""
    path = tmp_path / "shop.toml"
    path.write_text(NETWORK_CATALOG.replace("locations = { pn-kiruna = 2000 }", ""), encoding="utf-8")
    run(capsys, "merchant", "add", "shop-a")
    status, _, err = run(capsys, "catalog", "check", str(path))
    assert status == 1
    assert "no [[pickup_points.gotland]] list in this catalog and no imported network 'gotland'" in err
    status, _, err = run(capsys, "catalog", "load", "shop-a", str(path))
    assert status == 1 and "no imported network 'gotland'" in err
    run(capsys, "pickup-points", "import", "gotland", write(tmp_path, "g.csv", [HEADER, *POINTS]))
    status, _, err = run(capsys, "catalog", "check", str(path))
    assert status == 0, err
    status, _, err = run(capsys, "catalog", "load", "shop-a", str(path))
    assert status == 0, err


def test_catalog_price_for_an_unknown_network_point_is_an_error(
    admin_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A per-point price naming an id the imported network lacks is reported with its path."""
    run(capsys, "pickup-points", "import", "gotland", write(tmp_path, "g.csv", [HEADER, *POINTS]))
    path = tmp_path / "shop.toml"
    path.write_text(NETWORK_CATALOG, encoding="utf-8")
    status, _, err = run(capsys, "catalog", "check", str(path))
    assert status == 1 and "price.SEK.locations.pn-kiruna: not a pickup point of this option" in err
    path.write_text(NETWORK_CATALOG.replace("locations = { pn-kiruna = 2000 }", "locations = { v-3 = 2000 }"))
    assert run(capsys, "catalog", "check", str(path))[0] == 0


async def test_running_server_picks_up_an_imported_network(
    client: Any, conn: Any, make_merchant: Any
) -> None:
    """A catalog naming a network not yet imported offers no pickup option; once the network (and
    postal positions) are imported, the running server offers its points without a restart."""
    m = await make_merchant("shop-a", catalog=None)
    text = NETWORK_CATALOG.replace("locations = { pn-kiruna = 2000 }", "")
    await catalog_store.load(conn, "shop-a", text, loaded_by="test")
    headers = {"Authorization": f"Bearer {await token_for(client, m)}"}
    body = options_request()
    body["recipient"].update(postal_code="621 41", city="Visby")

    async def pickup() -> list[str] | None:
        resp = await client.post("/shippingoptions", json=body, headers=headers)
        assert resp.status == 200
        found = next(
            (o for o in (await resp.json())["shipping_options"] if o["id"] == "postnord-service-point"), None
        )
        return None if found is None else [loc["id"] for loc in found["locations"]]

    await asyncio.sleep(0.5)
    assert await pickup() is None
    lines = [HEADER, *POINTS]
    await geo_store.import_network(
        conn, "gotland", read_points("\n".join(lines).encode()), source="t", imported_by="t"
    )
    sample = (FIXTURES / "geonames_se_sample.txt").read_text(encoding="utf-8").splitlines()
    await geo_store.import_postal_areas(conn, read_geonames(sample), source="t", imported_by="t")
    for _ in range(50):  # the test config refreshes every 0.2 s
        if await pickup():
            break
        await asyncio.sleep(0.2)
    assert await pickup() == ["v-2", "v-1", "v-3"]
