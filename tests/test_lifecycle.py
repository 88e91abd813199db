"""The token rules over simulated days, against the in-process emulator."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from email.utils import formatdate

import pytest

from daemon.oauth import Credentials
from daemon.policy import Timing
from daemon.retry import Backoff
from daemon.sources import TokenSource
from daemon.supervisor import Supervisor
from daemon.token import AccessToken
from tests.lifecycle import HOUR, LIFETIME, TIMING, make_rig

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


def gaps(moments: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(moments)]


async def test_three_days_take_one_grant_per_window() -> None:
    """Over 72 hours each grant is new, none early, and a valid token is held."""
    rig = make_rig()
    await rig.supervisor.start()
    await rig.supervisor.wait_ready()
    unserved: list[float] = []
    held = []

    while rig.clock.now() < 72 * HOUR:
        await asyncio.sleep(min(random.uniform(0, 1800), 72 * HOUR - rig.clock.now()))
        token = rig.supervisor.current()
        if token is None or not rig.provider.is_valid(token.value):
            unserved.append(rig.clock.now())
        elif not held or held[-1] != token:
            held.append(token)
    await rig.supervisor.stop()

    calls = rig.token_calls()
    assert len(calls) == 24
    assert set(rig.outcomes()) == {"new"}
    # A microsecond of slack absorbs the float sums of the loop clock.
    earliest, latest = TIMING.refresh_after - 1e-6, TIMING.refresh_after + TIMING.jitter
    assert all(earliest <= gap <= latest + 1e-6 for gap in gaps(calls))
    assert unserved == []
    # Between samples too: each successor came before its predecessor's margin.
    assert len(held) == 24
    assert all(
        after.issued < before.expiry - TIMING.expiry_margin
        for before, after in itertools.pairwise(held)
    )


async def test_a_start_in_the_middle_of_a_token_life_waits_for_its_window() -> None:
    """A token already an hour old is adopted and refreshed 3.01 h after its issue."""
    rig = make_rig()
    rig.provider.token_request(
        {
            "grant_type": "refresh_token",
            "client_id": "demo-client",
            "client_secret": "demo-secret",
            "refresh_token": "demo-refresh-token",
        }
    )
    issued = rig.clock.now()
    await asyncio.sleep(HOUR)

    await rig.supervisor.start()
    first = await rig.supervisor.wait_ready()
    await asyncio.sleep(2.5 * HOUR)
    await rig.supervisor.stop()

    calls = rig.token_calls()
    assert rig.outcomes() == ["new", "same", "new"]
    assert first.issued == pytest.approx(issued, abs=1)
    assert issued + TIMING.refresh_after <= calls[2]
    assert calls[2] <= issued + TIMING.refresh_after + TIMING.jitter + 1


async def test_an_outage_longer_than_the_overlap() -> None:
    """During a long outage the token is served until its margin, then nothing."""
    rig = make_rig()
    await rig.supervisor.start()
    token = await rig.supervisor.wait_ready()
    await asyncio.sleep(3 * HOUR)
    rig.inject(kind="status", status=503, times=10**6)
    served: list[tuple[float, bool]] = []

    while rig.clock.now() < 5.5 * HOUR:
        await asyncio.sleep(30)
        current = rig.supervisor.current()
        served.append((rig.clock.now(), current is not None))
        assert current is None or rig.provider.is_valid(current.value)
    rig.provider.clear_faults()
    outage_end = rig.clock.now()
    recovered = await rig.supervisor.wait_ready()
    recovery = rig.clock.now() - outage_end
    await rig.supervisor.stop()

    cutoff = token.expiry - TIMING.expiry_margin
    assert all(ok for at, ok in served if at < cutoff)
    assert not any(ok for at, ok in served if at >= cutoff)
    assert recovered.value != token.value
    assert recovery <= 300
    assert min(gaps(rig.token_calls()[1:])) >= 1.0


FAULTS = [
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 502, "body": "bad gateway"},
    {"kind": "status", "status": 408},
    {"kind": "status", "status": 429},
    {"kind": "hang"},
    {"kind": "reset"},
    {"kind": "html"},
    {"kind": "malformed"},
    {"kind": "missing", "field": "access_token"},
    {"kind": "missing", "field": "expires_in"},
    {"kind": "missing", "field": "expires_in", "value": "3600"},
    {"kind": "missing", "field": "token_type", "value": "mac"},
    {"kind": "throttled"},
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: "-".join(map(str, f.values())))
async def test_every_fault_is_retried_with_backoff(fault: dict[str, object]) -> None:
    """Each fault is retried with jittered, capped waits never under the base."""
    timeout = 5.0
    rig = make_rig(request_timeout=timeout)
    rig.inject(times=5, **fault)

    await rig.supervisor.start()
    token = await rig.supervisor.wait_ready()
    await rig.supervisor.stop()

    calls = rig.token_calls()
    spent = timeout if fault["kind"] == "hang" else 0.0
    waits = [gap - spent for gap in gaps(calls)]
    # A grant whose answer came out wrong was still issued: the next is "same".
    last = "same" if fault["kind"] == "missing" else "new"
    assert rig.outcomes() == [f"fault:{fault['kind']}"] * 5 + [last]
    assert rig.provider.is_valid(token.value)
    assert all(1.0 <= wait <= min(300, 2**n) + 0.01 for n, wait in enumerate(waits))


async def test_waits_grow_while_failures_go_on() -> None:
    """Later waits are far longer than the first ones: the backoff is exponential."""
    random.seed(2)
    rig = make_rig()
    rig.inject(kind="status", status=503, times=12)

    await rig.supervisor.start()
    await rig.supervisor.wait_ready()
    await rig.supervisor.stop()

    waits = gaps(rig.token_calls())
    assert len(waits) == 12
    assert sum(waits[-4:]) / 4 > 8 * sum(waits[:2]) / 2
    assert max(waits) <= 300


async def test_rejected_credentials_back_off_to_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Refused credentials are asked again only every cap, and reported as an error."""
    wrong = Credentials("demo-client", "not-the-secret", "demo-refresh-token")
    rig = make_rig(credentials=wrong)

    await rig.supervisor.start()
    await asyncio.sleep(HOUR + 1)
    status = rig.supervisor.status()
    await rig.supervisor.stop()

    calls = rig.token_calls()
    assert set(rig.outcomes()) == {"invalid_client"}
    assert len(calls) == 13
    assert gaps(calls) == pytest.approx([300.0] * 12)
    assert rig.supervisor.current() is None
    assert status.state == "failing"
    assert status.last_error is not None
    assert status.last_error.startswith("rejected: HTTP 401 invalid_client")
    assert status.consecutive_failures == 13
    assert any(r.levelno == logging.ERROR for r in caplog.records)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [("120", 120.0), ("3600", 300.0), (None, None)],
)
async def test_retry_after_is_honoured(
    retry_after: str | None, expected: float | None
) -> None:
    """A Retry-After sets the next wait, clamped to the backoff cap."""
    rig = make_rig()
    fault: dict[str, object] = {"kind": "throttled"}
    if retry_after is not None:
        fault["retry_after"] = retry_after
    rig.inject(**fault)

    await rig.supervisor.start()
    await rig.supervisor.wait_ready()
    await rig.supervisor.stop()

    (wait,) = gaps(rig.token_calls())
    if expected is None:
        assert 1.0 <= wait <= 2.0
    else:
        assert wait == pytest.approx(expected, abs=0.01)


async def test_retry_after_as_a_date_is_honoured() -> None:
    """A Retry-After given as an HTTP date waits until that date."""
    rig = make_rig()
    rig.inject(
        kind="status",
        status=503,
        retry_after=formatdate(time.time() + 200, usegmt=True),
    )

    await rig.supervisor.start()
    await rig.supervisor.wait_ready()
    await rig.supervisor.stop()

    (wait,) = gaps(rig.token_calls())
    assert 198 <= wait <= 201


async def test_a_thousand_readers_during_a_refresh_cause_one_call() -> None:
    """Readers and refresh triggers during a slow refresh make one upstream call."""
    rig = make_rig(delay=2.0, jitter=lambda limit: 0.0)
    await rig.supervisor.start()
    old = await rig.supervisor.wait_ready()
    await asyncio.sleep(TIMING.refresh_after + 0.5 - rig.clock.now())
    seen: list[bool] = []

    async def reader() -> None:
        for _ in range(10):
            token = rig.supervisor.current()
            seen.append(token is not None and rig.provider.is_valid(token.value))
            await asyncio.sleep(0.3)

    readers = [reader() for _ in range(1000)]
    triggers = [rig.supervisor.refresh_now() for _ in range(1000)]
    await asyncio.gather(*readers, *triggers)
    new = rig.supervisor.current()
    await rig.supervisor.stop()

    assert len(rig.token_calls()) == 2
    assert len(seen) == 10_000
    assert all(seen)
    assert new is not None
    assert new.value != old.value


async def test_a_same_token_answer_is_retried_with_backoff() -> None:
    """A repeated token is kept and asked again with backoff, not in a loop."""
    early = Timing(
        lifetime=LIFETIME, refresh_after=2 * HOUR, jitter=0, expiry_margin=60
    )
    rig = make_rig(timing=early)

    await rig.supervisor.start()
    first = await rig.supervisor.wait_ready()
    await asyncio.sleep(3.2 * HOUR)
    held = rig.supervisor.current()
    await rig.supervisor.stop()

    outcomes = rig.outcomes()
    same = outcomes.count("same")
    assert outcomes[0] == "new"
    assert outcomes[-1] == "new"
    assert 5 <= same <= 40
    assert min(gaps(rig.token_calls())) >= 1.0
    assert held is not None
    assert held.value != first.value


async def test_status_describes_a_fresh_token() -> None:
    """After the first grant the status tells expiry and next refresh, not the token."""
    rig = make_rig(jitter=lambda limit: limit)
    await rig.supervisor.start()
    token = await rig.supervisor.wait_ready()

    status = rig.supervisor.status()
    await rig.supervisor.stop()

    assert status.state == "fresh"
    assert status.ready
    assert status.fingerprint == token.fingerprint
    assert status.expires_in == pytest.approx(LIFETIME, abs=1)
    assert status.refresh_in == pytest.approx(TIMING.refresh_after + 30, abs=1)
    assert status.consecutive_failures == 0
    assert status.last_error is None
    assert token.value not in repr(status)


async def test_stop_ends_a_hanging_call_and_a_backoff_sleep() -> None:
    """Stopping cancels the call in flight and the loop at once."""
    rig = make_rig(request_timeout=600)
    rig.inject(kind="hang")
    await rig.supervisor.start()
    await asyncio.sleep(10)

    started = rig.clock.now()
    await rig.supervisor.stop()

    assert rig.clock.now() - started < 0.1
    assert not rig.supervisor.alive


class BrokenOnce:
    """A source whose first `obtain` fails with a bug, not a grant error."""

    def __init__(self, inner: TokenSource) -> None:
        self._inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def obtain(self, current: AccessToken | None) -> AccessToken:
        self.calls += 1
        if self.calls == 1:
            raise OSError("disk on fire")
        return await self._inner.obtain(current)


async def test_an_unexpected_error_is_retried_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in a token source is logged and retried; the loop stays alive."""
    rig = make_rig()
    broken = BrokenOnce(rig.supervisor.source)
    supervisor = Supervisor(broken, TIMING, Backoff(1.0, 300.0), rig.clock)

    await supervisor.start()
    token = await supervisor.wait_ready()
    alive = supervisor.alive
    await supervisor.stop()

    assert broken.calls == 2
    assert alive
    assert rig.provider.is_valid(token.value)
    assert "token source failed unexpectedly" in caplog.text
