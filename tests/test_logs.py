"""Logging setup: text and JSON lines, levels, and redaction on every line."""

from __future__ import annotations

import io
import json
import logging

import pytest

from daemon import logs
from daemon.redaction import MASK, redactor


def test_text_lines_name_level_and_logger() -> None:
    """A text line carries a UTC time, the level, the logger and the message."""
    stream = io.StringIO()
    logs.setup("text", "info", stream)

    logging.getLogger("tokend.test").info("granted %s", "token abc")

    line = stream.getvalue().strip()
    assert line.endswith(" INFO tokend.test: granted token abc")
    assert line[:24].endswith("Z")


def test_json_lines_are_one_object_each() -> None:
    """In json format every record is one object with time, level, logger, message."""
    stream = io.StringIO()
    logs.setup("json", "info", stream)

    logging.getLogger("tokend.test").info("first %d", 1)
    logging.getLogger("tokend.test").warning("second")

    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["message"] for e in entries] == ["first 1", "second"]
    assert [e["level"] for e in entries] == ["info", "warning"]
    assert {e["logger"] for e in entries} == {"tokend.test"}
    assert all(e["time"].endswith("Z") for e in entries)


def test_level_comes_from_the_settings() -> None:
    """At warning, tokend's info lines are dropped and warnings kept."""
    stream = io.StringIO()
    logs.setup("text", "warning", stream)

    logging.getLogger("tokend.test").info("quiet")
    logging.getLogger("tokend.test").warning("loud")

    assert "quiet" not in stream.getvalue()
    assert "loud" in stream.getvalue()


def test_other_libraries_speak_only_from_warning() -> None:
    """A library's info line stays out even when tokend logs at debug."""
    stream = io.StringIO()
    logs.setup("text", "debug", stream)

    logging.getLogger("somelibrary").info("chatter")
    logging.getLogger("tokend.test").debug("detail")

    assert "chatter" not in stream.getvalue()
    assert "detail" in stream.getvalue()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_in_arguments_are_masked(log_format: str) -> None:
    """A known secret passed as a log argument never reaches the stream."""
    stream = io.StringIO()
    logs.setup(log_format, "info", stream)
    redactor.add("client-secret-value")

    logging.getLogger("tokend.test").warning("sent %s", "client-secret-value")

    assert "client-secret-value" not in stream.getvalue()
    assert MASK in stream.getvalue()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_tokens_in_tracebacks_are_masked(log_format: str) -> None:
    """A token inside an exception's text is masked in the logged traceback."""
    stream = io.StringIO()
    logs.setup(log_format, "info", stream)
    redactor.add_token("access-token-in-a-traceback")

    try:
        raise ValueError("bad header Bearer access-token-in-a-traceback")
    except ValueError:
        logging.getLogger("tokend.test").exception("request failed")

    output = stream.getvalue()
    assert "access-token-in-a-traceback" not in output
    assert "ValueError" in output
    assert MASK in output


def test_setup_twice_keeps_one_handler() -> None:
    """Setting logging up again replaces the handler rather than doubling lines."""
    stream = io.StringIO()
    logs.setup("text", "info", io.StringIO())
    logs.setup("text", "info", stream)

    logging.getLogger("tokend.test").info("once")

    assert stream.getvalue().count("once") == 1
