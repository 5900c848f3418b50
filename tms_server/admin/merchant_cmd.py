"""``tms-admin merchant ...`` and ``tms-admin signing-key ...``: credentials operators manage."""

from __future__ import annotations

import argparse
import hashlib
import secrets
import sys
from typing import Any

import asyncpg

from tms_server import auth, kco, merchants
from tms_server.admin.common import AdminError, config_of, table, with_db


def add_parsers(sub: Any) -> None:
    """Register the merchant and signing-key commands."""
    m = sub.add_parser("merchant", help="add merchants, rotate their keys, list, disable").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = m.add_parser("add", help="create a merchant; prints its key (generated unless --key is given)")
    p.add_argument("identifier")
    p.add_argument("--key", help="use this key instead of generating one")
    p.add_argument("--name", help="a display name")
    p.set_defaults(func=cmd_add)
    p = m.add_parser("rotate-key", help="add a new key; the previous one stays valid until the next rotation")
    p.add_argument("identifier")
    p.add_argument("--key", help="use this key instead of generating one")
    p.add_argument("--retire-previous", action="store_true", help="make the previous key invalid right away")
    p.set_defaults(func=cmd_rotate)
    p = m.add_parser("list", help="list merchants")
    p.set_defaults(func=cmd_list)
    for name, active in (("disable", False), ("enable", True)):
        p = m.add_parser(name, help=f"{name} a merchant (disable also revokes its tokens, within seconds)")
        p.add_argument("identifier")
        p.set_defaults(func=cmd_set_active, active=active)
    p = m.add_parser(
        "revoke-tokens", help="refuse every token issued to the merchant so far (KSS gets new ones)"
    )
    p.add_argument("identifier")
    p.set_defaults(func=cmd_revoke_tokens)
    p = m.add_parser("kco-urls", help="the merchant's Kustom/Klarna Checkout callback URLs (made once)")
    p.add_argument("identifier")
    p.add_argument(
        "--base-url", help="how the checkout reaches this server (default: http://TMS_HOST:TMS_PORT)"
    )
    p.add_argument("--rotate", action="store_true", help="a new secret: the old URLs stop working at once")
    p.set_defaults(func=cmd_kco_urls)

    s = sub.add_parser("signing-key", help="rotate the key that signs KSS tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = s.add_parser("rotate", help="sign new tokens with a new key; old tokens stay valid until they expire")
    p.set_defaults(func=cmd_rotate_signing)


def _warn_if_weak(key: str) -> None:
    if merchants.is_weak(key):
        print(
            f"warning: this key has fewer than {merchants.WEAK_KEY_LENGTH} characters and could be guessed "
            "from one captured /auth request; prefer a generated key",
            file=sys.stderr,
        )


def cmd_add(args: argparse.Namespace) -> int:
    key = args.key or merchants.generate_key()

    async def go(conn: asyncpg.Connection) -> merchants.Merchant:
        return await merchants.add(conn, args.identifier, key, name=args.name)

    m = with_db(args, go)
    _warn_if_weak(key)
    print(f"merchant {m.identifier} created")
    print(f"identifier: {m.identifier}")
    print(f"key:        {key}")
    print("Give both to the merchant to enter in their KSS settings; the key is shown once here.")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    key = args.key or merchants.generate_key()

    async def go(conn: asyncpg.Connection) -> int:
        return await merchants.rotate_key(conn, args.identifier, key, keep_previous=not args.retire_previous)

    active = with_db(args, go)
    _warn_if_weak(key)
    print(f"new key for {args.identifier}: {key}")
    print(f"{active} key(s) now active" + ("" if args.retire_previous else " (the previous key still works)"))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = with_db(args, merchants.list_all)
    out = [
        {"identifier": m.identifier, "name": m.name, "active": "yes" if m.active else "no",
         "keys": m.keys, "catalog": m.catalog_version, "created": m.created_at.strftime("%Y-%m-%d %H:%M")}
        for m in rows
    ]  # fmt: skip
    print(table(out, ["identifier", "name", "active", "keys", "catalog", "created"]))
    return 0


def cmd_set_active(args: argparse.Namespace) -> int:
    async def go(conn: asyncpg.Connection) -> merchants.Merchant:
        return await merchants.set_active(conn, args.identifier, args.active)

    m = with_db(args, go)
    print(f"merchant {m.identifier} is now {'enabled' if m.active else 'disabled'}")
    return 0


def cmd_revoke_tokens(args: argparse.Namespace) -> int:
    async def go(conn: asyncpg.Connection) -> None:
        await merchants.revoke_tokens(conn, args.identifier)

    with_db(args, go)
    print(f"tokens issued to {args.identifier} until now are refused by every server within seconds")
    return 0


def cmd_rotate_signing(args: argparse.Namespace) -> int:
    kid = with_db(args, auth.rotate_signing_key)
    print(f"new signing key {kid}; servers pick it up within seconds, older tokens stay valid until expiry")
    return 0


STORE_KCO_CALLBACK_KEY = """
UPDATE merchants SET kco_secret = $2, kco_secret_hash = $3
 WHERE identifier = $1 AND (kco_secret IS NULL OR $4) RETURNING kco_secret
"""


def cmd_kco_urls(args: argparse.Namespace) -> int:
    """Create (once, or anew with --rotate) the merchant's callback secret and print the four URLs."""
    base = (args.base_url or "").strip().rstrip("/")
    if not base:
        cfg = config_of(args)
        base = f"http://{cfg.host}:{cfg.port}"
    if not base.startswith(("http://", "https://")) or "?" in base or "#" in base:
        raise AdminError(f"--base-url: expected http(s)://HOST[:PORT][/PATH] without ? or #, got {base!r}")

    async def go(conn: asyncpg.Connection) -> str:
        await merchants.get(conn, args.identifier)
        secret = secrets.token_urlsafe(32)
        stored = await conn.fetchval(STORE_KCO_CALLBACK_KEY, args.identifier, secret,
                                     hashlib.sha256(secret.encode()).digest(), args.rotate)  # fmt: skip
        if stored is None:
            stored = await conn.fetchval(
                "SELECT kco_secret FROM merchants WHERE identifier = $1", args.identifier
            )
        return str(stored)

    secret = with_db(args, go)
    print(f"Checkout merchant_urls for {args.identifier} (keep them secret: the path is the credential):")
    for name in kco.CALLBACKS:
        print(f"  {name:<24} {base}/kco/{secret}/{name}?order_id={{checkout.order.id}}")
    return 0
