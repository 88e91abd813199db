"""Fleet mode while Redis is away and when it comes back, on a private redis-server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from daemon.clock import Clock
from daemon.emulator.faults import Fault
from daemon.errors import RetryableError
from daemon.policy import Timing
from daemon.retry import Backoff
from daemon.stores.fleet import FleetStore
from daemon.stores.fleet_health import Role
from daemon.supervisor import Supervisor
from tests.fleet_rig import (
    LEASE,
    LIFETIME,
    Adopted,
    fleet_store,
    grant_source,
    make_provider,
    unique_prefix,
)
from tests.private_redis import PrivateRedis

# Short enough that a test outlives one refresh window of the emulator.
WINDOW = 1.0


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def eventually(check: object, within: float) -> None:
    """Wait until `check()` is true, or fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
async def test_a_replica_refreshes_alone_while_redis_is_down(
    private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """With Redis gone, a due refresh goes to the provider and says so."""
    source = grant_source(make_provider())
    store = fleet_store(source, unique_prefix(), url=private_redis.url)
    first = await store.obtain(None)
    private_redis.stop()

    with caplog.at_level(logging.INFO, logger="tokend.fleet"):
        token = await store.obtain(first)

    await store.close()
    assert token.value == first.value  # the provider's window has not passed
    assert source.calls == 2
    assert store.fleet_status().role is Role.STANDALONE
    assert store.fleet_status().redis_errors >= 1
    assert "refreshed on our own while Redis is unreachable" in caplog.text


@pytest.mark.asyncio
async def test_watching_outlives_redis_and_resumes_when_it_returns(
    private_redis: PrivateRedis,
) -> None:
    """The watch keeps running through an outage and follows again afterwards."""
    store = fleet_store(
        grant_source(make_provider()), unique_prefix(), url=private_redis.url
    )
    watching = asyncio.create_task(store.watch(Adopted()))
    private_redis.stop()
    await asyncio.sleep(LEASE * 3)
    during = store.fleet_status()

    private_redis.start()
    await eventually(lambda: store.fleet_status().role is Role.FOLLOWER, LEASE * 3)

    assert not watching.done()
    watching.cancel()
    await store.close()
    assert during.role is Role.STANDALONE
    assert during.redis_errors >= 2


@dataclass
class ReplicaPair:
    """Two fleet stores on one Redis, both watching; `other` reports adoptions."""

    alone: FleetStore
    other: FleetStore
    other_adopted: Adopted
    watchers: list[asyncio.Task[None]]

    async def close(self) -> None:
        for task in self.watchers:
            task.cancel()
        await self.alone.close()
        await self.other.close()


async def two_replicas(url: str) -> ReplicaPair:
    provider = make_provider(window=WINDOW)
    prefix = unique_prefix()
    alone = fleet_store(grant_source(provider), prefix, url=url)
    other = fleet_store(grant_source(provider), prefix, url=url)
    other_adopted = Adopted()
    watchers = [
        asyncio.create_task(alone.watch(Adopted())),
        asyncio.create_task(other.watch(other_adopted)),
    ]
    return ReplicaPair(alone, other, other_adopted, watchers)


@pytest.mark.asyncio
async def test_the_later_token_wins_when_an_empty_redis_returns(
    private_redis: PrivateRedis,
) -> None:
    """A token refreshed during the outage reaches Redis and the other replicas."""
    pair = await two_replicas(private_redis.url)
    alone, other_adopted = pair.alone, pair.other_adopted
    old = await alone.obtain(None)
    await other_adopted.next(within=1.0)
    private_redis.stop()
    await asyncio.sleep(WINDOW)
    new = await alone.obtain(old)

    private_redis.start()
    seen = await other_adopted.next(within=LEASE * 4)

    record = await alone._link.read()
    await pair.close()
    assert new.value != old.value
    assert seen.value == new.value
    assert record is not None
    assert record.value == new.value


@pytest.mark.asyncio
async def test_the_later_token_wins_over_the_record_kept_in_redis(
    private_redis: PrivateRedis,
) -> None:
    """Redis kept the old record while paused; the token refreshed meanwhile wins."""
    pair = await two_replicas(private_redis.url)
    alone, other_adopted = pair.alone, pair.other_adopted
    old = await alone.obtain(None)
    await other_adopted.next(within=1.0)
    await asyncio.sleep(WINDOW)
    admin = aioredis.Redis.from_url(private_redis.url)
    await admin.client_pause(1500, all=True)
    new = await alone.obtain(old)

    seen = await other_adopted.next(within=1.5 + LEASE * 4)

    await admin.aclose()
    await pair.close()
    assert alone.fleet_status().redis_errors >= 1
    assert new.value != old.value
    assert seen.value == new.value


@pytest.mark.asyncio
async def test_a_supervisor_serves_throughout_an_outage(
    private_redis: PrivateRedis,
) -> None:
    """Through a Redis outage spanning a refresh, a token is always servable."""
    timing = Timing(
        lifetime=LIFETIME, refresh_after=WINDOW + 0.1, jitter=0, expiry_margin=0.5
    )
    store = fleet_store(
        grant_source(make_provider(window=WINDOW)),
        unique_prefix(),
        url=private_redis.url,
    )
    supervisor = Supervisor(store, timing, Backoff(0.1, 0.5), Clock())
    await supervisor.start()
    first = await supervisor.wait_ready()
    private_redis.stop()
    gaps = 0

    deadline = time.monotonic() + WINDOW * 2
    while time.monotonic() < deadline:
        gaps += supervisor.current() is None
        await asyncio.sleep(0.01)

    refreshed = supervisor.current()
    await supervisor.stop()
    assert gaps == 0
    assert refreshed is not None
    assert refreshed.value != first.value
    assert supervisor.status().ready


@pytest.mark.asyncio
async def test_a_holder_closes_quickly_while_redis_is_down(
    private_redis: PrivateRedis,
) -> None:
    """Shutdown gives up handing the lease back rather than wait for a stuck Redis."""
    provider = make_provider()
    provider.inject(Fault.from_json({"kind": "status", "status": 503}), times=1)
    # A long lease: each Redis command may take a third of it, 2 s here.
    store = fleet_store(
        grant_source(provider), unique_prefix(), url=private_redis.url, lease=6.0
    )
    with pytest.raises(RetryableError):
        await store.obtain(None)
    await store.record_failure(5.0)
    held = store.fleet_status().role
    admin = aioredis.Redis.from_url(private_redis.url)
    await admin.client_pause(3000, all=True)
    started = time.monotonic()

    await store.close()

    closing = time.monotonic() - started
    await admin.aclose()
    assert held is Role.HOLDER
    assert closing < 1.0
