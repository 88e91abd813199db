"""A real daemon through an upstream outage: keep serving, then 503, then recover."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from tests.support.processes import Daemon, Emulator, daemon_env

pytestmark = pytest.mark.process


def test_outage_serves_the_held_token_then_503_then_recovers(
    emulator: Emulator, start_daemon: Callable[..., Daemon]
) -> None:
    """Through an outage the held token is served to its margin (3.5s after
    issue), then 503 with Retry-After, then the first token granted after."""
    daemon = start_daemon(daemon_env(emulator))
    held = daemon.token()
    emulator.inject("status", times=100, status=503)

    daemon.wait_for_line(r"grant failed \(HTTP 503")
    during = daemon.get("/token")
    daemon.wait_until(lambda: daemon.get("/token").status == 503)
    after_margin = daemon.get("/token")
    held_still_valid = emulator.accepts(held)
    not_ready = daemon.get("/readyz")
    alive = daemon.get("/healthz")
    emulator.clear()
    daemon.wait_until(lambda: daemon.get("/token").status == 200)
    recovered = daemon.token()

    assert during.document()["access_token"] == held
    assert int(after_margin.headers["retry-after"]) >= 1
    assert held_still_valid, "the daemon stops serving before the token expires"
    assert not_ready.status == 503
    assert "503" in str(not_ready.document()["last_error"])
    assert alive.status == 200
    assert recovered != held
    assert emulator.accepts(recovered)
    assert daemon.status()["consecutive_failures"] == 0


def test_failed_attempts_are_spaced_by_backoff(
    emulator: Emulator, start_daemon: Callable[..., Daemon]
) -> None:
    """Failing grants are retried no sooner than the backoff base apart."""
    emulator.inject("status", times=100, status=503)
    daemon = start_daemon(
        daemon_env(emulator, backoff_base="0.2s", backoff_max="0.5s"), ready=False
    )

    daemon.wait_until(lambda: len(emulator.requests()) >= 5)
    moments = [r["at"] for r in emulator.requests()]

    gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
    assert all(0.2 <= gap <= 0.8 for gap in gaps), gaps
