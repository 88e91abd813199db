"""The refresh supervisor: owns the current token and decides every grant.

One task sleeps on the loop's clock until the current token may be
refreshed (issued + refresh_after + jitter), asks its `TokenSource`, and
on failure waits with backoff while the current token keeps being served
until its margin. Readers only look at the held token: no request from a
client ever causes an upstream call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from daemon.clock import Clock
from daemon.durations import format_duration
from daemon.errors import CredentialsRejected, GrantError, RetryableError
from daemon.policy import Timing, is_newer, is_servable, refresh_due, servable_until
from daemon.retry import Backoff
from daemon.sources import TokenSource
from daemon.token import AccessToken

log = logging.getLogger("tokend.supervisor")

_CLOCK_TICK = 0.001


class Observer(Protocol):
    """Receives the supervisor's events, for metrics."""

    def attempt_finished(self, outcome: str, seconds: float) -> None: ...

    def token_changed(self, token: AccessToken) -> None: ...


@dataclass(frozen=True)
class Status:
    """The supervisor's state for health output; never the token itself."""

    state: str
    fingerprint: str | None
    expires_in: float | None
    servable_for: float | None
    refresh_in: float | None
    last_error: str | None
    consecutive_failures: int
    last_success: float | None
    alive: bool

    @property
    def ready(self) -> bool:
        return self.servable_for is not None and self.servable_for > 0


class Supervisor:
    """Holds the token, schedules refreshes, retries with backoff."""

    def __init__(
        self,
        source: TokenSource,
        timing: Timing,
        backoff: Backoff,
        clock: Clock,
        observer: Observer | None = None,
        jitter: Callable[[float], float] = lambda limit: random.uniform(0, limit),
    ) -> None:
        self._source = source
        self._timing = timing
        self._backoff = backoff
        self._clock = clock
        self._observer = observer
        self._jitter = jitter

        self._token: AccessToken | None = None
        self._next_attempt: float | None = None
        self._last_error: str | None = None
        self._last_success: float | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._attempt: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None

    # Readers: cheap, synchronous, never a call upstream.

    def current(self) -> AccessToken | None:
        """The token to hand out now, or None while none is servable."""
        token = self._token
        return token if is_servable(token, self._timing, self._clock.now()) else None

    def retry_in(self) -> float:
        """Seconds until a token may next be obtained (for ``Retry-After``)."""
        if self._next_attempt is None:
            return 0.0
        return max(0.0, self._next_attempt - self._clock.now())

    @property
    def source(self) -> TokenSource:
        return self._source

    @property
    def alive(self) -> bool:
        """Whether the refresh loop is running (liveness)."""
        return self._task is not None and not self._task.done()

    def status(self) -> Status:
        now = self._clock.now()
        token = self._token
        servable = is_servable(token, self._timing, now)
        return Status(
            state=self._state_name(token, servable, now),
            fingerprint=token.fingerprint if token else None,
            expires_in=token.expiry - now if token else None,
            servable_for=servable_until(token, self._timing) - now
            if servable and token
            else None,
            refresh_in=self.retry_in() if self._next_attempt is not None else None,
            last_error=self._last_error,
            consecutive_failures=self._backoff.failures,
            last_success=self._last_success,
            alive=self.alive,
        )

    # Lifecycle.

    async def start(self) -> None:
        """Adopt a kept token if there is one, then start the refresh loop."""
        kept = await self._source.initial()
        if kept is not None:
            self._install(kept, adopted=True)
        self._task = asyncio.create_task(self._run(), name="tokend-refresh")
        self._task.add_done_callback(lambda _: self._changed.set())
        self._watch = asyncio.create_task(
            self._source.watch(self.adopt), name="tokend-watch"
        )

    async def stop(self) -> None:
        """Cancel the loop, any call in flight and any backoff sleep."""
        for task in (self._watch, self._task, self._attempt):
            if task is not None:
                task.cancel()
        for task in (self._watch, self._task, self._attempt):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._source.close()

    async def wait_ready(self) -> AccessToken:
        """Wait until a token is servable (for start-up and tests)."""
        while True:
            token = self.current()
            if token is not None:
                return token
            if self._task is None or self._task.done():
                raise RuntimeError("the refresh loop is not running")
            self._changed.clear()
            await self._changed.wait()

    async def adopt(self, token: AccessToken) -> None:
        """Take a token that someone else obtained, if it is newer."""
        if is_newer(token, self._token):
            self._install(token, adopted=True)
            self._wake.set()

    async def refresh_now(self) -> None:
        """Attempt a refresh now; concurrent calls share one attempt."""
        await asyncio.shield(self._shared_attempt())

    # The loop.

    async def _run(self) -> None:
        if self._token is None:
            self._next_attempt = self._earliest(self._clock.now())

        while True:
            await self._sleep_until_due()
            try:
                await asyncio.shield(self._shared_attempt())
            except Exception:
                # A fault of ours or of a store must not end the loop that
                # keeps the token fresh: say so, wait, and try again.
                wait = self._backoff.next_wait()
                self._last_error = "internal: unexpected error (see the log)"
                self._next_attempt = self._clock.now() + wait
                log.exception(
                    "refresh attempt failed unexpectedly; next attempt in %s",
                    format_duration(wait),
                )

    def _shared_attempt(self) -> asyncio.Task[None]:
        """The attempt under way, or a new one: triggers collapse into one."""
        if self._attempt is None or self._attempt.done():
            self._attempt = asyncio.create_task(self._obtain_once(self._token))
        return self._attempt

    async def _sleep_until_due(self) -> None:
        while True:
            due = self._next_attempt
            if due is None:
                return
            delay = due - self._clock.now()
            # Loop clocks are coarse (uvloop counts milliseconds): a wait
            # shorter than their tick may wake no later than it began.
            if delay <= _CLOCK_TICK:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _obtain_once(self, current: AccessToken | None) -> None:
        # `current` is the token held when the attempt was decided: one
        # adopted before the task first runs must not make it look not due.
        started = self._clock.now()
        try:
            token = await self._source.obtain(current)
        except GrantError as exc:
            await self._failed(exc, self._clock.now() - started)
            return
        except Exception as exc:
            log.error("token source failed unexpectedly", exc_info=True)
            unexpected = RetryableError(f"unexpected {type(exc).__name__}")
            await self._failed(unexpected, self._clock.now() - started)
            return

        elapsed = self._clock.now() - started
        held = self._token
        if held is not current and held is not None and token.value == held.value:
            # Adopted while the attempt ran (a fleet replica took it from the
            # lease holder): it was installed then, and nothing was granted.
            self._backoff.reset()
            self._last_error = None
            return
        if current is not None and token.value == current.value:
            # Too early for the provider (its clock and ours differ): keep
            # the token and ask again later, never in a tight loop.
            wait = self._backoff.next_wait()
            self._token = token if token.expiry > current.expiry else current
            self._next_attempt = self._earliest(self._clock.now() + wait)
            self._report("same", elapsed)
            log.info(
                "grant returned the same token %s (expires in %s); asking again in %s",
                token.fingerprint,
                format_duration(token.expiry - self._clock.now()),
                format_duration(wait),
            )
            return

        self._backoff.reset()
        self._last_error = None
        self._install(token, adopted=False)
        self._report("new", elapsed)

    async def _failed(self, exc: GrantError, elapsed: float) -> None:
        if isinstance(exc, CredentialsRejected):
            wait = self._backoff.give_up_wait()
        else:
            wait = self._backoff.next_wait(exc.retry_after)
        self._last_error = f"{exc.reason}: {exc}"
        self._next_attempt = self._earliest(self._clock.now() + wait)
        await self._source.record_failure(wait)
        self._report(exc.reason, elapsed)

        level = (
            logging.ERROR if isinstance(exc, CredentialsRejected) else logging.WARNING
        )
        log.log(
            level,
            "grant failed (%s), attempt %d; next attempt in %s; %s",
            exc,
            self._backoff.failures,
            format_duration(wait),
            self._serving_note(),
        )

    def _install(self, token: AccessToken, *, adopted: bool) -> None:
        now = self._clock.now()
        self._token = token
        self._changed.set()
        self._last_success = self._clock.wall_now()
        due = refresh_due(token, self._timing) + self._jitter(self._timing.jitter)
        self._next_attempt = self._earliest(max(due, now))
        if self._observer is not None:
            self._observer.token_changed(token)
        log.info(
            "%s token %s, expires in %s, next refresh in %s",
            "adopted" if adopted else "obtained new",
            token.fingerprint,
            format_duration(token.expiry - now),
            format_duration(self._next_attempt - now),
        )

    def _earliest(self, moment: float) -> float:
        floor = self._source.earliest_attempt()
        return moment if floor is None else max(moment, floor)

    def _report(self, outcome: str, seconds: float) -> None:
        if self._observer is not None:
            self._observer.attempt_finished(outcome, seconds)

    def _serving_note(self) -> str:
        token = self.current()
        if token is None:
            return "no token is servable"
        left = servable_until(token, self._timing) - self._clock.now()
        return f"still serving {token.fingerprint} for {format_duration(left)}"

    def _state_name(self, token: AccessToken | None, servable: bool, now: float) -> str:
        if token is None:
            return "starting" if self._last_error is None else "failing"
        if not servable:
            return "expired"
        if now >= refresh_due(token, self._timing):
            return "refreshing"
        return "fresh"
