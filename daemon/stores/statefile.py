"""Keeps the token and the recent requests in a file, for restarts and neighbours.

`StateFileStore` wraps the grant (or any `TokenSource`). After every grant
it writes the token; before every request it writes the request, counted
as a failure until it is known to have succeeded. A restarting daemon
reads the file and waits:

- with a servable token on file, nothing: the token is served at once and
  refreshed when it is due (issued + refresh_after), as if never restarted;
- after failed requests, until the earliest moment their backoff allows,
  and the failure count carries over, so the waits keep growing across
  restarts as they would within one process;
- after a request whose outcome it never learnt (the process died while
  waiting for the answer), the backoff wait drawn when it was sent: it
  counts as a failure, as the provider may have seen it;
- always at least the backoff base after the last request.

Daemons on one host that share the file take a lock around each request
and read the file under it first: a neighbour's newer token whose refresh
is not yet due is taken instead of asking. Each also polls the file and
adopts its neighbours' newer tokens, so one request per refresh serves all.

The file is a few hundred bytes, read and written on the loop; only the
lock, which a neighbour may hold for a whole request, is waited for
without blocking it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from daemon.clock import Clock
from daemon.durations import format_duration
from daemon.policy import Timing, is_newer, is_servable, refresh_due
from daemon.redaction import redactor
from daemon.retry import Backoff
from daemon.sources import Adopt, TokenSource
from daemon.stores.backoff_resume import catch_up, wait_after
from daemon.stores.state_disk import StateFile
from daemon.stores.state_record import KeptToken, StateRecord
from daemon.token import AccessToken

log = logging.getLogger("tokend.statefile")


class StateFileStore:
    """A `TokenSource` that keeps `inner`'s tokens and requests in `path`.

    `account` names the credentials and token URL (see
    `Credentials.fingerprint`); a file written for another is ignored.
    `backoff` is the supervisor's own, so that a restart resumes its count.
    """

    def __init__(
        self,
        inner: TokenSource,
        path: Path,
        *,
        account: Callable[[], str],
        clock: Clock,
        timing: Timing,
        backoff: Backoff,
        poll_interval: float = 1.0,
        lock_patience: float = 60.0,
    ) -> None:
        self._inner = inner
        self._file = StateFile(path, account, clock)
        self._clock = clock
        self._timing = timing
        self._backoff = backoff
        self._poll_interval = poll_interval
        self._lock_patience = lock_patience

        self._latest: AccessToken | None = None
        self._floor: float | None = None
        self._requested_at: float | None = None

    # The TokenSource protocol.

    async def initial(self) -> AccessToken | None:
        record = self._file.read()
        kept = None
        if record is not None:
            catch_up(self._backoff, record.failures)
            self._hold_back(record)
            kept = self._servable(record, report=True)
            self._announce(record)

        if kept is None:
            kept = await self._inner.initial()
        if kept is not None:
            self._remember(kept)
        return kept

    async def obtain(self, current: AccessToken | None) -> AccessToken:
        while True:
            await self._wait_for_floor()

            async with self._file.lock.hold(self._lock_patience):
                record = self._file.read()
                if record is not None:
                    # Under the lock no neighbour is mid-request, so each
                    # failure on record really happened.
                    catch_up(self._backoff, record.failures)
                    self._hold_back(record)
                    taken = self._neighbours_token(record, current)
                    if taken is not None:
                        return taken

                # Else wait again if a neighbour failed while we waited.
                if self._wait_left() == 0:
                    return await self._request(current, record)

    def earliest_attempt(self) -> float | None:
        floors = (self._floor, self._inner.earliest_attempt())
        return max((f for f in floors if f is not None), default=None)

    async def record_failure(self, wait: float) -> None:
        await self._inner.record_failure(wait)
        now = self._clock.now()
        self._floor = _later(self._floor, now + wait)

        async with self._file.lock.hold(self._lock_patience):
            record = self._file.read()
            if record is not None and record.requested_at != self._requested_at:
                # A neighbour has asked since; its record is the newer one.
                return
            self._file.write(
                requested_at=self._requested_at,
                token=self._keepable(record),
                failures=max(self._backoff.failures, record.failures if record else 0),
                retry_at=self._clock.to_wall(now + wait),
            )

    async def watch(self, adopt: Adopt) -> None:
        inner = asyncio.create_task(self._inner.watch(adopt))
        try:
            while True:
                await asyncio.sleep(self._poll_interval)
                token = self._poll()
                if token is not None:
                    await adopt(token)
        finally:
            inner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await inner

    async def close(self) -> None:
        await self._inner.close()

    # Requests.

    async def _request(
        self, current: AccessToken | None, record: StateRecord | None
    ) -> AccessToken:
        failure = self._backoff.failures + 1
        requested_at = self._clock.to_wall(self._clock.now())
        self._requested_at = requested_at

        # Written before the request is sent, as if it will fail: a process
        # that dies waiting for the answer leaves its successor this wait.
        self._file.write(
            requested_at=requested_at,
            token=self._keepable(record, current),
            failures=failure,
            retry_at=requested_at + wait_after(self._backoff, failure),
        )

        token = await self._inner.obtain(current)

        self._remember(token)
        self._file.write(
            requested_at=requested_at,
            token=KeptToken.of(token, self._clock),
            failures=0,
            retry_at=None,
        )
        return token

    def _wait_left(self) -> float:
        """Seconds until the record allows a request; 0 once it does."""
        floor = self.earliest_attempt()
        return 0.0 if floor is None else max(0.0, floor - self._clock.now())

    async def _wait_for_floor(self) -> None:
        delay = self._wait_left()
        if delay == 0:
            return
        log.info(
            "state file %s records a recent token request; asking again in %s",
            self._file.path,
            format_duration(delay),
        )
        await asyncio.sleep(delay)

    def _neighbours_token(
        self, record: StateRecord, current: AccessToken | None
    ) -> AccessToken | None:
        """The token on file, if it is newer than `current` and not yet due."""
        token = self._servable(record, report=False)
        if token is None or not is_newer(token, current):
            return None
        if self._clock.now() >= refresh_due(token, self._timing):
            return None

        self._remember(token)
        log.info(
            "a neighbour sharing %s has obtained token %s; no request needed",
            self._file.path,
            token.fingerprint,
        )
        # The very object the watch adopted, if it did, so the supervisor
        # can tell the token is not a new grant.
        latest = self._latest
        return latest if latest is not None and latest.value == token.value else token

    # The backoff on record.

    def _hold_back(self, record: StateRecord) -> None:
        """Make no request before the record allows one."""
        walls: list[float] = []
        if record.retry_at is not None:
            walls.append(record.retry_at)
        if record.requested_at is not None:
            walls.append(record.requested_at + self._backoff.base)
        if not walls:
            return

        # A cap lowered since the file was written is the cap now.
        latest = self._clock.now() + self._backoff.cap
        floor = min(self._clock.from_wall(max(walls)), latest)
        self._floor = _later(self._floor, floor)

    # Tokens.

    def _servable(self, record: StateRecord, *, report: bool) -> AccessToken | None:
        if record.token is None:
            return None
        token = record.token.to_token(self._clock)
        now = self._clock.now()
        if is_servable(token, self._timing, now):
            redactor.add_token(token.value)
            return token

        if report:
            left = token.seconds_left(now)
            why = (
                f"expired {format_duration(-left)} ago"
                if left <= 0
                else f"expires in {format_duration(left)}, within the "
                f"{format_duration(self._timing.expiry_margin)} expiry margin"
            )
            log.warning(
                "the token in state file %s %s; not serving it", self._file.path, why
            )
        return None

    def _remember(self, token: AccessToken) -> None:
        if is_newer(token, self._latest):
            self._latest = token

    def _keepable(
        self, record: StateRecord | None, current: AccessToken | None = None
    ) -> KeptToken | None:
        """The newest token known, to keep on file while a request is out."""
        known = [t for t in (self._latest, current) if t is not None]
        if record is not None and record.token is not None:
            known.append(record.token.to_token(self._clock))
        newest = max(known, key=lambda token: token.expiry, default=None)
        return None if newest is None else KeptToken.of(newest, self._clock)

    def _poll(self) -> AccessToken | None:
        """A neighbour's newer token, if the file has changed since last seen."""
        if not self._file.changed():
            return None

        record = self._file.read()
        if record is None:
            return None
        # A neighbour's request may be in flight: its failure is not yet
        # one to count, only a reason to wait.
        self._hold_back(record)
        token = self._servable(record, report=False)
        if token is None or not is_newer(token, self._latest):
            return None
        self._remember(token)
        return token

    def _announce(self, record: StateRecord) -> None:
        if record.failures == 0:
            return
        log.info(
            "state file %s: token requests failed since the last grant: %d; "
            "the next waits %s",
            self._file.path,
            record.failures,
            format_duration(self._wait_left()),
        )


def _later(floor: float | None, moment: float) -> float:
    return moment if floor is None else max(floor, moment)
