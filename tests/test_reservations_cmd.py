"""``tms-admin reservations ...``: each command's output and effect, run in-process on the real test database.

with_db runs its own event loop, so these tests are plain functions; data is set up and checked through
separate short-lived connections (``Db.run``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import attrs
import orjson
import pytest

from tests.conftest import FIXTURES, TABLES
from tests.test_lifecycle import BULK, RECIPIENT, age, reservation
from tms_server import merchants, reservations
from tms_server.admin import reservations_cmd
from tms_server.admin.cli import main
from tms_server.admin.common import AdminError
from tms_server.reservations import export as label_export

T = TypeVar("T")
PLACEHOLDER = "00000000-0000-4000-8000-0000000000{:02d}"


@attrs.define
class Db:
    """Short-lived connections to the test database, each in its own event loop."""

    dsn: str

    def run(self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``fn`` with a fresh connection (jsonb decoded)."""

        async def go() -> T:
            conn = await asyncpg.connect(self.dsn)
            await conn.set_type_codec(
                "jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
            )
            try:
                return await fn(conn)
            finally:
                await conn.close()

        return asyncio.run(go())

    def value(self, sql: str, *args: Any) -> Any:
        """One value of a query."""
        return self.run(lambda c: c.fetchval(sql, *args))


@attrs.frozen
class Seeded:
    """The reservations every command test starts with."""

    confirmed: uuid.UUID  # nordljus, confirmed, with tracking
    reserved: uuid.UUID  # nordljus, reserved now
    expired: uuid.UUID  # nordljus, expired two hours ago
    other: uuid.UUID  # sweMerch123, confirmed


async def _seed(conn: asyncpg.Connection) -> Seeded:
    ids = {}
    for name in ("nordljus", "sweMerch123"):
        await merchants.add(conn, name, merchants.generate_key())
        ids[name] = await conn.fetchval("SELECT id FROM merchants WHERE identifier = $1", name)
    n, o = ids["nordljus"], ids["sweMerch123"]
    made = [(await reservations.reserve(conn, m, reservation(f"session-{i}")))[0].shipment_id for i, m in
            enumerate((n, n, n, o), 1)]  # fmt: skip
    await reservations.confirm(conn, n, made[0])
    await conn.execute(
        "INSERT INTO tracking (shipment_id, carrier, tracking_id) VALUES ($1, 'postnord', 'T1')", made[0]
    )
    await age(conn, made[2], "updated_at", 3 * 3600)
    await conn.execute(
        "UPDATE shipments SET status = 'expired', expired_at = now() - interval '2 hours' WHERE id = $1",
        made[2],
    )
    await reservations.confirm(conn, o, made[3])
    return Seeded(*made)


@pytest.fixture
def db(dsn: str, monkeypatch: pytest.MonkeyPatch) -> Db:
    """An emptied test database that the commands reach through TMS_DATABASE_URL, acting as operator ann."""
    monkeypatch.setenv("TMS_DATABASE_URL", dsn)
    monkeypatch.setenv("TMS_OPERATOR", "ann")
    for name in ("TMS_RESERVATION_TTL", "TMS_RETENTION_EXPIRED", "TMS_RETENTION_CONFIRMED"):
        monkeypatch.delenv(name, raising=False)
    d = Db(dsn)
    d.run(lambda c: c.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    return d


@pytest.fixture
def seeded(db: Db) -> Seeded:
    """Two merchants and four reservations in each status."""
    return db.run(_seed)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Parse ``reservations ARGV`` and run the handler as tms-admin would; return (status, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="tms-admin")
    reservations_cmd.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["reservations", *argv])
    try:
        status = int(args.func(args))
    except AdminError as exc:
        print(f"tms-admin: {exc}", file=sys.stderr)
        status = 1
    out = capsys.readouterr()
    return status, out.out, out.err


def trail(db: Db, sid: uuid.UUID) -> list[tuple[str, str, dict[str, Any]]]:
    """(actor, action, detail) of a reservation's audit lines."""
    rows = db.run(
        lambda c: c.fetch(
            "SELECT actor, action, detail FROM audit_log WHERE shipment_id = $1 ORDER BY id", sid
        )
    )
    return [(r["actor"], r["action"], r["detail"]) for r in rows]


# --- list ------------------------------------------------------------------------------------------


def test_list_table(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """list prints a table of every reservation, newest status change first, with no personal data."""
    status, out, _ = run(capsys, "list")
    lines = out.splitlines()
    assert status == 0 and lines[0].split() == [
        "SHIPMENT_ID",
        "MERCHANT",
        "SESSION_ID",
        "STATUS",
        "SINCE",
        "CARRIER",
        "PRODUCT",
        "PRICE",
    ]
    assert [line.split()[0] for line in lines[1:]] == [
        str(s) for s in (seeded.other, seeded.confirmed, seeded.reserved, seeded.expired)
    ]
    assert "4900 SEK" in lines[1] and "P19" in lines[1] and "Klara" not in out
    assert lines[4].split()[3] == "expired" and lines[4].split()[4].endswith("Z")


def test_list_filters(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """--merchant takes the identifier, --status and --since (relative or ISO) narrow the list."""
    _, out, _ = run(capsys, "list", "--merchant", "nordljus", "--status", "confirmed")
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(seeded.confirmed)]
    _, out, _ = run(capsys, "list", "--merchant", "nordljus", "--since", "1h")
    assert {line.split()[0] for line in out.splitlines()[1:]} == {str(seeded.confirmed), str(seeded.reserved)}
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    _, out, _ = run(capsys, "list", "--since", tomorrow)
    assert out.splitlines()[1:] == []


def test_list_json_and_csv(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """--format json gives objects with UTC ISO times; --format csv a header and one row each."""
    _, out, _ = run(capsys, "list", "--status", "expired", "--format", "json")
    [row] = json.loads(out)
    assert row | {"since": None} == {
        "shipment_id": str(seeded.expired), "merchant": "nordljus", "session_id": "session-3", "status": "expired",
        "since": None, "carrier": "postnord", "product": "P19", "price": 4900, "currency": "SEK", "erased": False,
    }  # fmt: skip
    assert datetime.fromisoformat(row["since"]) < datetime.now(UTC) - timedelta(minutes=110)
    _, out, _ = run(capsys, "list", "--format", "csv", "--limit", "2")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 2 and rows[0]["merchant"] == "sweMerch123" and rows[0]["erased"] == "False"


def test_list_unknown_merchant(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown --merchant is a one-line error with exit status 1."""
    assert run(capsys, "list", "--merchant", "nope") == (1, "", "tms-admin: no merchant 'nope'\n")


# --- show ------------------------------------------------------------------------------------------


def test_show_text(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """show prints everything stored, the recipient (for labels), tracking and the audit trail."""
    status, out, _ = run(capsys, "show", str(seeded.confirmed))
    fields = {line[:10].strip(): line[11:] for line in out.splitlines() if not line.startswith(" ")}
    assert status == 0 and fields["status"] == "confirmed" and fields["merchant"] == "nordljus"
    assert (
        fields["recipient"]
        == "Klara Joyce, Sveavägen 46, 111 34 Stockholm, SE, klara@example.com, +46812012010"
    )
    assert fields["product"] == "P19 PostNord MyPack Collect" and fields["addons"] == "SMS"
    assert fields["location"] == "SE-1234 ICA Nära Sveavägen, Sveavägen 50, 111 34 Stockholm, SE"
    assert fields["sender"] == "warehouse-13, Lagergatan 1, 602 23 Norrköping, SE"
    assert fields["tracking"] == "postnord T1" and fields["expired"] == "-"
    audit = out.split("audit trail:\n")[1].splitlines()
    assert [line.split()[1:3] for line in audit] == [["kss", "reserved"], ["kss", "confirmed"]]
    assert audit[1].endswith("late=false previous=reserved")


def test_show_by_session_as_json(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """show --session finds the reservation; --format json holds every column, tracking and audit."""
    status, out, _ = run(capsys, "show", "--session", "session-3", "--format", "json")
    d = json.loads(out)
    assert status == 0 and d["shipment_id"] == str(seeded.expired) and d["status"] == "expired"
    assert d["recipient"] == RECIPIENT and d["request"]["sender"]["sender_id"] == "warehouse-13"
    assert d["expired_at"].endswith("Z") and d["confirmed_at"] is None and d["tracking"] == []
    assert [a["action"] for a in d["audit"]] == ["reserved"]


def test_show_unknown_id_exits_1(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """tms-admin reservations show of an unknown id exits 1 with a clear message, no traceback."""
    from tms_server.admin import cli

    missing = uuid.uuid4()
    assert cli.main(["reservations", "show", str(missing)]) == 1
    assert capsys.readouterr().err == f"tms-admin: no reservation {missing}\n"
    assert run(capsys, "show", "not-a-uuid") == (1, "", "tms-admin: no reservation not-a-uuid\n")


def test_show_needs_id_or_session(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """show takes exactly one of SHIPMENT_ID and --session."""
    assert run(capsys, "show")[0] == 1
    status, _, err = run(capsys, "show", str(seeded.confirmed), "--session", "session-1")
    assert status == 1 and "either a SHIPMENT_ID or --session" in err


# --- export ----------------------------------------------------------------------------------------


def test_export_csv_label_fields(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """export --format csv has one row per confirmed reservation of the merchant with the label fields."""
    status, out, err = run(
        capsys, "export", "--merchant", "nordljus", "--status", "confirmed", "--format", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert status == 0 and err == "exported 1 confirmed reservation(s) of nordljus\n"
    assert list(rows[0]) == label_export.EXPORT_COLUMNS
    r = rows[0]
    assert (r["shipment_id"], r["product_identifier"], r["addon_identifiers"]) == (
        str(seeded.confirmed),
        "P19",
        "SMS",
    )
    assert (r["recipient_given_name"], r["recipient_street_address"], r["recipient_phone"]) == (
        "Klara",
        "Sveavägen 46",
        "+46812012010",
    )
    assert (r["location_id"], r["location_postal_code"], r["sender_id"], r["sender_city"]) == (
        "SE-1234",
        "111 34",
        "warehouse-13",
        "Norrköping",
    )
    assert (r["order_id"], r["total_weight"], r["timeslot_id"]) == ("ord-1", "2000", "")


def test_export_json(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """export --format json is one JSON array (nested objects); an empty export is []."""
    _, out, _ = run(capsys, "export", "--merchant", "nordljus", "--status", "expired", "--format", "json")
    [rec] = json.loads(out)
    assert rec["shipment_id"] == str(seeded.expired) and rec["recipient"] == RECIPIENT
    assert rec["carrier_product"]["addon_identifiers"] == ["SMS"] and rec["location"]["id"] == "SE-1234"
    _, out, err = run(
        capsys,
        "export",
        "--merchant",
        "nordljus",
        "--since",
        "1d",
        "--status",
        "reserved",
        "--format",
        "json",
    )
    assert json.loads(out) == [json.loads(out)[0]] and "exported 1 reserved" in err
    _, out, _ = run(capsys, "export", "--merchant", "sweMerch123", "--status", "expired", "--format", "json")
    assert out == "[]\n"


def _bulk_confirmed(db: Db, n: int) -> None:
    async def go(conn: asyncpg.Connection) -> None:
        mid = await conn.fetchval("SELECT id FROM merchants WHERE identifier = 'sweMerch123'")
        await conn.execute(BULK, mid, n)
        await conn.execute(
            "UPDATE shipments SET status = 'confirmed', confirmed_at = now() - make_interval(secs => random() * 1000) WHERE session_id LIKE 'bulk-%'"
        )

    db.run(go)


def test_export_streams_many_rows(db: Db, seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """A large export passes through the cursor in several fetches: every row once, oldest confirm first."""
    _bulk_confirmed(db, 1234)
    _, out, err = run(capsys, "export", "--merchant", "sweMerch123", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len({r["shipment_id"] for r in rows}) == 1235
    assert [r["since"] for r in rows] == sorted(r["since"] for r in rows)
    assert err == "exported 1235 confirmed reservation(s) of sweMerch123\n"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_export_progress_bar_on_tty(
    db: Db, seeded: Seeded, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A progress bar goes to stderr only when stderr is a terminal; stdout holds only the data."""
    _bulk_confirmed(db, 50)
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    status, out, _ = run(capsys, "export", "--merchant", "sweMerch123", "--format", "csv")
    assert status == 0 and len(out.splitlines()) == 52 and "exporting" not in out
    assert "] 100% 51/51\n" in tty.getvalue() and tty.getvalue().startswith("\rexporting [")


# --- changes: track, confirm, expire, sweep ----------------------------------------------------------


def test_track_dry_run_then_yes(db: Db, seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """track without --yes says what it would do and changes nothing; with --yes it adds and audits."""
    argv = (
        "track",
        str(seeded.confirmed),
        "--carrier",
        "postnord",
        "--tracking-id",
        "T2",
        "--tracking-url",
        "https://t.example/T2",
    )
    status, out, _ = run(capsys, *argv)
    assert status == 0 and out == (
        f"would add tracking postnord T2 (https://t.example/T2) to shipment {seeded.confirmed} of nordljus\n"
        "nothing changed; run again with --yes to do it\n"
    )
    assert db.value("SELECT count(*) FROM tracking") == 1
    assert run(capsys, *argv, "--yes") == (
        0,
        f"added tracking postnord T2 (https://t.example/T2) on shipment {seeded.confirmed}\n",
        "",
    )
    assert trail(db, seeded.confirmed)[-1] == (
        "operator:ann",
        "tracking_added",
        {"carrier": "postnord", "tracking_id": "T2", "tracking_url": "https://t.example/T2"},
    )
    mid = db.value("SELECT id FROM merchants WHERE identifier = 'nordljus'")
    view = db.run(lambda c: reservations.view(c, mid, seeded.confirmed))
    assert [t["tracking_id"] for t in view.body()["shipments"]] == ["T1", "T2"]


def test_track_refuses_unconfirmed(db: Db, seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """Tracking can only be added to a confirmed reservation, dry run or not."""
    for extra in ((), ("--yes",)):
        status, _, err = run(
            capsys, "track", str(seeded.reserved), "--carrier", "postnord", "--tracking-id", "T9", *extra
        )
        assert status == 1 and "is reserved; only confirmed reservations get tracking" in err
    assert db.value("SELECT count(*) FROM tracking") == 1


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "data:text/html,<script>x</script>", "//t.example/T2", "https://", "ftp://t.example/x",
     "https://t.example/a b", "https://t.example/\u001b[31m", "t.example/T2", "https://[::1"],
)  # fmt: skip
def test_track_refuses_a_url_that_is_not_absolute_http(
    db: Db, seeded: Seeded, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    """A tracking URL reaches KSS and the shopper's browser: only absolute http(s) URLs, dry run or not,
    and the database refuses one written past the command."""
    for extra in ((), ("--yes",)):
        status, _, err = run(
            capsys, "track", str(seeded.confirmed), "--carrier", "postnord", "--tracking-id", "T9",
            "--tracking-url", url, *extra,
        )  # fmt: skip
        assert status == 1 and "expected an absolute https:// (or http://) URL" in err
    assert db.value("SELECT count(*) FROM tracking") == 1
    if url.startswith("https://"):
        return  # well-formed enough for the database's scheme check; the command refused it
    with pytest.raises(asyncpg.CheckViolationError):
        db.run(lambda c: c.execute(
            "INSERT INTO tracking (shipment_id, carrier, tracking_id, tracking_url) VALUES ($1, 'x', 'y', $2)",
            seeded.confirmed, url,
        ))  # fmt: skip


def test_confirm_by_hand(db: Db, seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """confirm: a dry run describes the late confirm; --yes confirms with the reason; a repeat changes nothing."""
    sid = seeded.expired
    status, out, _ = run(capsys, "confirm", str(sid), "--reason", "KSS confirm lost")
    assert status == 0 and out == (
        f"would confirm reservation {sid} of nordljus (now expired): logged as a late confirm\n"
        "reason: KSS confirm lost\nnothing changed; run again with --yes to do it\n"
    )
    assert db.value("SELECT status FROM shipments WHERE id = $1", sid) == "expired"
    assert run(capsys, "confirm", str(sid), "--reason", "KSS confirm lost", "--yes")[1] == (
        f"shipment {sid} confirmed (late: it had expired); was expired\n"
    )
    assert trail(db, sid)[-1] == (
        "operator:ann",
        "confirmed",
        {"late": True, "previous": "expired", "reason": "KSS confirm lost"},
    )
    assert (
        run(capsys, "confirm", str(sid), "--reason", "again", "--yes")[1]
        == f"shipment {sid} was already confirmed; nothing changed\n"
    )
    assert len(trail(db, sid)) == 2
    assert run(capsys, "show", str(sid))[1].endswith(
        'operator:ann         confirmed        late=true reason="KSS confirm lost" previous=expired\n'
    )


def test_expire_by_hand(db: Db, seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """expire --yes expires a reserved one with the reason; a confirmed one is refused (exit 1)."""
    status, out, _ = run(capsys, "expire", str(seeded.reserved), "--reason", "test order", "--yes")
    assert (status, out) == (0, f"shipment {seeded.reserved} expired; was reserved\n")
    assert trail(db, seeded.reserved)[-1] == (
        "operator:ann",
        "expired",
        {"previous": "reserved", "reason": "test order"},
    )
    for extra in ((), ("--yes",)):
        status, _, err = run(capsys, "expire", str(seeded.confirmed), "--reason", "x", *extra)
        assert status == 1 and "a confirmed reservation cannot expire" in err


def test_reason_is_required(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    """confirm and expire refuse to run without --reason (usage error, exit 2)."""
    for action in ("confirm", "expire"):
        with pytest.raises(SystemExit) as exc:
            run(capsys, action, str(seeded.reserved), "--yes")
        assert exc.value.code == 2 and "--reason" in capsys.readouterr().err


def test_sweep_dry_run_then_yes(
    db: Db, seeded: Seeded, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """sweep counts what is due without --yes, and with --yes expires and erases as the operator."""
    db.run(lambda c: age(c, seeded.reserved, "updated_at", 7200))
    monkeypatch.setenv("TMS_RETENTION_EXPIRED", "3600")
    assert run(capsys, "sweep") == (0, (
        "would expire 1 reservation(s) unconfirmed for 3600 s\n"
        "would erase personal data of 1 reservation(s) past retention\n"
        "nothing changed; run again with --yes to do it\n"), "")  # fmt: skip
    assert db.value("SELECT count(*) FROM shipments WHERE status = 'reserved'") == 1
    status, out, _ = run(capsys, "sweep", "--yes")
    assert status == 0 and out.startswith(
        "expired 1 reservation(s)\nerased personal data of 1 reservation(s)\n"
    )
    assert trail(db, seeded.reserved)[-1][:2] == ("operator:ann", "expired")
    assert trail(db, seeded.expired)[-1] == ("operator:ann", "erased", {"status": "expired"})
    assert db.value("SELECT recipient IS NULL FROM shipments WHERE id = $1", seeded.expired) is True


# --- reconcile -------------------------------------------------------------------------------------


def _orders(tmp_path: Path, name: str, s: Seeded, db: Db) -> Path:
    """A fixture file of checkout orders with its placeholder tms_references bound to the seeded ids."""
    db.run(lambda c: c.execute("UPDATE shipments SET status = 'reserved' WHERE id = $1", s.reserved))
    text = (FIXTURES / name).read_text()
    for n, sid in enumerate((s.reserved, s.expired, s.confirmed), 1):
        text = text.replace(PLACEHOLDER.format(n), str(sid))
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reconcile_dry_run_reports_every_kind(
    db: Db, seeded: Seeded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """reconcile without --yes lists what it would confirm, what is done, and each order it cannot match."""
    path = _orders(tmp_path, "reconcile_orders.json", seeded, db)
    status, out, _ = run(capsys, "reconcile", str(path))
    o = "f3392f8b-6116-4073-ab96-e330819e2c0"
    assert status == 0 and out.splitlines() == [
        "read 6 order(s)",
        "would confirm 2 reservation(s):",
        f"  {seeded.reserved}  order {o}1 (#1)  was reserved",
        f"  {seeded.expired}  order {o}2 (#2)  was expired (late)",
        "already confirmed: 1",
        f"  {seeded.confirmed}  order {o}3 (#3)",
        "not matched: 3",
        f"  order {o}4 (#4): status checkout_incomplete: purchase not completed",
        f"  order {o}5 (#5): no selected_shipping_option.tms_reference",
        f"  order {o}6 (#6): unknown tms_reference 'a1b2c3d4-e4f6-4a7b-9c0d-0123456789ab'",
        "nothing changed; run again with --yes to do it",
    ]
    assert db.value("SELECT count(*) FROM shipments WHERE status = 'confirmed'") == 2


def test_reconcile_yes_confirms_once(
    db: Db, seeded: Seeded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """reconcile --yes confirms the lost confirms (audited with the order id); a second run confirms nothing."""
    path = _orders(tmp_path, "reconcile_orders.json", seeded, db)
    _, out, _ = run(capsys, "reconcile", str(path), "--yes")
    assert "confirmed 2 reservation(s):" in out and "nothing changed" not in out
    assert db.value("SELECT count(*) FROM shipments WHERE status = 'confirmed'") == 4
    assert trail(db, seeded.expired)[-1] == ("operator:ann", "confirmed", {
        "late": True, "previous": "expired", "reason": "reconcile: checkout order f3392f8b-6116-4073-ab96-e330819e2c02"})  # fmt: skip
    _, out, _ = run(capsys, "reconcile", str(path), "--yes")
    assert "confirmed 0 reservation(s):" in out and "already confirmed: 3" in out


def test_reconcile_jsonl_single_object_and_merchant(
    db: Db, seeded: Seeded, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON lines and a single order object are read too; --merchant only matches that merchant's reservations."""
    _, out, _ = run(capsys, "reconcile", str(_orders(tmp_path, "reconcile_orders.jsonl", seeded, db)))
    assert out.splitlines()[:3] == [
        "read 2 order(s)",
        "would confirm 1 reservation(s):",
        f"  {seeded.reserved}  order f3392f8b-6116-4073-ab96-e330819e2c01 (#1)  was reserved",
    ]
    path = _orders(tmp_path, "reconcile_order.json", seeded, db)
    _, out, _ = run(capsys, "reconcile", str(path), "--merchant", "sweMerch123")
    assert out.splitlines()[1] == "would confirm 0 reservation(s):" and "unknown tms_reference" in out


def test_reconcile_bad_input(tmp_path: Path, db: Db, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file or a line that is not JSON is a one-line error naming the problem."""
    status, _, err = run(capsys, "reconcile", str(tmp_path / "nope.json"))
    assert status == 1 and "cannot read" in err and "nope.json" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"status": "checkout_complete"}\n{oops\n')
    status, _, err = run(capsys, "reconcile", str(bad))
    assert status == 1 and err.startswith("tms-admin: line 2: not JSON")


# --- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", datetime(2026, 11, 24, 8, 0, tzinfo=UTC)),
        ("7d", datetime(2026, 11, 17, 10, 0, tzinfo=UTC)),
        ("30m", datetime(2026, 11, 24, 9, 30, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T12:00:00+01:00", datetime(2026, 11, 20, 11, 0, tzinfo=UTC)),
        ("2026-11-20T12:00Z", datetime(2026, 11, 20, 12, 0, tzinfo=UTC)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    """--since accepts durations before now and ISO 8601 dates/times (naive ones are UTC)."""
    assert reservations_cmd.parse_since(text, now=datetime(2026, 11, 24, 10, 0, tzinfo=UTC)) == expected


def test_parse_since_rejects_other_text() -> None:
    """Anything else is a usage error naming the accepted forms."""
    with pytest.raises(argparse.ArgumentTypeError, match="like 2h or 7d"):
        reservations_cmd.parse_since("yesterday")


def test_terminal_escapes_and_newlines_in_stored_values_are_shown_escaped(
    db: Db, capsys: pytest.CaptureFixture[str]
) -> None:
    """A session id holding an OSC title sequence, a colour and a newline (KSS passes the shop's
    value through) is printed escaped by list and show: no ESC reaches the terminal, no row is forged."""
    hostile = "s\x1b]0;pwned\x07\x1b[31mred\nFORGED-ROW 1 2 3"

    async def seed(conn: asyncpg.Connection) -> uuid.UUID:
        await merchants.add(conn, "nordljus", merchants.generate_key())
        mid = await conn.fetchval("SELECT id FROM merchants WHERE identifier = 'nordljus'")
        return (await reservations.reserve(conn, mid, reservation(hostile)))[0].shipment_id

    sid = db.run(seed)
    status = main(["reservations", "list"])
    out = capsys.readouterr().out
    assert status == 0 and "\x1b" not in out and "\x07" not in out
    assert len(out.splitlines()) == 2 and "\\x1b]0;pwned\\x07\\x1b[31mred\\nFORGED-ROW" in out
    assert main(["reservations", "show", str(sid)]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and not any(line.startswith("FORGED-ROW") for line in shown.splitlines())
