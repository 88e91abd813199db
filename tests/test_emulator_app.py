"""The emulator's HTTP application, over real loopback sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from daemon.emulator import Provider
from daemon.emulator.command import Running, start
from daemon.errors import TransportError
from daemon.oauth import Credentials, OAuthClient
from daemon.transport import AiohttpTransport

SECRET = "s3cret-of-the-client"
REFRESH = "refresh-token-of-the-account"
ENVELOPE = "<Envelope><Body><GetLists/></Body></Envelope>"
GOOD_FORM = {
    "grant_type": "refresh_token",
    "client_id": "client-7",
    "client_secret": SECRET,
    "refresh_token": REFRESH,
}


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[Running]:
    provider = Provider(
        asyncio.get_running_loop().time,
        client_id="client-7",
        client_secret=SECRET,
        refresh_token=REFRESH,
    )
    running = await start("127.0.0.1:0", provider)
    yield running
    await running.close()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def grant(http: aiohttp.ClientSession, emulator: Running) -> str:
    async with http.post(f"{emulator.url}/oauth/token", data=GOOD_FORM) as response:
        token = (await response.json())["access_token"]
    assert isinstance(token, str)
    return token


async def inject(
    http: aiohttp.ClientSession, emulator: Running, fault: dict[str, object]
) -> None:
    url = f"{emulator.url}/_emulator/faults"
    async with http.post(url, json=fault) as response:
        assert response.status == 201


async def wait_for_requests(provider: Provider, count: int) -> None:
    # The provider offers no event to wait on: a test watches its record,
    # as a process-level test would through the control API.
    async with asyncio.timeout(5):
        while len(provider.requests) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def post_and_read(
    http: aiohttp.ClientSession, url: str, **options: object
) -> bytes:
    async with http.post(url, **options) as response:  # type: ignore[arg-type]
        return await response.read()


@pytest_asyncio.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    transport = AiohttpTransport(connect_timeout=1.0)
    yield transport
    await transport.close()


def oauth_client(
    emulator: Running, transport: AiohttpTransport, timeout: float = 5.0
) -> OAuthClient:
    return OAuthClient(transport, f"{emulator.url}/oauth/token", timeout=timeout)


CREDENTIALS = Credentials("client-7", SECRET, REFRESH)

# A hung request notices its client has gone within 0.05 s; this is ample.
SLOTS_FREED_WITHIN = 0.3


# The token endpoint.


@pytest.mark.asyncio
async def test_the_daemons_oauth_client_gets_a_token(
    emulator: Running, transport: AiohttpTransport
) -> None:
    """The real OAuth client, over a socket, is granted a full-lifetime token."""
    client = oauth_client(emulator, transport)

    result = await client.grant(CREDENTIALS)

    assert result.expires_in == 14400
    assert emulator.provider.is_valid(result.access_token)


@pytest.mark.asyncio
async def test_the_token_endpoint_refuses_a_wrong_secret(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """A wrong secret over HTTP is a 401 JSON invalid_client."""
    form = {**GOOD_FORM, "client_secret": "nope"}

    async with http.post(f"{emulator.url}/oauth/token", data=form) as response:
        status, body = response.status, await response.json()

    assert status == 401
    assert body["error"] == "invalid_client"


# The XML API.


@pytest.mark.asyncio
async def test_the_xml_api_accepts_raw_xml_with_a_bearer_token(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """Raw text/xml with a valid bearer token gets a SUCCESS TRUE envelope."""
    headers = {
        "Authorization": f"Bearer {await grant(http, emulator)}",
        "Content-Type": "text/xml",
    }

    async with http.post(
        f"{emulator.url}/XMLAPI", data=ENVELOPE, headers=headers
    ) as response:
        status, body = response.status, await response.text()

    assert status == 200
    assert "<SUCCESS>TRUE</SUCCESS>" in body


@pytest.mark.asyncio
async def test_the_xml_api_accepts_the_xml_form_field(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """The envelope sent as the form field xml= is read like a raw body."""
    headers = {"Authorization": f"Bearer {await grant(http, emulator)}"}

    async with http.post(
        f"{emulator.url}/XMLAPI", data={"xml": ENVELOPE}, headers=headers
    ) as response:
        body = await response.text()

    assert "<SUCCESS>TRUE</SUCCESS>" in body


@pytest.mark.asyncio
async def test_the_xml_api_without_a_token_answers_a_fault(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """A call without Authorization gets HTTP 200 with a Fault."""

    async with http.post(f"{emulator.url}/XMLAPI", data=ENVELOPE) as response:
        status, body = response.status, await response.text()

    assert status == 200
    assert "<SUCCESS>false</SUCCESS>" in body
    assert "<Fault>" in body


@pytest.mark.asyncio
async def test_the_eleventh_concurrent_xml_call_is_rejected(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """With ten calls open the next gets the concurrency Fault; slots then free up."""
    headers = {"Authorization": f"Bearer {await grant(http, emulator)}"}
    await inject(http, emulator, {"kind": "hang", "endpoint": "xmlapi", "times": 10})
    url = f"{emulator.url}/XMLAPI"
    hung = [
        asyncio.create_task(post_and_read(http, url, data=ENVELOPE, headers=headers))
        for _ in range(10)
    ]
    await wait_for_requests(emulator.provider, 11)

    async with http.post(url, data=ENVELOPE, headers=headers) as response:
        eleventh = await response.text()
    for task in hung:
        task.cancel()
    await asyncio.gather(*hung, return_exceptions=True)
    await asyncio.sleep(SLOTS_FREED_WITHIN)
    async with http.post(url, data=ENVELOPE, headers=headers) as response:
        after = await response.text()

    assert "max number of concurrent" in eleventh
    assert "<SUCCESS>TRUE</SUCCESS>" in after


# Faults through the control API.


@pytest.mark.asyncio
async def test_an_injected_fault_answers_the_next_requests_only(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """A fault queued for two requests answers those two, then grants resume."""
    fault = {"kind": "status", "status": 503, "retry_after": 9, "times": 2}
    await inject(http, emulator, fault)

    answers = []
    for _ in range(3):
        url = f"{emulator.url}/oauth/token"
        async with http.post(url, data=GOOD_FORM) as response:
            answers.append((response.status, response.headers.get("Retry-After")))

    assert answers == [(503, "9"), (503, "9"), (200, None)]


@pytest.mark.asyncio
async def test_posting_a_fault_echoes_what_was_queued(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """The control API answers 201 with the fault as it understood it."""
    fault = {"kind": "html", "times": 3}

    async with http.post(f"{emulator.url}/_emulator/faults", json=fault) as response:
        status, body = response.status, await response.json()

    assert status == 201
    assert body == {
        "fault": {"kind": "html", "status": 503},
        "times": 3,
        "endpoint": "token",
    }


@pytest.mark.asyncio
async def test_deleting_faults_restores_service(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """DELETE /_emulator/faults drops the queue, so the next grant succeeds."""
    await inject(http, emulator, {"kind": "html", "times": 5})

    async with http.delete(f"{emulator.url}/_emulator/faults") as response:
        cleared = await response.json()
    async with http.post(f"{emulator.url}/oauth/token", data=GOOD_FORM) as response:
        status = response.status

    assert cleared == {"dropped": 5}
    assert status == 200


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "the body must be a JSON object"),
        (b'{"kind": "teapot"}', "kind must be one of"),
        (b'{"kind": "html", "times": 0}', "times must be a whole number"),
        (b'{"kind": "html", "endpoint": "rest"}', "endpoint must be one of"),
        (b'{"kind": "busy"}', "cannot answer the token endpoint"),
    ],
)
async def test_a_bad_control_request_gets_a_json_error(
    emulator: Running, http: aiohttp.ClientSession, body: bytes, message: str
) -> None:
    """A malformed fault request is a 400 JSON error saying what is wrong."""
    url = f"{emulator.url}/_emulator/faults"

    async with http.post(url, data=body) as response:
        status, answer = response.status, await response.json()

    assert status == 400
    assert message in answer["error_description"]


@pytest.mark.asyncio
async def test_a_reset_fault_is_a_transport_error_for_the_client(
    emulator: Running,
    http: aiohttp.ClientSession,
    transport: AiohttpTransport,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reset drops the connection: a transport error, and nothing in the log."""
    await inject(http, emulator, {"kind": "reset"})
    client = oauth_client(emulator, transport)

    with caplog.at_level(logging.WARNING), pytest.raises(TransportError):
        await client.grant(CREDENTIALS)

    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.asyncio
async def test_a_hang_fault_runs_into_the_clients_timeout(
    emulator: Running, http: aiohttp.ClientSession, transport: AiohttpTransport
) -> None:
    """A hang never answers, so the client's own timeout ends the call."""
    await inject(http, emulator, {"kind": "hang"})
    client = oauth_client(emulator, transport, timeout=0.2)

    with pytest.raises(TransportError, match="no answer within"):
        await client.grant(CREDENTIALS)

    assert emulator.provider.requests[-1].outcome == "fault:hang"


@pytest.mark.asyncio
async def test_closing_the_emulator_drops_a_hung_request(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """A request still hung when the emulator stops ends with a dropped connection."""
    await inject(http, emulator, {"kind": "hang"})
    url = f"{emulator.url}/oauth/token"
    hung = asyncio.create_task(post_and_read(http, url, data=GOOD_FORM))
    await wait_for_requests(emulator.provider, 1)

    async with asyncio.timeout(2):
        await emulator.close()
        outcome = await asyncio.gather(hung, return_exceptions=True)

    assert isinstance(outcome[0], aiohttp.ClientError)


# The record and token state.


@pytest.mark.asyncio
async def test_the_record_is_served_as_json_without_secrets(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """GET /_emulator/requests lists each request, never a secret or a token."""
    token = await grant(http, emulator)

    async with http.get(f"{emulator.url}/_emulator/requests") as response:
        text = await response.text()

    assert json.loads(text) == [
        {
            "at": emulator.provider.requests[0].at,
            "endpoint": "token",
            "outcome": "new",
            "client_id": "client-7",
            "fingerprint": emulator.provider.requests[0].fingerprint,
        }
    ]
    for secret in (SECRET, REFRESH, token):
        assert secret not in text


@pytest.mark.asyncio
async def test_deleting_the_record_empties_it(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """DELETE /_emulator/requests forgets every request recorded so far."""
    await grant(http, emulator)

    async with http.delete(f"{emulator.url}/_emulator/requests") as response:
        forgotten = await response.json()

    assert forgotten == {"forgotten": 1}
    assert emulator.provider.requests == []


@pytest.mark.asyncio
async def test_the_token_state_says_whether_a_token_is_valid(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """GET /_emulator/tokens/<token> is true for an issued token, false otherwise."""
    token = await grant(http, emulator)

    answers = []
    for candidate in (token, "never-issued"):
        url = f"{emulator.url}/_emulator/tokens/{candidate}"
        async with http.get(url) as response:
            answers.append(await response.json())

    assert answers == [{"valid": True}, {"valid": False}]


# Errors of the emulator itself.


@pytest.mark.asyncio
async def test_an_unknown_path_is_a_json_404(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """A path the emulator does not serve is a 404 JSON error naming it."""

    async with http.get(f"{emulator.url}/rest/databases") as response:
        status, body = response.status, await response.json()

    assert status == 404
    assert "GET /rest/databases" in body["error_description"]


@pytest.mark.asyncio
async def test_a_wrong_method_is_a_json_405_with_allow(
    emulator: Running, http: aiohttp.ClientSession
) -> None:
    """GET on the token endpoint is a 405 JSON error that names POST."""

    async with http.get(f"{emulator.url}/oauth/token") as response:
        status, allow, body = (
            response.status,
            response.headers["Allow"],
            await response.json(),
        )

    assert (status, allow) == (405, "POST")
    assert body["error"] == "method_not_allowed"
