"""``tokend demo``: the daemon against the embedded emulator, on scaled time.

The emulator plays the provider with a 150 s token lifetime (4 h divided
by 96) and a 90 s window in which a repeated grant returns the same token,
a little shorter than 3 h scaled alike, so that a refresh shows every
minute and a half. The daemon runs with durations to match and needs no
credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TextIO

from daemon.config import Settings, load
from daemon.emulator import command
from daemon.emulator.provider import Provider
from daemon.errors import ListenError
from daemon.service import EXIT_OK, EXIT_START_FAILED, Service
from daemon.signals import StopSignals

log = logging.getLogger("tokend.demo")

LIFETIME = 150.0
REFRESH_WINDOW = 90.0

# The daemon's durations: lifetime, jitter and margin are the defaults
# divided by 96; the refresh is due just past the emulator's window, as
# 3.01 h is just past 3 h; retries are kept short, so that an outage
# injected into the demo is over quickly.
_DEMO_TIMING = {
    "TOKEND_TOKEN_LIFETIME": "150s",
    "TOKEND_REFRESH_AFTER": "90.3s",
    "TOKEND_REFRESH_JITTER": "0.3s",
    "TOKEND_EXPIRY_MARGIN": "0.6s",
    "TOKEND_BACKOFF_BASE": "1s",
    "TOKEND_BACKOFF_MAX": "10s",
}


def settings_for(emulator_url: str, args: argparse.Namespace) -> Settings:
    """The daemon's settings against the emulator at `emulator_url`."""
    environ = {
        # The emulator's own demo credentials: nothing real is needed.
        "TOKEND_CLIENT_ID": "demo-client",
        "TOKEND_CLIENT_SECRET": "demo-secret",
        "TOKEND_REFRESH_TOKEN": "demo-refresh-token",
        "TOKEND_TOKEN_URL": f"{emulator_url}/oauth/token",
        "TOKEND_LISTEN": args.listen,
        "TOKEND_LOG_FORMAT": args.log_format,
        "TOKEND_LOG_LEVEL": args.log_level,
        **_DEMO_TIMING,
    }
    return load({}, environ)


async def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run the emulator and the daemon until SIGTERM or SIGINT."""
    async with StopSignals() as signals:
        provider = Provider(
            asyncio.get_running_loop().time,
            lifetime=LIFETIME,
            refresh_window=REFRESH_WINDOW,
        )
        try:
            emulator = await command.start(args.emulator_listen, provider)
        except ListenError as exc:
            log.error("the emulator %s", exc)
            return EXIT_START_FAILED

        try:
            service = Service(settings_for(emulator.url, args))
            try:
                await service.start()
            except ListenError as exc:
                log.error("%s", exc)
                return EXIT_START_FAILED

            _introduce(service.url, emulator.url, out)
            received = await signals.wait()
            log.info("%s received, stopping", received.name)
            await service.stop()
        finally:
            await emulator.close()
    return EXIT_OK


def _introduce(daemon_url: str, emulator_url: str, out: TextIO) -> None:
    lines = (
        "tokend demo: the daemon serves a token from the emulator; tokens live "
        f"{LIFETIME:g}s and a new one is granted about every {REFRESH_WINDOW:g}s",
        f"  the token:  {_curl(daemon_url, '/token')}",
        f"  readiness:  {_curl(daemon_url, '/readyz')}",
        f"  XML API:    {emulator_url}/XMLAPI (send Authorization: Bearer <token>)",
        "  stop:       Ctrl-C",
    )
    out.write("\n".join(lines) + "\n")
    out.flush()


def _curl(daemon_url: str, path: str) -> str:
    guard = " -H 'Tokend-Request: 1'" if path == "/token" else ""
    if daemon_url.startswith("unix:"):
        socket_path = daemon_url.removeprefix("unix:")
        return f"curl --unix-socket {socket_path}{guard} http://localhost{path}"
    return f"curl{guard} {daemon_url}{path}"
