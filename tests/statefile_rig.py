"""Daemons that keep their token in a state file, facing one in-process emulator.

Each `Daemon` is what one process would hold: its own clock, grant, backoff,
store and supervisor. Starting another on the same path is a restart, or a
neighbour when both run at once. Wall time moves with the loop, so that a
simulated restart hours later reads the file as a real one would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.clock import Clock
from daemon.emulator.faults import Fault
from daemon.emulator.inprocess import InProcessTransport
from daemon.emulator.provider import Provider
from daemon.oauth import OAuthClient
from daemon.policy import Timing
from daemon.retry import Backoff
from daemon.sources import GrantSource
from daemon.stores.statefile import StateFileStore
from daemon.supervisor import Supervisor
from tests.lifecycle import (
    CREDENTIALS,
    LIFETIME,
    TIMING,
    TOKEN_URL,
    WINDOW,
    SlowTransport,
)

ACCOUNT = CREDENTIALS.fingerprint(TOKEN_URL)

# Any fixed moment will do; this one is in 2025.
EPOCH = 1_750_000_000.0

GOOD_FORM = {
    "grant_type": "refresh_token",
    "client_id": CREDENTIALS.client_id,
    "client_secret": CREDENTIALS.client_secret,
    "refresh_token": CREDENTIALS.refresh_token,
}


def moving_clock() -> Clock:
    """A clock whose wall time is the loop's time after `EPOCH`."""
    loop = asyncio.get_running_loop()
    return Clock(loop.time, lambda: EPOCH + loop.time())


def make_provider() -> Provider:
    loop = asyncio.get_running_loop()
    return Provider(loop.time, lifetime=LIFETIME, refresh_window=WINDOW)


def token_calls(provider: Provider) -> list[float]:
    """When each token request reached the provider."""
    return [r.at for r in provider.requests if r.endpoint == "token"]


async def until_calls(provider: Provider, count: int) -> None:
    """Wait until `count` token requests have reached the provider."""
    # The provider records requests but signals none: poll its record.
    while len(token_calls(provider)) < count:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


def fail_every_call(provider: Provider, **fault: object) -> None:
    """Queue `fault` (an outage unless given) for every request from now on."""
    document = fault or {"kind": "status", "status": 503}
    provider.inject(Fault.from_json(document), 10**6)


@dataclass
class Daemon:
    """One daemon's parts: enough to start it, stop it and look inside."""

    supervisor: Supervisor
    store: StateFileStore
    backoff: Backoff
    clock: Clock


def make_daemon(
    path: Path,
    provider: Provider,
    *,
    timing: Timing = TIMING,
    base: float = 1.0,
    cap: float = 300.0,
    account: str = ACCOUNT,
    poll_interval: float = 60.0,
    lock_patience: float = 60.0,
    delay: float = 0.0,
    jitter: Callable[[float], float] = lambda limit: 0.0,
) -> Daemon:
    """One daemon's parts on `path`, its requests taking `delay` to answer.

    The watch polls every 60 s rather than every second: each simulated poll
    costs real time, and only the tests of the watch need it sooner. There
    is no refresh jitter unless asked, so each test knows when a refresh is
    due.
    """
    clock = moving_clock()
    transport = InProcessTransport(provider)
    wire = SlowTransport(transport, delay) if delay else transport
    client = OAuthClient(wire, TOKEN_URL, timeout=30.0)
    grant = GrantSource(client, lambda: CREDENTIALS, clock, timing.lifetime)
    backoff = Backoff(base, cap)
    store = StateFileStore(
        grant,
        path,
        account=lambda: account,
        clock=clock,
        timing=timing,
        backoff=backoff,
        poll_interval=poll_interval,
        lock_patience=lock_patience,
    )
    supervisor = Supervisor(store, timing, backoff, clock, jitter=jitter)
    return Daemon(supervisor, store, backoff, clock)


def read_state(path: Path) -> dict[str, object]:
    document = json.loads(path.read_bytes())
    assert isinstance(document, dict)
    return document


def write_state(path: Path, **fields: object) -> None:
    """A state file as tokend writes it, with `fields` changed."""
    now = EPOCH + asyncio.get_running_loop().time()
    document: dict[str, object] = {
        "format": 1,
        "account": ACCOUNT,
        "written_at": now,
        "token": None,
        "requested_at": None,
        "failures": 0,
        "retry_at": None,
    }
    document.update(fields)
    path.write_text(json.dumps(document))
    path.chmod(0o600)
