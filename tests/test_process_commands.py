"""The client commands and the demo, as a shell script or a container runs them."""

from __future__ import annotations

import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import (
    Daemon,
    Emulator,
    Processes,
    daemon_env,
    free_port,
)

pytestmark = pytest.mark.process

StartDaemon = Callable[..., Daemon]


def tokend(*args: str) -> list[str]:
    return [sys.executable, "-m", "daemon", *args]


@pytest.fixture
def socket_path() -> Iterator[Path]:
    path = Path("/tmp") / f"tokend-{uuid.uuid4().hex[:12]}.sock"
    yield path
    path.unlink(missing_ok=True)


def test_token_prints_the_token_over_the_socket_in_tokend_listen(
    shared_emulator: Emulator,
    start_daemon: StartDaemon,
    processes: Processes,
    socket_path: Path,
) -> None:
    """`tokend token` finds the daemon from TOKEND_LISTEN and prints the bare token."""
    listen = {"TOKEND_LISTEN": f"unix:{socket_path}"}
    daemon = start_daemon({**daemon_env(shared_emulator), **listen})

    command = processes.start(tokend("token"), listen)
    status = command.wait()

    assert status == 0
    assert command.stdout_lines() == [daemon.token()]


def test_check_is_0_when_ready(
    shared_emulator: Emulator, start_daemon: StartDaemon, processes: Processes
) -> None:
    """`tokend check` exits 0 against a daemon holding a token."""
    daemon = start_daemon(daemon_env(shared_emulator))

    command = processes.start(tokend("check", "--url", daemon.url), {})
    status = command.wait()

    assert status == 0
    assert command.stdout_lines()[0].startswith("ready: token ")


def test_check_and_token_fail_clearly_without_a_token(
    emulator: Emulator, start_daemon: StartDaemon, processes: Processes
) -> None:
    """Against a daemon whose upstream refuses, both exit 1 with one line saying why."""
    emulator.inject("status", times=100, status=503)
    daemon = start_daemon(daemon_env(emulator), ready=False)
    daemon.wait_bound()
    daemon.wait_for_line("grant failed")

    check = processes.start(tokend("check", "--url", daemon.url), {})
    token = processes.start(tokend("token", "--url", daemon.url), {})
    statuses = (check.wait(), token.wait())

    assert statuses == (1, 1)
    assert len(check.stderr_lines()) == 1
    assert check.stderr_lines()[0].startswith("tokend: not ready: failing")
    assert len(token.stderr_lines()) == 1
    assert token.stderr_lines()[0].startswith(
        f"tokend: no servable token at {daemon.url}; the daemon retries in "
    )
    assert token.stdout_lines() == []


def test_token_fails_clearly_when_no_daemon_listens(processes: Processes) -> None:
    """With nothing at the address, `tokend token` exits 1 naming the address."""
    url = f"http://127.0.0.1:{free_port()}"

    command = processes.start(tokend("token", "--url", url), {})
    status = command.wait()

    assert status == 1
    assert command.stderr_lines() == [
        f"tokend: cannot reach tokend at {url}: Connection refused"
    ]


def test_demo_serves_a_token_and_stops_on_sigint(processes: Processes) -> None:
    """`tokend demo` prints a curl line, serves a token, and Ctrl-C ends it with 0."""
    demo = processes.start(
        tokend("demo", "--listen", "127.0.0.1:0", "--emulator-listen", "127.0.0.1:0"),
        {},
    )
    curl = demo.wait_for_line(
        r"curl -H 'Tokend-Request: 1' (\S+)/token", stream="stdout"
    )
    token = processes.start(tokend("token", "--url", curl.group(1)), {})
    token_status = token.wait()

    status, seconds = demo.stop(signal.SIGINT)

    assert token_status == 0
    assert token.stdout_lines()[0]
    assert status == 0
    assert seconds < 1.0
