"""A real daemon on scaled time: when it asks for grants, and what it serves.

The emulator stands for the provider with a 4 s lifetime and a 2 s window
(4 h and 3 h); the daemon refreshes 2.1 s after issue (for 3.01 h), with
up to 0.1 s of jitter.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest

from tests.support.processes import Daemon, Emulator, daemon_env

pytestmark = pytest.mark.process

StartDaemon = Callable[..., Daemon]


def test_grants_come_every_refresh_after_and_never_inside_the_window(
    emulator: Emulator, start_daemon: StartDaemon
) -> None:
    """Three grants in a row are 2.1s to 2.6s apart; none returns the same token."""
    start_daemon(daemon_env(emulator))

    deadline = time.monotonic() + 10.0
    while len(emulator.grants()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    token_requests = [r for r in emulator.requests() if r["endpoint"] == "token"]

    moments = [r["at"] for r in token_requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert [r["outcome"] for r in token_requests] == ["new", "new", "new"]
    assert all(2.1 <= gap < 2.6 for gap in gaps), gaps


def test_every_served_token_is_accepted_by_the_xml_api(
    shared_emulator: Emulator, start_daemon: StartDaemon
) -> None:
    """Across a refresh, each token served is one the XML API accepts right then."""
    daemon = start_daemon(daemon_env(shared_emulator))
    served: list[str] = []

    until = time.monotonic() + 2.5
    while time.monotonic() < until:
        token = daemon.token()
        if token not in served:
            served.append(token)
        assert shared_emulator.accepts(token), f"token {len(served)} refused"
        time.sleep(0.1)

    assert len(served) >= 2
