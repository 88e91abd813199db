"""The access token as tokend holds it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def fingerprint(secret: str) -> str:
    """A short, stable name for a secret that does not reveal it.

    Twelve hex digits of SHA-256: enough to tell tokens apart in a log,
    far too few to help anyone guess the value.
    """
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class AccessToken:
    """A granted token and its times on the loop clock.

    `issued` is derived, as the provider gives only the seconds left:
    issued = expiry - lifetime. The value never appears in `repr`.
    """

    value: str = field(repr=False)
    expiry: float
    lifetime: float
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", fingerprint(self.value))

    @property
    def issued(self) -> float:
        return self.expiry - self.lifetime

    def seconds_left(self, now: float) -> float:
        return self.expiry - now

    def __str__(self) -> str:
        return f"token {self.fingerprint}"
