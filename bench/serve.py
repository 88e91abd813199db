"""Benchmark of GET /token: tokend against a plain aiohttp handler, in one run.

Starts ``tokend emulator`` and ``tokend serve`` against it (on scaled time,
so tokens are refreshed while the load runs), and the yardstick
(bench/minimal.py: the same body size and headers from a bare handler on
uvloop). Both servers are pinned to one CPU and the load generator to the
other. Each round loads each server in both modes, alternating which goes
first, and the report gives the medians over rounds:

- requests per second, p50 and p99 latency, per server and mode;
- resident memory idle (after the first answer) and at peak (VmHWM);
- tokend's time from launch to its first token served, over several launches;
- non-200 answers and socket errors while tokend refreshed under load;

and the ratios against the targets. Run it by hand, on a quiet machine:

    python -m bench.serve                  # 5 rounds, 5 s a run
    python -m bench.serve --rounds 3 --seconds 6 --connections 64
    python -m bench.serve --generator python   # without wrk

Exit status 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import dataclass, field

from bench import load, rig
from bench.load import MODES, Load

SERVERS = ("tokend", "minimal")

# What GET /token must reach, as ratios to the yardstick in the same run.
MIN_THROUGHPUT_RATIO = 0.9
MAX_IDLE_MEMORY_RATIO = 1.15
MAX_READY_SECONDS = 1.0


@dataclass
class Results:
    """Everything measured in one benchmark run."""

    loads: dict[tuple[str, str], list[Load]] = field(default_factory=dict)
    # CPU time the server spent per request: steadier than throughput on a
    # machine shared with other work, since time spent waiting is not in it.
    cpu_us: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    idle: dict[str, float] = field(default_factory=dict)
    peak: dict[str, float] = field(default_factory=dict)
    ready: list[float] = field(default_factory=list)
    refreshes: list[int] = field(default_factory=list)

    def add(self, server: str, mode: str, figures: Load, cpu: float) -> None:
        self.loads.setdefault((server, mode), []).append(figures)
        per_request = cpu / figures.requests * 1e6
        self.cpu_us.setdefault((server, mode), []).append(per_request)

    def median(self, server: str, mode: str, figure: str) -> float:
        if figure == "cpu_us":
            return statistics.median(self.cpu_us[(server, mode)])
        return statistics.median(
            getattr(each, figure) for each in self.loads[(server, mode)]
        )

    def tokend_errors(self) -> int:
        runs = [each for mode in MODES for each in self.loads[("tokend", mode)]]
        return sum(each.non_2xx + each.socket_errors for each in runs)


def main() -> int:
    args = _parse()
    cpus = sorted(os.sched_getaffinity(0))
    # Servers on one CPU, the generator and the emulator on another.
    pinned = len(cpus) > 1 and not args.no_pinning
    server_cpu, helper_cpu = (cpus[0], cpus[1]) if pinned else (None, None)
    setup = rig.Rig(server_cpu, helper_cpu)
    results = Results()
    try:
        emulator = setup.emulator()
        _measure_ready(setup, emulator, args.launches, results)
        _measure_load(setup, emulator, args, results)
    finally:
        setup.close()

    _report(args, results, server_cpu, helper_cpu)
    return 0 if all(met for _, _, met in _verdicts(results)) else 1


def _measure_ready(
    setup: rig.Rig, emulator: str, launches: int, results: Results
) -> None:
    """Launch tokend `launches` times; seconds to its first token each time."""
    for _ in range(launches):
        started = time.monotonic()
        process, url = setup.daemon(emulator)
        results.ready.append(rig.wait_for_token(url) - started)
        setup.stop(process)


def _measure_load(
    setup: rig.Rig, emulator: str, args: argparse.Namespace, results: Results
) -> None:
    daemon, daemon_url = setup.daemon(emulator)
    rig.wait_for_token(daemon_url)
    headers, body = rig.answer_of(daemon_url)
    minimal, minimal_url = setup.minimal(len(body))
    _require_same_answer(headers, len(body), minimal_url)

    urls = {"tokend": f"{daemon_url}/token", "minimal": f"{minimal_url}/token"}
    pids = {"tokend": daemon.pid, "minimal": minimal.pid}
    # Idle: both have answered, and had a moment to settle, before any load.
    time.sleep(1.0)
    for server, pid in pids.items():
        results.idle[server] = rig.resident(pid)[0]

    # A short warm-up of each, not counted.
    for server in SERVERS:
        _run(setup, urls[server], "keep-alive", args, seconds=1.0)
    for round_number in range(args.rounds):
        order = SERVERS if round_number % 2 == 0 else SERVERS[::-1]
        for mode in MODES:
            for server in order:
                granted = rig.grants(emulator)
                used = rig.cpu_seconds(pids[server])
                figures = _run(setup, urls[server], mode, args)
                used = rig.cpu_seconds(pids[server]) - used
                results.add(server, mode, figures, used)
                if server == "tokend":
                    results.refreshes.append(rig.grants(emulator) - granted)

    for server, pid in pids.items():
        results.peak[server] = rig.resident(pid)[1]


def _run(
    setup: rig.Rig,
    url: str,
    mode: str,
    args: argparse.Namespace,
    seconds: float | None = None,
) -> Load:
    return load.run(
        url,
        mode,
        connections=args.connections,
        seconds=seconds or args.seconds,
        cpu=setup.helper_cpu,
        tool=args.generator,
    )


def _require_same_answer(headers: dict[str, str], size: int, minimal: str) -> None:
    """The yardstick must answer what tokend does, or the comparison is unfair."""
    theirs, body = rig.answer_of(minimal)
    same = {"content-type", "cache-control", "content-length"}
    mine = {k: v for k, v in headers.items() if k in same}
    if len(body) != size or mine != {k: v for k, v in theirs.items() if k in same}:
        raise SystemExit(f"the yardstick answers {theirs}, tokend {mine}")


def _verdicts(results: Results) -> list[tuple[str, str, bool]]:
    """Each target: what it is, the figure reached, whether it is met."""
    verdicts = []
    for mode in MODES:
        ratio = results.median("tokend", mode, "rps") / results.median(
            "minimal", mode, "rps"
        )
        verdicts.append(
            (
                f"throughput, {mode}",
                f"{ratio:.2f} x minimal (at least {MIN_THROUGHPUT_RATIO})",
                ratio >= MIN_THROUGHPUT_RATIO,
            )
        )
    memory = results.idle["tokend"] / results.idle["minimal"]
    verdicts.append(
        (
            "idle memory",
            f"{memory:.2f} x minimal (at most {MAX_IDLE_MEMORY_RATIO})",
            memory <= MAX_IDLE_MEMORY_RATIO,
        )
    )
    ready = statistics.median(results.ready)
    verdicts.append(
        (
            "ready",
            f"{ready:.3f} s to the first token (under {MAX_READY_SECONDS:g} s)",
            ready < MAX_READY_SECONDS,
        )
    )
    errors = results.tokend_errors()
    refreshed = min(results.refreshes)
    verdicts.append(
        (
            "refresh under load",
            f"{errors} errors; {sum(results.refreshes)} refreshes, "
            f"at least {refreshed} in every run",
            errors == 0 and refreshed >= 1,
        )
    )
    return verdicts


def _report(
    args: argparse.Namespace,
    results: Results,
    server_cpu: int | None,
    helper_cpu: int | None,
) -> None:
    pinning = (
        f"servers on CPU {server_cpu}, load and emulator on CPU {helper_cpu}"
        if server_cpu is not None
        else "no CPU pinning"
    )
    print(
        f"tokend GET /token benchmark: {args.generator}, 1 thread, "
        f"{args.connections} connections, rounds: {args.rounds}, "
        f"{args.seconds:g} s a run (medians); {pinning}"
    )
    print(f"machine: {os.cpu_count()} CPUs, {_cpu_model()}, Python {_python()}")
    print()
    print(
        f"{'mode':<11} {'server':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU us/req':>11}"
    )
    for mode in MODES:
        for server in SERVERS:
            rps = results.median(server, mode, "rps")
            p50 = results.median(server, mode, "p50_us") / 1000
            p99 = results.median(server, mode, "p99_us") / 1000
            cpu = results.median(server, mode, "cpu_us")
            print(
                f"{mode:<11} {server:<8} {rps:>9,.0f} {p50:>8.2f} {p99:>8.2f} "
                f"{cpu:>11.1f}"
            )
    print()
    for server in SERVERS:
        print(
            f"memory     {server:<8} idle {results.idle[server]:.1f} MiB, "
            f"peak {results.peak[server]:.1f} MiB"
        )
    ready = results.ready
    print(
        f"ready      tokend   {statistics.median(ready):.3f} s median over "
        f"{len(ready)} launches ({min(ready):.3f} to {max(ready):.3f})"
    )
    print()
    for name, figure, met in _verdicts(results):
        print(f"{'met' if met else 'MISSED':<7} {name:<22} {figure}")
    cpu = ", ".join(f"{mode} {_cpu_ratio(results, mode):.2f}" for mode in MODES)
    print(
        f"for reference, minimal's CPU per request over tokend's: {cpu} "
        "(the throughput ratio where the server's CPU is the limit)"
    )


def _cpu_ratio(results: Results, mode: str) -> float:
    return results.median("minimal", mode, "cpu_us") / results.median(
        "tokend", mode, "cpu_us"
    )


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="per load run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--launches", type=int, default=7, help="for the ready time")
    parser.add_argument("--no-pinning", action="store_true")
    parser.add_argument(
        "--generator",
        choices=load.GENERATORS,
        default=load.generator(),
        help="the load generator (default: wrk where installed, else python)",
    )
    args = parser.parse_args()
    if args.seconds < 5:
        # Shorter runs might miss the refresh every 4 s they are there to span.
        parser.error("--seconds must be at least 5")
    return args


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _python() -> str:
    return platform.python_version()


if __name__ == "__main__":
    raise SystemExit(main())
