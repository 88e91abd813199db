"""Where the supervisor's next token comes from.

`GrantSource` asks the provider. The stores in `daemon.stores` wrap it to
share a token beyond one process: a state file across restarts and
neighbours on one host, Redis across a fleet. Each may hand back a token
that someone else obtained instead of calling upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from daemon.clock import Clock
from daemon.oauth import Credentials, OAuthClient
from daemon.redaction import redactor
from daemon.token import AccessToken

Adopt = Callable[[AccessToken], Awaitable[None]]


class TokenSource(Protocol):
    """What the supervisor asks for tokens."""

    async def initial(self) -> AccessToken | None:
        """A token to serve at once without an upstream call, if one is kept."""

    async def obtain(self, current: AccessToken | None) -> AccessToken:
        """A token at least as new as `current`; raises `GrantError` on failure."""

    def earliest_attempt(self) -> float | None:
        """The loop time before which no upstream call may be made, if any."""

    async def record_failure(self, wait: float) -> None:
        """Note a failed attempt and the wait that follows it."""

    async def watch(self, adopt: Adopt) -> None:
        """Pass tokens that others obtain to `adopt`, until cancelled."""

    async def close(self) -> None: ...


class GrantSource:
    """Every `obtain` is one refresh-token grant against the token URL."""

    def __init__(
        self,
        client: OAuthClient,
        credentials: Callable[[], Credentials],
        clock: Clock,
        lifetime: float,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._clock = clock
        self._lifetime = lifetime

    async def initial(self) -> AccessToken | None:
        return None

    async def obtain(self, current: AccessToken | None) -> AccessToken:
        credentials = self._credentials()
        redactor.add(*credentials.secrets())

        grant = await self._client.grant(credentials)

        redactor.add_token(grant.access_token)
        expiry = self._clock.now() + grant.expires_in
        return AccessToken(grant.access_token, expiry, self._lifetime)

    def earliest_attempt(self) -> float | None:
        return None

    async def record_failure(self, wait: float) -> None:
        return None

    async def watch(self, adopt: Adopt) -> None:
        return None

    async def close(self) -> None:
        return None
