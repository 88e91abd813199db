"""Real tokend processes for process-level tests, always cleaned up.

Fixtures (registered for every test by ``tests/conftest.py``):

    start_emulator(*args, lifetime="4s", refresh_window="2s") -> Emulator
        ``tokend emulator`` on a free loopback port; the URL is read from its
        "listening on" line.
    emulator -> Emulator
        one started with the defaults above, for this test alone.
    shared_emulator -> Emulator
        one for the whole session, for tests that only need tokens: never
        inject faults into it or count its requests.
    start_daemon(env, *args, ready=True, listen=True) -> Daemon
        ``tokend serve`` with exactly `env` (plus PATH, HOME, LANG and
        PYTHONPATH: no TOKEND_* variable of the caller's leaks in) and
        the extra command-line `args`. Unless `env` sets TOKEND_LISTEN it
        listens on a free loopback port (``listen=False`` sets none). With
        `ready`, waits until /readyz answers 200.
    processes -> Processes
        the registry behind both, for starting anything else:
        ``processes.start(argv, env)`` -> `Process`.

At teardown every process still running gets SIGTERM, then SIGKILL if it
has not exited within two seconds, pass or fail.

Helpers:

    free_port() -> int                       a free TCP port on 127.0.0.1
    daemon_env(emulator, **overrides) -> dict
        credentials, token URL and durations scaled to the emulator's
        (lifetime 4s, refresh after 2.1s); overrides are TOKEND_* names
        without the prefix, lower case: daemon_env(e, backoff_max="2s").

`Process` (from `tests.support.child`, the base of both): ``pid``,
``returncode``, ``send(sig)``, ``kill()`` (SIGKILL), ``wait(timeout) ->
int``, ``stop(sig, timeout) -> (status, seconds)``, ``stdout_lines()``,
``stderr_lines()``, ``output()`` (all text so far),
``wait_for_line(pattern, timeout, stream="stderr")``.

`Emulator(Process)`: ``url``, ``token_url``, ``xmlapi_url``,
``inject(kind, times=1, **parameters)``, ``clear()`` (faults),
``requests()`` (the record, a list of dicts with "outcome"),
``clear_requests()``, ``grants()`` (the requests that issued a new token),
``accepts(token) -> bool`` (an XML API call with the token succeeds).

`Daemon(Process)`: ``url`` (as bound), ``health_url`` (or None),
``get(path, headers=None, url=None) -> Reply`` (``daemon.client.Reply``;
the guard header is sent unless `headers` are given), ``token() -> str``,
``status() -> dict`` (/readyz), ``wait_ready(timeout)``,
``wait_until(predicate, timeout)``.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

from daemon import client
from daemon.errors import DaemonUnreachable
from tests.support.child import PATIENCE, Process

P = TypeVar("P", bound=Process)

_BOUND = re.compile(r"serving the token on (\S+?)[;,]")
_HEALTH = re.compile(r"health on (\S+?);")
_EMULATOR_URL = re.compile(r"tokend emulator listening on (\S+)")

DEMO_CREDENTIALS = {
    "TOKEND_CLIENT_ID": "demo-client",
    "TOKEND_CLIENT_SECRET": "demo-secret",
    "TOKEND_REFRESH_TOKEN": "demo-refresh-token",
}

# The emulator's defaults here, and the daemon's durations scaled to them:
# 4s and 2s stand for the provider's 4h and 3h, 2.1s for its 3.01h floor
# (rounded up, so the daemon's ask is never within the window).
EMULATOR_LIFETIME = "4s"
EMULATOR_WINDOW = "2s"
SCALED = {
    "TOKEND_TOKEN_LIFETIME": "4s",
    "TOKEND_REFRESH_AFTER": "2.1s",
    "TOKEND_REFRESH_JITTER": "0.1s",
    "TOKEND_EXPIRY_MARGIN": "0.5s",
    "TOKEND_BACKOFF_BASE": "0.2s",
    "TOKEND_BACKOFF_MAX": "1s",
    "TOKEND_CONNECT_TIMEOUT": "1s",
    "TOKEND_REQUEST_TIMEOUT": "2s",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def daemon_env(emulator: Emulator, **overrides: str) -> dict[str, str]:
    """Settings for a daemon against `emulator`, on scaled time."""
    env = {
        **DEMO_CREDENTIALS,
        **SCALED,
        "TOKEND_TOKEN_URL": emulator.token_url,
    }
    for name, value in overrides.items():
        env["TOKEND_" + name.upper()] = value
    return env


class Emulator(Process):
    """A ``tokend emulator`` process and its control API."""

    def __init__(self, argv: list[str], env: Mapping[str, str]) -> None:
        super().__init__(argv, env)
        found = self.wait_for_line(_EMULATOR_URL.pattern, stream="stdout")
        self.url = found.group(1)
        self.token_url = f"{self.url}/oauth/token"
        self.xmlapi_url = f"{self.url}/XMLAPI"

    def inject(self, kind: str, times: int = 1, **parameters: object) -> None:
        """Queue a fault for the next `times` token requests (or `endpoint`)."""
        self._call(
            "POST", "/_emulator/faults", {"kind": kind, "times": times, **parameters}
        )

    def clear(self) -> None:
        """Drop every queued fault."""
        self._call("DELETE", "/_emulator/faults")

    def requests(self) -> list[dict[str, Any]]:
        """Every request the emulator has seen, oldest first."""
        record: list[dict[str, Any]] = self._call("GET", "/_emulator/requests")
        return record

    def clear_requests(self) -> None:
        self._call("DELETE", "/_emulator/requests")

    def grants(self) -> list[dict[str, Any]]:
        """The token requests that issued a new token."""
        return [r for r in self.requests() if r["outcome"] == "new"]

    def accepts(self, token: str) -> bool:
        """Whether an XML API call with `token` succeeds."""
        envelope = b"<Envelope><Body><GetLists/></Body></Envelope>"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/xml"}
        _, answer = _http("POST", self.xmlapi_url, envelope, headers)
        return b"<success>true</success>" in answer.lower()

    def _call(self, method: str, path: str, document: object = None) -> Any:
        body = None if document is None else json.dumps(document).encode()
        headers = {"Content-Type": "application/json"}
        status, answer = _http(method, self.url + path, body, headers)
        if status >= 400:
            raise AssertionError(f"{method} {path}: HTTP {status} {answer!r}")
        return json.loads(answer)


class Daemon(Process):
    """A ``tokend serve`` process and its HTTP endpoints."""

    def __init__(self, argv: list[str], env: Mapping[str, str]) -> None:
        super().__init__(argv, env)
        self.url: str = ""
        self.health_url: str | None = None

    def wait_bound(self, timeout: float = PATIENCE) -> None:
        """Wait for the start-up line and read the addresses bound from it."""
        found = self.wait_for_line(_BOUND.pattern, timeout)
        self.url = found.group(1)
        line = found.string
        health = _HEALTH.search(line)
        self.health_url = health.group(1) if health else None

    def get(
        self,
        path: str,
        headers: Mapping[str, str] | None = None,
        url: str | None = None,
    ) -> client.Reply:
        """``GET path``; with the guard header unless `headers` are given."""
        return client.get(url or self.url, path, headers=headers)

    def token(self) -> str:
        reply = self.get("/token")
        assert reply.status == 200, f"GET /token: {reply.status} {reply.body!r}"
        value = reply.document()["access_token"]
        assert isinstance(value, str)
        return value

    def status(self) -> dict[str, object]:
        return self.get("/readyz").document()

    def wait_ready(self, timeout: float = PATIENCE) -> None:
        """Wait until /readyz answers 200; fails with the output if never."""
        self.wait_until(lambda: self.get("/readyz").status == 200, timeout)

    def wait_until(
        self, predicate: Callable[[], bool], timeout: float = PATIENCE
    ) -> None:
        """Poll `predicate` every 50ms (daemon unreachable counts as false)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.returncode is not None:
                raise AssertionError(
                    f"tokend exited with {self.returncode}:\n{self.output()}"
                )
            try:
                if predicate():
                    return
            except DaemonUnreachable:
                pass
            time.sleep(0.05)
        raise AssertionError(f"not true within {timeout:g}s:\n{self.output()}")


class Processes:
    """Every process a test started, to be stopped at its end."""

    def __init__(self) -> None:
        self._started: list[Process] = []

    def start(self, argv: list[str], env: Mapping[str, str]) -> Process:
        return self._keep(Process(argv, env))

    def emulator(self, *args: str, lifetime: str, refresh_window: str) -> Emulator:
        argv = _tokend(
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--lifetime",
            lifetime,
            "--refresh-window",
            refresh_window,
            *args,
        )
        return self._keep(Emulator(argv, {}))

    def daemon(
        self,
        env: Mapping[str, str],
        *args: str,
        ready: bool = True,
        listen: bool = True,
    ) -> Daemon:
        env = dict(env)
        if listen:
            env.setdefault("TOKEND_LISTEN", "127.0.0.1:0")
        daemon = self._keep(Daemon(_tokend("serve", *args), env))
        if ready:
            daemon.wait_bound()
            daemon.wait_ready()
        return daemon

    def close(self) -> None:
        # All are signalled before any is waited for: they stop in parallel.
        for process in self._started:
            process.ask_to_stop()
        for process in self._started:
            process.reap()

    def _keep(self, process: P) -> P:
        self._started.append(process)
        return process


@pytest.fixture
def processes() -> Iterator[Processes]:
    """The processes of one test; all stopped at teardown, pass or fail."""
    started = Processes()
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def start_emulator(processes: Processes) -> Callable[..., Emulator]:
    """Start ``tokend emulator`` on a free port (lifetime 4s, window 2s)."""

    def start(
        *args: str,
        lifetime: str = EMULATOR_LIFETIME,
        refresh_window: str = EMULATOR_WINDOW,
    ) -> Emulator:
        return processes.emulator(
            *args, lifetime=lifetime, refresh_window=refresh_window
        )

    return start


@pytest.fixture
def emulator(start_emulator: Callable[..., Emulator]) -> Emulator:
    """A ``tokend emulator`` of this test's own, with the scaled defaults."""
    return start_emulator()


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[Emulator]:
    """One emulator for every test that only needs tokens from it.

    Saves a process start per test. Never inject faults into it or count
    its requests: other tests use it too.
    """
    started = Processes()
    try:
        yield started.emulator(
            lifetime=EMULATOR_LIFETIME, refresh_window=EMULATOR_WINDOW
        )
    finally:
        started.close()


@pytest.fixture
def start_daemon(processes: Processes) -> Callable[..., Daemon]:
    """Start ``tokend serve`` with an environment; waits until ready by default."""
    return processes.daemon


def _http(
    method: str, url: str, body: bytes | None, headers: Mapping[str, str]
) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=PATIENCE
    )
    try:
        connection.request(method, parts.path, body=body, headers=dict(headers))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _tokend(*args: str) -> list[str]:
    return [sys.executable, "-m", "daemon", *args]
