"""Restarts resume the backoff on record, so a crash loop cannot hurry the provider."""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path

import pytest

from daemon.emulator.faults import Fault
from daemon.emulator.provider import Provider
from tests.lifecycle import TIMING
from tests.statefile_rig import (
    EPOCH,
    Daemon,
    fail_every_call,
    make_daemon,
    make_provider,
    read_state,
    token_calls,
    until_calls,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


def gaps(moments: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(moments)]


async def restart(path: Path, provider: Provider, **options: float) -> Daemon:
    daemon = make_daemon(path, provider, **options)
    await daemon.supervisor.start()
    return daemon


async def test_a_restart_waits_for_the_backoff_of_a_failed_request(
    tmp_path: Path,
) -> None:
    """After a failure, the next process asks no sooner than the wait it recorded."""
    path = tmp_path / "state.json"
    provider = make_provider()
    fail_every_call(provider)
    first = await restart(path, provider, base=10)
    await until_calls(provider, 1)
    await asyncio.sleep(0.5)
    await first.supervisor.stop()
    recorded = read_state(path)

    second = await restart(path, provider, base=10)
    resumed = second.supervisor.status().consecutive_failures
    await until_calls(provider, 2)
    await second.supervisor.stop()

    retry_at = recorded["retry_at"]
    assert isinstance(retry_at, float)
    first_call, second_call = token_calls(provider)
    assert resumed == 1
    assert 10 <= retry_at - (EPOCH + first_call) <= 20
    assert second_call == pytest.approx(retry_at - EPOCH, abs=0.01)


async def test_ten_restarts_in_a_minute_make_one_request(tmp_path: Path) -> None:
    """A daemon restarted every 6 s against a failing provider asks it once a minute."""
    path = tmp_path / "state.json"
    provider = make_provider()
    fail_every_call(provider)

    for _ in range(10):
        daemon = await restart(path, provider, base=60)
        await asyncio.sleep(6)
        await daemon.supervisor.stop()

    assert len(token_calls(provider)) == 1


async def test_a_crash_loop_with_refused_credentials_asks_once_per_cap(
    tmp_path: Path,
) -> None:
    """With the default backoff, refused credentials are asked once in ten restarts."""
    path = tmp_path / "state.json"
    provider = make_provider()
    fail_every_call(provider, kind="status", status=401)

    for _ in range(10):
        daemon = await restart(path, provider)
        await asyncio.sleep(6)
        await daemon.supervisor.stop()

    assert len(token_calls(provider)) == 1


async def test_the_failure_count_keeps_growing_across_restarts(
    tmp_path: Path,
) -> None:
    """A process per request still waits ever longer: the count is kept on file."""
    random.seed(4)
    path = tmp_path / "state.json"
    provider = make_provider()
    fail_every_call(provider)

    for count in range(1, 11):
        daemon = await restart(path, provider)
        await until_calls(provider, count)
        await asyncio.sleep(0.01)
        await daemon.supervisor.stop()

    waits = gaps(token_calls(provider))
    assert read_state(path)["failures"] == 10
    assert daemon.backoff.failures == 10
    assert all(1.0 <= w <= min(300.0, 2.0**n) + 0.2 for n, w in enumerate(waits, 1))
    assert sum(waits[-3:]) / 3 > 8 * sum(waits[:2]) / 2


async def test_a_request_lost_with_its_process_counts_as_a_failure(
    tmp_path: Path,
) -> None:
    """A process killed while its request hangs leaves its successor a backoff wait."""
    path = tmp_path / "state.json"
    provider = make_provider()
    provider.inject(Fault(kind="hang"))
    first = await restart(path, provider, base=10)
    await until_calls(provider, 1)
    await asyncio.sleep(1)
    await first.supervisor.stop()

    second = await restart(path, provider, base=10)
    resumed = second.backoff.failures
    token = await second.supervisor.wait_ready()
    await second.supervisor.stop()

    lost, retried = token_calls(provider)
    assert resumed == 1
    assert 10 <= retried - lost <= 20
    assert provider.is_valid(token.value)


async def test_a_kept_token_due_for_refresh_is_served_through_the_backoff(
    tmp_path: Path,
) -> None:
    """A restart serves the kept token at once but asks only when the backoff allows."""
    path = tmp_path / "state.json"
    provider = make_provider()
    first = await restart(path, provider, base=60)
    kept = await first.supervisor.wait_ready()
    fail_every_call(provider)
    await asyncio.sleep(TIMING.refresh_after + 1)
    await first.supervisor.stop()
    retry_at = read_state(path)["retry_at"]
    assert isinstance(retry_at, float)

    second = await restart(path, provider, base=60)
    served = second.supervisor.current()
    refresh_in = second.supervisor.status().refresh_in
    restarted_at = second.clock.now()
    await until_calls(provider, 3)
    await second.supervisor.stop()

    retried = token_calls(provider)[2]
    assert served is not None
    assert served.value == kept.value
    assert refresh_in == pytest.approx(retry_at - EPOCH - restarted_at)
    assert retried == pytest.approx(retry_at - EPOCH, abs=0.01)
