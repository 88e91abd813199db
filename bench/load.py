"""Load on one URL for bench/serve.py: wrk where installed, else Python.

Both generators send the same request (``GET`` with ``Tokend-Request: 1``)
from one thread pinned to one CPU, for a bounded time, to a loopback URL,
in one of two modes: ``keep-alive`` (each connection carries request after
request) or ``close`` (``Connection: close``, a new connection for every
request). Both report the same figures as a `Load`.

The Python generator runs in a process of its own, like wrk, so that it
never shares a CPU with the benchmark's bookkeeping:

    python bench/load.py http://127.0.0.1:8439/token --mode close --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

MODES = ("keep-alive", "close")

_WRK_SCRIPT = Path(__file__).with_name("report.lua")


@dataclass(frozen=True)
class Load:
    """What one load run measured."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_us: float
    p99_us: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


GENERATORS = ("wrk", "python")


def generator() -> str:
    """The generator this machine has: wrk, else Python."""
    return "wrk" if shutil.which("wrk") else "python"


def run(
    url: str,
    mode: str,
    *,
    connections: int,
    seconds: float,
    cpu: int | None,
    tool: str,
) -> Load:
    """Load `url` for `seconds` in `mode` with `tool`, one of `GENERATORS`."""
    require_loopback(url)
    if tool == "wrk":
        argv = _wrk_argv(url, mode, connections, seconds)
    else:
        argv = [
            sys.executable,
            __file__,
            url,
            f"--mode={mode}",
            f"--connections={connections}",
            f"--seconds={seconds}",
        ]
    finished = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
        preexec_fn=None if cpu is None else lambda: os.sched_setaffinity(0, {cpu}),
    )
    # The figures are the last line; wrk prints its own summary before it.
    return Load(**json.loads(finished.stdout.strip().splitlines()[-1]))


def require_loopback(url: str) -> None:
    """Refuse any target but this machine's loopback: load goes nowhere else."""
    if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to load {url}: only loopback addresses are loaded")


def _wrk_argv(url: str, mode: str, connections: int, seconds: float) -> list[str]:
    argv = [
        "wrk",
        "--threads=1",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=2s",
        f"--script={_WRK_SCRIPT}",
    ]
    if mode == "close":
        argv.append("--header=Connection: close")
    return [*argv, url]


# The Python generator.


@dataclass
class _Tally:
    latencies: list[float]
    non_2xx: int = 0
    socket_errors: int = 0


async def _load(url: str, mode: str, connections: int, seconds: float) -> Load:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    head += "Tokend-Request: 1\r\n"
    if mode == "close":
        head += "Connection: close\r\n"
    request = (head + "\r\n").encode()

    tally = _Tally(latencies=[])
    started = time.perf_counter()
    deadline = started + seconds
    workers = [
        _worker(host, port, request, mode == "close", deadline, tally)
        for _ in range(connections)
    ]
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - started

    cuts = statistics.quantiles(tally.latencies, n=100) if tally.latencies else [0.0]
    return Load(
        requests=len(tally.latencies),
        seconds=elapsed,
        non_2xx=tally.non_2xx,
        socket_errors=tally.socket_errors,
        p50_us=cuts[min(49, len(cuts) - 1)] * 1e6,
        p99_us=cuts[-1] * 1e6,
    )


async def _worker(
    host: str, port: int, request: bytes, close: bool, deadline: float, tally: _Tally
) -> None:
    stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while time.perf_counter() < deadline:
        sent = time.perf_counter()
        try:
            if stream is None:
                stream = await asyncio.open_connection(host, port)
            reader, writer = stream
            writer.write(request)
            status = await _read_answer(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            tally.socket_errors += 1
            stream = None
            continue

        tally.latencies.append(time.perf_counter() - sent)
        if not 200 <= status < 300:
            tally.non_2xx += 1
        if close:
            writer.close()
            stream = None
    if stream is not None:
        stream[1].close()


async def _read_answer(reader: asyncio.StreamReader) -> int:
    """Read one answer; its status. Bodies are framed by Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--mode", choices=MODES, default="keep-alive")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    require_loopback(args.url)

    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        load = runner.run(_load(args.url, args.mode, args.connections, args.seconds))
    print(json.dumps(asdict(load)))


if __name__ == "__main__":
    main()
