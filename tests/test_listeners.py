"""Listeners: the address actually bound, and the Unix socket's life cycle."""

from __future__ import annotations

import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from daemon.config import Listen
from daemon.errors import ListenError
from daemon.listeners import open_listener


def hello_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/", hello)
    return app


# Blocking file calls sit in plain functions: inside a coroutine the linter
# (rightly, for a daemon) flags them.
def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def exists(path: Path) -> bool:
    return path.exists()


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def read(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture
def socket_path(tmp_path: Path) -> Iterator[Path]:
    # Unix socket paths are limited to about 100 bytes; tmp_path may be long.
    short = Path("/tmp") / f"tokend-test-{tmp_path.name[-20:]}.sock"
    yield short
    short.unlink(missing_ok=True)


@pytest.mark.asyncio
async def test_port_zero_reports_the_port_bound() -> None:
    """Asked for port 0, the listener names the real port, and it answers."""
    listener = await open_listener(hello_app(), Listen("127.0.0.1", 0))

    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(listener.url + "/") as response,
        ):
            text = await response.text()
    finally:
        await listener.close()

    assert listener.url.startswith("http://127.0.0.1:")
    assert not listener.url.endswith(":0")
    assert text == "hello"


@pytest.mark.asyncio
async def test_unix_socket_is_0660_and_removed_at_close(socket_path: Path) -> None:
    """The socket file is made with mode 0660 and is gone after close."""
    listener = await open_listener(hello_app(), Listen(path=socket_path))
    mode = mode_of(socket_path)
    connector = aiohttp.UnixConnector(path=str(socket_path))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get("http://localhost/") as response,
    ):
        text = await response.text()

    await listener.close()

    assert mode == 0o660
    assert text == "hello"
    assert listener.url == f"unix:{socket_path}"
    assert not exists(socket_path)


@pytest.mark.asyncio
async def test_stale_socket_file_is_replaced(socket_path: Path) -> None:
    """A socket file nobody listens on (a crash's leftover) is taken over."""
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(socket_path))
    stale.close()

    listener = await open_listener(hello_app(), Listen(path=socket_path))
    await listener.close()

    assert listener.url == f"unix:{socket_path}"


@pytest.mark.asyncio
async def test_live_socket_is_not_stolen(socket_path: Path) -> None:
    """A socket another process listens on is refused, not replaced."""
    first = await open_listener(hello_app(), Listen(path=socket_path))

    try:
        with pytest.raises(ListenError, match="another process is listening"):
            await open_listener(hello_app(), Listen(path=socket_path))
        still_there = exists(socket_path)
    finally:
        await first.close()

    assert still_there


@pytest.mark.asyncio
async def test_a_regular_file_is_never_removed(socket_path: Path) -> None:
    """A path that holds an ordinary file is refused and the file kept."""
    write(socket_path, b"precious")

    with pytest.raises(ListenError, match="not a socket"):
        await open_listener(hello_app(), Listen(path=socket_path))

    assert read(socket_path) == b"precious"


@pytest.mark.asyncio
async def test_a_port_in_use_is_a_clear_error() -> None:
    """Listening on a port already taken raises ListenError naming the address."""
    first = await open_listener(hello_app(), Listen("127.0.0.1", 0))
    port = int(first.url.rsplit(":", 1)[1])

    try:
        with pytest.raises(ListenError, match=f"127.0.0.1:{port}"):
            await open_listener(hello_app(), Listen("127.0.0.1", port))
    finally:
        await first.close()
