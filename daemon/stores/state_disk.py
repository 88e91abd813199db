"""The state file on disk: read with suspicion, written atomically, faults said once."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from daemon.clock import Clock
from daemon.durations import format_duration
from daemon.stores.durable_file import (
    Contents,
    Signature,
    read_private,
    replace_atomically,
    signature_of,
)
from daemon.stores.host_lock import HostLock
from daemon.stores.state_record import (
    LARGEST,
    KeptToken,
    MalformedState,
    StateRecord,
    decode,
)

log = logging.getLogger("tokend.statefile")

# Neighbours on one host read one clock, so a time this far ahead of it
# means the wall clock went back or the file came from somewhere else.
FUTURE_TOLERANCE = 5.0


class StateFile:
    """One account's state file at `path`, and the lock beside it.

    `account` names the credentials and token URL (see
    `Credentials.fingerprint`); a record written for another is not read.
    """

    def __init__(self, path: Path, account: Callable[[], str], clock: Clock) -> None:
        self.path = path
        self.lock = HostLock(path.with_name(path.name + ".lock"))
        self._account = account
        self._clock = clock
        self._seen: Signature | None = None
        self._problem: str | None = None

    def changed(self) -> bool:
        """Whether the file is another than the one last read or written.

        A stat, no read: cheap enough to ask every second.
        """
        try:
            signature = signature_of(self.path)
        except OSError:
            signature = None
        if signature == self._seen:
            return False
        # Noted even if the file then proves unreadable, so that a bad
        # file is read once, not once a second.
        self._seen = signature
        return True

    def read(self) -> StateRecord | None:
        """The record on file if it is sound and this account's; says once why not."""
        try:
            contents = read_private(self.path, LARGEST)
        except FileNotFoundError:
            self._seen = None
            self._report("does not exist yet")
            return None
        except OSError as exc:
            self._report(f"cannot be read ({exc.strerror})")
            return None

        self._seen = contents.signature
        self._note_mode(contents)
        try:
            record = decode(contents.data)
        except MalformedState as exc:
            self._report(str(exc))
            return None

        problem = self._foreign(record)
        if problem is not None:
            self._report(problem)
            return None
        self._problem = None
        return record

    def write(
        self,
        *,
        requested_at: float | None,
        token: KeptToken | None,
        failures: int,
        retry_at: float | None,
    ) -> None:
        """Replace the file with this record; a failure is a warning, never more."""
        record = StateRecord(
            account=self._account(),
            written_at=self._clock.to_wall(self._clock.now()),
            token=token,
            requested_at=requested_at,
            failures=failures,
            retry_at=retry_at,
        )
        try:
            self._seen = replace_atomically(self.path, record.encode())
        except OSError as exc:
            log.warning(
                "cannot write state file %s (%s); the token is still served, "
                "but a restart will not know of it",
                self.path,
                exc.strerror,
            )

    def _foreign(self, record: StateRecord) -> str | None:
        """Why the record is not this daemon's to use, if it is not."""
        if record.account != self._account():
            return "was written for other credentials or another token URL"

        wall_now = self._clock.to_wall(self._clock.now())
        latest = max(record.written_at, record.requested_at or 0.0)
        if latest > wall_now + FUTURE_TOLERANCE:
            ahead = format_duration(latest - wall_now)
            return (
                f"was written {ahead} in the future "
                "(has the clock gone back, or was the file copied?)"
            )
        return None

    def _report(self, problem: str) -> None:
        # Every change to the file is read: a problem that persists is
        # worth one warning, not one per poll.
        if problem == self._problem:
            return
        self._problem = problem
        log.warning("state file %s %s; going on without it", self.path, problem)

    def _note_mode(self, contents: Contents) -> None:
        if contents.loose_mode is None:
            return
        if contents.tighten_error is None:
            log.warning(
                "state file %s had mode %04o, open to other users; set it to 0600",
                self.path,
                contents.loose_mode,
            )
            return
        log.warning(
            "state file %s has mode %04o, open to other users, and cannot be "
            "set to 0600 (%s)",
            self.path,
            contents.loose_mode,
            contents.tighten_error,
        )
