"""``tms-admin kss-check``: the KSS conformance tester (``tms_server.kss_check``) from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tms_server import kss_check
from tms_server.admin.common import AdminError


def add_parser(sub: Any) -> None:
    """Register ``kss-check``."""
    p = sub.add_parser(
        "kss-check",
        help="test a KSS callback server (ours or another vendor's) against the wire contract",
        description="Drive a TMS over the network as the Klarna/Kustom Shipping Service does, and check "
        "every answer against the KSS callback contract. Exit status 0 only when no check failed.",
    )
    p.add_argument("url", metavar="URL", help="the server's base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--identifier", required=True, help="the merchant identifier KSS would send to /auth")
    p.add_argument("--key", required=True, help="the merchant's key ('-' reads it from standard input)")
    p.add_argument("--request", metavar="FILE", type=Path,
                   help="a /shippingoptions body to use (default: the reference's example, a Stockholm address)")  # fmt: skip
    p.add_argument("--only", nargs="+", metavar="GROUP", choices=kss_check.GROUPS,
                   help=f"run only these groups: {', '.join(kss_check.GROUPS)}")  # fmt: skip
    p.add_argument("--no-reserve", action="store_true",
                   help="skip everything that creates reservations (safe against production)")  # fmt: skip
    p.add_argument(
        "--format", choices=("text", "json", "junit"), default="text", help="output format (default text)"
    )
    p.add_argument(
        "--output", metavar="FILE", type=Path, help="write the report here instead of standard output"
    )
    p.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS",
                   help="seconds to wait for each answer (default 10)")  # fmt: skip
    p.set_defaults(func=cmd_kss_check)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 600 seconds, got {text}")
    return value


def _request(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AdminError(f"--request {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdminError(f"--request {path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("order"), dict):
        raise AdminError(f"--request {path}: expected a /shippingoptions body (a JSON object with an order)")
    return data


def cmd_kss_check(args: argparse.Namespace) -> int:
    url = args.url.strip()
    if not url.startswith(("http://", "https://")):
        raise AdminError(f"URL must start with http:// or https://, got {url!r}")
    key = sys.stdin.readline().strip() if args.key == "-" else args.key
    if not key:
        raise AdminError("--key: empty")
    results = asyncio.run(
        kss_check.run(url, args.identifier, key, request=_request(args.request), only=args.only or (),
                      reserve=not args.no_reserve, request_timeout=args.timeout)
    )  # fmt: skip
    if args.format == "json":
        report = json.dumps([r.as_json() for r in results], indent=2)
    elif args.format == "junit":
        report = kss_check.format_junit(results, url)
    else:
        report = kss_check.format_text(results)
    if args.output is not None:
        try:
            args.output.write_text(report + "\n", encoding="utf-8")
        except OSError as exc:
            raise AdminError(f"--output {args.output}: {exc.strerror or exc}") from None
        print(kss_check.summary(results))
    else:
        print(report)
    return 1 if any(r.status == "FAIL" for r in results) else 0
