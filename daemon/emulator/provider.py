"""The Acoustic OAuth server's rules as pure logic on an injected clock.

One account: a client id and secret, a refresh token. A grant within
`refresh_window` of the current token's issue returns that token with the
seconds it has left; a later grant issues a new one, and the old one stays
valid until its own end. Queued faults stand in for the next answers, and
every request is recorded without its secrets.
"""

from __future__ import annotations

import math
import secrets
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from daemon.durations import format_duration
from daemon.emulator import envelopes
from daemon.emulator.answers import Answer, json_answer, json_error
from daemon.emulator.faults import ENDPOINTS, Endpoint, Fault
from daemon.token import fingerprint

TOKEN_PATH = "/oauth/token"  # noqa: S105  (a URL path, not a secret)
XMLAPI_PATH = "/XMLAPI"

# The demo account's credentials are public by design: they unlock nothing.
DEMO_CLIENT_ID = "demo-client"
DEMO_CLIENT_SECRET = "demo-secret"  # noqa: S105
DEMO_REFRESH_TOKEN = "demo-refresh-token"  # noqa: S105

# The provider's documented limit per organisation; the next is rejected.
MAX_CONCURRENT_REQUESTS = 10

_FORM_FIELDS = ("grant_type", "client_id", "client_secret", "refresh_token")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator saw it, never with a secret or a token.

    `at` is the provider's clock; `fingerprint` names the token issued or
    presented, as `daemon.token.fingerprint` does.
    """

    at: float
    endpoint: Endpoint
    outcome: str
    client_id: str | None = None
    fingerprint: str | None = None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class _Issued:
    value: str
    issued: float
    expiry: float


@dataclass
class _Queued:
    fault: Fault
    remaining: int


class Provider:
    """The token endpoint and a minimal XML API, on `clock` (seconds)."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        client_id: str = DEMO_CLIENT_ID,
        client_secret: str = DEMO_CLIENT_SECRET,
        refresh_token: str = DEMO_REFRESH_TOKEN,
        lifetime: float = 14400.0,
        refresh_window: float = 10800.0,
    ) -> None:
        _check_settings(client_id, client_secret, refresh_token)
        _check_timing(lifetime, refresh_window)
        self._clock = clock
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._lifetime = lifetime
        self._refresh_window = refresh_window

        self._current: _Issued | None = None
        self._expiries: dict[str, float] = {}
        self._faults: dict[Endpoint, deque[_Queued]] = {
            "token": deque(),
            "xmlapi": deque(),
        }
        self._requests: list[RecordedRequest] = []

    # The two endpoints.

    def token_request(self, form: Mapping[str, str]) -> Answer:
        """Answers ``POST /oauth/token`` with the refresh-token grant's rules."""
        now = self._clock()
        client_id = form.get("client_id") or None
        fault = self._next_fault("token")
        if fault is not None and fault.kind != "missing":
            self._record(now, "token", f"fault:{fault.kind}", client_id)
            return fault.answer()

        refusal = self._refusal(form)
        if refusal is not None:
            outcome, answer = refusal
            self._record(now, "token", outcome, client_id)
            return answer

        token, outcome = self._token_at(now)
        grant: dict[str, object] = {
            "access_token": token.value,
            "token_type": "bearer",
            "refresh_token": self._refresh_token,
            # Rounded to the microsecond first: (now + lifetime) - now can
            # come out a hair under the lifetime in floating point.
            "expires_in": math.floor(round(token.expiry - now, 6)),
        }
        if fault is not None:
            # The grant happened; only its answer comes out wrong.
            grant = fault.alter(grant)
            outcome = f"fault:{fault.kind}"
        self._record(now, "token", outcome, client_id, fingerprint(token.value))
        return json_answer(200, grant)

    def xml_api(
        self, authorization: str | None, body: bytes, *, in_flight: int = 1
    ) -> Answer:
        """Answers ``POST /XMLAPI``; `in_flight` counts requests open, this one too."""
        now = self._clock()
        fault = self._next_fault("xmlapi")
        if fault is not None:
            self._record(now, "xmlapi", f"fault:{fault.kind}")
            return fault.answer()

        if in_flight > MAX_CONCURRENT_REQUESTS:
            self._record(now, "xmlapi", "busy")
            return envelopes.fault(*envelopes.TOO_MANY)

        token = _bearer(authorization)
        if token is None:
            self._record(now, "xmlapi", "no_token")
            return envelopes.fault(*envelopes.NO_TOKEN)

        named = fingerprint(token)
        expiry = self._expiries.get(token)
        if expiry is None:
            self._record(now, "xmlapi", "unknown", fingerprint=named)
            return envelopes.fault(*envelopes.UNKNOWN_TOKEN)
        if now >= expiry:
            self._record(now, "xmlapi", "expired", fingerprint=named)
            return envelopes.fault(*envelopes.EXPIRED_TOKEN)

        if b"<Envelope" not in body:
            self._record(now, "xmlapi", "not_envelope", fingerprint=named)
            return envelopes.fault(*envelopes.NOT_AN_ENVELOPE)
        self._record(now, "xmlapi", "valid", fingerprint=named)
        return envelopes.success()

    # What tests control and inspect.

    def inject(
        self, fault: Fault, times: int = 1, *, endpoint: Endpoint = "token"
    ) -> None:
        """Answer the next `times` requests to `endpoint` with `fault`.

        Faults queue in the order injected. A `missing` fault still grants
        when the request is good; every other kind replaces the answer.
        """
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError("times must be a whole number of at least 1")
        if not fault.answers(endpoint):
            raise ValueError(
                f"a {fault.kind} fault cannot answer the {endpoint} endpoint"
            )
        self._faults[endpoint].append(_Queued(fault, times))

    def clear_faults(self) -> int:
        """Drop every queued fault; returns how many answers they still had."""
        dropped = sum(
            queued.remaining for queue in self._faults.values() for queued in queue
        )
        for queue in self._faults.values():
            queue.clear()
        return dropped

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, oldest first (a copy)."""
        return list(self._requests)

    def grants(self) -> list[RecordedRequest]:
        """The token requests that issued a new token."""
        return [r for r in self._requests if r.outcome == "new"]

    def clear_requests(self) -> int:
        """Forget the record; returns how many requests it held."""
        count = len(self._requests)
        self._requests.clear()
        return count

    def is_valid(self, token: str) -> bool:
        """Whether `token` was issued here and has not reached its end."""
        expiry = self._expiries.get(token)
        return expiry is not None and self._clock() < expiry

    # The rules.

    def _refusal(self, form: Mapping[str, str]) -> tuple[str, Answer] | None:
        grant_type = form.get("grant_type")
        if grant_type and grant_type != "refresh_token":
            return "unsupported_grant_type", json_error(
                400,
                "unsupported_grant_type",
                "Only the refresh_token grant type is supported",
            )

        missing = [name for name in _FORM_FIELDS if not form.get(name)]
        if missing:
            return "invalid_request", json_error(
                400, "invalid_request", f"Missing parameter: {', '.join(missing)}"
            )

        client_id = form["client_id"]
        if not (
            secrets.compare_digest(client_id, self._client_id)
            and secrets.compare_digest(form["client_secret"], self._client_secret)
        ):
            return "invalid_client", json_error(
                401,
                "invalid_client",
                f"Unable to find matching client for {client_id}",
            )

        if not secrets.compare_digest(form["refresh_token"], self._refresh_token):
            return "invalid_grant", json_error(
                400, "invalid_grant", "Invalid refresh token"
            )
        return None

    def _token_at(self, now: float) -> tuple[_Issued, str]:
        current = self._current
        if current is not None and now < current.issued + self._refresh_window:
            return current, "same"

        token = _Issued(secrets.token_urlsafe(32), now, now + self._lifetime)
        self._current = token
        self._expiries[token.value] = token.expiry
        return token, "new"

    def _next_fault(self, endpoint: Endpoint) -> Fault | None:
        queue = self._faults[endpoint]
        if not queue:
            return None
        head = queue[0]
        head.remaining -= 1
        if head.remaining == 0:
            queue.popleft()
        return head.fault

    def _record(
        self,
        now: float,
        endpoint: Endpoint,
        outcome: str,
        client_id: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self._requests.append(
            RecordedRequest(now, endpoint, outcome, client_id, fingerprint)
        )


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _check_settings(client_id: str, client_secret: str, refresh_token: str) -> None:
    for name, value in (
        ("client id", client_id),
        ("client secret", client_secret),
        ("refresh token", refresh_token),
    ):
        if not value:
            raise ValueError(f"the {name} must not be empty")


def _check_timing(lifetime: float, refresh_window: float) -> None:
    # The provider speaks whole seconds: a shorter token would be
    # granted with expires_in 0.
    if not lifetime >= 1:
        raise ValueError(
            f"the lifetime must be at least 1s, not {format_duration(lifetime)}"
        )
    if not 0 <= refresh_window < lifetime:
        raise ValueError(
            "the refresh window must be shorter than the lifetime "
            f"({format_duration(refresh_window)} is not shorter than "
            f"{format_duration(lifetime)})"
        )
