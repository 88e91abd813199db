"""Generated requests against a real `tokend serve`: the document holds for all.

Hypothesis draws a method, a path (the daemon's own, near misses of them,
or anything), a query string and headers (the guard, Accept, proxy marks,
others), sends them to a daemon holding a token, and checks the answer
against docs/openapi.yaml: its status is one the document promises for
that path and method (so no 5xx but the documented 503), its headers and
body match the schemas, and the token appears in no answer but a 200 to an
authorised GET /token.
"""

from __future__ import annotations

import http.client
import string
from collections.abc import Iterator
from urllib.parse import unquote, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.openapi import METHODS, Answer, Contract
from tests.support.processes import Daemon, Emulator, Processes, daemon_env

pytestmark = pytest.mark.process

CONTRACT = Contract.load()

OWN_PATHS = ("/token", "/healthz", "/readyz", "/metrics")
NEAR_MISSES = ("/token/", "/TOKEN", "/tok%65n", "/token%2F", "/token;x", "/readyz.json")

# Characters of a path segment that every layer reads alike: no dots (no
# dot segments to normalise) and nothing that needs percent-encoding.
SEGMENT = string.ascii_letters + string.digits + "-_~"

# Header values a client may send: printable ASCII, no line breaks.
VALUE = st.text(alphabet=string.printable[:95], max_size=40).map(str.strip)


def _segment() -> st.SearchStrategy[str]:
    plain = st.text(alphabet=SEGMENT, min_size=1, max_size=12)
    # A letter spelled as %XX is the same letter to the router.
    encoded = st.sampled_from(string.ascii_letters).map(lambda c: f"%{ord(c):02X}")
    return st.lists(plain | encoded, min_size=1, max_size=3).map("".join)


PATHS = st.one_of(
    st.sampled_from(OWN_PATHS),
    st.sampled_from(NEAR_MISSES),
    st.lists(_segment(), min_size=1, max_size=4).map(lambda s: "/" + "/".join(s)),
)

QUERIES = st.dictionaries(
    st.text(alphabet=SEGMENT, min_size=1, max_size=8),
    st.text(max_size=20),
    max_size=3,
).map(lambda q: "?" + urlencode(q) if q else "")

HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "Tokend-Request": st.sampled_from(["1", "0", "true", " 1", ""]) | VALUE,
        "Accept": st.sampled_from(
            ["text/plain", "application/json", "text/plain, application/json", "*/*"]
        )
        | VALUE,
        "X-Forwarded-For": st.sampled_from(["127.0.0.1", "203.0.113.9"]),
        "Forwarded": st.just("for=203.0.113.9"),
        "Authorization": st.just("Bearer not-a-token"),
        "X-Anything": VALUE,
    },
)


@pytest.fixture(scope="module")
def daemon(shared_emulator: Emulator) -> Iterator[Daemon]:
    """One daemon for every generated request, holding a token throughout."""
    started = Processes()
    try:
        yield started.daemon(daemon_env(shared_emulator))
    finally:
        started.close()


def sharing_the_daemon(examples: int) -> settings:
    """Settings for a test whose examples all go to the one daemon."""
    return settings(
        max_examples=examples,
        deadline=None,
        # The daemon is a module fixture, meant to be shared by every example.
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


@sharing_the_daemon(400)
@given(
    method=st.sampled_from(METHODS),
    path=PATHS,
    query=QUERIES,
    headers=HEADERS,
)
def test_any_request_gets_a_documented_answer(
    daemon: Daemon, method: str, path: str, query: str, headers: dict[str, str]
) -> None:
    """Any request gets an answer the document promises, and no 5xx but 503."""

    answer = _send(daemon, method.upper(), path + query, headers)

    CONTRACT.check(unquote(path), method, answer)
    assert answer.status < 500 or answer.status == 503


@sharing_the_daemon(200)
@given(
    method=st.sampled_from(["get", "head"]),
    path=st.sampled_from(["/token", "/tok%65n", "/%74oken"]),
    query=QUERIES,
    headers=HEADERS,
)
def test_only_an_authorised_get_of_the_token_gets_it(
    daemon: Daemon, method: str, path: str, query: str, headers: dict[str, str]
) -> None:
    """GET /token is 200 with the token exactly when marked and not proxied."""
    held = {daemon.token()}

    answer = _send(daemon, method.upper(), path + query, headers)
    held.add(daemon.token())

    leaked = any(token.encode() in _everything(answer) for token in held)
    assert (answer.status == 200) == _on_purpose(headers)
    assert leaked == (_on_purpose(headers) and method == "get")


@sharing_the_daemon(300)
@given(
    method=st.sampled_from(METHODS),
    path=PATHS.filter(lambda p: unquote(p) != "/token"),
    query=QUERIES,
    headers=HEADERS,
)
def test_no_other_answer_holds_the_token(
    daemon: Daemon, method: str, path: str, query: str, headers: dict[str, str]
) -> None:
    """No path but /token, under any method or headers, answers with the token."""
    held = {daemon.token()}

    answer = _send(daemon, method.upper(), path + query, headers)
    held.add(daemon.token())

    assert not any(token.encode() in _everything(answer) for token in held)


def _on_purpose(headers: dict[str, str]) -> bool:
    """Whether the guard lets the request through: marked, and not proxied."""
    proxied = "X-Forwarded-For" in headers or "Forwarded" in headers
    return headers.get("Tokend-Request", "").strip() == "1" and not proxied


def _send(daemon: Daemon, method: str, target: str, headers: dict[str, str]) -> Answer:
    address = urlsplit(daemon.url)
    connection = http.client.HTTPConnection(
        address.hostname or "127.0.0.1", address.port, timeout=5
    )
    try:
        connection.request(method, target, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def _everything(answer: Answer) -> bytes:
    head = "".join(f"{name}: {value}\n" for name, value in answer.headers.items())
    return head.encode() + answer.body
