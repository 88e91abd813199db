"""The processes bench/serve.py measures: the emulator, tokend, the yardstick.

Each is started on a free loopback port, pinned to a CPU, and stopped with
SIGTERM (SIGKILL if it lingers) when the rig closes. `resident` reads a
process's memory from /proc: VmRSS now and VmHWM, its peak so far.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

REPOSITORY = Path(__file__).resolve().parents[1]

GUARD = {"Tokend-Request": "1"}

# Scaled time: a token lives 8 s and a new one is granted about every 4 s,
# so every load run of 5 s or more spans a refresh.
EMULATOR_TIMING = ("--lifetime", "8s", "--refresh-window", "4s")
DAEMON_TIMING = {
    "TOKEND_TOKEN_LIFETIME": "8s",
    "TOKEND_REFRESH_AFTER": "4.1s",
    "TOKEND_REFRESH_JITTER": "0.1s",
    "TOKEND_EXPIRY_MARGIN": "1s",
    "TOKEND_BACKOFF_BASE": "0.2s",
    "TOKEND_BACKOFF_MAX": "1s",
}
# The emulator's own demo credentials: nothing real is needed.
CREDENTIALS = {
    "TOKEND_CLIENT_ID": "demo-client",
    "TOKEND_CLIENT_SECRET": "demo-secret",
    "TOKEND_REFRESH_TOKEN": "demo-refresh-token",
}

_PATIENCE = 10.0


class Rig:
    """Every process the benchmark started, stopped together by `close`."""

    def __init__(self, server_cpu: int | None, helper_cpu: int | None) -> None:
        self.server_cpu = server_cpu
        self.helper_cpu = helper_cpu
        self._started: list[subprocess.Popen[bytes]] = []

    def emulator(self) -> str:
        """Start ``tokend emulator``; its URL."""
        port = free_port()
        self._start(
            [*_tokend("emulator"), f"--listen=127.0.0.1:{port}", *EMULATOR_TIMING],
            self.helper_cpu,
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: get(url, "/_emulator/requests")[0] == 200)
        return url

    def daemon(self, emulator: str) -> tuple[subprocess.Popen[bytes], str]:
        """Start ``tokend serve`` against `emulator`; the process and its URL.

        Returns as soon as the process runs: `wait_for_token` tells when it
        serves.
        """
        port = free_port()
        env = {
            **_base_env(),
            **CREDENTIALS,
            **DAEMON_TIMING,
            "TOKEND_TOKEN_URL": f"{emulator}/oauth/token",
            "TOKEND_LISTEN": f"127.0.0.1:{port}",
        }
        process = self._start([*_tokend("serve")], self.server_cpu, env)
        return process, f"http://127.0.0.1:{port}"

    def minimal(self, body_size: int) -> tuple[subprocess.Popen[bytes], str]:
        """Start the yardstick answering a body of `body_size` bytes."""
        port = free_port()
        argv = [
            sys.executable,
            str(REPOSITORY / "bench" / "minimal.py"),
            f"--port={port}",
            f"--body-size={body_size}",
        ]
        process = self._start(argv, self.server_cpu)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: get(url, "/token")[0] == 200)
        return process, url

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(_PATIENCE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_PATIENCE)

    def close(self) -> None:
        for process in self._started:
            if process.poll() is None:
                self.stop(process)

    def _start(
        self, argv: list[str], cpu: int | None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            argv,
            env=env or _base_env(),
            cwd=REPOSITORY,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=None if cpu is None else lambda: os.sched_setaffinity(0, {cpu}),
        )
        self._started.append(process)
        return process


def wait_for_token(url: str, timeout: float = _PATIENCE) -> float:
    """Poll GET /token until 200; the monotonic time it first answered 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if get(url, "/token", GUARD)[0] == 200:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.002)
    raise SystemExit(f"no token from {url} within {timeout:g}s")


def answer_of(url: str) -> tuple[dict[str, str], bytes]:
    """GET /token once: the headers (less Date) and the body."""
    status, headers, body = _request(url, "/token", GUARD)
    if status != 200:
        raise SystemExit(f"{url}/token answered {status}")
    headers.pop("date", None)
    return headers, body


def grants(emulator: str) -> int:
    """How many new tokens the emulator has granted."""
    _, body = get(emulator, "/_emulator/requests")
    return sum(1 for r in json.loads(body) if r.get("outcome") == "new")


def resident(pid: int) -> tuple[float, float]:
    """The process's resident memory now and at its peak, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()

    def field(name: str) -> float:
        found = re.search(rf"^{name}:\s+(\d+) kB", status, re.MULTILINE)
        if found is None:
            raise SystemExit(f"/proc/{pid}/status has no {name}")
        return int(found.group(1)) / 1024

    return field("VmRSS"), field("VmHWM")


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used so far, user and system, in seconds."""
    # utime and stime, fields 14 and 15 of /proc/PID/stat, counted after the
    # command's name (which may hold spaces, but ends at the last parenthesis).
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(
    url: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    status, _, body = _request(url, path, headers or {})
    return status, body


def wait_for(ready: Callable[[], bool], timeout: float = _PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"not ready within {timeout:g}s")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _request(
    url: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    address = urlsplit(url)
    connection = http.client.HTTPConnection(
        address.hostname or "127.0.0.1", address.port, timeout=5
    )
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        answer = {k.lower(): v for k, v in response.getheaders()}
        return response.status, answer, response.read()
    finally:
        connection.close()


def _tokend(command: str) -> list[str]:
    return [sys.executable, "-m", "daemon", command]


def _base_env() -> dict[str, str]:
    """What starting Python needs, and the checkout on its path; no TOKEND_*."""
    kept = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return {**kept, "PYTHONPATH": str(REPOSITORY)}
