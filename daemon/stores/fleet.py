"""Fleet mode: replicas share one token through Redis, so the fleet grants once.

`FleetStore` wraps the source that really asks the provider. When a refresh
falls due, a replica claims the lease (see `fleet_link`); the one that gets
it asks its inner source, renews the lease while the call runs, writes the
token under its generation and lets go. Writes from an older generation are
refused, so a holder that was paused past its lease cannot overwrite what
its successor wrote. The others wait for that write instead of calling,
and every replica adopts a changed record as soon as a notice (or, failing
that, a poll) tells it.

While Redis is unreachable each replica keeps its own token, refreshes
alone when due (the provider hands all of them the same token within its
window), and offers that token to the fleet when Redis is back: the later
expiry wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from daemon.clock import Clock
from daemon.durations import format_duration
from daemon.errors import RetryableError
from daemon.redaction import redactor
from daemon.sources import Adopt, TokenSource
from daemon.stores.fleet_health import FleetStatus, Role
from daemon.stores.fleet_lease import Lease
from daemon.stores.fleet_link import (
    FleetKeys,
    FleetLink,
    LinkDown,
    SharedRecord,
    Written,
)
from daemon.stores.redis_connection import open_redis
from daemon.token import AccessToken

log = logging.getLogger("tokend.fleet")

# How often a replica waiting for the lease holder looks again, as a
# share of the lease: a lapsed lease is taken over this soon after.
_WAIT_STEPS = 10

# The longest shutdown waits to hand the lease back.
_RELEASE_PATIENCE = 0.5


def succeeds(candidate: AccessToken | None, held: AccessToken | None) -> bool:
    """Whether `candidate` is a successor of `held`: another token, lasting longer.

    The same token seen by two replicas carries expiries that differ by the
    rounding of ``expires_in``; that is no reason to replace it.
    """
    if candidate is None:
        return False
    if held is None:
        return True
    return candidate.value != held.value and candidate.expiry > held.expiry


class FleetStore:
    """A `TokenSource` that shares the inner source's tokens across a fleet."""

    def __init__(
        self,
        inner: TokenSource,
        link: FleetLink,
        clock: Clock,
        *,
        lifetime: float,
        lease: float,
    ) -> None:
        self._inner = inner
        self._link = link
        self._clock = clock
        self._lifetime = lifetime
        self._lease = Lease(link, clock, lease)

        self._held: AccessToken | None = None
        self._adopt: Adopt | None = None
        self._news = asyncio.Event()
        self._generation: int | None = None
        self._waited_out = False
        self._fenced = 0

    @classmethod
    def connect(
        cls,
        url: str,
        inner: TokenSource,
        clock: Clock,
        *,
        prefix: str,
        account: str,
        lifetime: float,
        lease: float,
    ) -> FleetStore:
        """A store on the Redis at `url`; no connection is made until first use."""
        # A command slower than a third of the lease is as good as none:
        # a renewal must land before the lease runs out.
        client = open_redis(url, timeout=lease / 3)
        link = FleetLink(client, FleetKeys(prefix, account))
        return cls(inner, link, clock, lifetime=lifetime, lease=lease)

    def __repr__(self) -> str:
        return f"FleetStore({self._link!r}, role={self.fleet_status().role.value})"

    def fleet_status(self) -> FleetStatus:
        holding = self._lease.generation
        if not self._link.reachable:
            role = Role.STANDALONE
        elif holding is not None:
            role = Role.HOLDER
        else:
            role = Role.FOLLOWER
        generation = holding or self._generation
        return FleetStatus(role, generation, self._link.errors, self._fenced)

    # The TokenSource protocol.

    async def initial(self) -> AccessToken | None:
        kept = await self._inner.initial()

        try:
            record = await self._link.read()
        except LinkDown:
            record = None

        shared = self._token_of(record)
        self._held = shared if succeeds(shared, kept) else kept
        return self._held

    async def obtain(self, current: AccessToken | None) -> AccessToken:
        give_up = self._clock.now() + self._lease.seconds
        self._waited_out = False
        while True:
            # Cleared before the claim, so a notice that lands between the
            # claim and the wait below is not missed.
            self._news.clear()
            try:
                claim = await self._lease.claim()
            except LinkDown:
                return await self._obtain_alone(current)

            shared = self._token_of(claim.record)
            if succeeds(shared, current) and shared is not None:
                if claim.generation is not None:
                    await self._lease.let_go()
                return await self._take(shared)
            if claim.generation is not None:
                return await self._refresh_holding(current, claim.generation)

            left = give_up - self._clock.now()
            if left <= 0:
                self._waited_out = True
                raise RetryableError(
                    "waiting for the fleet: the lease holder shared no new token "
                    f"within {format_duration(self._lease.seconds)}"
                )
            step = self._lease.seconds / _WAIT_STEPS
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, step)):
                    await self._news.wait()

    def earliest_attempt(self) -> float | None:
        return self._inner.earliest_attempt()

    async def record_failure(self, wait: float) -> None:
        if self._waited_out:
            return  # nothing was asked upstream: the inner source did not fail
        await self._inner.record_failure(wait)

        # The holder keeps the lease through its backoff, so the fleet
        # retries on one schedule, the holder's, rather than on each of its
        # replicas' own.
        await self._lease.extend(wait)

    async def watch(self, adopt: Adopt) -> None:
        self._adopt = adopt
        relay = asyncio.create_task(
            self._inner.watch(self._relay), name="tokend-watch-inner"
        )
        try:
            while True:
                try:
                    await self._follow(adopt)
                except LinkDown:
                    pass  # already logged; the next round reconnects
                except Exception:
                    # A fault of ours must not end the following for good.
                    log.exception("following the fleet failed unexpectedly")
                await asyncio.sleep(self._lease.seconds)
        finally:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await relay

    async def close(self) -> None:
        # Handing the lease back saves the fleet a lapse, but shutdown must
        # stay quick when Redis does not answer.
        if self._lease.generation is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_RELEASE_PATIENCE):
                    await self._lease.let_go()
        await self._link.close()
        await self._inner.close()

    # Holding the lease.

    async def _refresh_holding(
        self, current: AccessToken | None, generation: int
    ) -> AccessToken:
        log.info("took the fleet's lease (generation %d); refreshing", generation)

        # A failed grant leaves the lease held, for `record_failure`.
        async with self._lease.renewed():
            token = await self._inner.obtain(current)

        await self._share(token, generation)
        await self._lease.let_go()
        return token

    async def _share(self, token: AccessToken, generation: int) -> None:
        self._held = token
        expires_at = self._clock.to_wall(token.expiry)
        try:
            written = await self._link.write(token.value, expires_at, generation)
        except LinkDown:
            return  # offered again once Redis is back

        if written is Written.FENCED:
            self._fenced += 1
            log.warning(
                "not sharing token %s: a later lease holder took over after "
                "generation %d, and its token stands",
                token.fingerprint,
                generation,
            )
        elif written is Written.WRITTEN:
            self._generation = generation
            log.info(
                "shared token %s with the fleet (generation %d)",
                token.fingerprint,
                generation,
            )

    # Following.

    async def _take(self, shared: AccessToken) -> AccessToken:
        log.info(
            "took token %s from the fleet (generation %s) instead of calling",
            shared.fingerprint,
            self._generation,
        )
        self._held = shared
        # Adopted first, so the supervisor sees it as taken, not granted.
        if self._adopt is not None:
            await self._adopt(shared)
        return shared

    async def _follow(self, adopt: Adopt) -> None:
        async with self._link.notices() as notices:
            while True:
                await self._reconcile(adopt)
                if await notices.wait(self._lease.seconds):
                    self._news.set()

    async def _reconcile(self, adopt: Adopt) -> None:
        """Adopt a newer shared token, or offer ours if the record lacks it."""
        record = await self._link.read()

        shared = self._token_of(record)
        held = self._held
        if succeeds(shared, held) and shared is not None:
            self._held = shared
            self._news.set()
            await adopt(shared)
        elif (
            self._lease.generation is None
            and held is not None
            and held.expiry > self._clock.now()
            and succeeds(held, shared)
        ):
            # Ours is missing from Redis (it restarted empty, or we refreshed
            # while it was down) or outlasts the record's.
            await self._offer(held, adopt)

    async def _offer(self, held: AccessToken, adopt: Adopt) -> None:
        claim = await self._lease.claim()
        if claim.generation is None:
            return  # a holder is refreshing: its write settles it

        shared = self._token_of(claim.record)
        if succeeds(shared, held) and shared is not None:
            self._held = shared
            await adopt(shared)
        else:
            log.info("offering token %s to the fleet", held.fingerprint)
            await self._share(held, claim.generation)
        await self._lease.let_go()

    async def _obtain_alone(self, current: AccessToken | None) -> AccessToken:
        token = await self._inner.obtain(current)
        self._held = token
        log.warning(
            "refreshed on our own while Redis is unreachable: token %s; it is "
            "offered to the fleet when Redis is back",
            token.fingerprint,
        )
        return token

    async def _relay(self, token: AccessToken) -> None:
        # Tokens the inner source hears of (a neighbour's state file).
        if succeeds(token, self._held) and self._adopt is not None:
            self._held = token
            await self._adopt(token)

    # Bookkeeping.

    def _token_of(self, record: SharedRecord | None) -> AccessToken | None:
        if record is None:
            return None
        self._generation = record.generation
        expiry = self._clock.from_wall(record.expires_at)
        if expiry <= self._clock.now():
            return None
        redactor.add_token(record.value)
        return AccessToken(record.value, expiry, self._lifetime)
