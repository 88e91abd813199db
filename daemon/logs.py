"""Logging setup: text or JSON lines on stderr, every line redacted.

tokend's own loggers (``tokend.*``) follow the configured level; other
libraries speak at WARNING and above. Each handler carries a `Redacting`
filter that masks known secrets and tokens in the formatted message and
in exception text: the code never logs a secret, and this is the second
line of defence for one that slips through anyway.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

from daemon.redaction import redactor

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Redacting(logging.Filter):
    """Masks secrets in a record's message, traceback and stack, in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = redactor.mask(record.getMessage())
        # The message is final once masked: the arguments would only let a
        # later formatter rebuild the unmasked text.
        record.msg, record.args = message, None

        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.mask(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _utc_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry)


class _UtcTextFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_time(record.created)


def setup(log_format: str, level: str, stream: TextIO | None = None) -> None:
    """Send every log record to `stream` (stderr) in `log_format`, redacted."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else _UtcTextFormatter(_TEXT_FORMAT)
    )
    handler.addFilter(Redacting())

    root = logging.getLogger()
    for previous in list(root.handlers):
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)

    logging.getLogger("tokend").setLevel(level.upper())


def _utc_time(created: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. 2026-01-02T03:04:05.678Z."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created % 1 * 1000):03d}Z"
