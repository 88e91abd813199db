"""Builds the supervisor and its token source from validated settings."""

from __future__ import annotations

from daemon.clock import Clock
from daemon.config import Settings
from daemon.oauth import Credentials, OAuthClient
from daemon.policy import Timing
from daemon.retry import Backoff
from daemon.sources import GrantSource, TokenSource
from daemon.stores.fleet import FleetStore
from daemon.stores.statefile import StateFileStore
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


def build_source(
    settings: Settings,
    clock: Clock,
    transport: Transport,
    backoff: Backoff | None = None,
) -> TokenSource:
    """The grant, wrapped by whichever shared stores the settings ask for.

    `backoff` is the supervisor's: a state file resumes its failure count.
    """
    client = OAuthClient(
        transport, settings.token_url, timeout=settings.request_timeout
    )
    source: TokenSource = GrantSource(
        client, lambda: credentials_of(settings), clock, settings.token_lifetime
    )
    if settings.state_file is not None:
        source = StateFileStore(
            source,
            settings.state_file,
            account=lambda: credentials_of(settings).fingerprint(settings.token_url),
            clock=clock,
            timing=timing_of(settings),
            backoff=backoff or Backoff(settings.backoff_base, settings.backoff_max),
            # A neighbour holds the lock for one request at most.
            lock_patience=2 * settings.request_timeout,
        )
    if settings.redis_url is not None:
        source = FleetStore.connect(
            settings.redis_url.get(),
            source,
            clock,
            prefix=settings.redis_prefix,
            account=credentials_of(settings).fingerprint(settings.token_url),
            lifetime=settings.token_lifetime,
            lease=settings.redis_lease,
        )
    return source


def build_supervisor(
    settings: Settings,
    clock: Clock,
    transport: Transport,
    observer: Observer | None = None,
) -> Supervisor:
    backoff = Backoff(settings.backoff_base, settings.backoff_max)
    return Supervisor(
        build_source(settings, clock, transport, backoff),
        timing_of(settings),
        backoff,
        clock,
        observer,
    )
