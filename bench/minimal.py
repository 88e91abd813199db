"""The yardstick for bench/serve.py: a plain aiohttp handler on uvloop.

It answers ``GET /token`` with a constant JSON document of the size given
and the headers tokend sends (Content-Type, Cache-Control), and does
nothing else: no guard, no metrics, no middleware. Whatever tokend costs
beyond this is the price of being tokend.

    python bench/minimal.py --port 0 --body-size 144
"""

from __future__ import annotations

import argparse
import asyncio
import json

import uvloop
from aiohttp import web

# The shape of tokend's answer; the token is padded to the size asked for.
_SHAPE = {
    "access_token": "",
    "token_type": "Bearer",
    "expires_in": 14399,
    "expires_at": "2026-01-01T04:00:00Z",
}


def body_of_size(size: int) -> bytes:
    """A token document exactly `size` bytes long."""
    empty = len(json.dumps(_SHAPE))
    if size < empty:
        raise ValueError(f"a token document takes at least {empty} bytes")
    return json.dumps({**_SHAPE, "access_token": "t" * (size - empty)}).encode()


async def serve(port: int, body: bytes) -> None:
    async def token(request: web.Request) -> web.Response:
        return web.Response(
            body=body,
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    app = web.Application()
    app.router.add_get("/token", token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()

    host, bound = runner.addresses[0][:2]
    print(f"minimal listening on http://{host}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--body-size", type=int, required=True)
    args = parser.parse_args()

    body = body_of_size(args.body_size)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.port, body))


if __name__ == "__main__":
    main()
