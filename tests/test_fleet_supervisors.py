"""Supervisors in one process, each with its own fleet store on the real Redis."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest

from daemon.clock import Clock
from daemon.policy import Timing
from daemon.retry import Backoff
from daemon.supervisor import Supervisor
from daemon.token import AccessToken
from tests.fleet_rig import (
    LIFETIME,
    fleet_store,
    grant_source,
    make_provider,
)

WINDOW = 1.0
TIMING = Timing(lifetime=LIFETIME, refresh_after=1.1, jitter=0.1, expiry_margin=0.5)


class Outcomes:
    """An observer that counts each supervisor's attempt outcomes."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def attempt_finished(self, outcome: str, seconds: float) -> None:
        self.counts[outcome] += 1

    def token_changed(self, token: AccessToken) -> None:
        return None


@pytest.mark.asyncio
async def test_a_fleet_grants_once_per_window_and_counts_it_once(
    fleet_prefix: str,
) -> None:
    """Four supervisors over three windows: grants a window apart, each counted once."""
    provider = make_provider(window=WINDOW)
    observers = [Outcomes() for _ in range(4)]
    supervisors = [
        Supervisor(
            fleet_store(grant_source(provider), fleet_prefix),
            TIMING,
            Backoff(0.1, 0.5),
            Clock(),
            observer,
        )
        for observer in observers
    ]

    for supervisor in supervisors:
        await supervisor.start()
    await asyncio.sleep(3 * TIMING.refresh_after + 0.2)
    held = {token.value for s in supervisors if (token := s.current()) is not None}
    for supervisor in supervisors:
        await supervisor.stop()

    grants = [request.at for request in provider.grants()]
    gaps = [later - earlier for earlier, later in itertools.pairwise(grants)]
    assert len(grants) == 4
    assert all(TIMING.refresh_after <= gap < TIMING.refresh_after + 0.4 for gap in gaps)
    assert sum(o.counts["new"] for o in observers) == len(grants), [
        o.counts for o in observers
    ]
    assert len(held) == 1
