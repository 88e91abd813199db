"""A backoff's place carried from one process to the next as a failure count.

`retry.Backoff` keeps its place in a generator, which no file can hold; a
count can be, and replaying that many failures puts a fresh backoff back
where the last process left off.
"""

from __future__ import annotations

from daemon.retry import Backoff

# After this many doublings every ceiling has reached the cap, so a longer
# replay would change nothing.
_DOUBLINGS = 64


def catch_up(backoff: Backoff, failures: int) -> None:
    """Count `failures` in `backoff`, if it has counted fewer so far."""
    while backoff.failures < min(failures, _DOUBLINGS):
        backoff.next_wait()
    backoff.failures = max(backoff.failures, failures)


def wait_after(backoff: Backoff, failures: int) -> float:
    """The wait `backoff` would draw after `failures` in a row, leaving it as it is."""
    trial = Backoff(backoff.base, backoff.cap)
    wait = trial.base
    for _ in range(min(failures, _DOUBLINGS)):
        wait = trial.next_wait()
    return wait
