"""A supervisor wired to the in-process emulator, on the loop's clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from daemon.clock import Clock
from daemon.emulator.faults import Fault
from daemon.emulator.inprocess import InProcessTransport
from daemon.emulator.provider import Provider
from daemon.oauth import Credentials, OAuthClient
from daemon.policy import Timing
from daemon.retry import Backoff
from daemon.sources import GrantSource
from daemon.supervisor import Supervisor
from daemon.transport import UpstreamResponse

HOUR = 3600.0
LIFETIME = 4 * HOUR
WINDOW = 3 * HOUR
TIMING = Timing(
    lifetime=LIFETIME, refresh_after=3.01 * HOUR, jitter=30, expiry_margin=60
)
CREDENTIALS = Credentials("demo-client", "demo-secret", "demo-refresh-token")
TOKEN_URL = "https://emulator.invalid/oauth/token"


class SlowTransport:
    """Delays every request by `delay` seconds of loop time before sending it."""

    def __init__(self, inner: InProcessTransport, delay: float) -> None:
        self._inner = inner
        self._delay = delay

    async def post_form(self, url: str, form: Mapping[str, str]) -> UpstreamResponse:
        await asyncio.sleep(self._delay)
        return await self._inner.post_form(url, form)


@dataclass
class Rig:
    """The provider, the supervisor facing it, and the loop clock they share."""

    provider: Provider
    supervisor: Supervisor
    clock: Clock

    def token_calls(self) -> list[float]:
        """When each token request reached the provider."""
        return [r.at for r in self.provider.requests if r.endpoint == "token"]

    def outcomes(self) -> list[str]:
        return [r.outcome for r in self.provider.requests if r.endpoint == "token"]

    def inject(self, times: int = 1, **fault: object) -> None:
        self.provider.inject(Fault.from_json(fault), times=times)


def make_rig(
    *,
    timing: Timing = TIMING,
    credentials: Credentials = CREDENTIALS,
    provider: Provider | None = None,
    backoff: Backoff | None = None,
    request_timeout: float = 30.0,
    delay: float = 0.0,
    jitter: Callable[[float], float] | None = None,
) -> Rig:
    loop = asyncio.get_running_loop()
    provider = provider or Provider(loop.time, lifetime=LIFETIME, refresh_window=WINDOW)
    transport = InProcessTransport(provider)
    wire = SlowTransport(transport, delay) if delay else transport
    clock = Clock()
    client = OAuthClient(wire, TOKEN_URL, timeout=request_timeout)
    source = GrantSource(client, lambda: credentials, clock, timing.lifetime)
    waits = backoff or Backoff(1.0, 300.0)
    if jitter is None:
        supervisor = Supervisor(source, timing, waits, clock)
    else:
        supervisor = Supervisor(source, timing, waits, clock, jitter=jitter)
    return Rig(provider, supervisor, clock)
