"""Fleet stores on the real Redis, each over a grant to one in-process emulator."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest_asyncio
import redis.asyncio as aioredis

from daemon.clock import Clock
from daemon.emulator.inprocess import InProcessTransport
from daemon.emulator.provider import Provider
from daemon.oauth import Credentials, OAuthClient
from daemon.sources import GrantSource, TokenSource
from daemon.stores.fleet import FleetStore
from daemon.token import AccessToken

# The Redis every developer machine and CI runs; shared, so every test
# keeps to keys under a prefix of its own and deletes them after.
SHARED_REDIS = "redis://127.0.0.1:6379/0"

CREDENTIALS = Credentials("demo-client", "demo-secret", "demo-refresh-token")
TOKEN_URL = "https://emulator.invalid/oauth/token"
ACCOUNT = CREDENTIALS.fingerprint(TOKEN_URL)

# Scaled down: a token lives 6 s, a new one is issued 3 s after the last.
LIFETIME = 6.0
WINDOW = 3.0
LEASE = 0.6


def unique_prefix() -> str:
    return f"tokend-test-{uuid.uuid4().hex[:12]}"


async def delete_keys(url: str, prefix: str) -> None:
    """Remove every key under `prefix`, and only those."""
    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest_asyncio.fixture
async def fleet_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the shared Redis, deleted after."""
    name = unique_prefix()
    yield name
    await delete_keys(SHARED_REDIS, name)


@pytest_asyncio.fixture
async def raw_redis() -> AsyncIterator[aioredis.Redis]:
    """A plain client of the shared Redis, to look at what the stores wrote."""
    client = aioredis.Redis.from_url(SHARED_REDIS, decode_responses=True)
    yield client
    await client.aclose()


def make_provider(window: float = WINDOW) -> Provider:
    loop = asyncio.get_running_loop()
    return Provider(loop.time, lifetime=LIFETIME, refresh_window=window)


@dataclass
class GatedSource:
    """Passes calls to `inner`, but each `obtain` first waits for `gate`."""

    inner: TokenSource
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    async def initial(self) -> AccessToken | None:
        return await self.inner.initial()

    async def obtain(self, current: AccessToken | None) -> AccessToken:
        self.calls += 1
        self.entered.set()
        await self.gate.wait()
        return await self.inner.obtain(current)

    def earliest_attempt(self) -> float | None:
        return self.inner.earliest_attempt()

    async def record_failure(self, wait: float) -> None:
        await self.inner.record_failure(wait)

    async def watch(self, adopt: object) -> None:
        return None

    async def close(self) -> None:
        await self.inner.close()


def grant_source(
    provider: Provider, credentials: Credentials = CREDENTIALS
) -> GatedSource:
    """A grant against `provider`, behind a gate that starts open."""
    clock = Clock()
    client = OAuthClient(InProcessTransport(provider), TOKEN_URL, timeout=5.0)
    source = GrantSource(client, lambda: credentials, clock, LIFETIME)
    return GatedSource(source)


def fleet_store(
    inner: TokenSource,
    prefix: str,
    *,
    url: str = SHARED_REDIS,
    account: str = ACCOUNT,
    lease: float = LEASE,
) -> FleetStore:
    return FleetStore.connect(
        url,
        inner,
        Clock(),
        prefix=prefix,
        account=account,
        lifetime=LIFETIME,
        lease=lease,
    )


class Adopted:
    """An `adopt` callback that remembers what it was given."""

    def __init__(self) -> None:
        self.tokens: list[AccessToken] = []
        self.changed = asyncio.Event()

    async def __call__(self, token: AccessToken) -> None:
        self.tokens.append(token)
        self.changed.set()

    async def next(self, within: float) -> AccessToken:
        async with asyncio.timeout(within):
            await self.changed.wait()
        self.changed.clear()
        return self.tokens[-1]
