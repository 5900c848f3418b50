"""The ceiling for scripts/bench: a bare aiohttp server answering POST /shippingoptions with fixed bytes."""

from __future__ import annotations

import sys
from pathlib import Path

from aiohttp import web


def main() -> None:
    """``bench_baseline.py PORT BODY_FILE``."""
    port, body = int(sys.argv[1]), Path(sys.argv[2]).read_bytes()

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/shippingoptions", handler)
    app.router.add_get("/healthz", lambda r: web.Response(text="ok"))
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
