"""The errors tokend raises, as one tree.

    TokendError
    ├── ConfigError            a setting is missing or malformed (exit 2)
    ├── ListenError            an address cannot be listened on (exit 1)
    ├── DaemonUnreachable      `tokend token` or `check` cannot reach a daemon
    └── GrantError             a token request did not yield a token
        ├── RetryableError     the provider or the path to it is unwell
        │   └── TransportError the request never got an HTTP answer
        ├── CredentialsRejected the provider refused the credentials
        └── BadResponse        an answer tokend cannot trust

Messages are written for the operator who reads them in a log: they say
what happened and, where it helps, what to change. None carries a header,
the form body, a secret or a token.
"""

from __future__ import annotations


class TokendError(Exception):
    """Base class of every error tokend raises on purpose."""


class ConfigError(TokendError):
    """A setting is missing or malformed; start-up stops with exit status 2."""


class ListenError(TokendError):
    """A listener cannot be opened: address in use, bad socket path."""


class DaemonUnreachable(TokendError):
    """No answer from a running daemon at the address asked."""


class GrantError(TokendError):
    """A token request failed; `reason` is a short label for metrics."""

    reason = "error"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryableError(GrantError):
    """A failure worth retrying with backoff: 5xx, 408, 429, HTML, bad JSON."""

    reason = "unavailable"


class TransportError(RetryableError):
    """No HTTP answer at all: refused, reset, timed out, name not resolved."""

    reason = "transport"


class CredentialsRejected(GrantError):
    """The provider refused the client id, secret or refresh token."""

    reason = "rejected"


class BadResponse(GrantError):
    """An HTTP answer that does not hold a token tokend can trust."""

    reason = "bad_response"
