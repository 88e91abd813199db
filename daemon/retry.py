"""Waits between failed upstream calls: exponential, jittered, capped.

Built on the wait generator and jitter of `backoff`; deadlines are taken
by the caller from the loop's clock, never from `backoff`'s own
`max_time`, which follows the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import backoff


class Backoff:
    """The wait before the next attempt, growing with each failure.

    Each wait is drawn uniformly between `base` and the exponential ceiling
    ``min(cap, base * 2**n)``: full jitter, but never shorter than `base`,
    so two calls are always at least `base` apart. A ``Retry-After`` from
    the server replaces the draw when it asks for longer, clamped to `cap`.
    """

    def __init__(
        self,
        base: float,
        cap: float,
        jitter: Callable[[float], float] = backoff.full_jitter,
    ) -> None:
        self.base = base
        self.cap = cap
        self._jitter = jitter
        self.failures = 0
        self._ceilings = self._fresh_ceilings()

    def next_wait(self, retry_after: float | None = None) -> float:
        """Count one failure and return how long to wait before the next call."""
        self.failures += 1
        ceiling = next(self._ceilings)
        wait = self.base + self._jitter(ceiling - self.base)
        if retry_after is not None and retry_after > wait:
            wait = min(retry_after, self.cap)
        return wait

    def give_up_wait(self) -> float:
        """Count one failure that retrying soon cannot fix: wait the cap."""
        self.failures += 1
        self._ceilings = self._exhausted()
        return self.cap

    def reset(self) -> None:
        """A call succeeded: the next failure starts from `base` again."""
        self.failures = 0
        self._ceilings = self._fresh_ceilings()

    def _fresh_ceilings(self) -> Iterator[float]:
        waits = backoff.expo(base=2, factor=self.base, max_value=self.cap)
        next(waits)  # the generator's first value primes it and is not a wait
        return (min(value, self.cap) for value in waits)

    def _exhausted(self) -> Iterator[float]:
        while True:
            yield self.cap
