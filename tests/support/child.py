"""A child process whose stdout and stderr are read line by line as they come.

The base of the harness in `tests.support.processes`: reader threads keep
the pipes drained (a full pipe would stall the child), and every line is
kept for the test to search or print when it fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]

# A process test waits at most this long for anything to happen.
PATIENCE = 10.0

# At teardown, how long a process gets between SIGTERM and SIGKILL.
STOP_GRACE = 2.0


class Process:
    """A child process whose stdout and stderr are read as they come."""

    def __init__(self, argv: list[str], env: Mapping[str, str]) -> None:
        self.argv = argv
        self._lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._changed = threading.Condition()
        self._popen = subprocess.Popen(
            argv,
            env=child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPOSITORY,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (
                ("stdout", self._popen.stdout),
                ("stderr", self._popen.stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def send(self, sig: signal.Signals) -> None:
        self._popen.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        self._popen.kill()

    def wait(self, timeout: float = PATIENCE) -> int:
        status = self._popen.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return status

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, timeout: float = PATIENCE
    ) -> tuple[int, float]:
        """Send `sig`, wait for the exit; the status and seconds it took."""
        started = time.monotonic()
        self.send(sig)
        status = self.wait(timeout)
        return status, time.monotonic() - started

    def stdout_lines(self) -> list[str]:
        with self._changed:
            return list(self._lines["stdout"])

    def stderr_lines(self) -> list[str]:
        with self._changed:
            return list(self._lines["stderr"])

    def output(self) -> str:
        """Everything written so far, stdout then stderr."""
        return "\n".join(self.stdout_lines() + self.stderr_lines())

    def wait_for_line(
        self, pattern: str, timeout: float = PATIENCE, stream: str = "stderr"
    ) -> re.Match[str]:
        """The first line of `stream` matching `pattern`, waiting for it."""
        wanted = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._lines[stream]:
                    found = wanted.search(line)
                    if found:
                        return found
                left = deadline - time.monotonic()
                if left <= 0 or (
                    self._popen.poll() is not None and not self._reading()
                ):
                    raise AssertionError(
                        f"no line matching {pattern!r} on {stream} within "
                        f"{timeout:g}s; output so far:\n{self._text_locked()}"
                    )
                self._changed.wait(min(left, 0.1))

    def ask_to_stop(self) -> None:
        """Teardown, first half: SIGTERM if still running; never raises."""
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)

    def reap(self) -> None:
        """Teardown, second half: wait, SIGKILL if it lingers; never raises."""
        try:
            self._popen.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait(STOP_GRACE)
        for reader in self._readers:
            reader.join(STOP_GRACE)

    def _read(self, name: str, stream: Any) -> None:
        for line in stream:
            with self._changed:
                self._lines[name].append(line.rstrip("\n"))
                self._changed.notify_all()
        stream.close()
        with self._changed:
            self._changed.notify_all()

    def _reading(self) -> bool:
        return any(reader.is_alive() for reader in self._readers)

    def _text_locked(self) -> str:
        return "\n".join(self._lines["stdout"] + self._lines["stderr"])


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """Exactly `env`, plus what starting Python needs: no TOKEND_* leaks in."""
    inherited = {
        name: os.environ[name]
        for name in ("PATH", "HOME", "LANG", "SYSTEMROOT")
        if name in os.environ
    }
    python_path = os.pathsep.join(
        filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])
    )
    return {**inherited, "PYTHONPATH": python_path, **env}
