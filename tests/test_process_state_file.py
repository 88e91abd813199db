"""Real daemons on a state file: killed, restarted and side by side.

Durations are scaled down as in the other process tests; where a test
needs a restart to fit inside one token's refresh window, the emulator's
token lives a minute instead of 6 s.
"""

from __future__ import annotations

import itertools
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.processes import Daemon, Emulator, daemon_env

pytestmark = pytest.mark.process

StartDaemon = Callable[..., Daemon]
StartEmulator = Callable[..., Emulator]

# The provider's 4 h and 3.01 h as 6 s and 3.1 s, as the test names them.
SIX_SECOND_TOKEN = {
    "token_lifetime": "6s",
    "refresh_after": "3.1s",
    "refresh_jitter": "0.2s",
    "expiry_margin": "0.5s",
}

# A token of one minute, refreshed after 31 s: room for restarts in between.
MINUTE_TOKEN = {
    "token_lifetime": "60s",
    "refresh_after": "31s",
    "refresh_jitter": "0.2s",
    "expiry_margin": "1s",
}


def token_requests(emulator: Emulator) -> list[dict[str, object]]:
    return [r for r in emulator.requests() if r["endpoint"] == "token"]


def test_kill_9_and_restart_serve_the_same_token_with_no_request(
    start_emulator: StartEmulator, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """After SIGKILL the next daemon serves the kept token and asks nothing."""
    emulator = start_emulator(lifetime="60s", refresh_window="30s")
    path = tmp_path / "state.json"
    env = daemon_env(emulator, state_file=str(path), **MINUTE_TOKEN)
    first = start_daemon(env)
    token = first.token()
    first.kill()
    first.wait()

    started = time.monotonic()
    second = start_daemon(env)
    ready_after = time.monotonic() - started
    served = second.token()

    assert served == token
    assert len(token_requests(emulator)) == 1
    assert emulator.accepts(served)
    assert ready_after < 5.0


def test_the_state_file_and_its_lock_are_mode_0600(
    shared_emulator: Emulator, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """The daemon writes its state file and lock file readable by its user alone."""
    path = tmp_path / "state.json"
    daemon = start_daemon(daemon_env(shared_emulator, state_file=str(path)))
    daemon.token()

    modes = [
        stat.S_IMODE(p.stat().st_mode) for p in (path, tmp_path / "state.json.lock")
    ]

    assert modes == [0o600, 0o600]


def test_ten_restarts_against_a_failing_provider_make_one_request(
    emulator: Emulator, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Ten daemons killed in turn after a failed grant cost the provider one request."""
    emulator.inject("status", times=1000, status=503)
    path = tmp_path / "state.json"
    env = daemon_env(
        emulator, state_file=str(path), backoff_base="60s", backoff_max="5m"
    )
    started = time.monotonic()

    for restart in range(10):
        daemon = start_daemon(env, ready=False)
        # The first learns the provider is down; the others read that it is.
        wanted = "grant failed" if restart == 0 else "since the last grant: 1; the next"
        daemon.wait_for_line(wanted)
        daemon.kill()
        daemon.wait()
    elapsed = time.monotonic() - started

    assert len(token_requests(emulator)) == 1
    assert elapsed < 60.0


def test_a_request_cut_off_by_kill_9_delays_the_next_by_the_backoff(
    emulator: Emulator, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A daemon killed while its request hangs leaves the next one a backoff wait."""
    emulator.inject("hang")
    path = tmp_path / "state.json"
    env = daemon_env(
        emulator, state_file=str(path), backoff_base="2s", backoff_max="10s"
    )
    first = start_daemon(env, ready=False)
    first.wait_until(lambda: len(token_requests(emulator)) == 1)
    first.kill()
    first.wait()

    second = start_daemon(env)
    second.token()

    lost, retried = (float(str(r["at"])) for r in token_requests(emulator))
    # The first wait is the base; the emulator's clock sees each request a
    # few milliseconds after it was recorded as sent.
    assert 1.9 <= retried - lost <= 3.0


def test_three_daemons_on_one_file_make_one_grant_per_window(
    start_emulator: StartEmulator, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Three daemons sharing a state file for 10 s ask once per 3.1 s between them."""
    emulator = start_emulator(lifetime="6s", refresh_window="3s")
    path = tmp_path / "state.json"
    env = daemon_env(emulator, state_file=str(path), **SIX_SECOND_TOKEN)
    daemons = [start_daemon(env, ready=False) for _ in range(3)]
    for daemon in daemons:
        daemon.wait_bound()
        daemon.wait_ready()
    started = time.monotonic()
    refused = 0

    while time.monotonic() - started < 10.0:
        for daemon in daemons:
            refused += not emulator.accepts(daemon.token())
        time.sleep(0.2)

    requests = token_requests(emulator)
    moments = [float(str(r["at"])) for r in requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert refused == 0
    assert {r["outcome"] for r in requests} == {"new"}
    assert len(requests) >= 4
    assert all(3.1 <= gap < 3.8 for gap in gaps), gaps
