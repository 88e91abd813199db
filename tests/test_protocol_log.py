"""The HTTP layer's logger: parse errors are one DEBUG line, other errors stay."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import BadStatusLine, LineTooLong

from daemon.protocol_log import ProtocolLog


@pytest.mark.parametrize(
    "error",
    [BadStatusLine("GET /secret-in-the-line"), LineTooLong("header", "8190")],
    ids=["bad-line", "too-long"],
)
def test_a_parse_error_is_one_debug_line_without_the_request(
    caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    """A request aiohttp cannot parse is logged once, at DEBUG, bytes left out."""
    caplog.set_level(logging.DEBUG)

    ProtocolLog().exception(
        "Error handling request from %s", "127.0.0.1", exc_info=error
    )

    [record] = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.name == "tokend.http"
    assert record.exc_info is None
    assert type(error).__name__ in record.getMessage()
    assert "secret-in-the-line" not in caplog.text


def test_any_other_error_is_still_an_error_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failure that is not the client's keeps aiohttp's ERROR and traceback."""
    caplog.set_level(logging.DEBUG)
    failure = RuntimeError("the server broke")

    ProtocolLog().exception("Unhandled exception", exc_info=failure)

    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.name == "aiohttp.server"
    assert record.exc_info is not None
    assert record.exc_info[1] is failure
