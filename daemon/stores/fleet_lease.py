"""The fleet's refresh lease as one replica holds it: claimed, renewed, let go."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from daemon.clock import Clock
from daemon.stores.fleet_link import Claim, FleetLink, LinkDown

log = logging.getLogger("tokend.fleet")


class Lease:
    """One replica's hold on the lease; `generation` is set while it is ours."""

    def __init__(self, link: FleetLink, clock: Clock, seconds: float) -> None:
        self._link = link
        self._clock = clock
        self.seconds = seconds
        self.generation: int | None = None

    async def claim(self) -> Claim:
        """Take the lease if it is free (or extend ours); raises `LinkDown`."""
        claim = await self._link.claim(self.seconds, self._clock.wall_now())
        self.generation = claim.generation
        return claim

    @contextlib.asynccontextmanager
    async def renewed(self) -> AsyncIterator[None]:
        """Renew the lease every third of its length while the block runs."""
        renewal = asyncio.create_task(self._keep(), name="tokend-lease")
        try:
            yield
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal

    async def extend(self, extra: float) -> None:
        """Hold the lease `extra` seconds beyond its length (a backoff wait)."""
        if self.generation is None:
            return
        try:
            kept = await self._link.renew(extra + self.seconds)
        except LinkDown:
            kept = False
        if not kept:
            self.generation = None

    async def let_go(self) -> None:
        self.generation = None
        # If Redis is away, the lease runs out by itself.
        with contextlib.suppress(LinkDown):
            await self._link.release()

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                renewed = await self._link.renew(self.seconds)
            except LinkDown:
                continue
            if not renewed:
                log.warning(
                    "the fleet's lease lapsed during this refresh; another replica "
                    "may hold it now, and a newer token will not be overwritten"
                )
                return
