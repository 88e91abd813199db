"""Reading the token URL's answers: a strict parser and the error classes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from daemon.errors import BadResponse, CredentialsRejected, RetryableError
from daemon.oauth import parse_grant, parse_retry_after
from daemon.transport import UpstreamResponse

TOKEN = "tok-9f2c51a7e0b34d"


def answer(status: int, body: object, **headers: str) -> UpstreamResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return UpstreamResponse(
        status, raw, {k.replace("_", "-"): v for k, v in headers.items()}
    )


def test_a_grant_is_read_from_the_provider_form() -> None:
    """A 200 with the provider's fields gives the token and its seconds left."""
    body = {
        "access_token": TOKEN,
        "token_type": "bearer",
        "refresh_token": "r",
        "expires_in": 14399,
    }

    grant = parse_grant(answer(200, body))

    assert (grant.access_token, grant.expires_in) == (TOKEN, 14399)


@pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER"])
def test_the_token_type_is_bearer_in_any_case(token_type: str) -> None:
    """The token type is accepted whatever its case."""
    body = {"access_token": TOKEN, "token_type": token_type, "expires_in": 10}

    grant = parse_grant(answer(200, body))

    assert grant.expires_in == 10


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"token_type": "bearer", "expires_in": 10}, "without an access_token"),
        ({"access_token": "", "expires_in": 10}, "without an access_token"),
        ({"access_token": "  ", "expires_in": 10}, "without an access_token"),
        ({"access_token": 5, "expires_in": 10}, "without an access_token"),
        ({"access_token": TOKEN}, "positive whole expires_in"),
        ({"access_token": TOKEN, "expires_in": "3600"}, "positive whole expires_in"),
        ({"access_token": TOKEN, "expires_in": 3600.5}, "positive whole expires_in"),
        ({"access_token": TOKEN, "expires_in": 0}, "positive whole expires_in"),
        ({"access_token": TOKEN, "expires_in": -1}, "positive whole expires_in"),
        ({"access_token": TOKEN, "expires_in": True}, "positive whole expires_in"),
        ({"access_token": TOKEN, "expires_in": 9, "token_type": "mac"}, "other than"),
    ],
)
def test_a_200_without_a_usable_token_is_a_bad_response(
    body: dict[str, object], message: str
) -> None:
    """A 200 that lacks a non-empty token or a positive whole expiry is refused."""

    with pytest.raises(BadResponse) as caught:
        parse_grant(answer(200, body))

    assert message in str(caught.value)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_server_trouble_is_retryable(status: int) -> None:
    """Timeouts, throttling and 5xx are worth retrying."""

    with pytest.raises(RetryableError) as caught:
        parse_grant(answer(status, {"error": "temporarily_unavailable"}))

    assert str(caught.value) == f"HTTP {status} temporarily_unavailable"


@pytest.mark.parametrize(
    "body",
    [b"<html><body>Service Unavailable</body></html>", b"{not json", b"", b"[1, 2]"],
)
def test_a_200_that_is_not_a_json_object_is_retryable(body: bytes) -> None:
    """An HTML page or broken JSON in a 200 is the provider unwell, not a verdict."""

    with pytest.raises(RetryableError) as caught:
        parse_grant(answer(200, body))

    assert str(caught.value).startswith("HTTP 200 with a body that is not JSON")


def test_an_html_outage_page_is_described_without_its_content() -> None:
    """A 503 HTML page is reported by its kind, not by its text."""
    page = b"<HTML><title>Maintenance window for api-campaign</title></HTML>"

    with pytest.raises(RetryableError) as caught:
        parse_grant(answer(503, page))

    assert str(caught.value) == "HTTP 503 with an HTML page"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            401,
            {
                "error": "invalid_client",
                "error_description": "Unable to find matching client for abc",
            },
        ),
        (400, {"error": "invalid_grant"}),
        (400, {"error": "invalid_client"}),
        (401, b"<html>denied</html>"),
        (401, b""),
    ],
)
def test_refused_credentials_are_rejected(status: int, body: object) -> None:
    """400 with invalid_client or invalid_grant, and any 401, reject credentials."""

    with pytest.raises(CredentialsRejected) as caught:
        parse_grant(answer(status, body))

    assert "check the client id, client secret and refresh token" in str(caught.value)
    assert "abc" not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, {"error": "unsupported_grant_type"}), (404, b"not here"), (302, b"")],
)
def test_other_answers_are_bad_responses(status: int, body: object) -> None:
    """Any other non-200 answer is a bad response, named by status and code."""

    with pytest.raises(BadResponse) as caught:
        parse_grant(answer(status, body))

    assert str(caught.value).startswith(f"HTTP {status}")


def test_retry_after_in_seconds_is_carried_on_the_error() -> None:
    """A Retry-After in seconds travels with the retryable error."""

    with pytest.raises(RetryableError) as caught:
        parse_grant(answer(429, {"error": "x"}, retry_after="120"))

    assert caught.value.retry_after == 120


def test_retry_after_as_an_http_date_is_seconds_from_now() -> None:
    """A Retry-After given as an HTTP date becomes the seconds until then."""
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)

    seconds = parse_retry_after(later, now=now.timestamp())

    assert seconds == pytest.approx(90)


@pytest.mark.parametrize("value", ["soon", "-5", "", "Tue, 99 Foo 2026"])
def test_a_malformed_retry_after_is_ignored(value: str) -> None:
    """A Retry-After that is neither seconds nor a date is ignored."""

    seconds = parse_retry_after(value)

    assert seconds is None


def test_a_past_retry_after_date_means_no_wait() -> None:
    """A Retry-After date in the past asks for no wait at all."""

    seconds = parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT")

    assert seconds == 0
