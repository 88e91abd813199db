"""No secret or token reaches a log line, an exception or a repr."""

from __future__ import annotations

import asyncio
import logging
import traceback

import pytest

from daemon.emulator.faults import Fault
from daemon.emulator.inprocess import InProcessTransport
from daemon.emulator.provider import Provider
from daemon.errors import GrantError
from daemon.oauth import Credentials, Grant, OAuthClient
from daemon.token import AccessToken
from tests.lifecycle import TOKEN_URL, make_rig
from tests.test_lifecycle import FAULTS

SECRET = "s3cr3t-Value-9d81c"
REFRESH = "r3fresh-Value-55ab0"
CLIENT = "client-Value-77e2"
ACCOUNT = Credentials(CLIENT, SECRET, REFRESH)


def provider_for(account: Credentials) -> Provider:
    return Provider(
        asyncio.get_running_loop().time,
        client_id=account.client_id,
        client_secret=account.client_secret,
        refresh_token=account.refresh_token,
    )


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    lines = []
    for record in caplog.records:
        lines.append(record.getMessage())
        if record.exc_info:
            lines.extend(traceback.format_exception(*record.exc_info))
    return "\n".join(lines)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_failing_grants_log_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    """Across every fault and a refusal, logs and status hold no secret or token."""
    caplog.set_level(logging.DEBUG)
    rig = make_rig(credentials=ACCOUNT, provider=provider_for(ACCOUNT))
    for fault in FAULTS:
        rig.inject(**fault)

    await rig.supervisor.start()
    token = await rig.supervisor.wait_ready()
    status = rig.supervisor.status()
    await rig.supervisor.stop()
    wrong = Credentials(CLIENT, SECRET + "-old", REFRESH)
    refused = make_rig(credentials=wrong, provider=provider_for(ACCOUNT))
    await refused.supervisor.start()
    await asyncio.sleep(1)
    refused_status = refused.supervisor.status()
    await refused.supervisor.stop()

    text = "\n".join(
        [everything_logged(caplog), repr(status), repr(refused_status), repr(token)]
    )
    assert "grant failed" in text
    assert refused_status.last_error is not None
    for secret in (SECRET, REFRESH, token.value):
        assert secret not in text


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: "-".join(map(str, f.values())))
async def test_grant_errors_carry_no_secret(fault: dict[str, object]) -> None:
    """The text and traceback of each grant error hold no secret or token."""
    provider = provider_for(ACCOUNT)
    provider.inject(Fault.from_json(fault))
    client = OAuthClient(InProcessTransport(provider), TOKEN_URL, timeout=1)

    with pytest.raises(GrantError) as caught:
        await client.grant(ACCOUNT)
    granted = await client.grant(ACCOUNT)

    text = "".join(traceback.format_exception(caught.value))
    for secret in (SECRET, REFRESH, granted.access_token):
        assert secret not in text


def test_reprs_hide_the_values() -> None:
    """Credentials and grants name their kind in repr, never their values."""
    token = AccessToken("tok-abcdef-123456", expiry=100.0, lifetime=50.0)

    texts = [
        repr(ACCOUNT),
        repr(Grant("tok-abcdef-123456", 10)),
        repr(token),
        str(token),
    ]

    for text in texts:
        for secret in (SECRET, REFRESH, CLIENT, "tok-abcdef-123456"):
            assert secret not in text
    assert token.fingerprint in str(token)
