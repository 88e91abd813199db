"""``tokend emulator``: its options, and the emulator served on a TCP port."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from daemon.config import Listen, parse_listen
from daemon.durations import parse_duration
from daemon.emulator.app import make_app
from daemon.emulator.provider import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REFRESH_TOKEN,
    Provider,
)
from daemon.errors import ConfigError
from daemon.listeners import Listener, open_listener

DEFAULT_LISTEN = "127.0.0.1:8438"


@dataclass(frozen=True)
class Running:
    """An emulator accepting requests at `url`, the address actually bound."""

    listener: Listener
    provider: Provider

    @property
    def url(self) -> str:
        return self.listener.url

    async def close(self) -> None:
        """Stop accepting, end hung requests, close every connection."""
        await self.listener.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        type=_listen_argument,
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="where to accept requests; port 0 picks a free one (default %(default)s)",
    )
    parser.add_argument(
        "--lifetime",
        type=_duration_argument,
        default="4h",
        help="how long a granted token lives (default %(default)s)",
    )
    parser.add_argument(
        "--refresh-window",
        type=_duration_argument,
        default="3h",
        help="how long after its issue a grant returns the same token "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--client-id",
        default=DEMO_CLIENT_ID,
        help="the client id to accept (default %(default)s)",
    )
    parser.add_argument(
        "--client-secret",
        default=DEMO_CLIENT_SECRET,
        help="the client secret to accept (default %(default)s)",
    )
    parser.add_argument(
        "--refresh-token",
        default=DEMO_REFRESH_TOKEN,
        help="the refresh token to accept (default %(default)s)",
    )


def provider_of(args: argparse.Namespace, clock: Callable[[], float]) -> Provider:
    """The provider the options describe; raises `ConfigError` if they clash."""
    try:
        return Provider(
            clock,
            client_id=args.client_id,
            client_secret=args.client_secret,
            refresh_token=args.refresh_token,
            lifetime=args.lifetime,
            refresh_window=args.refresh_window,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


async def start(listen: str, provider: Provider) -> Running:
    """Serve `provider` on `listen` (host:port); raises `ListenError` if it cannot."""
    try:
        address = tcp_listen(listen)
    except ValueError as exc:
        raise ConfigError(f"--listen: {exc}") from None

    listener = await open_listener(make_app(provider), address)
    return Running(listener, provider)


async def serve(args: argparse.Namespace) -> None:
    """Run the emulator the options describe until cancelled."""
    provider = provider_of(args, asyncio.get_running_loop().time)
    running = await start(args.listen, provider)
    try:
        # Process tests read the bound address from this one line.
        print(f"tokend emulator listening on {running.url}", flush=True)
        await asyncio.Event().wait()
    finally:
        await running.close()


def tcp_listen(text: str) -> Listen:
    """A ``host:port`` address; the emulator has no Unix socket form."""
    problem = ValueError(
        f"{text!r} is not an address: give host:port "
        "(127.0.0.1:8438, [::1]:8438, port 0 for any free port)"
    )
    if text.startswith("unix:"):
        raise problem
    try:
        return parse_listen(text)
    except ValueError:
        raise problem from None


def _listen_argument(text: str) -> str:
    try:
        tcp_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _duration_argument(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
