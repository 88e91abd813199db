"""Fleet stores sharing one token through the real Redis, on scaled-down times."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from daemon.emulator.faults import Fault
from daemon.errors import RetryableError
from daemon.sources import TokenSource
from daemon.stores.fleet import FleetStore
from daemon.stores.fleet_health import Role
from tests.fleet_rig import (
    LEASE,
    Adopted,
    fleet_store,
    grant_source,
    make_provider,
)

StoreFactory = Callable[..., FleetStore]


@pytest_asyncio.fixture
async def make_store(fleet_prefix: str) -> AsyncIterator[StoreFactory]:
    made: list[FleetStore] = []

    def make(inner: TokenSource, **options: float) -> FleetStore:
        store = fleet_store(inner, fleet_prefix, **options)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.mark.asyncio
async def test_a_starting_replica_adopts_the_shared_token_without_a_call(
    make_store: StoreFactory,
) -> None:
    """`initial` hands back the token another replica shared, with no grant."""
    provider = make_provider()
    first = make_store(grant_source(provider))
    shared = await first.obtain(None)
    newcomer_source = grant_source(provider)
    newcomer = make_store(newcomer_source)

    kept = await newcomer.initial()

    assert kept is not None
    assert kept.value == shared.value
    assert newcomer_source.calls == 0


@pytest.mark.asyncio
async def test_replicas_refreshing_at_once_make_one_grant(
    make_store: StoreFactory,
) -> None:
    """Five replicas due together: one grant, and all five hold its token."""
    provider = make_provider()
    stores = [make_store(grant_source(provider)) for _ in range(5)]

    tokens = await asyncio.gather(*(store.obtain(None) for store in stores))

    assert len(provider.grants()) == 1
    assert len({token.value for token in tokens}) == 1


@pytest.mark.asyncio
async def test_a_follower_waits_for_the_holders_token_instead_of_calling(
    make_store: StoreFactory,
) -> None:
    """A replica due while another refreshes takes the holder's token when it lands."""
    provider = make_provider()
    holder_source, follower_source = grant_source(provider), grant_source(provider)
    holder_source.gate.clear()
    holder, follower = make_store(holder_source), make_store(follower_source)
    holding = asyncio.create_task(holder.obtain(None))
    await holder_source.entered.wait()

    waiting = asyncio.create_task(follower.obtain(None))
    await asyncio.sleep(LEASE / 2)
    holder_source.gate.set()
    granted, taken = await holding, await waiting

    assert taken.value == granted.value
    assert follower_source.calls == 0


@pytest.mark.asyncio
async def test_the_lease_is_renewed_while_a_slow_refresh_runs(
    make_store: StoreFactory, raw_redis: aioredis.Redis
) -> None:
    """A refresh lasting three leases still holds the lease at its end."""
    holder_source = grant_source(make_provider())
    holder_source.gate.clear()
    holder = make_store(holder_source)
    holding = asyncio.create_task(holder.obtain(None))
    await holder_source.entered.wait()

    await asyncio.sleep(3 * LEASE)
    lease_holder = await raw_redis.get(holder._link.keys.lease)
    holder_source.gate.set()
    await holding

    assert lease_holder == holder._link.owner


@pytest.mark.asyncio
async def test_a_follower_stops_waiting_after_the_lease(
    make_store: StoreFactory,
) -> None:
    """With the holder still busy after a whole lease, the follower fails, uncalled."""
    holder_source, follower_source = (
        grant_source(make_provider()),
        grant_source(make_provider()),
    )
    holder_source.gate.clear()
    holder, follower = make_store(holder_source), make_store(follower_source)
    holding = asyncio.create_task(holder.obtain(None))
    await holder_source.entered.wait()
    started = time.monotonic()

    with pytest.raises(RetryableError, match="lease holder"):
        await follower.obtain(None)

    waited = time.monotonic() - started
    holding.cancel()
    assert LEASE <= waited < LEASE * 1.5
    assert follower_source.calls == 0


@pytest.mark.asyncio
async def test_a_dead_holders_lease_is_taken_over_within_the_lease(
    make_store: StoreFactory,
) -> None:
    """A holder that stops mid-refresh loses the lease; a follower then refreshes."""
    provider = make_provider()
    dead_source, heir_source = grant_source(provider), grant_source(provider)
    dead_source.gate.clear()
    dead, heir = make_store(dead_source), make_store(heir_source)
    dying = asyncio.create_task(dead.obtain(None))
    await dead_source.entered.wait()
    dying.cancel()
    died = time.monotonic()

    token = await heir.obtain(None)

    assert time.monotonic() - died < LEASE * 1.2
    assert heir_source.calls == 1
    assert provider.grants()[-1].fingerprint == token.fingerprint


@pytest.mark.asyncio
async def test_a_paused_holder_does_not_overwrite_its_successor(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder whose lease lapsed mid-refresh is fenced: its later token is refused."""
    paused_source = grant_source(make_provider())
    successor_source = grant_source(make_provider())
    paused_source.gate.clear()
    paused, successor = make_store(paused_source), make_store(successor_source)

    async def frozen(lease: float) -> bool:
        return True  # a paused process sends no renewals

    monkeypatch.setattr(paused._link, "renew", frozen)
    stalled = asyncio.create_task(paused.obtain(None))
    await paused_source.entered.wait()
    await asyncio.sleep(LEASE * 1.2)
    newer = await successor.obtain(None)

    paused_source.gate.set()
    late = await stalled

    record = await successor._link.read()
    assert late.expiry > newer.expiry
    assert record is not None
    assert record.value == newer.value
    assert paused.fleet_status().fenced_writes == 1


@pytest.mark.asyncio
async def test_watchers_adopt_a_new_token_on_its_notice(
    make_store: StoreFactory,
) -> None:
    """A watching replica adopts a shared token well before it would poll."""
    provider = make_provider()
    writer = make_store(grant_source(provider))
    watcher = make_store(grant_source(provider), lease=10.0)
    adopted = Adopted()
    watching = asyncio.create_task(watcher.watch(adopted))
    await asyncio.sleep(0.2)
    written = time.monotonic()

    token = await writer.obtain(None)
    seen = await adopted.next(within=1.0)

    watching.cancel()
    assert seen.value == token.value
    assert time.monotonic() - written < 0.5


@pytest.mark.asyncio
async def test_watchers_find_a_change_by_polling_without_a_notice(
    make_store: StoreFactory, raw_redis: aioredis.Redis
) -> None:
    """A record written with no notice is still adopted within a poll."""
    watcher = make_store(grant_source(make_provider()))
    adopted = Adopted()
    watching = asyncio.create_task(watcher.watch(adopted))
    await asyncio.sleep(0.2)
    expires_ms = round((time.time() + 5) * 1000)

    await raw_redis.hset(
        watcher._link.keys.token,
        mapping={
            "value": "written-by-hand",
            "expires_at_ms": expires_ms,
            "generation": 1,
        },
    )
    seen = await adopted.next(within=LEASE * 2)

    watching.cancel()
    assert seen.value == "written-by-hand"


@pytest.mark.asyncio
async def test_a_failing_holder_keeps_the_lease_through_its_backoff(
    make_store: StoreFactory, raw_redis: aioredis.Redis
) -> None:
    """After a failed grant the holder keeps the lease through its wait; others idle."""
    provider = make_provider()
    provider.inject(Fault.from_json({"kind": "status", "status": 503}), times=1)
    holder_source, follower_source = grant_source(provider), grant_source(provider)
    holder, follower = make_store(holder_source), make_store(follower_source)
    with pytest.raises(RetryableError):
        await holder.obtain(None)

    await holder.record_failure(2.0)

    assert await raw_redis.pttl(holder._link.keys.lease) > 2000
    with pytest.raises(RetryableError, match="lease holder"):
        await follower.obtain(None)
    assert follower_source.calls == 0
    assert holder.fleet_status().role is Role.HOLDER


@pytest.mark.asyncio
async def test_the_status_names_each_replicas_part(make_store: StoreFactory) -> None:
    """Mid-refresh the holder reports holder, the other follower, one generation."""
    provider = make_provider()
    holder_source = grant_source(provider)
    holder_source.gate.clear()
    holder, other = make_store(holder_source), make_store(grant_source(provider))
    await other.initial()
    holding = asyncio.create_task(holder.obtain(None))
    await holder_source.entered.wait()

    during = holder.fleet_status()
    holder_source.gate.set()
    await holding
    await other.initial()

    assert during.role is Role.HOLDER
    assert other.fleet_status().role is Role.FOLLOWER
    assert other.fleet_status().generation == during.generation is not None
