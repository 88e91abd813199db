"""The daemon's life: start-up, serving until asked to stop, shutdown.

`Service` owns everything one running daemon needs (the transport to the
token URL, the supervisor, metrics, listeners) and takes it down in the
reverse order. `serve` is ``tokend serve``: it runs a `Service` until
SIGTERM or SIGINT and returns the exit status.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit, urlunsplit

from daemon import __version__
from daemon.assembly import build_supervisor
from daemon.clock import Clock
from daemon.config import Settings
from daemon.durations import format_duration
from daemon.errors import ListenError
from daemon.listeners import Listener, open_listener
from daemon.metrics import Metrics
from daemon.server import Endpoints, make_app
from daemon.signals import StopSignals
from daemon.stores.fleet_health import FleetCollector, fleet_of
from daemon.supervisor import Supervisor
from daemon.transport import AiohttpTransport, Transport

log = logging.getLogger("tokend.service")

EXIT_OK = 0
EXIT_START_FAILED = 1


class Service:
    """One daemon: started by `start`, taken down by `stop`."""

    def __init__(self, settings: Settings, transport: Transport | None = None) -> None:
        self._settings = settings
        # A transport made here is closed here; one passed in belongs to
        # the caller (tests, the in-process emulator).
        self._owned: AiohttpTransport | None = None
        if transport is None:
            transport = self._owned = AiohttpTransport(
                connect_timeout=settings.connect_timeout
            )
        self._transport = transport
        self._listeners: list[Listener] = []
        self.supervisor: Supervisor | None = None
        self.metrics: Metrics | None = None

    @property
    def url(self) -> str:
        """Where the token is served, as bound (port 0 resolved)."""
        return self._listeners[0].url

    async def start(self) -> None:
        """Start the refresh loop, then the listeners; log where they listen."""
        settings = self._settings
        clock = Clock()
        self.metrics = Metrics(clock)
        self.supervisor = build_supervisor(
            settings, clock, self._transport, self.metrics
        )
        self.metrics.watch(self.supervisor)
        fleet = fleet_of(self.supervisor.source)
        if fleet is not None:
            self.metrics.registry.register(FleetCollector(fleet))
        endpoints = Endpoints(self.supervisor, clock, self.metrics, fleet)

        # The loop first, so /healthz is true from the first request on.
        await self.supervisor.start()
        try:
            await self._listen(endpoints)
        except BaseException:
            await self.stop()
            raise

        health = self._listeners[1:]
        log.info(
            "tokend %s serving the token on %s%s; token URL %s; "
            "lifetime %s, refresh after %s (+ up to %s jitter)",
            __version__,
            ", ".join(self._listeners[0].urls),
            f", health on {', '.join(health[0].urls)}" if health else "",
            _public(settings.token_url),
            format_duration(settings.token_lifetime),
            format_duration(settings.refresh_after),
            format_duration(settings.refresh_jitter),
        )

    async def stop(self) -> None:
        """Take the daemon down; each step is bounded, the whole well under 1s."""
        # 1. Stop accepting connections; requests in flight get a moment.
        for listener in reversed(self._listeners):
            await listener.close()
        self._listeners.clear()

        # 2. Cancel the refresh loop, with any grant in flight and any
        #    backoff sleep: nothing waits for the upstream to answer.
        if self.supervisor is not None:
            await self.supervisor.stop()

        # 3. Close the connection pool to the token URL.
        if self._owned is not None:
            await self._owned.close()

    async def _listen(self, endpoints: Endpoints) -> None:
        settings = self._settings
        self._listeners.append(
            await open_listener(
                make_app(endpoints), settings.listen, access_log=settings.access_log
            )
        )
        if settings.health_listen is not None:
            self._listeners.append(
                await open_listener(
                    make_app(endpoints, serve_token=False),
                    settings.health_listen,
                    access_log=settings.access_log,
                )
            )


async def serve(settings: Settings) -> int:
    """``tokend serve``: run until SIGTERM or SIGINT; the exit status."""
    # Handlers go in first: a signal during start-up still stops cleanly.
    async with StopSignals() as signals:
        service = Service(settings)
        try:
            await service.start()
        except ListenError as exc:
            log.error("%s", exc)
            return EXIT_START_FAILED

        received = await signals.wait()
        started = time.monotonic()
        log.info("%s received, stopping", received.name)
        await service.stop()
        log.info("stopped in %s", format_duration(time.monotonic() - started))
    return EXIT_OK


def _public(url: str) -> str:
    """The URL without any user information or query, for the log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
