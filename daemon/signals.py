"""SIGTERM and SIGINT as a request to stop, awaited by the run loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """While entered, SIGTERM and SIGINT ask for a stop instead of killing.

    The handlers only record the first signal: shutdown runs in the main
    task, in its own order, after `wait` returns.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._first: asyncio.Future[signal.Signals] | None = None

    async def __aenter__(self) -> StopSignals:
        self._loop = asyncio.get_running_loop()
        self._first = self._loop.create_future()
        for sig in STOP_SIGNALS:
            self._loop.add_signal_handler(sig, self._received, sig)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._loop is not None:
            for sig in STOP_SIGNALS:
                self._loop.remove_signal_handler(sig)

    @property
    def received(self) -> bool:
        return self._first is not None and self._first.done()

    async def wait(self) -> signal.Signals:
        """Return the first stop signal once it has arrived."""
        if self._first is None:
            raise RuntimeError("StopSignals.wait() outside `async with`")
        return await asyncio.shield(self._first)

    def _received(self, sig: signal.Signals) -> None:
        if self._first is not None and not self._first.done():
            self._first.set_result(sig)


async def until_stopped(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` until it ends or a stop signal arrives, which cancels it."""
    async with StopSignals() as signals:
        running = asyncio.create_task(main)
        stopping = asyncio.create_task(signals.wait())
        await asyncio.wait((running, stopping), return_when=asyncio.FIRST_COMPLETED)

        for task in (running, stopping):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        with contextlib.suppress(asyncio.CancelledError):
            # Raises what ended `main` early, such as an address in use.
            await running
