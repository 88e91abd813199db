"""The daemon's run in-process: start-up, the start line, shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

import aiohttp
import pytest

from daemon import __version__
from daemon.config import Settings, load
from daemon.emulator.faults import Fault
from daemon.emulator.inprocess import InProcessTransport
from daemon.emulator.provider import Provider
from daemon.errors import ListenError
from daemon.listeners import open_listener
from daemon.service import Service
from tests.test_listeners import hello_app

pytestmark = pytest.mark.asyncio

DEMO = {
    "TOKEND_CLIENT_ID": "demo-client",
    "TOKEND_CLIENT_SECRET": "demo-secret",
    "TOKEND_REFRESH_TOKEN": "demo-refresh-token",
    "TOKEND_TOKEN_URL": "http://emulator.invalid/oauth/token",
    "TOKEND_LISTEN": "127.0.0.1:0",
}


def settings(**overrides: str) -> Settings:
    environ: Mapping[str, str] = {**DEMO, **overrides}
    return load({}, environ)


def provider() -> Provider:
    return Provider(asyncio.get_running_loop().time)


async def test_serves_a_token_the_provider_granted() -> None:
    """Started, the service answers GET /token on the port it bound."""
    upstream = provider()
    service = Service(settings(), InProcessTransport(upstream))
    await service.start()
    assert service.supervisor is not None
    await service.supervisor.wait_ready()

    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                service.url + "/token", headers={"Tokend-Request": "1"}
            ) as response,
        ):
            document = await response.json()
    finally:
        await service.stop()

    assert response.status == 200
    assert upstream.is_valid(document["access_token"])


async def test_the_start_line_says_where_and_how(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One INFO line gives version, bound address, token URL and timing."""
    overrides = {
        "TOKEND_TOKEN_URL": "http://user:hidden-pw@emulator.invalid/oauth/token"
    }
    service = Service(settings(**overrides), InProcessTransport(provider()))

    with caplog.at_level(logging.INFO, logger="tokend.service"):
        await service.start()
    bound = service.url
    await service.stop()

    lines = [r.getMessage() for r in caplog.records if r.name == "tokend.service"]
    assert len(lines) == 1
    assert lines[0].startswith(f"tokend {__version__} serving the token on {bound};")
    assert not bound.endswith(":0")
    assert "token URL http://emulator.invalid/oauth/token;" in lines[0]
    assert "hidden-pw" not in lines[0]
    assert "lifetime 4h0m0s, refresh after 3h0m36s" in lines[0]


async def test_a_port_in_use_fails_start_and_stops_the_loop() -> None:
    """When the address is taken, start raises ListenError and nothing keeps running."""
    taken = await open_listener(hello_app(), settings().listen)
    port = taken.url.rsplit(":", 1)[1]
    service = Service(
        settings(TOKEND_LISTEN=f"127.0.0.1:{port}"), InProcessTransport(provider())
    )

    try:
        with pytest.raises(ListenError, match=port):
            await service.start()
    finally:
        await taken.close()

    assert service.supervisor is not None
    assert not service.supervisor.alive


async def test_stop_cancels_a_hanging_grant_at_once() -> None:
    """A grant the upstream never answers is cancelled by stop, not awaited."""
    upstream = provider()
    upstream.inject(Fault("hang"), times=5)
    service = Service(settings(), InProcessTransport(upstream))
    await service.start()
    await asyncio.sleep(0.1)

    started = time.monotonic()
    await service.stop()
    took = time.monotonic() - started

    assert [r.outcome for r in upstream.requests] == ["fault:hang"]
    assert took < 0.5
