"""What the state file holds, and its JSON form read strictly.

Times are wall-clock seconds since the Unix epoch: the file outlives the
process, and a loop time means nothing to the next one. A reader that finds
anything it does not expect raises `MalformedState` with a message naming
the field, never its value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from daemon.clock import Clock
from daemon.token import AccessToken

FORMAT = 1

# Far more than a record needs; a bigger file is not one of ours.
LARGEST = 64 * 1024


class MalformedState(ValueError):
    """The file is not a state record this version can read.

    The message is a predicate for "the state file ...": "is empty".
    """


@dataclass(frozen=True)
class KeptToken:
    """A token as the file keeps it; the value never appears in `repr`."""

    value: str = field(repr=False)
    issued_at: float
    expires_at: float

    @classmethod
    def of(cls, token: AccessToken, clock: Clock) -> KeptToken:
        return cls(
            token.value, clock.to_wall(token.issued), clock.to_wall(token.expiry)
        )

    def to_token(self, clock: Clock) -> AccessToken:
        """The token on this process's loop clock."""
        lifetime = self.expires_at - self.issued_at
        return AccessToken(self.value, clock.from_wall(self.expires_at), lifetime)


@dataclass(frozen=True)
class StateRecord:
    """One state file: the account, its token, and its recent requests.

    `failures` counts the requests since the last grant that did not yield
    a token, the one in flight included: it is counted before it is sent,
    so a process that dies mid-request still leaves it on the record.
    `retry_at` is the earliest moment the backoff allows the next request.
    """

    account: str
    written_at: float
    token: KeptToken | None = None
    requested_at: float | None = None
    failures: int = 0
    retry_at: float | None = None

    def encode(self) -> bytes:
        token = None
        if self.token is not None:
            token = {
                "access_token": self.token.value,
                "issued_at": self.token.issued_at,
                "expires_at": self.token.expires_at,
            }
        document = {
            "format": FORMAT,
            "account": self.account,
            "written_at": self.written_at,
            "token": token,
            "requested_at": self.requested_at,
            "failures": self.failures,
            "retry_at": self.retry_at,
        }
        return (json.dumps(document, indent=2) + "\n").encode()


def decode(data: bytes) -> StateRecord:
    """The record in `data`; raises `MalformedState` saying what is wrong."""
    if len(data) > LARGEST:
        raise MalformedState(f"is larger than {LARGEST} bytes")
    if not data.strip():
        raise MalformedState("is empty")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise MalformedState("is not JSON (cut off while written?)") from None
    if not isinstance(document, dict):
        raise MalformedState("is not a JSON object")

    version = document.get("format")
    if version != FORMAT or isinstance(version, bool):
        raise MalformedState(f"is not in format {FORMAT}")

    account = document.get("account")
    if not isinstance(account, str) or not account:
        raise MalformedState("names no account")

    return StateRecord(
        account=account,
        written_at=_moment(document, "written_at"),
        token=_token(document.get("token")),
        requested_at=_optional_moment(document, "requested_at"),
        failures=_failures(document.get("failures")),
        retry_at=_optional_moment(document, "retry_at"),
    )


def _token(value: object) -> KeptToken | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedState("has a token that is not an object")

    secret = value.get("access_token")
    if not isinstance(secret, str) or not secret.strip():
        raise MalformedState("has a token without its access_token")

    issued = _moment(value, "issued_at", "token.")
    expires = _moment(value, "expires_at", "token.")
    if expires <= issued:
        raise MalformedState("has a token that expires before it was issued")
    return KeptToken(secret, issued, expires)


def _failures(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedState("has a failure count that is not a whole number")
    return value


def _moment(document: dict[str, object], name: str, prefix: str = "") -> float:
    value = document.get(name)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise MalformedState(f"has a {prefix}{name} that is not epoch seconds")
    return float(value)


def _optional_moment(document: dict[str, object], name: str) -> float | None:
    if document.get(name) is None:
        return None
    return _moment(document, name)
