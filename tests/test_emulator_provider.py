"""The emulated provider's rules, on a clock the tests move by hand."""

from __future__ import annotations

import json

import pytest

from daemon.emulator import Answer, Fault, Provider
from daemon.emulator.provider import MAX_CONCURRENT_REQUESTS

LIFETIME = 14400.0
WINDOW = 10800.0
SECRET = "s3cret-of-the-client"
REFRESH = "refresh-token-of-the-account"


class Clock:
    """A clock that stands still until a test moves it."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def provider(clock: Clock) -> Provider:
    return Provider(
        clock,
        client_id="client-7",
        client_secret=SECRET,
        refresh_token=REFRESH,
        lifetime=LIFETIME,
        refresh_window=WINDOW,
    )


def good_form(**changes: str) -> dict[str, str]:
    form = {
        "grant_type": "refresh_token",
        "client_id": "client-7",
        "client_secret": SECRET,
        "refresh_token": REFRESH,
    }
    form.update(changes)
    return form


def document(answer: Answer) -> dict[str, object]:
    parsed = json.loads(answer.body)
    assert isinstance(parsed, dict)
    return parsed


def bearer(provider: Provider) -> str:
    token = document(provider.token_request(good_form()))["access_token"]
    assert isinstance(token, str)
    return f"Bearer {token}"


ENVELOPE = b"<Envelope><Body><GetLists/></Body></Envelope>"


# Grants and the refresh window.


def test_first_grant_issues_a_token_for_the_whole_lifetime(provider: Provider) -> None:
    """The first grant answers 200 with a bearer token that lives the lifetime."""

    answer = provider.token_request(good_form())

    grant = document(answer)
    assert answer.status == 200
    assert grant["token_type"] == "bearer"
    assert grant["refresh_token"] == REFRESH
    assert grant["expires_in"] == 14400
    assert provider.is_valid(str(grant["access_token"]))


def test_grant_inside_the_window_returns_the_same_token_with_less_time(
    provider: Provider, clock: Clock
) -> None:
    """Inside the window the same token comes back with its whole seconds left."""
    first = document(provider.token_request(good_form()))
    clock.now += 1000.6

    again = document(provider.token_request(good_form()))

    assert again["access_token"] == first["access_token"]
    assert again["expires_in"] == 13399


def test_grant_just_before_the_window_ends_is_still_the_same_token(
    provider: Provider, clock: Clock
) -> None:
    """A grant a moment before the window closes still returns the current token."""
    first = document(provider.token_request(good_form()))
    clock.now += WINDOW - 0.001

    again = document(provider.token_request(good_form()))

    assert again["access_token"] == first["access_token"]
    assert again["expires_in"] == 3600


def test_grant_after_the_window_issues_a_new_token(
    provider: Provider, clock: Clock
) -> None:
    """Once the window has passed a grant issues a new token for a full lifetime."""
    first = document(provider.token_request(good_form()))
    clock.now += WINDOW

    second = document(provider.token_request(good_form()))

    assert second["access_token"] != first["access_token"]
    assert second["expires_in"] == 14400


def test_old_and_new_token_are_both_valid_during_the_overlap(
    provider: Provider, clock: Clock
) -> None:
    """After a new grant the previous token stays valid until its own end."""
    old = str(document(provider.token_request(good_form()))["access_token"])
    clock.now += WINDOW + 60
    new = str(document(provider.token_request(good_form()))["access_token"])

    both = (provider.is_valid(old), provider.is_valid(new))
    clock.now += LIFETIME - WINDOW - 60
    after_old_end = (provider.is_valid(old), provider.is_valid(new))

    assert both == (True, True)
    assert after_old_end == (False, True)


def test_a_token_is_invalid_from_its_expiry_on(
    provider: Provider, clock: Clock
) -> None:
    """A token stops being valid at the very moment its lifetime ends."""
    token = str(document(provider.token_request(good_form()))["access_token"])
    clock.now += LIFETIME - 0.001
    just_before = provider.is_valid(token)

    clock.now += 0.001

    assert just_before
    assert not provider.is_valid(token)


def test_a_token_never_issued_is_not_valid(provider: Provider) -> None:
    """`is_valid` is false for a string the provider never issued."""
    provider.token_request(good_form())

    valid = provider.is_valid("made-up-token")

    assert not valid


def test_grants_lists_only_the_requests_that_issued_a_token(
    provider: Provider, clock: Clock
) -> None:
    """`grants()` holds the new-token requests, not repeats or refusals."""
    provider.token_request(good_form())
    provider.token_request(good_form())
    provider.token_request(good_form(client_secret="wrong"))
    clock.now += WINDOW

    provider.token_request(good_form())

    assert [r.at for r in provider.grants()] == [5000.0, 5000.0 + WINDOW]


# Refusals.


@pytest.mark.parametrize(
    "changes", [{"client_id": "client-8"}, {"client_secret": "not-it"}]
)
def test_wrong_client_credentials_are_invalid_client(
    provider: Provider, changes: dict[str, str]
) -> None:
    """A wrong client id or secret is a 401 naming the client id given."""
    form = good_form(**changes)

    answer = provider.token_request(form)

    assert answer.status == 401
    assert document(answer) == {
        "error": "invalid_client",
        "error_description": f"Unable to find matching client for {form['client_id']}",
    }


def test_wrong_refresh_token_is_invalid_grant(provider: Provider) -> None:
    """A refresh token the account does not have is a 400 invalid_grant."""

    answer = provider.token_request(good_form(refresh_token="revoked"))

    assert answer.status == 400
    assert document(answer)["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "name", ["grant_type", "client_id", "client_secret", "refresh_token"]
)
def test_a_missing_field_is_invalid_request_naming_it(
    provider: Provider, name: str
) -> None:
    """Leaving out a form field is a 400 invalid_request that names the field."""
    form = good_form()
    del form[name]

    answer = provider.token_request(form)

    assert answer.status == 400
    assert document(answer)["error"] == "invalid_request"
    assert name in str(document(answer)["error_description"])


def test_another_grant_type_is_unsupported(provider: Provider) -> None:
    """A grant type other than refresh_token is a 400 unsupported_grant_type."""

    answer = provider.token_request(good_form(grant_type="client_credentials"))

    assert answer.status == 400
    assert document(answer)["error"] == "unsupported_grant_type"


def test_refusals_issue_no_token(provider: Provider) -> None:
    """A refused request leaves the provider without any token granted."""

    provider.token_request(good_form(client_secret="wrong"))

    assert provider.grants() == []
    assert [r.outcome for r in provider.requests] == ["invalid_client"]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lifetime": 0.5}, "at least 1s"),
        ({"lifetime": 3600.0, "refresh_window": 3600.0}, "shorter than the lifetime"),
        ({"refresh_window": -1.0}, "shorter than the lifetime"),
        ({"client_secret": ""}, "client secret must not be empty"),
    ],
)
def test_provider_refuses_settings_it_cannot_honour(
    clock: Clock, settings: dict[str, float | str], message: str
) -> None:
    """Impossible settings raise ValueError saying which rule they break."""

    with pytest.raises(ValueError, match=message):
        Provider(clock, **settings)  # type: ignore[arg-type]


# Faults on the token endpoint.


def test_a_status_fault_answers_with_its_status_body_and_retry_after(
    provider: Provider,
) -> None:
    """A status fault sends its status, its body and its Retry-After as given."""
    provider.inject(Fault("status", status=500, body='{"error": "x"}', retry_after="7"))

    answer = provider.token_request(good_form())

    assert (answer.status, answer.body) == (500, b'{"error": "x"}')
    assert answer.headers["retry-after"] == "7"
    assert answer.headers["content-type"].startswith("application/json")


def test_retry_after_may_be_an_http_date(provider: Provider) -> None:
    """A Retry-After given as an HTTP date is sent unchanged."""
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    provider.inject(Fault("status", status=429, retry_after=date))

    answer = provider.token_request(good_form())

    assert answer.headers["retry-after"] == date


def test_an_html_fault_is_a_503_page_by_default(provider: Provider) -> None:
    """An html fault answers 503 with an HTML page, as an outage does."""
    provider.inject(Fault("html"))

    answer = provider.token_request(good_form())

    assert answer.status == 503
    assert answer.headers["content-type"] == "text/html"
    assert answer.body.startswith(b"<html>")


def test_an_html_fault_takes_another_status(provider: Provider) -> None:
    """An html fault with a status answers with that status."""
    provider.inject(Fault("html", status=502))

    answer = provider.token_request(good_form())

    assert answer.status == 502
    assert b"Bad Gateway" in answer.body


def test_a_malformed_fault_is_200_with_json_cut_short(provider: Provider) -> None:
    """A malformed fault is HTTP 200 whose body does not parse as JSON."""
    provider.inject(Fault("malformed"))

    answer = provider.token_request(good_form())

    assert answer.status == 200
    with pytest.raises(ValueError, match="Unterminated string"):
        json.loads(answer.body)


@pytest.mark.parametrize("field", ["access_token", "expires_in"])
def test_a_missing_fault_leaves_the_field_out(provider: Provider, field: str) -> None:
    """A missing fault answers 200 with the named field absent."""
    provider.inject(Fault("missing", field=field))

    answer = provider.token_request(good_form())

    assert answer.status == 200
    assert field not in document(answer)
    assert "token_type" in document(answer)


@pytest.mark.parametrize("value", ["14400", 14399.5])
def test_a_missing_fault_can_give_a_non_integer_expires_in(
    provider: Provider, value: str | float
) -> None:
    """A missing fault with a value puts that value in the field instead."""
    provider.inject(Fault("missing", field="expires_in", value=value))

    answer = provider.token_request(good_form())

    assert document(answer)["expires_in"] == value


def test_a_missing_fault_still_grants_a_real_token(provider: Provider) -> None:
    """The token in an answer lacking token_type is issued and valid."""
    provider.inject(Fault("missing", field="token_type"))

    grant = document(provider.token_request(good_form()))

    assert provider.is_valid(str(grant["access_token"]))
    assert provider.requests[-1].outcome == "fault:missing"


def test_a_throttled_fault_says_access_token_limits_exceeded(
    provider: Provider,
) -> None:
    """A throttled fault carries the provider's own words for throttling."""
    provider.inject(Fault("throttled", retry_after="60"))

    answer = provider.token_request(good_form())

    assert answer.status == 429
    assert document(answer)["error_description"] == "Access token limits exceeded."
    assert answer.headers["retry-after"] == "60"


@pytest.mark.parametrize("kind", ["hang", "reset"])
def test_hang_and_reset_faults_say_how_to_deliver_nothing(
    provider: Provider, kind: str
) -> None:
    """Hang and reset faults answer with that action, for the transport to act."""
    provider.inject(Fault(kind))  # type: ignore[arg-type]

    answer = provider.token_request(good_form())

    assert answer.action == kind


def test_a_fault_answers_only_as_many_times_as_asked(provider: Provider) -> None:
    """A fault injected twice answers two requests, then service resumes."""
    provider.inject(Fault("status", status=503), times=2)

    statuses = [provider.token_request(good_form()).status for _ in range(3)]

    assert statuses == [503, 503, 200]


def test_faults_answer_in_the_order_injected(provider: Provider) -> None:
    """Queued faults are used first in, first out."""
    provider.inject(Fault("status", status=500))
    provider.inject(Fault("html"))

    statuses = [provider.token_request(good_form()).status for _ in range(2)]

    assert statuses == [500, 503]


def test_a_fault_replaces_the_grant_entirely(provider: Provider) -> None:
    """A replacing fault issues no token, even for a good request."""
    provider.inject(Fault("status", status=503))

    provider.token_request(good_form())

    assert provider.grants() == []
    assert provider.requests[-1].outcome == "fault:status"


def test_clear_faults_restores_service_and_counts_what_it_dropped(
    provider: Provider,
) -> None:
    """`clear_faults` drops every queued answer and says how many there were."""
    provider.inject(Fault("html"), times=3)
    provider.inject(Fault("busy"), endpoint="xmlapi")

    dropped = provider.clear_faults()

    assert dropped == 4
    assert provider.token_request(good_form()).status == 200


@pytest.mark.parametrize(
    ("fault", "times", "endpoint", "message"),
    [
        (Fault("html"), 0, "token", "at least 1"),
        (Fault("busy"), 1, "token", "cannot answer the token endpoint"),
        (Fault("malformed"), 1, "xmlapi", "cannot answer the xmlapi endpoint"),
        (Fault("html"), 1, "rest", "endpoint must be one of"),
    ],
)
def test_inject_refuses_what_cannot_happen(
    provider: Provider, fault: Fault, times: int, endpoint: str, message: str
) -> None:
    """`inject` raises ValueError for a count, kind or endpoint that cannot apply."""

    with pytest.raises(ValueError, match=message):
        provider.inject(fault, times, endpoint=endpoint)  # type: ignore[arg-type]


# Fault descriptions from JSON.


def test_from_json_reads_every_parameter() -> None:
    """A control document becomes the fault it describes."""
    source = {"kind": "status", "status": 429, "body": "slow", "retry_after": 30}

    fault = Fault.from_json(source)

    assert fault == Fault("status", status=429, body="slow", retry_after="30")


def test_to_json_round_trips_through_from_json() -> None:
    """A fault written with `to_json` reads back as the same fault."""
    fault = Fault("missing", field="expires_in", value="3600")

    again = Fault.from_json(fault.to_json())

    assert again == fault


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ([], "a fault is a JSON object"),
        ({}, "kind must be one of status, hang"),
        ({"kind": "teapot"}, "kind must be one of"),
        ({"kind": "status"}, "needs a status"),
        (
            {"kind": "status", "status": "503"},
            'status must be a whole number, not "503"',
        ),
        ({"kind": "status", "status": 99}, "from 200 to 599"),
        ({"kind": "hang", "status": 503}, "a hang fault takes no parameters"),
        ({"kind": "html", "body": "x"}, "takes status, retry_after, not 'body'"),
        ({"kind": "html", "retry_after": -1}, "retry_after must be whole seconds"),
        ({"kind": "html", "retry_after": "1\r\nX: y"}, "on one line"),
        ({"kind": "missing", "field": "scope"}, "field must be one of"),
        ({"kind": "missing", "value": [1]}, "value must be a string, number"),
    ],
)
def test_from_json_explains_what_is_wrong(source: object, message: str) -> None:
    """A bad control document raises ValueError with a specific message."""

    with pytest.raises(ValueError, match=message):
        Fault.from_json(source)


# The XML API.


def test_xml_api_accepts_a_valid_token(provider: Provider) -> None:
    """A call with a valid bearer token gets a SUCCESS TRUE envelope."""
    authorization = bearer(provider)

    answer = provider.xml_api(authorization, ENVELOPE)

    assert answer.status == 200
    assert b"<SUCCESS>TRUE</SUCCESS>" in answer.body
    assert provider.requests[-1].outcome == "valid"


def test_xml_api_reports_an_expired_token_as_a_fault(
    provider: Provider, clock: Clock
) -> None:
    """An expired token gets HTTP 200, SUCCESS false and an expiry Fault."""
    authorization = bearer(provider)
    clock.now += LIFETIME

    answer = provider.xml_api(authorization, ENVELOPE)

    assert answer.status == 200
    assert b"<SUCCESS>false</SUCCESS>" in answer.body
    assert b"access token has expired" in answer.body
    assert b"<errorid>" in answer.body


@pytest.mark.parametrize(
    ("authorization", "outcome"),
    [("Bearer never-issued", "unknown"), (None, "no_token"), ("Basic abc", "no_token")],
)
def test_xml_api_refuses_a_missing_or_unknown_token(
    provider: Provider, authorization: str | None, outcome: str
) -> None:
    """No bearer token, or one never issued, gets a Fault and no success."""
    provider.token_request(good_form())

    answer = provider.xml_api(authorization, ENVELOPE)

    assert b"<SUCCESS>false</SUCCESS>" in answer.body
    assert b"<Fault>" in answer.body
    assert provider.requests[-1].outcome == outcome


def test_xml_api_refuses_a_body_that_is_not_an_envelope(provider: Provider) -> None:
    """A body without an Envelope gets a Fault that says so."""
    authorization = bearer(provider)

    answer = provider.xml_api(authorization, b"GetLists")

    assert b"not an XML API Envelope" in answer.body


def test_xml_api_rejects_the_request_past_the_concurrency_limit(
    provider: Provider,
) -> None:
    """The eleventh request open at once gets the max number of concurrent Fault."""
    authorization = bearer(provider)

    at_limit = provider.xml_api(
        authorization, ENVELOPE, in_flight=MAX_CONCURRENT_REQUESTS
    )
    past_it = provider.xml_api(
        authorization, ENVELOPE, in_flight=MAX_CONCURRENT_REQUESTS + 1
    )

    assert b"<SUCCESS>TRUE</SUCCESS>" in at_limit.body
    assert b"max number of concurrent" in past_it.body


def test_xml_api_faults_leave_the_token_endpoint_alone(provider: Provider) -> None:
    """A fault aimed at the XML API answers there and nowhere else."""
    provider.inject(Fault("status", status=503), endpoint="xmlapi")
    authorization = bearer(provider)

    answer = provider.xml_api(authorization, ENVELOPE)

    assert answer.status == 503
    assert provider.requests[0].outcome == "new"


# The record.


def test_the_record_never_holds_a_secret_or_a_token(
    provider: Provider, clock: Clock
) -> None:
    """Neither the record nor its JSON contains the secret, refresh or access token."""
    tokens = [bearer(provider).removeprefix("Bearer ")]
    provider.token_request(good_form(client_secret="wrong"))
    provider.inject(Fault("missing", field="expires_in"))
    provider.token_request(good_form())
    provider.xml_api(f"Bearer {tokens[0]}", ENVELOPE)
    clock.now += WINDOW
    tokens.append(bearer(provider).removeprefix("Bearer "))

    text = repr(provider.requests) + json.dumps(
        [r.to_json() for r in provider.requests]
    )

    assert "client-7" in text
    for secret in (SECRET, REFRESH, "wrong", *tokens):
        assert secret not in text


def test_an_answer_keeps_its_body_out_of_repr(provider: Provider) -> None:
    """The `repr` of a grant answer does not show the token it carries."""
    answer = provider.token_request(good_form())

    shown = repr(answer)

    assert str(document(answer)["access_token"]) not in shown


def test_clear_requests_forgets_the_record(provider: Provider) -> None:
    """`clear_requests` empties the record and says how many it held."""
    provider.token_request(good_form())
    provider.token_request(good_form())

    forgotten = provider.clear_requests()

    assert forgotten == 2
    assert provider.requests == []
