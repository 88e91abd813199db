"""The in-process transport: the real OAuth client against the emulated provider."""

from __future__ import annotations

import asyncio

import pytest

from daemon.clock import Clock
from daemon.emulator import Fault, Provider
from daemon.emulator.inprocess import InProcessTransport
from daemon.errors import BadResponse, TransportError
from daemon.oauth import Credentials, OAuthClient
from daemon.policy import Timing
from daemon.retry import Backoff
from daemon.sources import GrantSource
from daemon.supervisor import Supervisor

TOKEN_URL = "http://emulator.test/oauth/token"
CREDENTIALS = Credentials("demo-client", "demo-secret", "demo-refresh-token")
DAY = 86400.0


def provider_on_this_loop() -> Provider:
    return Provider(asyncio.get_running_loop().time)


def client_for(provider: Provider, url: str = TOKEN_URL) -> OAuthClient:
    return OAuthClient(InProcessTransport(provider), url, timeout=30.0)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_repeated_grant_returns_the_same_token_with_time_gone() -> None:
    """Two grants an hour apart give one token, the second with an hour less."""
    client = client_for(provider_on_this_loop())
    first = await client.grant(CREDENTIALS)
    await asyncio.sleep(3600)

    second = await client.grant(CREDENTIALS)

    assert second.access_token == first.access_token
    assert second.expires_in == first.expires_in - 3600


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_grant_after_three_hours_is_a_new_token() -> None:
    """Three simulated hours after the first grant, the next is a new token."""
    client = client_for(provider_on_this_loop())
    first = await client.grant(CREDENTIALS)
    await asyncio.sleep(10800)

    second = await client.grant(CREDENTIALS)

    assert second.access_token != first.access_token
    assert second.expires_in == 14400


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_hang_lasts_until_the_clients_timeout() -> None:
    """A hung grant ends as a transport error when the client's 30 s are up."""
    provider = provider_on_this_loop()
    provider.inject(Fault("hang"))
    started = asyncio.get_running_loop().time()

    with pytest.raises(TransportError, match="no answer within 30s"):
        await client_for(provider).grant(CREDENTIALS)

    assert asyncio.get_running_loop().time() - started == pytest.approx(30.0)


@pytest.mark.asyncio
async def test_a_reset_is_a_transport_error() -> None:
    """A reset fault reaches the client as a TransportError."""
    provider = provider_on_this_loop()
    provider.inject(Fault("reset"))

    with pytest.raises(TransportError, match="reset"):
        await client_for(provider).grant(CREDENTIALS)

    assert provider.grants() == []


@pytest.mark.asyncio
async def test_a_url_other_than_the_token_path_is_not_found() -> None:
    """A token URL with the wrong path gets a 404, as from the real server."""
    provider = provider_on_this_loop()

    with pytest.raises(BadResponse, match="HTTP 404"):
        await client_for(provider, "http://emulator.test/oauth/tokens").grant(
            CREDENTIALS
        )

    assert provider.requests == []


@pytest.mark.asyncio
async def test_each_request_lets_other_tasks_run() -> None:
    """A post yields to the loop, so a task scheduled before it runs first."""
    transport = InProcessTransport(provider_on_this_loop())
    ran: list[str] = []

    async def neighbour() -> None:
        ran.append("neighbour")

    task = asyncio.create_task(neighbour())
    await transport.post_form(TOKEN_URL, {})
    seen_during_post = list(ran)
    await task

    assert seen_during_post == ["neighbour"]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_supervised_day_grants_once_every_three_point_oh_one_hours() -> None:
    """Over a simulated day the supervisor is granted a new token every 3.01 h."""
    provider = provider_on_this_loop()
    loop = asyncio.get_running_loop()
    clock = Clock(monotonic=loop.time)
    source = GrantSource(client_for(provider), lambda: CREDENTIALS, clock, 14400.0)
    timing = Timing(
        lifetime=14400.0, refresh_after=10836.0, jitter=0.0, expiry_margin=60
    )
    supervisor = Supervisor(
        source, timing, Backoff(1.0, 300.0), clock, jitter=lambda limit: 0.0
    )
    started = loop.time()

    await supervisor.start()
    await asyncio.sleep(DAY)
    await supervisor.stop()

    offsets = [round(r.at - started) for r in provider.requests]
    assert offsets == [10836 * n for n in range(8)]
    assert [r.outcome for r in provider.requests] == ["new"] * 8
