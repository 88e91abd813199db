"""Daemons sharing one state file share one token and one request per window."""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import json
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.emulator.provider import Provider
from daemon.policy import Timing
from tests.lifecycle import HOUR, LIFETIME, TIMING
from tests.statefile_rig import (
    EPOCH,
    GOOD_FORM,
    Daemon,
    fail_every_call,
    make_daemon,
    token_calls,
    write_state,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


def provider_with_window(window: float = 3 * HOUR) -> Provider:
    loop = asyncio.get_running_loop()
    return Provider(loop.time, lifetime=LIFETIME, refresh_window=window)


async def start_all(daemons: list[Daemon]) -> None:
    await asyncio.gather(*(d.supervisor.start() for d in daemons))


async def stop_all(daemons: list[Daemon]) -> None:
    await asyncio.gather(*(d.supervisor.stop() for d in daemons))


def served_values(daemons: list[Daemon]) -> set[str | None]:
    served = (d.supervisor.current() for d in daemons)
    return {token.value if token else None for token in served}


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[Path]:
    """The state file's lock, held by this test as a stuck neighbour would."""
    path = tmp_path / "state.json"
    fd = os.open(path.with_name("state.json.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield path
    finally:
        os.close(fd)


@pytest.mark.parametrize("spread", ["together", "jittered"])
async def test_three_daemons_make_one_request_per_window(
    tmp_path: Path, spread: str
) -> None:
    """Over 12 h, three daemons on one file make one request per 3.01 h and agree."""
    random.seed(7)
    path = tmp_path / "state.json"
    provider = provider_with_window()

    def jitter(limit: float) -> float:
        return 0.0 if spread == "together" else random.uniform(0, limit)

    daemons = [
        make_daemon(path, provider, poll_interval=15, jitter=jitter) for _ in range(3)
    ]
    disagreements = 0

    await start_all(daemons)
    await asyncio.gather(*(d.supervisor.wait_ready() for d in daemons))
    for _ in range(12 * 6):
        await asyncio.sleep(600)
        disagreements += len(served_values(daemons)) != 1
    await stop_all(daemons)

    assert [r.outcome for r in provider.requests] == ["new"] * 4
    assert disagreements == 0
    assert None not in served_values(daemons)


async def test_a_neighbours_newer_token_is_adopted_within_a_poll(
    tmp_path: Path,
) -> None:
    """A token a neighbour writes is served here within a second, with no request."""
    path = tmp_path / "state.json"
    provider = provider_with_window(window=0)
    daemon = make_daemon(path, provider, poll_interval=1)
    await daemon.supervisor.start()
    await daemon.supervisor.wait_ready()
    await asyncio.sleep(600)
    answer = provider.token_request(GOOD_FORM)
    value = json.loads(answer.body)["access_token"]
    now = EPOCH + daemon.clock.now()
    newer = {"access_token": value, "issued_at": now, "expires_at": now + LIFETIME}

    write_state(path, token=newer)
    await asyncio.sleep(1.5)
    served = daemon.supervisor.current()
    await daemon.supervisor.stop()

    assert served is not None
    assert served.value == value
    assert len(token_calls(provider)) == 2


async def test_a_neighbours_request_in_flight_is_no_failure_here(
    tmp_path: Path,
) -> None:
    """A daemon that sees a neighbour's request under way waits but counts nothing."""
    path = tmp_path / "state.json"
    provider = provider_with_window()
    slow = make_daemon(path, provider, delay=5)
    await slow.supervisor.start()
    await slow.supervisor.wait_ready()
    await asyncio.sleep(3 * HOUR)
    later = Timing(
        lifetime=LIFETIME, refresh_after=3.5 * HOUR, jitter=0, expiry_margin=60
    )
    watcher = make_daemon(path, provider, timing=later, poll_interval=1)
    await watcher.supervisor.start()

    # The slow daemon's refresh is out from 3.01 h after its issue, for 5 s.
    await asyncio.sleep(TIMING.refresh_after - 3 * HOUR + 2.5)
    held_back = watcher.store.earliest_attempt()
    counted = watcher.supervisor.status().consecutive_failures
    await asyncio.sleep(5)
    refreshed = slow.supervisor.current()
    adopted = watcher.supervisor.current()
    await stop_all([slow, watcher])

    # Set from the record of the request in flight, the only one that late.
    assert held_back is not None
    assert held_back > TIMING.refresh_after
    assert counted == 0
    assert refreshed is not None
    assert adopted is not None
    assert adopted.value == refreshed.value
    assert len(token_calls(provider)) == 2


async def test_a_daemon_waits_for_a_neighbours_request_and_takes_its_token(
    tmp_path: Path,
) -> None:
    """While a neighbour's request is out, another waits for it instead of asking."""
    path = tmp_path / "state.json"
    provider = provider_with_window()
    slow = make_daemon(path, provider, delay=5)
    quick = make_daemon(path, provider)
    await slow.supervisor.start()
    await asyncio.sleep(1)

    await quick.supervisor.start()
    token = await quick.supervisor.wait_ready()
    ready_at = quick.clock.now()
    await stop_all([slow, quick])

    assert len(token_calls(provider)) == 1
    assert ready_at == pytest.approx(5, abs=0.1)
    assert provider.is_valid(token.value)


async def test_a_neighbours_failure_holds_back_the_others(tmp_path: Path) -> None:
    """Through an outage, two daemons on one file never ask sooner than one would."""
    path = tmp_path / "state.json"
    provider = provider_with_window()
    daemons = [make_daemon(path, provider, base=30) for _ in range(2)]
    await start_all(daemons)
    await asyncio.gather(*(d.supervisor.wait_ready() for d in daemons))
    fail_every_call(provider)

    await asyncio.sleep(TIMING.refresh_after + 1800)
    await stop_all(daemons)

    outage_calls = token_calls(provider)[1:]
    gaps = [b - a for a, b in itertools.pairwise(outage_calls)]
    assert len(outage_calls) >= 5
    assert min(gaps) >= 30


async def test_a_lock_held_too_long_is_given_up_with_a_warning(
    held_lock: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A neighbour stuck holding the lock delays a request by the patience only."""
    provider = provider_with_window()
    daemon = make_daemon(held_lock, provider, lock_patience=5)

    await daemon.supervisor.start()
    token = await daemon.supervisor.wait_ready()
    await daemon.supervisor.stop()

    (call,) = token_calls(provider)
    assert call == pytest.approx(5, abs=0.1)
    assert provider.is_valid(token.value)
    assert any(
        r.levelno == logging.WARNING and "held by another process" in r.getMessage()
        for r in caplog.records
    )


async def test_waiting_for_the_lock_can_be_cancelled(held_lock: Path) -> None:
    """A daemon stopped while it waits for the lock stops at once, asking nothing."""
    provider = provider_with_window()
    daemon = make_daemon(held_lock, provider)
    await daemon.supervisor.start()
    await asyncio.sleep(10)

    async with asyncio.timeout(0.5):
        await daemon.supervisor.stop()

    assert token_calls(provider) == []
