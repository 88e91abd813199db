"""The daemon's two clocks: the event loop's for deadlines, the wall's for export.

Every deadline is a `loop.time()` value, so tests can fast-forward the loop
and live through days in a second. Wall-clock time is needed only where a
time leaves the process (``expires_at`` in answers, the state file, Redis);
`Clock` converts at that boundary with one offset taken at start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime


class Clock:
    """Loop time for deadlines, and the conversion to and from wall time."""

    def __init__(
        self,
        monotonic: Callable[[], float] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._monotonic = monotonic or asyncio.get_running_loop().time
        self._wall = wall
        self._offset = wall() - self._monotonic()

    def now(self) -> float:
        """The loop's time, in seconds: the base of every deadline."""
        return self._monotonic()

    def to_wall(self, moment: float) -> float:
        """A loop time as seconds since the Unix epoch."""
        return moment + self._offset

    def from_wall(self, epoch_seconds: float) -> float:
        """Seconds since the Unix epoch as a loop time."""
        return epoch_seconds - self._offset

    def wall_now(self) -> float:
        return self._wall()


def rfc3339(epoch_seconds: float) -> str:
    """An epoch time as RFC 3339 UTC with whole seconds, e.g. 2026-01-02T03:04:05Z."""
    moment = datetime.fromtimestamp(int(epoch_seconds), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
