"""The seam between the grant and the network.

The OAuth client speaks to a `Transport`, so the same grant logic runs
against a real token URL (`AiohttpTransport`) or, in simulated-time tests,
against the emulator in the same process with no socket at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from daemon.errors import TransportError


@dataclass(frozen=True)
class UpstreamResponse:
    """An HTTP answer: status, headers with lower-case names, raw body."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Transport(Protocol):
    """Posts a form and returns the answer, or raises `TransportError`."""

    async def post_form(
        self, url: str, form: Mapping[str, str]
    ) -> UpstreamResponse: ...


class AiohttpTransport:
    """A `Transport` over one long-lived aiohttp client session."""

    def __init__(self, *, connect_timeout: float, body_limit: int = 1 << 20) -> None:
        self._connect_timeout = connect_timeout
        self._body_limit = body_limit
        self._session: aiohttp.ClientSession | None = None

    async def post_form(self, url: str, form: Mapping[str, str]) -> UpstreamResponse:
        session = self._ensure_session()
        try:
            async with session.post(url, data=dict(form)) as response:
                body = await response.content.read(self._body_limit)
                headers = {k.lower(): v for k, v in response.headers.items()}
                return UpstreamResponse(response.status, body, headers)
        except aiohttp.ClientConnectorError as exc:
            # The connector's message names host and port, never headers.
            raise TransportError(f"cannot connect: {exc.strerror or exc}") from None
        except aiohttp.ServerDisconnectedError:
            raise TransportError("the server closed the connection") from None
        except aiohttp.ClientPayloadError:
            raise TransportError("the answer was cut off") from None
        except aiohttp.ClientError as exc:
            # Other client errors can carry request details in their text;
            # only the class name is kept.
            raise TransportError(f"request failed ({type(exc).__name__})") from None
        except ConnectionError as exc:
            raise TransportError(f"connection error ({type(exc).__name__})") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self._connect_timeout
            )
            self._session = aiohttp.ClientSession(
                timeout=timeout,
                raise_for_status=False,
                # The token URL is always named in full; a proxy from the
                # environment would be a surprise between tokend and it.
                trust_env=False,
            )
        return self._session
