"""Waits between failed calls: exponential, jittered, floored, capped."""

from __future__ import annotations

import random

import pytest

from daemon.retry import Backoff


def ceiling_jitter(value: float) -> float:
    """A jitter that always draws the top of its range."""
    return value


def floor_jitter(value: float) -> float:
    return 0.0


def test_ceilings_double_up_to_the_cap() -> None:
    """Drawn at the top, waits double from the base until the cap holds them."""
    backoff = Backoff(1.0, 30.0, jitter=ceiling_jitter)

    waits = [backoff.next_wait() for _ in range(8)]

    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]


def test_no_wait_is_shorter_than_the_base() -> None:
    """Drawn at the bottom, a wait is still the base: calls stay apart."""
    backoff = Backoff(2.0, 60.0, jitter=floor_jitter)

    waits = [backoff.next_wait() for _ in range(6)]

    assert waits == [2.0] * 6


def test_waits_are_spread_between_base_and_ceiling() -> None:
    """With real jitter, waits fall anywhere between base and ceiling."""
    random.seed(7)
    samples = []
    for _ in range(300):
        backoff = Backoff(1.0, 300.0)
        samples.append([backoff.next_wait() for _ in range(6)][-1])

    assert min(samples) >= 1.0
    assert max(samples) <= 32.0
    assert len({round(s) for s in samples}) > 20


def test_retry_after_is_honoured_and_clamped_to_the_cap() -> None:
    """A longer Retry-After replaces the draw but never passes the cap."""
    backoff = Backoff(1.0, 60.0, jitter=floor_jitter)

    asked = backoff.next_wait(retry_after=42)
    capped = backoff.next_wait(retry_after=3600)
    shorter = backoff.next_wait(retry_after=0)

    assert (asked, capped, shorter) == (42, 60, 1.0)


def test_giving_up_waits_the_cap_at_once() -> None:
    """A failure that retrying cannot fix waits the cap from the first time."""
    backoff = Backoff(1.0, 300.0)

    waits = [backoff.give_up_wait() for _ in range(3)]

    assert waits == [300.0] * 3
    assert backoff.failures == 3


def test_reset_starts_again_from_the_base() -> None:
    """After a success the next failure waits the base again."""
    backoff = Backoff(1.0, 300.0, jitter=ceiling_jitter)
    for _ in range(5):
        backoff.next_wait()

    backoff.reset()

    assert backoff.failures == 0
    assert backoff.next_wait() == 1.0


@pytest.mark.parametrize(("base", "cap"), [(0.5, 0.5), (5.0, 5.0)])
def test_base_equal_to_cap_waits_the_cap(base: float, cap: float) -> None:
    """When base and cap are equal every wait is exactly that long."""
    backoff = Backoff(base, cap)

    waits = {backoff.next_wait() for _ in range(5)}

    assert waits == {cap}
