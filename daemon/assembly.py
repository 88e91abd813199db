"""Builds the supervisor and its token source from validated settings."""

from __future__ import annotations

from daemon.clock import Clock
from daemon.config import Settings
from daemon.oauth import Credentials, OAuthClient
from daemon.policy import Timing
from daemon.retry import Backoff
from daemon.sources import GrantSource, TokenSource
from daemon.supervisor import Observer, Supervisor
from daemon.transport import Transport


def timing_of(settings: Settings) -> Timing:
    return Timing(
        lifetime=settings.token_lifetime,
        refresh_after=settings.refresh_after,
        jitter=settings.refresh_jitter,
        expiry_margin=settings.expiry_margin,
    )


def credentials_of(settings: Settings) -> Credentials:
    """The credentials as they are now (secret files are read again)."""
    return Credentials(
        client_id=settings.client_id.get(),
        client_secret=settings.client_secret.get(),
        refresh_token=settings.refresh_token.get(),
    )


def build_source(settings: Settings, clock: Clock, transport: Transport) -> TokenSource:
    """The grant, wrapped by whichever shared stores the settings ask for."""
    client = OAuthClient(
        transport, settings.token_url, timeout=settings.request_timeout
    )
    source: TokenSource = GrantSource(
        client, lambda: credentials_of(settings), clock, settings.token_lifetime
    )
    return source


def build_supervisor(
    settings: Settings,
    clock: Clock,
    transport: Transport,
    observer: Observer | None = None,
) -> Supervisor:
    return Supervisor(
        build_source(settings, clock, transport),
        timing_of(settings),
        Backoff(settings.backoff_base, settings.backoff_max),
        clock,
        observer,
    )
