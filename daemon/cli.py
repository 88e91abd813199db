"""The ``tokend`` command: serve, demo, emulator, token, check.

Exit statuses: 0 success (or a clean stop on SIGTERM/SIGINT); 1 a failure
at run time (cannot listen, no token, daemon unreachable or not ready);
2 bad usage or configuration, always as one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from daemon import __version__, client, config, logs
from daemon.errors import ConfigError, DaemonUnreachable, ListenError

# The daemon's modules (aiohttp, prometheus-client, the emulator) are
# imported by the commands that run them: `tokend check` runs every few
# seconds as a container health check, and starts in a fraction of the
# time without them.

log = logging.getLogger("tokend.cli")

EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line, like configuration errors."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"tokend: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        # The emulator's options come from its own parser, built (and
        # aiohttp loaded with it) only when that command runs.
        if arguments[:1] == ["emulator"]:
            return _emulator(arguments[1:])

        args = _build_parser().parse_args(arguments)
        status: int = args.run(args)
    except ConfigError as exc:
        print(f"tokend: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ListenError as exc:
        print(f"tokend: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        # Only reachable before a command's own signal handling is set up.
        return EXIT_FAILED
    return status


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tokend",
        description="Holds an Acoustic Campaign OAuth access token and serves it "
        "to local processes.",
    )
    parser.add_argument("--version", action="version", version=f"tokend {__version__}")
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=_Parser
    )

    serve = commands.add_parser("serve", help="run the daemon")
    config.add_arguments(serve)
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo", help="run the daemon against the embedded emulator, no credentials"
    )
    _add_demo_arguments(demo)
    demo.set_defaults(run=_demo)

    # Listed for --help only: main() hands `tokend emulator` to _emulator.
    commands.add_parser(
        "emulator", help="run the stand-in for the Acoustic OAuth server alone"
    )

    token = commands.add_parser("token", help="print the token of a running daemon")
    _add_client_arguments(token)
    token.set_defaults(run=_token)

    check = commands.add_parser(
        "check", help="exit 0 when a running daemon is ready (for health checks)"
    )
    _add_client_arguments(check)
    check.set_defaults(run=_check)
    return parser


# serve


def _serve(args: argparse.Namespace) -> int:
    flags = {k: v for k, v in vars(args).items() if k != "run"}
    settings = config.load(flags, os.environ)

    from daemon import loops, service

    logs.setup(settings.log_format, settings.log_level)
    for warning in settings.warnings:
        log.warning("%s", warning)
    return loops.run(service.serve(settings))


# demo


def _add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8439",
        metavar="ADDRESS",
        help="where the daemon serves the token (default %(default)s)",
    )
    parser.add_argument(
        "--emulator-listen",
        default="127.0.0.1:8438",
        metavar="ADDRESS",
        help="where the emulator listens (default %(default)s)",
    )
    _add_log_arguments(parser)


def _demo(args: argparse.Namespace) -> int:
    from daemon import demo, loops

    logs.setup(args.log_format, args.log_level)
    return loops.run(demo.run(args))


# emulator


def _emulator(argv: list[str]) -> int:
    from daemon import loops
    from daemon.emulator import command
    from daemon.signals import until_stopped

    parser = _Parser(
        prog="tokend emulator",
        description="A stand-in for the Acoustic Campaign OAuth server and its "
        "XML API, for demos and tests.",
    )
    command.add_arguments(parser)
    _add_log_arguments(parser)
    args = parser.parse_args(argv)

    logs.setup(args.log_format, args.log_level)
    loops.run(until_stopped(command.serve(args)))
    return 0


# token and check


def _add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="the daemon: http://host:port or unix:/path/to/socket "
        "(default: from TOKEND_LISTEN, else http://127.0.0.1:8439)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="give up after this long (default %(default)s)",
    )


def _token(args: argparse.Namespace) -> int:
    url = args.url or client.default_url(os.environ)
    try:
        reply = client.get(url, "/token", timeout=args.timeout)
    except DaemonUnreachable as exc:
        return _fail(str(exc))

    document = reply.document()
    token = document.get("access_token")
    if reply.status == 200 and isinstance(token, str):
        print(token)
        return 0
    if reply.status == 503:
        wait = reply.headers.get("retry-after", "?")
        return _fail(f"no servable token at {url}; the daemon retries in {wait}s")
    return _fail(f"{url} answered HTTP {reply.status}: {_message(document)}")


def _check(args: argparse.Namespace) -> int:
    url = args.url or client.default_url(os.environ)
    try:
        reply = client.get(url, "/readyz", timeout=args.timeout)
    except DaemonUnreachable as exc:
        return _fail(f"not ready: {exc}")

    status = reply.document()
    if reply.status == 200:
        print(
            f"ready: token {status.get('fingerprint')}, servable for "
            f"{status.get('servable_for')}s"
        )
        return 0
    if "state" not in status:
        return _fail(f"not ready: {url} answered HTTP {reply.status}")
    reason = status.get("last_error") or "no token granted yet"
    return _fail(f"not ready: {status['state']} ({reason})")


def _fail(message: str) -> int:
    print(f"tokend: {message}", file=sys.stderr)
    return EXIT_FAILED


def _message(document: dict[str, object]) -> str:
    return str(document.get("message") or "an answer tokend does not give")


def _add_log_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
