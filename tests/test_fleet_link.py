"""The lease, the fencing and the shared record, against the real Redis."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from daemon.stores.fleet_link import FleetKeys, FleetLink, Written
from daemon.stores.redis_connection import open_redis
from tests.fleet_rig import ACCOUNT, SHARED_REDIS

LinkFactory = Callable[..., FleetLink]


@pytest_asyncio.fixture
async def make_link(fleet_prefix: str) -> AsyncIterator[LinkFactory]:
    made: list[FleetLink] = []

    def make(account: str = ACCOUNT) -> FleetLink:
        link = FleetLink(
            open_redis(SHARED_REDIS, timeout=1.0), FleetKeys(fleet_prefix, account)
        )
        made.append(link)
        return link

    yield make
    for link in made:
        await link.close()


@pytest.mark.asyncio
async def test_a_free_lease_is_taken_with_an_expiry(
    make_link: LinkFactory, raw_redis: aioredis.Redis
) -> None:
    """Claiming a free lease sets it to our id with the lease as its Redis expiry."""
    link = make_link()

    claim = await link.claim(5.0, time.time())

    assert claim.generation is not None
    assert await raw_redis.get(link.keys.lease) == link.owner
    assert 4000 < await raw_redis.pttl(link.keys.lease) <= 5000


@pytest.mark.asyncio
async def test_a_held_lease_is_refused_to_another(make_link: LinkFactory) -> None:
    """While one replica holds the lease, another's claim gets no generation."""
    holder, other = make_link(), make_link()
    await holder.claim(5.0, time.time())

    claim = await other.claim(5.0, time.time())

    assert claim.generation is None


@pytest.mark.asyncio
async def test_claiming_our_own_lease_keeps_its_generation(
    make_link: LinkFactory,
) -> None:
    """A holder that claims again (a retry after a failure) keeps its generation."""
    link = make_link()
    first = await link.claim(5.0, time.time())

    again = await link.claim(5.0, time.time())

    assert again.generation == first.generation


@pytest.mark.asyncio
async def test_only_the_holder_renews(
    make_link: LinkFactory, raw_redis: aioredis.Redis
) -> None:
    """Renewal extends the holder's lease and is refused to anyone else."""
    holder, other = make_link(), make_link()
    await holder.claim(1.0, time.time())

    refused = await other.renew(9.0)
    renewed = await holder.renew(9.0)

    assert (refused, renewed) == (False, True)
    assert await raw_redis.pttl(holder.keys.lease) > 8000


@pytest.mark.asyncio
async def test_release_leaves_another_holders_lease(
    make_link: LinkFactory, raw_redis: aioredis.Redis
) -> None:
    """Releasing a lease that is not ours leaves it with its holder."""
    holder, other = make_link(), make_link()
    await holder.claim(5.0, time.time())

    await other.release()

    assert await raw_redis.get(holder.keys.lease) == holder.owner


@pytest.mark.asyncio
async def test_a_lapsed_lease_is_taken_with_a_later_generation(
    make_link: LinkFactory,
) -> None:
    """Once a lease runs out unrenewed, another replica takes it, one generation on."""
    first, second = make_link(), make_link()
    old = await first.claim(0.2, time.time())
    await asyncio.sleep(0.3)

    new = await second.claim(5.0, time.time())

    assert old.generation is not None
    assert new.generation is not None
    assert new.generation > old.generation


@pytest.mark.asyncio
async def test_a_stale_generation_cannot_write(make_link: LinkFactory) -> None:
    """A former holder's write is fenced off, even with a later expiry."""
    paused, successor = make_link(), make_link()
    stale = await paused.claim(0.2, time.time())
    await asyncio.sleep(0.3)
    fresh = await successor.claim(5.0, time.time())
    assert stale.generation is not None
    assert fresh.generation is not None
    await successor.write("token-of-the-successor", time.time() + 60, fresh.generation)

    outcome = await paused.write(
        "token-of-the-paused", time.time() + 90, stale.generation
    )

    record = await successor.read()
    assert outcome is Written.FENCED
    assert record is not None
    assert record.value == "token-of-the-successor"


@pytest.mark.asyncio
async def test_a_write_never_shortens_the_record(make_link: LinkFactory) -> None:
    """A token expiring before the kept one is not written."""
    link = make_link()
    claim = await link.claim(5.0, time.time())
    assert claim.generation is not None
    await link.write("longer", time.time() + 60, claim.generation)

    outcome = await link.write("shorter", time.time() + 30, claim.generation)

    record = await link.read()
    assert outcome is Written.NOT_NEWER
    assert record is not None
    assert record.value == "longer"


@pytest.mark.asyncio
async def test_the_record_expires_with_the_token(
    make_link: LinkFactory, raw_redis: aioredis.Redis
) -> None:
    """The record's Redis expiry is the token's expiry."""
    link = make_link()
    claim = await link.claim(5.0, time.time())
    assert claim.generation is not None

    await link.write("a-token-value", time.time() + 42, claim.generation)

    assert 41_000 < await raw_redis.pttl(link.keys.token) <= 42_000


@pytest.mark.asyncio
async def test_a_lost_counter_restarts_above_every_earlier_generation(
    make_link: LinkFactory, raw_redis: aioredis.Redis
) -> None:
    """With the counter lost (Redis restarted), generations start above wall time."""
    link = make_link()
    await raw_redis.delete(link.keys.generation)
    wall_ms = time.time() * 1000

    claim = await link.claim(5.0, time.time())

    assert claim.generation is not None
    assert claim.generation > wall_ms


@pytest.mark.asyncio
async def test_two_accounts_never_share_a_record(make_link: LinkFactory) -> None:
    """A record written for one account is not seen under another."""
    mine, theirs = make_link("account-one"), make_link("account-two")
    claim = await mine.claim(5.0, time.time())
    assert claim.generation is not None
    await mine.write("token-of-account-one", time.time() + 60, claim.generation)

    seen = await theirs.read()

    assert seen is None


@pytest.mark.asyncio
async def test_a_malformed_record_is_ignored_with_a_warning(
    make_link: LinkFactory, raw_redis: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A record without a readable expiry reads as none, and says so in the log."""
    link = make_link()
    await raw_redis.hset(
        link.keys.token, mapping={"value": "x", "expires_at_ms": "soon"}
    )

    with caplog.at_level(logging.WARNING, logger="tokend.fleet"):
        record = await link.read()

    assert record is None
    assert "malformed" in caplog.text


@pytest.mark.asyncio
async def test_a_write_publishes_a_notice(make_link: LinkFactory) -> None:
    """Subscribers hear of every write on the account's channel."""
    writer, listener = make_link(), make_link()
    claim = await writer.claim(5.0, time.time())
    assert claim.generation is not None

    async with listener.notices() as notices:
        await writer.write("a-token-value", time.time() + 60, claim.generation)
        heard = await notices.wait(2.0)

    assert heard is True
