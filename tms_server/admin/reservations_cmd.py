"""``tms-admin reservations ...``: list, show, export, track, confirm, expire, sweep, reconcile.

This module owns the command line and the output formats; what the commands read and change lives in
``tms_server.reservations`` (``operator`` for the queries and changes, ``sweep`` for the sweep). Commands that change
data print what they would do and change nothing unless ``--yes`` is given.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg
import attrs
import orjson

from tms_server import reservations
from tms_server.admin.common import AdminError, actor, config_of, positive_int, table, with_db
from tms_server.reservations import operator, sweep
from tms_server.reservations.export import Progress, export_record, iso, writer
from tms_server.reservations.record import Status, to_json
from tms_server.terminal import escape

Handler = Callable[[argparse.Namespace], int]
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_PLAIN = re.compile(r"^[\w.:/@+-]+$")  # audit values printed without quotes
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DRY_RUN = "nothing changed; run again with --yes to do it"


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: ISO 8601 date or date-time (UTC unless it says otherwise), or ``30m``, ``2h``, ``7d``."""
    rel = _RELATIVE.match(text.strip().lower())
    if rel:
        return (now or datetime.now(UTC)) - timedelta(seconds=int(rel[1]) * _UNITS[rel[2]])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date/time or a duration like 2h or 7d, got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_parsers(sub: Any) -> None:
    """Register ``reservations`` and its actions."""
    r = sub.add_parser("reservations", help="list, show, export, track, confirm, expire, sweep, reconcile")
    acts = r.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_views(acts)
    _add_changes(acts)


def _add_views(acts: Any) -> None:
    p = acts.add_parser("list", help="reservations, newest status change first (no personal data)")
    _filters(p, status_default=None)
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    rows = p.add_mutually_exclusive_group()
    rows.add_argument("--limit", type=positive_int, default=100, help="at most this many rows (default 100)")
    rows.add_argument("--all", action="store_true", help="every matching row")
    p.set_defaults(func=cmd_list)
    p = acts.add_parser("show", help="everything stored about one reservation, with its audit trail")
    p.add_argument("shipment_id", nargs="?", help="the shipment id (KSS tms_reference)")
    p.add_argument("--session", help="find it by KSS session id instead")
    p.add_argument("--merchant", help="merchant identifier (when several merchants share a session id)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_show)
    p = acts.add_parser("export", help="label data (recipient, sender, product, addons, location, timeslot)")
    _filters(p, status_default="confirmed", merchant_required=True)
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.set_defaults(func=cmd_export)


def _add_changes(acts: Any) -> None:
    p = acts.add_parser("track", help="add a parcel's tracking to a confirmed reservation")
    p.add_argument("shipment_id")
    p.add_argument("--carrier", required=True)
    p.add_argument("--tracking-id", required=True)
    p.add_argument("--tracking-url")
    _yes(p, cmd_track)
    for name, what in (
        ("confirm", "confirm by hand (e.g. the KSS confirm was lost)"),
        ("expire", "expire by hand"),
    ):
        p = acts.add_parser(name, help=what)
        p.add_argument("shipment_id")
        p.add_argument("--reason", required=True, help="why, for the audit trail")
        _yes(p, cmd_change, change=name)
    p = acts.add_parser("sweep", help="run the expiry and retention sweep now")
    _yes(p, cmd_sweep)
    p = acts.add_parser("reconcile", help="confirm reservations of completed checkout orders (JSON file)")
    p.add_argument("file", help="one order object, a JSON array of orders, or JSON lines; - for stdin")
    p.add_argument("--merchant", help="only match this merchant's reservations")
    _yes(p, cmd_reconcile)


def _filters(p: argparse.ArgumentParser, status_default: str | None, merchant_required: bool = False) -> None:
    p.add_argument("--merchant", required=merchant_required, help="merchant identifier")
    p.add_argument("--status", choices=reservations.STATUSES, default=status_default)
    p.add_argument("--since", type=parse_since, help="since entering the status: ISO 8601 or 30m, 2h, 7d")


def _yes(p: argparse.ArgumentParser, func: Handler, **defaults: Any) -> None:
    p.add_argument("--yes", action="store_true", help="do it (without: print what would happen)")
    p.set_defaults(func=func, **defaults)


def _domain_errors(fn: Handler) -> Handler:
    """Turn domain errors into one-line operator errors (exit 1)."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except reservations.ShipmentNotFound as exc:
            raise AdminError(f"no reservation {exc.args[0]}") from None
        except operator.ReservationError as exc:
            raise AdminError(str(exc)) from None

    return run


def _shipment_id(text: str) -> uuid.UUID:
    return reservations.parse_id(text.strip())


async def _merchant(conn: asyncpg.Connection, identifier: str | None) -> int | None:
    return None if identifier is None else await operator.merchant_id(conn, identifier)


# --- list and show --------------------------------------------------------------------------------

LIST_COLUMNS = ["shipment_id", "merchant", "session_id", "status", "since", "carrier", "product", "price"]


@_domain_errors
def cmd_list(args: argparse.Namespace) -> int:
    async def go(conn: asyncpg.Connection) -> list[operator.Summary]:
        merchant = await _merchant(conn, args.merchant)
        limit = None if args.all else args.limit
        return await operator.list_reservations(
            conn, merchant=merchant, status=args.status, since=args.since, limit=limit
        )

    rows = [_summary(s) for s in with_db(args, go)]
    if args.format == "json":
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif args.format == "csv":
        _csv(sys.stdout, [*LIST_COLUMNS, "currency", "erased"], rows)
    else:
        print(table([r | {"price": f"{r['price']} {r['currency']}"} for r in rows], LIST_COLUMNS))
    return 0


def _summary(s: operator.Summary) -> dict[str, Any]:
    return {
        "shipment_id": str(s.shipment_id), "merchant": s.merchant, "session_id": s.session_id,
        "status": s.status, "since": iso(s.status_at), "carrier": s.carrier, "product": s.product,
        "price": s.price, "currency": s.currency, "erased": s.erased,
    }  # fmt: skip


def _csv(out: IO[str], columns: list[str], rows: Iterable[Mapping[str, Any]]) -> None:
    w = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)


@_domain_errors
def cmd_show(args: argparse.Namespace) -> int:
    if (args.shipment_id is None) == (args.session is None):
        raise AdminError("give either a SHIPMENT_ID or --session SESSION_ID")

    async def go(conn: asyncpg.Connection) -> operator.Detail:
        if args.session is not None:
            return await operator.get_by_session(conn, args.session, await _merchant(conn, args.merchant))
        return await operator.get(conn, _shipment_id(args.shipment_id))

    d = with_db(args, go)
    if args.format == "json":
        data = jsonable(d)
        data |= to_json(d.reservation)  # the record's fields at the top, as the columns are named
        del data["reservation"]
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print("\n".join(escape(line) for line in show_lines(d)))
    return 0


def jsonable(obj: Any) -> Any:
    """An attrs value as JSON-ready data: ids as strings, times in UTC ISO."""

    def value(_inst: Any, _field: Any, v: Any) -> Any:
        return iso(v) if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v

    return attrs.asdict(obj, value_serializer=value)


def show_lines(d: operator.Detail) -> list[str]:
    """``reservations show`` as text: operators need the personal data to print labels."""
    r = d.reservation
    sel, product = r.selection, r.carrier_product
    recipient = to_json(r.recipient) if r.recipient else None
    lines = [
        ("shipment", str(d.shipment_id)), ("merchant", d.merchant), ("session", r.session_id),
        ("status", d.status), ("created", iso(d.created_at)), ("updated", iso(d.updated_at)),
        ("confirmed", iso(d.confirmed_at)), ("expired", iso(d.expired_at)), ("erased", iso(d.erased_at)),
        ("option", f"{r.option_id} ({r.carrier})"),
        ("product", f"{product.identifier} {product.name}".strip()),
        ("addons", " ".join(product.addon_identifiers)),
        ("price", f"{r.price} {r.currency}"),
        ("location", _place(sel.location)), ("timeslot", _slot(sel.timeslot)),
        ("recipient", _person(recipient) if recipient else "(erased)" if d.erased_at else ""),
        ("sender", _sender(to_json(r.request.sender) if r.request.sender else None)),
        ("info", d.additional_info or ""),
    ]  # fmt: skip
    out = [f"{k:10} {v or '-'}" for k, v in lines]
    out += [
        f"{'tracking':10} {t.carrier} {t.tracking_id} {t.tracking_url or ''}".rstrip() for t in d.tracking
    ]
    out.append("audit trail:")
    out += [f"  {iso(a.at)}  {a.actor:20} {a.action:16} {_kv(a.detail)}".rstrip() for a in d.audit]
    return out


def _address(a: Mapping[str, Any]) -> str:
    parts = [a.get("street_address"), a.get("street_address2"),
             " ".join(filter(None, [a.get("postal_code"), a.get("city")])), a.get("country")]  # fmt: skip
    return ", ".join(str(p) for p in parts if p)


def _person(r: Mapping[str, Any]) -> str:
    name = " ".join(filter(None, [r.get("given_name"), r.get("family_name")]))
    rest = [r.get("company_name"), _address(r), r.get("email"), r.get("phone")]
    return ", ".join(str(p) for p in [name, *rest] if p)


def _place(loc: Any) -> str:
    if not isinstance(loc, dict):
        return ""
    return f"{loc.get('id', '')} {loc.get('name', '')}, {_address(loc.get('address') or {})}"


def _slot(slot: Any) -> str:
    return (
        f"{slot.get('id', '')} {slot.get('start', '')} - {slot.get('end', '')}"
        if isinstance(slot, dict)
        else ""
    )


def _sender(sender: Any) -> str:
    if not isinstance(sender, dict):
        return ""
    return ", ".join(filter(None, [sender.get("sender_id"), _address(sender.get("address") or {})]))


def _kv(detail: Mapping[str, Any]) -> str:
    """``key=value`` pairs; values that are not one plain word are JSON, so the line stays unambiguous."""
    return " ".join(
        f"{k}={v}" if isinstance(v, str) and _PLAIN.match(v) else f"{k}={orjson.dumps(v).decode()}"
        for k, v in detail.items()
    )


# --- export ----------------------------------------------------------------------------------------


@_domain_errors
def cmd_export(args: argparse.Namespace) -> int:
    async def go(conn: asyncpg.Connection) -> int:
        merchant = await operator.merchant_id(conn, args.merchant)
        bar = None
        if sys.stderr.isatty():
            bar = Progress(await operator.count_export(conn, merchant, args.status, args.since), sys.stderr)
        write = writer(args.format, sys.stdout)
        n = 0
        async with aclosing(operator.export_rows(conn, merchant, args.status, args.since)) as rows:
            async for row in rows:
                write(export_record(row), n)
                n += 1
                if bar:
                    bar.step()
        write(None, n)
        if bar:
            bar.finish()
        return n

    try:
        n = with_db(args, go)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `| head`: stop quietly instead of failing again at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise AdminError("output closed before the export finished; it is incomplete") from None
    print(f"exported {n} {args.status} reservation(s) of {args.merchant}", file=sys.stderr)
    return 0


# --- commands that change data ---------------------------------------------------------------------


@_domain_errors
def cmd_track(args: argparse.Namespace) -> int:
    sid = _shipment_id(args.shipment_id)
    if args.tracking_url is not None:
        operator.check_tracking_url(args.tracking_url)
    what = f"{args.carrier} {args.tracking_id}" + (f" ({args.tracking_url})" if args.tracking_url else "")
    if not args.yes:
        d = with_db(args, lambda conn: operator.get(conn, sid))
        operator.check_trackable(d.status)
        print(f"would add tracking {what} to shipment {sid} of {d.merchant}\n{DRY_RUN}")
        return 0
    who = actor()
    created = with_db(
        args,
        lambda conn: operator.add_tracking(conn, sid, args.carrier, args.tracking_id, args.tracking_url, who),
    )
    print(f"{'added' if created else 'updated'} tracking {what} on shipment {sid}")
    return 0


@_domain_errors
def cmd_change(args: argparse.Namespace) -> int:
    """``confirm`` and ``expire`` by hand (``args.change`` says which)."""
    sid, target = (
        _shipment_id(args.shipment_id),
        {"confirm": Status.CONFIRMED, "expire": Status.EXPIRED}[args.change],
    )
    if not args.yes:
        d = with_db(args, lambda conn: operator.get(conn, sid))
        print(
            f"would {args.change} reservation {sid} of {d.merchant} (now {d.status}): {operator.effect(d.status, target)}"
        )
        print(f"reason: {args.reason}\n{DRY_RUN}")
        return 0
    who, apply = actor(), operator.confirm if args.change == "confirm" else operator.expire
    change = with_db(args, lambda conn: apply(conn, sid, args.reason, who))
    if change.changed:
        late = " (late: it had expired)" if change.before == Status.EXPIRED else ""
        print(f"shipment {sid} {target}{late}; was {change.before}")
    else:
        print(f"shipment {sid} was already {target}; nothing changed")
    return 0


@_domain_errors
def cmd_sweep(args: argparse.Namespace) -> int:
    cfg, who = config_of(args), actor()
    ttl, keep_expired, keep_confirmed = cfg.reservation_ttl, cfg.retention_expired, cfg.retention_confirmed
    if not args.yes:
        due = with_db(args, lambda conn: operator.sweep_due(conn, ttl, keep_expired, keep_confirmed))
        print(f"would expire {due.expire} reservation(s) unconfirmed for {ttl} s")
        print(f"would erase personal data of {due.erase} reservation(s) past retention")
        print(DRY_RUN)
        return 0

    async def go(conn: asyncpg.Connection) -> sweep.SweepResult:
        return await sweep.run(
            conn, reservation_ttl=ttl, retention_expired=keep_expired, retention_confirmed=keep_confirmed,
            nonce_retention=cfg.nonce_retention, actor=who,
        )  # fmt: skip

    res = with_db(args, go)
    print(f"expired {len(res.expired)} reservation(s)")
    print(f"erased personal data of {len(res.erased)} reservation(s)")
    print(f"forgot {res.nonces_pruned} old /auth nonce(s)")
    return 0


VERDICTS = {
    "missing_reference": "no selected_shipping_option.tms_reference",
    "unknown_reference": "unknown tms_reference",
    "not_completed": "purchase not completed",
    "duplicate": "repeats an earlier order's tms_reference",
}


@_domain_errors
def cmd_reconcile(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        raise AdminError(f"cannot read {args.file}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise AdminError(
            f"{args.file}: not UTF-8 text (byte {exc.start}): expected Klarna order JSON"
        ) from None
    orders = operator.parse_orders(text)

    async def go(conn: asyncpg.Connection) -> tuple[list[operator.Match], list[operator.Change]]:
        matches = await operator.reconcile(conn, orders, await _merchant(conn, args.merchant))
        return matches, (await operator.apply_reconcile(conn, matches, actor()) if args.yes else [])

    matches, changes = with_db(args, go)
    print("\n".join(escape(line) for line in reconcile_lines(len(orders), matches, changes, args.yes)))
    return 0


def reconcile_lines(
    read: int, matches: list[operator.Match], changes: list[operator.Change], applied: bool
) -> list[str]:
    """The reconcile report: what was (or would be) confirmed, what needs nothing, what did not match."""
    todo = [m for m in matches if m.verdict == "confirm"]
    done = [m for m in matches if m.verdict == "confirmed"]
    bad = [m for m in matches if m.verdict in VERDICTS]
    out = [f"read {read} order(s)"]
    out.append(f"{'confirmed' if applied else 'would confirm'} {len(todo)} reservation(s):")
    out += [
        f"  {m.shipment_id}  order {_order(m)}  was {m.status}{' (late)' * (m.status == 'expired')}"
        for m in todo
    ]
    out.append(f"already confirmed: {len(done)}")
    out += [f"  {m.shipment_id}  order {_order(m)}" for m in done]
    out.append(f"not matched: {len(bad)}")
    out += [f"  order {_order(m)}: {_why(m)}" for m in bad]
    if not applied:
        out.append(DRY_RUN)
    elif len(changes) != len(todo) or not all(c.changed for c in changes):
        out.append("note: some were confirmed meanwhile by someone else; nothing was done twice")
    return out


def _order(m: operator.Match) -> str:
    return f"{m.order.order_id or '(no order_id)'} (#{m.order.position})"


def _why(m: operator.Match) -> str:
    if m.verdict == "unknown_reference":
        return f"unknown tms_reference {m.order.reference!r}"
    if m.verdict == "not_completed":
        return f"status {m.order.status or '(none)'}: purchase not completed"
    return VERDICTS[m.verdict]
