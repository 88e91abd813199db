"""Run the emulator alone: ``python -m daemon.emulator --listen 127.0.0.1:0``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import NoReturn

from daemon.emulator import command
from daemon.errors import ConfigError, ListenError
from daemon.loops import run
from daemon.signals import StopSignals

PROG = "python -m daemon.emulator"

EXIT_OK = 0
EXIT_START_FAILED = 1
EXIT_USAGE = 2


class _OneLineParser(argparse.ArgumentParser):
    """Reports a bad argument in one line, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _OneLineParser(
        prog=PROG,
        description="A stand-in for the Acoustic Campaign OAuth server.",
    )
    command.add_arguments(parser)
    args = parser.parse_args(argv)

    try:
        run(_serve_until_stopped(args))
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ListenError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_START_FAILED
    return EXIT_OK


async def _serve_until_stopped(args: argparse.Namespace) -> None:
    async with StopSignals() as signals:
        serving = asyncio.create_task(command.serve(args))
        stopping = asyncio.create_task(signals.wait())
        await asyncio.wait((serving, stopping), return_when=asyncio.FIRST_COMPLETED)

        for task in (serving, stopping):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        with contextlib.suppress(asyncio.CancelledError):
            # Raises what stopped `serve` early, such as an address in use.
            await serving


if __name__ == "__main__":
    raise SystemExit(main())
