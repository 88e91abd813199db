"""Listening sockets for the application, embedded in the daemon's own loop.

Each listener is one aiohttp `AppRunner` with one site: a `TCPSite` for
``host:port`` or a `UnixSite` for ``unix:/path``. A Unix socket is made
with mode 0660 (owner and group: the sidecar's neighbours, nobody else),
replaces a stale socket file left by a crash, and is removed at close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from pathlib import Path

from aiohttp import web

from daemon.config import Listen
from daemon.errors import ListenError
from daemon.protocol_log import ProtocolLog

log = logging.getLogger("tokend.listeners")

SOCKET_MODE = 0o660

# In-flight requests get this long to finish at shutdown. GET /token takes
# microseconds; the bound keeps a stop within one second.
_DRAIN_SECONDS = 0.3


class Listener:
    """One open listener; `urls` are the addresses actually bound."""

    def __init__(self, runner: web.AppRunner, listen: Listen, urls: list[str]) -> None:
        self._runner = runner
        self._listen = listen
        self.urls = tuple(urls)
        self._socket_id = _file_id(listen.path) if listen.path else None

    @property
    def url(self) -> str:
        return self.urls[0]

    async def close(self) -> None:
        """Stop accepting, let in-flight requests finish briefly, remove the socket."""
        await self._runner.cleanup()

        path = self._listen.path
        # Only our own socket file: another daemon may have replaced it since.
        if path is not None and _file_id(path) == self._socket_id:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


async def open_listener(
    app: web.Application, listen: Listen, *, access_log: bool = False
) -> Listener:
    """Start serving `app` on `listen`; raises `ListenError` with the reason."""
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("tokend.access") if access_log else None,
        logger=ProtocolLog(),
        shutdown_timeout=_DRAIN_SECONDS,
    )
    await runner.setup()
    try:
        if listen.path is not None:
            urls = await _start_unix(runner, listen.path)
        else:
            urls = await _start_tcp(runner, listen)
    except BaseException:
        await runner.cleanup()
        raise
    return Listener(runner, listen, urls)


async def _start_tcp(runner: web.AppRunner, listen: Listen) -> list[str]:
    site = web.TCPSite(runner, listen.host, listen.port)
    try:
        await site.start()
    except OSError as exc:
        raise ListenError(f"cannot listen on {listen}: {_reason(exc)}") from None
    return [_tcp_url(address) for address in runner.addresses]


async def _start_unix(runner: web.AppRunner, path: Path) -> list[str]:
    await _clear_stale_socket(path)

    site = web.UnixSite(runner, str(path))
    # The socket file is created by bind(); a umask set around it means the
    # file never exists with wider permissions, not even for an instant.
    # Start-up is single-threaded here, so the process-wide umask is safe.
    previous = os.umask(0o777 & ~SOCKET_MODE)
    try:
        await site.start()
    except OSError as exc:
        raise ListenError(f"cannot listen on unix:{path}: {_reason(exc)}") from None
    finally:
        os.umask(previous)
    os.chmod(path, SOCKET_MODE)
    return [f"unix:{path}"]


async def _clear_stale_socket(path: Path) -> None:
    """Remove a socket file no process listens on; refuse anything else."""
    if not _is_socket(path):
        return

    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 1.0)
    except (OSError, TimeoutError):
        log.info("removing the stale socket file %s", path)
        _remove(path)
        return
    writer.close()
    raise ListenError(
        f"cannot listen on unix:{path}: another process is listening on it"
    )


def _is_socket(path: Path) -> bool:
    """Whether a socket file is there; raises `ListenError` for other files."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(mode):
        raise ListenError(
            f"cannot listen on unix:{path}: the path exists and is not a socket"
        )
    return True


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        info = path.lstat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _tcp_url(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = address[0], address[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _reason(exc: OSError) -> str:
    # uvloop's message repeats the address; the errno alone says it plainly.
    if exc.errno:
        return os.strerror(exc.errno)
    return exc.strerror or type(exc).__name__
