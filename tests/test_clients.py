"""The client examples, each run against real tokend processes on free ports."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SUCCESS_LINE = "GetLists SUCCESS=true"

# Each example: the tools it needs on PATH, and how to run it from examples/.
CLIENTS = {
    "shell": (("bash", "curl"), ["bash", "shell/client.sh"]),
    "python": ((), [sys.executable, "python/client.py"]),
    "node": (("node",), ["node", "node/client.mjs"]),
    # Launching a source file compiles it: that takes the JDK, not a JRE.
    "java": (("java", "javac"), ["java", "java/Client.java"]),
    "php": (("php",), ["php", "php/client.php"]),
    "go": (("go",), ["go", "run", "go/client.go"]),
}

# The emulator's own credentials (the defaults of `tokend emulator`).
DEMO_CREDENTIALS = {
    "TOKEND_CLIENT_ID": "demo-client",
    "TOKEND_CLIENT_SECRET": "demo-secret",
    "TOKEND_REFRESH_TOKEN": "demo-refresh-token",
}


def clean_environ() -> dict[str, str]:
    """This process's environment without any TOKEND_* or ACOUSTIC_* setting."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TOKEND_", "ACOUSTIC_"))
    }
    # Go may neither fetch a toolchain nor a module: the example uses std only.
    return {**environ, "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOFLAGS": ""}


class Lines:
    """The lines a process writes to one stream, read on a thread as they come."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """The first match of `pattern` in a line, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matched {pattern!r}; saw {self.seen!r}")


@dataclass
class Tokend:
    """A tokend process (serve, demo or emulator) and its merged output."""

    process: subprocess.Popen[str]
    output: Lines

    @classmethod
    def start(cls, *args: str, environ: dict[str, str] | None = None) -> Tokend:
        process = subprocess.Popen(
            [sys.executable, "-m", "daemon", *args],
            cwd=ROOT,
            env={**clean_environ(), **(environ or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return cls(process, Lines(process.stdout))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class Stack:
    """The URLs an example needs: the daemon, the XML API and the emulator."""

    tokend_url: str
    api_url: str
    emulator_url: str

    def environ(self, attempts: int) -> dict[str, str]:
        return {
            **clean_environ(),
            "TOKEND_URL": self.tokend_url,
            "ACOUSTIC_API_URL": self.api_url,
            "TOKEND_ATTEMPTS": str(attempts),
        }

    def token(self) -> str:
        """The token the daemon serves now, as the examples ask for it."""
        headers = {"Tokend-Request": "1", "Accept": "text/plain"}
        status, body = call("GET", f"{self.tokend_url}/token", headers=headers)
        assert status == 200, body
        return body.decode().strip()

    def faults(self, method: str, document: object | None = None) -> None:
        emulator_faults(self.emulator_url, method, document)


def call(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    """One HTTP request to a process of the test; its status and body."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=5)
    try:
        connection.request(method, parts.path, body, dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def emulator_faults(url: str, method: str, document: object | None = None) -> None:
    """Queue a fault on the emulator at `url` (POST), or drop them all (DELETE)."""
    body = None if document is None else json.dumps(document).encode()
    headers = {"Content-Type": "application/json"}

    status, answer = call(method, f"{url}/_emulator/faults", body, headers)

    assert status in (200, 201), answer


def wait_until_ready(tokend_url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if call("GET", f"{tokend_url}/readyz")[0] == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{tokend_url} was not ready within {timeout:g}s")


@contextlib.contextmanager
def failing_stack() -> Iterator[Stack]:
    """`tokend serve` against `tokend emulator` whose token URL gives 503 pages."""
    with contextlib.ExitStack() as processes:
        yield start_failing_stack(processes)


def start_failing_stack(processes: contextlib.ExitStack) -> Stack:
    """Start the emulator, then the daemon; `processes` stops each on exit."""
    emulator = Tokend.start("emulator", "--listen", "127.0.0.1:0")
    processes.callback(emulator.stop)
    emulator_url = emulator.output.wait_for(r"listening on (http://\S+)")[1]
    emulator_faults(emulator_url, "POST", {"kind": "html", "times": 100_000})

    daemon = Tokend.start(
        "serve",
        environ={
            **DEMO_CREDENTIALS,
            "TOKEND_TOKEN_URL": f"{emulator_url}/oauth/token",
            "TOKEND_LISTEN": "127.0.0.1:0",
            "TOKEND_BACKOFF_BASE": "0.1s",
            "TOKEND_BACKOFF_MAX": "0.5s",
        },
    )
    processes.callback(daemon.stop)
    tokend_url = daemon.output.wait_for(r"serving the token on (http://[^;,\s]+)")[1]
    return Stack(tokend_url, f"{emulator_url}/XMLAPI", emulator_url)


def run_example(name: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        CLIENTS[name][1],
        cwd=EXAMPLES,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def client_params() -> list[object]:
    """Every example; one whose toolchain is missing is skipped, naming it."""
    params = []
    for name, (tools, _) in CLIENTS.items():
        missing = [tool for tool in tools if shutil.which(tool) is None]
        marks = (
            pytest.mark.skip(reason=f"{', '.join(missing)} not installed")
            if missing
            else ()
        )
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(scope="module")
def demo() -> Iterator[Stack]:
    """`tokend demo` on free ports, holding a token."""
    process = Tokend.start(
        "demo", "--listen", "127.0.0.1:0", "--emulator-listen", "127.0.0.1:0"
    )
    try:
        tokend_url = process.output.wait_for(r"the token: .* (http://\S+)/token")[1]
        api_url = process.output.wait_for(r"XML API: +(http://\S+)")[1]
        wait_until_ready(tokend_url)
        yield Stack(tokend_url, api_url, api_url.removesuffix("/XMLAPI"))
    finally:
        process.stop()


@pytest.fixture(scope="module")
def outage() -> Iterator[Stack]:
    """A daemon whose provider answers every grant with a 503 error page."""
    with failing_stack() as stack:
        yield stack


@pytest.fixture
def recovering() -> Iterator[Stack]:
    """A daemon whose provider is down until the test drops its faults."""
    with failing_stack() as stack:
        yield stack


@pytest.mark.parametrize("name", client_params())
def test_example_calls_the_xml_api_with_the_daemons_token(
    name: str, demo: Stack
) -> None:
    """The example gets the token, calls GetLists, reports success and exits 0."""
    token_before = demo.token()

    result = run_example(name, demo.environ(attempts=5))

    assert result.returncode == 0, result.stderr
    assert SUCCESS_LINE in result.stdout.splitlines()
    for token in (token_before, demo.token()):
        assert token not in result.stdout + result.stderr


@pytest.mark.parametrize("name", client_params())
def test_example_fails_when_the_xml_api_answers_a_fault(name: str, demo: Stack) -> None:
    """An XML API Fault makes the example print SUCCESS=false and exit non-zero."""
    demo.faults("POST", {"kind": "busy", "endpoint": "xmlapi", "times": 1})

    result = run_example(name, demo.environ(attempts=5))

    assert result.returncode == 1, result.stderr
    assert "GetLists SUCCESS=false: " in result.stdout
    assert "max number of concurrent" in result.stdout.lower()


@pytest.mark.parametrize("name", client_params())
def test_example_retries_a_503_then_gives_up_cleanly(name: str, outage: Stack) -> None:
    """With no token to be had, the example retries its bounded attempts, exits 1."""
    environ = outage.environ(attempts=3)

    result = run_example(name, environ)

    assert result.returncode == 1
    assert len(re.findall(r"\(HTTP 503\); retrying in \d+s", result.stderr)) == 2
    assert "no token after 3 attempts" in result.stderr
    assert "Traceback" not in result.stderr
    assert SUCCESS_LINE not in result.stdout


@pytest.mark.parametrize("name", client_params())
def test_example_succeeds_once_the_provider_recovers(
    name: str, recovering: Stack
) -> None:
    """The example keeps retrying through a 503 and succeeds once a token exists."""
    client = subprocess.Popen(
        CLIENTS[name][1],
        cwd=EXAMPLES,
        env=recovering.environ(attempts=30),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors = Lines(client.stderr)
    errors.wait_for(r"\(HTTP 503\); retrying in \d+s", timeout=60)

    recovering.faults("DELETE")
    try:
        returncode = client.wait(timeout=60)
    finally:
        client.kill()

    assert returncode == 0, "".join(errors.seen)
    assert SUCCESS_LINE in client.stdout.read().splitlines()
