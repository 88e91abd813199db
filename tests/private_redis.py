"""A redis-server of a test's own, on a free loopback port, that it may stop and start.

The shared Redis on 6379 is never stopped; tests that take Redis away
do it to one of these. Nothing is persisted (``--save ""``, no AOF).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

_READY = {"server": "Ready to accept connections", "sentinel": "+monitor master"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrivateRedis:
    """One redis-server (or sentinel) process in `directory`; `start` and `stop`."""

    def __init__(
        self,
        directory: Path,
        *options: str,
        port: int | None = None,
        mode: str = "server",
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self._options = options
        self._mode = mode
        self._process: subprocess.Popen[bytes] | None = None
        self._log = directory / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, within: float = 10.0) -> None:
        """Start the server on its port and wait until it accepts commands."""
        self._log.write_text("")
        command = [REDIS_SERVER]
        if self._mode == "sentinel":
            config = self.directory / f"sentinel-{self.port}.conf"
            config.write_text("\n".join(self._options) + "\n")
            command += [str(config), "--sentinel"]
        command += ["--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.directory), "--logfile", str(self._log)]
        if self._mode == "server":
            # Given last, the test's own options win over these.
            command += ["--save", "", "--appendonly", "no", *self._options]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        self._wait_for(_READY[self._mode], within)

    def stop(self) -> None:
        """Stop the server and wait for it to exit."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def _wait_for(self, line: str, within: float) -> None:
        deadline = time.monotonic() + within
        while line not in self._log.read_text(errors="replace"):
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self._log.read_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server not ready within {within}s")
            time.sleep(0.02)
