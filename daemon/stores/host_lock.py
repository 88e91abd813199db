"""One lock for the daemons of a host that share a state file, awaited on the loop.

An ``flock`` on a lock file beside the state file: the state file itself
is replaced by rename on every write, so a lock on it would be a lock on a
file that is gone. The kernel drops the lock when its holder dies, so a
``kill -9`` never leaves it held. Waiting is a non-blocking try every few
milliseconds, so the loop keeps serving tokens and the wait can be
cancelled; a thread blocked in ``flock`` could be neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from daemon.durations import format_duration

log = logging.getLogger("tokend.statefile")


class HostLock:
    """An exclusive lock on `path`, which is created (mode 0600) if missing."""

    def __init__(self, path: Path, *, poll_interval: float = 0.02) -> None:
        self.path = path
        self._poll_interval = poll_interval

    @contextlib.asynccontextmanager
    async def hold(self, patience: float) -> AsyncIterator[bool]:
        """Hold the lock for the body; yields False if it could not be had.

        A lock that cannot be opened, or that a neighbour keeps for longer
        than `patience` (stopped, or stuck on a dead mount), is logged and
        the body runs anyway: a missed lock costs at most one extra token
        request, a lock waited on forever would cost the token.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning(
                "cannot open the lock file %s (%s); going on without the lock",
                self.path,
                exc.strerror,
            )
            yield False
            return

        try:
            held = await self._acquire(fd, patience)
            yield held
        finally:
            # Closing the only descriptor releases the lock.
            os.close(fd)

    async def _acquire(self, fd: int, patience: float) -> bool:
        try:
            async with asyncio.timeout(patience):
                # Another process holds the lock: no event can tell us when
                # it lets go, so polling is the only way to wait for it.
                while not _try_lock(fd):  # noqa: ASYNC110
                    await asyncio.sleep(self._poll_interval)
        except TimeoutError:
            log.warning(
                "the lock %s has been held by another process for over %s; "
                "going on without it",
                self.path,
                format_duration(patience),
            )
            return False
        except OSError as exc:
            # Some network file systems offer no locks at all.
            log.warning(
                "cannot lock %s (%s); going on without the lock",
                self.path,
                exc.strerror,
            )
            return False
        return True


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
