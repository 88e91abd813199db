"""The provider's timing rules as pure functions of loop times."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.token import AccessToken


@dataclass(frozen=True)
class Timing:
    """The durations that decide when to refresh and what may be served."""

    lifetime: float
    refresh_after: float
    jitter: float
    expiry_margin: float


def refresh_due(token: AccessToken, timing: Timing) -> float:
    """The earliest moment a grant may be asked for: issued + refresh_after."""
    return token.issued + timing.refresh_after


def servable_until(token: AccessToken, timing: Timing) -> float:
    """The moment a token stops being handed out: expiry - margin."""
    return token.expiry - timing.expiry_margin


def is_servable(token: AccessToken | None, timing: Timing, now: float) -> bool:
    return token is not None and now < servable_until(token, timing)


def is_newer(candidate: AccessToken, current: AccessToken | None) -> bool:
    """Whether `candidate` should replace `current`: it lives longer."""
    return current is None or candidate.expiry > current.expiry
