"""GET /token over simulated days: the real supervisor and the in-process emulator."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from daemon.emulator.faults import Fault
from daemon.metrics import Metrics
from daemon.server import Endpoints
from tests.lifecycle import HOUR, TIMING, Rig, make_rig

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

GUARD = {"Tokend-Request": "1"}


async def ask(endpoints: Endpoints) -> web.Response:
    return await endpoints.token(make_mocked_request("GET", "/token", headers=GUARD))


def served(response: web.Response) -> dict[str, object]:
    assert isinstance(response.body, bytes)
    document: dict[str, object] = json.loads(response.body)
    return document


async def started(rig: Rig) -> Endpoints:
    await rig.supervisor.start()
    await rig.supervisor.wait_ready()
    return Endpoints(rig.supervisor, rig.clock, Metrics(rig.clock))


async def test_a_day_of_requests_always_gets_a_valid_token() -> None:
    """Asked every five minutes for a day, /token always serves a live token."""
    rig = make_rig()
    endpoints = await started(rig)
    refused: list[float] = []
    tokens: set[str] = set()

    for _ in range(288):
        response = await ask(endpoints)
        token = str(served(response)["access_token"])
        tokens.add(token)
        if response.status != 200 or not rig.provider.is_valid(token):
            refused.append(rig.clock.now())
        await asyncio.sleep(300)
    await rig.supervisor.stop()

    assert refused == []
    assert len(tokens) == len(rig.provider.grants())


async def test_an_outage_serves_to_the_margin_then_503_until_recovery() -> None:
    """With the provider down the held token is served to its margin, then 503
    with the supervisor's Retry-After, and a token again once it recovers."""
    rig = make_rig()
    endpoints = await started(rig)
    rig.provider.inject(Fault("status", status=503), times=10_000)
    lowest_served = float("inf")

    while (response := await ask(endpoints)).status == 200:
        lowest_served = min(lowest_served, float(str(served(response)["expires_in"])))
        await asyncio.sleep(60)
    wait = int(response.headers["Retry-After"])
    expected_wait = max(1, math.ceil(rig.supervisor.retry_in()))
    rig.provider.clear_faults()
    await asyncio.sleep(TIMING.expiry_margin + 300)
    recovered = await ask(endpoints)
    await rig.supervisor.stop()

    assert lowest_served >= TIMING.expiry_margin
    assert response.status == 503
    assert wait == expected_wait
    assert recovered.status == 200
    assert rig.provider.is_valid(str(served(recovered)["access_token"]))


async def test_expires_in_counts_down_in_whole_seconds() -> None:
    """Two answers an hour apart differ by 3600 in expires_in, same expires_at."""
    rig = make_rig()
    endpoints = await started(rig)

    first = served(await ask(endpoints))
    await asyncio.sleep(HOUR)
    second = served(await ask(endpoints))
    await rig.supervisor.stop()

    assert first["access_token"] == second["access_token"]
    assert int(str(first["expires_in"])) - int(str(second["expires_in"])) == 3600
    assert first["expires_at"] == second["expires_at"]
