"""``tms-admin delivery-time render``: say a delivery_time object as KSS would show it.

This module owns the command only; the wording lives in ``tms_server.delivery_time``. It reads one
delivery_time JSON object on stdin and prints the sentence, so an operator can check a catalog's
promise (or one copied from a KSS payload) without a checkout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tms_server.calendar import zone_info
from tms_server.delivery_time import render

__all__ = ["add_parser", "main", "run"]

DEFAULT_TZ = "Europe/Stockholm"


def _zone(value: str) -> ZoneInfo:
    try:
        return zone_info(value, "--tz")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _moment(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 date-time, got {value!r}") from exc


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``delivery-time render`` on a ``tms-admin`` sub-command table."""
    group = subparsers.add_parser("delivery-time", help="the delivery promise shown to shoppers")
    commands = group.add_subparsers(dest="delivery_time_command", required=True)
    render_parser = commands.add_parser(
        "render",
        help="print the sentence for a delivery_time JSON object read on stdin",
        description="Read a KSS delivery_time JSON object on stdin and print the sentence KSS shows. "
        "Prints nothing when every date in it is past.",
    )
    render_parser.add_argument(
        "--now", type=_moment, default=None, help="the moment to render at (ISO 8601; default: now)"
    )
    render_parser.add_argument(
        "--tz", type=_zone, default=ZoneInfo(DEFAULT_TZ), help=f"recipient's time zone (default {DEFAULT_TZ})"
    )
    render_parser.add_argument(
        "--locale", default="en", help="e.g. en, sv-SE, nb, da, fi, de, nl (default en)"
    )
    render_parser.set_defaults(func=run)


def _fail(message: str) -> int:
    # Same line shape as tms_server.admin.common.err, which is not imported: it would pull the
    # database layer into a command that needs none.
    print(f"tms-admin: delivery-time render: {message}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    """Render stdin's delivery_time; 1 with a message on stderr when the input is not one."""
    zone: ZoneInfo = args.tz
    now: datetime = args.now or datetime.now(UTC)
    if now.tzinfo is None:
        # A bare --now is a wall-clock time where the recipient lives.
        now = now.replace(tzinfo=zone)
    try:
        document = json.loads(sys.stdin.read())
    except json.JSONDecodeError as exc:
        return _fail(f"stdin is not JSON: {exc}")
    except UnicodeDecodeError as exc:
        return _fail(f"stdin is not UTF-8 text: {exc}")
    except RecursionError:
        return _fail("stdin is nested too deeply to be a delivery_time object")
    try:
        sentence = render(document, now=now, tz=zone, locale=args.locale)
    except ValueError as exc:
        return _fail(str(exc))
    if sentence is not None:
        print(sentence)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command on its own (``python -m tms_server.admin.delivery_time_cmd delivery-time render``)."""
    parser = argparse.ArgumentParser(prog="tms-admin")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
