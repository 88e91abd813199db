"""A `Transport` that hands each form to a `Provider` in the same process.

With no socket in the way, simulated-time tests run the real `OAuthClient`
against the real provider rules, and a day of refreshes takes a moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import NoReturn
from urllib.parse import urlsplit

from daemon.emulator.answers import json_error
from daemon.emulator.provider import TOKEN_PATH, Provider
from daemon.errors import TransportError
from daemon.transport import UpstreamResponse


class InProcessTransport:
    """Posts to `provider` directly; only its token endpoint is reachable."""

    def __init__(self, provider: Provider) -> None:
        self._provider = provider

    async def post_form(self, url: str, form: Mapping[str, str]) -> UpstreamResponse:
        # A network call always lets other tasks run; so must this one,
        # or tests would miss interleavings that real calls allow.
        await asyncio.sleep(0)

        path = urlsplit(url).path
        if path != TOKEN_PATH:
            answer = json_error(404, "not_found", f"nothing at POST {path}")
        else:
            answer = self._provider.token_request(form)

        if answer.action == "hang":
            await _wait_forever()
        if answer.action == "reset":
            raise TransportError("the server reset the connection")
        return UpstreamResponse(answer.status, answer.body, dict(answer.headers))


async def _wait_forever() -> NoReturn:
    """Never return: only the caller's timeout or a cancellation ends a hang."""
    silence = asyncio.Event()
    while True:
        await silence.wait()
