"""One refresh-token grant against the token URL, and a strict reading of it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from daemon.errors import (
    BadResponse,
    CredentialsRejected,
    RetryableError,
    TransportError,
)
from daemon.transport import Transport, UpstreamResponse

_REJECTING_ERRORS = frozenset(
    {"invalid_client", "invalid_grant", "unauthorized_client"}
)


@dataclass(frozen=True)
class Credentials:
    """The account's OAuth application credentials, read when a grant needs them."""

    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)

    def fingerprint(self, token_url: str) -> str:
        """Names this account at this URL for state files and Redis keys.

        A salted hash: it tells two accounts apart without revealing any of
        the three values.
        """
        material = "\0".join(
            ("tokend-credentials-v1", token_url, self.client_id, self.refresh_token)
        )
        return hashlib.sha256(material.encode()).hexdigest()[:24]

    def secrets(self) -> tuple[str, ...]:
        return (self.client_secret, self.refresh_token)


@dataclass(frozen=True)
class Grant:
    """What a successful grant returned: the token and its seconds left."""

    access_token: str = field(repr=False)
    expires_in: int


class OAuthClient:
    """Requests a token with the refresh-token grant, one call per `grant()`."""

    def __init__(self, transport: Transport, token_url: str, *, timeout: float) -> None:
        self._transport = transport
        self._token_url = token_url
        self._timeout = timeout

    async def grant(self, credentials: Credentials) -> Grant:
        form = {
            "grant_type": "refresh_token",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "refresh_token": credentials.refresh_token,
        }
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._transport.post_form(self._token_url, form)
        except TimeoutError:
            raise TransportError(f"no answer within {self._timeout:g}s") from None
        return parse_grant(response)


def parse_grant(response: UpstreamResponse) -> Grant:
    """The token in a token-URL answer, or the error the answer amounts to."""
    status = response.status
    retry_after = parse_retry_after(response.header("retry-after"))

    if status in (408, 429) or status >= 500:
        raise RetryableError(
            f"HTTP {status}{_describe(response)}", retry_after=retry_after
        )

    document = _json_object(response)
    if status != 200:
        code = document.get("error") if document else None
        if status == 401 or (status == 400 and code in _REJECTING_ERRORS):
            label = f" {code}" if isinstance(code, str) and code.isidentifier() else ""
            raise CredentialsRejected(
                f"HTTP {status}{label}: the provider refused the credentials; "
                "check the client id, client secret and refresh token"
            )
        raise BadResponse(f"HTTP {status}{_describe(response)}")

    if document is None:
        raise RetryableError(f"HTTP 200 with a body that is not JSON{_kind(response)}")
    return _read_grant(document)


def _read_grant(document: dict[str, object]) -> Grant:
    token = document.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise BadResponse("HTTP 200 without an access_token")

    expires_in = document.get("expires_in")
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int)
        or expires_in <= 0
    ):
        raise BadResponse("HTTP 200 without a positive whole expires_in")

    token_type = document.get("token_type", "bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise BadResponse("HTTP 200 with a token_type other than bearer")
    return Grant(token.strip(), expires_in)


def _json_object(response: UpstreamResponse) -> dict[str, object] | None:
    try:
        document = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _describe(response: UpstreamResponse) -> str:
    """A safe summary of an error body: the OAuth error code, or its kind."""
    document = _json_object(response)
    if document is not None:
        code = document.get("error")
        if isinstance(code, str) and code.isidentifier():
            return f" {code}"
        return ""
    return _kind(response)


def _kind(response: UpstreamResponse) -> str:
    if not response.body:
        return " with an empty body"
    if b"<html" in response.body[:512].lower():
        return " with an HTML page"
    return ""


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` in seconds or HTTP-date form."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    wall_now = time.time() if now is None else now
    return max(0.0, moment.timestamp() - wall_now)
