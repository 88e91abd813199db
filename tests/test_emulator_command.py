"""The emulator's options, start-up and ``python -m daemon.emulator``."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from daemon.emulator import Provider
from daemon.emulator.__main__ import main
from daemon.emulator.command import add_arguments, provider_of, start
from daemon.errors import ConfigError, ListenError

LINE_PREFIX = "tokend emulator listening on "


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def occupied_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_the_defaults_are_the_providers_documented_timing() -> None:
    """Without options the emulator listens on 8438 with 4 h tokens and a 3 h window."""

    args = parse()

    assert args.listen == "127.0.0.1:8438"
    assert (args.lifetime, args.refresh_window) == (14400.0, 10800.0)
    assert args.client_id == "demo-client"


def test_durations_take_units() -> None:
    """--lifetime and --refresh-window read durations with units."""

    args = parse("--lifetime", "150s", "--refresh-window", "1.5m")

    assert (args.lifetime, args.refresh_window) == (150.0, 90.0)


def test_a_window_as_long_as_the_lifetime_is_a_config_error() -> None:
    """A refresh window not shorter than the lifetime stops start-up clearly."""
    args = parse("--lifetime", "1h", "--refresh-window", "1h")

    with pytest.raises(ConfigError, match="must be shorter than the lifetime"):
        provider_of(args, lambda: 0.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lifetime", "soon"], "argument --lifetime: 'soon' is not a duration"),
        (["--listen", "unix:/tmp/e.sock"], "give host:port"),
        (["--listen", "localhost"], "give host:port"),
    ],
)
def test_a_bad_argument_exits_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed option ends the command with status 2 and a single line."""

    with pytest.raises(SystemExit) as stopped:
        main(argv)

    lines = capsys.readouterr().err.splitlines()
    assert stopped.value.code == 2
    assert len(lines) == 1
    assert message in lines[0]


def test_clashing_durations_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Options that parse but clash end the command with status 2 and one line."""

    status = main(["--lifetime", "1h", "--refresh-window", "2h"])

    lines = capsys.readouterr().err.splitlines()
    assert status == 2
    assert len(lines) == 1
    assert "shorter than the lifetime" in lines[0]


def test_an_address_in_use_exits_1_with_one_line(
    occupied_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port another process holds ends the command with status 1 and one line."""

    status = main(["--listen", f"127.0.0.1:{occupied_port}"])

    lines = capsys.readouterr().err.splitlines()
    assert status == 1
    assert len(lines) == 1
    assert f"127.0.0.1:{occupied_port}" in lines[0]


@pytest.mark.asyncio
async def test_start_reports_the_port_actually_bound() -> None:
    """Started on port 0, the emulator's url names the port the system chose."""
    provider = Provider(asyncio.get_running_loop().time)

    running = await start("127.0.0.1:0", provider)
    try:
        port = urllib.parse.urlsplit(running.url).port
    finally:
        await running.close()

    assert running.url.startswith("http://127.0.0.1:")
    assert port is not None
    assert port > 0


@pytest.mark.asyncio
async def test_start_raises_listen_error_for_an_address_in_use(
    occupied_port: int,
) -> None:
    """Starting on a port that is taken raises ListenError naming the address."""
    provider = Provider(asyncio.get_running_loop().time)

    with pytest.raises(ListenError, match=f"127.0.0.1:{occupied_port}"):
        await start(f"127.0.0.1:{occupied_port}", provider)


@pytest.mark.process
def test_the_module_serves_until_sigterm_and_exits_0() -> None:
    """`python -m daemon.emulator` prints its address, grants, and stops on SIGTERM."""
    argv = [sys.executable, "-m", "daemon.emulator", "--listen", "127.0.0.1:0"]

    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as process:
        try:
            line = process.stdout.readline() if process.stdout else ""
            grant = request_grant(line.strip().removeprefix(LINE_PREFIX))
            process.send_signal(signal.SIGTERM)
            status = process.wait(timeout=5)
        finally:
            if process.poll() is None:
                process.kill()

    assert line.startswith(LINE_PREFIX + "http://127.0.0.1:")
    assert grant["expires_in"] == 14400
    assert status == 0


def request_grant(emulator_url: str) -> dict[str, object]:
    form = urllib.parse.urlencode(
        {
            "grant_type": "refresh_token",
            "client_id": "demo-client",
            "client_secret": "demo-secret",
            "refresh_token": "demo-refresh-token",
        }
    ).encode()
    # The address is the emulator's own http:// line, not outside input.
    token_url = f"{emulator_url}/oauth/token"
    with urllib.request.urlopen(token_url, form, timeout=5) as answer:  # noqa: S310
        grant = json.load(answer)
    assert isinstance(grant, dict)
    return grant
