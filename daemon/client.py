"""A small client for a running daemon, used by ``tokend token`` and ``check``.

Blocking and standard-library only: these commands run once from a shell
script or a container health check, and start faster without an event
loop. A daemon is named as ``http://host:port`` or ``unix:/path/to/socket``
(the forms of ``TOKEND_LISTEN``, which gives the default).
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from daemon.config import parse_listen
from daemon.errors import ConfigError, DaemonUnreachable

DEFAULT_URL = "http://127.0.0.1:8439"

# The header the daemon's request guard asks for (daemon/server.py). Not
# imported from there: that would load aiohttp into every health check.
_GUARD = {"Tokend-Request": "1"}

# A wildcard address is where a daemon listens, not where to reach it.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


@dataclass(frozen=True)
class Reply:
    """A daemon's answer: status, headers with lower-case names, body."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def document(self) -> dict[str, object]:
        """The body as a JSON object, or an empty one if it is not."""
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return {}
        return value if isinstance(value, dict) else {}


def default_url(environ: Mapping[str, str]) -> str:
    """The daemon's URL from ``TOKEND_LISTEN``, or the default address."""
    listen = environ.get("TOKEND_LISTEN")
    if not listen:
        return DEFAULT_URL
    try:
        address = parse_listen(listen)
    except ValueError as exc:
        raise ConfigError(f"TOKEND_LISTEN: {exc}") from None
    if address.path is not None:
        return f"unix:{address.path}"
    host = _WILDCARDS.get(address.host, address.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{address.port}"


def get(
    url: str,
    path: str,
    *,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """``GET path`` from the daemon at `url`; raises `DaemonUnreachable`.

    Sent with the guard header and ``Accept: application/json`` unless
    `headers` are given, which are then sent instead.
    """
    connection = _connect(url, timeout)
    if headers is None:
        headers = {**_GUARD, "Accept": "application/json"}
    try:
        connection.request("GET", path, headers=dict(headers))
        response = connection.getresponse()
        body = response.read()
    except TimeoutError:
        raise DaemonUnreachable(f"no answer from {url} within {timeout:g}s") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DaemonUnreachable(f"cannot reach tokend at {url}: {reason}") from None
    except http.client.HTTPException as exc:
        raise DaemonUnreachable(
            f"{url} did not answer as tokend does ({type(exc).__name__})"
        ) from None
    finally:
        connection.close()

    names = {name.lower(): value for name, value in response.getheaders()}
    return Reply(response.status, names, body)


def _connect(url: str, timeout: float) -> http.client.HTTPConnection:
    if url.startswith("unix:"):
        return _UnixConnection(url.removeprefix("unix:"), timeout)

    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(
            f"{url!r} is not a daemon address: give http://host:port "
            "or unix:/path/to/socket"
        )
    try:
        port = parts.port or 80
    except ValueError:
        raise ConfigError(f"{url!r} has a port that is not a number") from None
    return http.client.HTTPConnection(parts.hostname, port, timeout=timeout)


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket; the Host header names the daemon generically."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock
