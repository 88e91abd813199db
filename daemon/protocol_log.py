"""The HTTP layer's logger: a request too malformed to parse is one DEBUG line.

aiohttp answers a request it cannot parse (a broken request line, headers
over its limits, bytes that are not HTTP) with a 400 and logs the parse
error at ERROR with a traceback. That is the client's mistake, not the
daemon's, and any local process could fill the log with it; the line says
only what kind of error it was, never the request's bytes, which may hold
a client's secrets.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger

_malformed = logging.getLogger("tokend.http")


class ProtocolLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, less the tracebacks of requests it cannot parse."""

    def __init__(self) -> None:
        super().__init__(server_logger)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        error = _error_of(kwargs.get("exc_info", True))
        if isinstance(error, HttpProcessingError):
            _malformed.debug(
                "answered 400 to a malformed request (%s)", type(error).__name__
            )
            return
        super().exception(msg, *args, **kwargs)


def _error_of(exc_info: object) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple):
        error = exc_info[1]
        return error if isinstance(error, BaseException) else None
    return sys.exc_info()[1] if exc_info else None
