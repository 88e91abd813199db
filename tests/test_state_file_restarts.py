"""A restart adopts the kept token at every point of its life, on simulated time."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from daemon.emulator.provider import Provider
from daemon.token import AccessToken
from tests.lifecycle import HOUR, LIFETIME, TIMING
from tests.statefile_rig import make_daemon, make_provider, token_calls

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


def statefile_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "tokend.statefile" and r.levelno == logging.WARNING
    ]


async def keep_a_token(path: Path, provider: Provider) -> AccessToken:
    """Run a first daemon until it holds a token, then stop it, as a crash would."""
    first = make_daemon(path, provider)
    await first.supervisor.start()
    token = await first.supervisor.wait_ready()
    await first.supervisor.stop()
    return token


@pytest.mark.parametrize("age", [60.0, 2 * HOUR], ids=["fresh", "inside-window"])
async def test_a_token_before_its_refresh_is_adopted_without_a_request(
    tmp_path: Path, age: float
) -> None:
    """A token not yet due is served at once and refreshed only at issue + 3.01 h."""
    path = tmp_path / "state.json"
    provider = make_provider()
    kept = await keep_a_token(path, provider)
    await asyncio.sleep(age)

    second = make_daemon(path, provider)
    await second.supervisor.start()
    served = second.supervisor.current()
    await asyncio.sleep(TIMING.refresh_after - age - 1)
    calls_before_due = len(token_calls(provider))
    await asyncio.sleep(2)
    await second.supervisor.stop()

    assert served is not None
    assert served.value == kept.value
    assert served.issued == pytest.approx(kept.issued)
    assert calls_before_due == 1
    assert len(token_calls(provider)) == 2
    assert provider.grants()[-1].at == pytest.approx(kept.issued + TIMING.refresh_after)


async def test_a_token_past_its_refresh_is_served_and_refreshed_at_once(
    tmp_path: Path,
) -> None:
    """A token 3.5 h old is served at start while one request replaces it."""
    path = tmp_path / "state.json"
    provider = make_provider()
    kept = await keep_a_token(path, provider)
    await asyncio.sleep(3.5 * HOUR)

    second = make_daemon(path, provider)
    await second.supervisor.start()
    served = second.supervisor.current()
    await asyncio.sleep(1)
    refreshed = second.supervisor.current()
    await second.supervisor.stop()

    assert served is not None
    assert served.value == kept.value
    assert refreshed is not None
    assert refreshed.value != kept.value
    assert [r.outcome for r in provider.requests] == ["new", "new"]


@pytest.mark.parametrize(
    ("age", "reason"),
    [
        (LIFETIME - 30, "within the 1m0s expiry margin"),
        (LIFETIME + HOUR, "expired 1h0m0s ago"),
    ],
    ids=["inside-margin", "expired"],
)
async def test_a_token_past_serving_is_not_served_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, age: float, reason: str
) -> None:
    """A token inside its margin or expired is never served; one warning says why."""
    path = tmp_path / "state.json"
    provider = make_provider()
    kept = await keep_a_token(path, provider)
    await asyncio.sleep(age)
    caplog.clear()

    second = make_daemon(path, provider)
    await second.supervisor.start()
    served_at_start = second.supervisor.current()
    fresh = await second.supervisor.wait_ready()
    await second.supervisor.stop()

    assert served_at_start is None
    assert fresh.value != kept.value
    assert len(token_calls(provider)) == 2
    (warning,) = statefile_warnings(caplog)
    assert reason in warning
    assert kept.value not in warning


async def test_many_restarts_over_a_day_cost_one_grant_per_window(
    tmp_path: Path,
) -> None:
    """A daemon restarted every 20 minutes for a day asks no more than one that ran."""
    path = tmp_path / "state.json"
    provider = make_provider()
    tokens: set[str] = set()

    for _ in range(72):
        daemon = make_daemon(path, provider)
        await daemon.supervisor.start()
        tokens.add((await daemon.supervisor.wait_ready()).value)
        await asyncio.sleep(20 * 60 - 1)
        await daemon.supervisor.stop()
        await asyncio.sleep(1)

    outcomes = [r.outcome for r in provider.requests]
    assert outcomes == ["new"] * 8
    assert len(tokens) == 8
