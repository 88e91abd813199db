"""A real `tokend serve` under hostile clients keeps serving everybody else.

Raw sockets send what no HTTP client would: broken request lines, headers
far over aiohttp's limits, requests that never finish, hundreds of idle
or half-closed connections, and random bytes. After each, a well-behaved
client still gets its token at once, and no answer to the abuse holds it.
"""

from __future__ import annotations

import random
import selectors
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.processes import Daemon, Emulator, Processes, daemon_env

pytestmark = pytest.mark.process

# What a client sends to ask for the token on purpose.
ASKING = b"GET /token HTTP/1.1\r\nHost: tokend\r\nTokend-Request: 1\r\n"

# A well-behaved client beside the abuse gets its token within this long.
PROMPT = 1.0

# The longest any raw exchange here waits for the daemon to answer.
EXCHANGE_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def daemon(shared_emulator: Emulator) -> Iterator[Daemon]:
    """One daemon for the module: whatever a test sends must leave it serving."""
    started = Processes()
    try:
        yield started.daemon(daemon_env(shared_emulator))
    finally:
        started.close()


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET\r\n",
        b"GET /token HTTP/1.1 and more\r\n",
        b"GET /token HTTP/7.3\r\n",
        b"get /token HTTP/1.1\r\n",
        b"FETCH /token HTTP/1.1\r\n",
        b"GET /to\x00ken HTTP/1.1\r\n",
        b"GET /token HTTP/1.1\n",
    ],
    ids=repr,
)
def test_a_malformed_request_line_is_a_400(daemon: Daemon, request_line: bytes) -> None:
    """A request line HTTP cannot parse gets a 400, and others their token."""
    payload = request_line + b"Tokend-Request: 1\r\n\r\n"

    [answer] = exchange(daemon, [payload])

    assert answer.startswith(b"HTTP/1.0 400 ")
    assert_still_serving(daemon, answer)


@pytest.mark.parametrize(
    "payload",
    [
        ASKING + b"X-Padding: " + b"p" * 65_536 + b"\r\n\r\n",
        b"GET /" + b"p" * 65_536 + b" HTTP/1.1\r\nTokend-Request: 1\r\n\r\n",
        ASKING + b"".join(b"X-%d: %s\r\n" % (n, b"p" * 100) for n in range(2000)),
        ASKING + b"Tokend-Request 1\r\n\r\n",
        ASKING + b" folded: line\r\n\r\n",
        ASKING + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
    ],
    ids=["huge-value", "huge-path", "2000-headers", "no-colon", "folded", "smuggle"],
)
def test_oversized_or_broken_headers_are_a_400(daemon: Daemon, payload: bytes) -> None:
    """Headers past aiohttp's limits, or malformed, get a 400 and no token."""

    [answer] = exchange(daemon, [payload])

    assert answer.startswith(b"HTTP/1.0 400 ")
    assert_still_serving(daemon, answer)


def test_a_client_that_never_finishes_its_headers_holds_nobody_up(
    daemon: Daemon,
) -> None:
    """While slow clients trickle a header a byte at a time, tokens are prompt."""
    trickle = b"X-Slow: " + b"s" * 1000
    waits = []

    with connections(daemon, 20) as slow:
        for sock in slow:
            sock.sendall(ASKING)
        for byte in trickle[:40]:
            for sock in slow:
                sock.sendall(bytes([byte]))
            waits.append(timed_token(daemon))
            time.sleep(0.05)
        unanswered = [_pending(sock) for sock in slow]

    assert max(waits) < PROMPT
    assert unanswered == [b""] * len(slow)


def test_a_flood_of_idle_and_half_closed_connections_holds_nobody_up(
    daemon: Daemon,
) -> None:
    """Hundreds of unfinished connections leave the token prompt, and are freed."""
    before = open_files(daemon.pid)

    with connections(daemon, 600) as flood:
        for n, sock in enumerate(flood):
            if n % 3 == 1:
                sock.sendall(ASKING)
            if n % 3 == 2:
                # Half-closed: the request is cut short and no more will come.
                sock.sendall(b"GET /tok")
                sock.shutdown(socket.SHUT_WR)
        during = timed_token(daemon)
        held = open_files(daemon.pid)

    daemon.wait_until(lambda: open_files(daemon.pid) < before + 10)
    assert during < PROMPT
    assert held > before + 300
    assert_still_serving(daemon, b"")


def test_random_bytes_never_stop_the_daemon(daemon: Daemon) -> None:
    """Random bytes on 50 connections get 400s or silence, never the token."""
    chance = random.Random(20_260_103)
    garbage = [chance.randbytes(chance.randint(1, 4096)) for _ in range(48)]
    tls_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32)
    payloads = [*garbage, tls_hello, b"\r\n" * 5000]

    answers = exchange(daemon, payloads)

    refused = [a for a in answers if a.startswith(b"HTTP/1.0 400 ")]
    assert all(a == b"" or a.startswith(b"HTTP/1.0 400 ") for a in answers)
    assert len(refused) > len(answers) / 2
    assert_still_serving(daemon, b"".join(answers))


# Helpers.


def assert_still_serving(daemon: Daemon, abuse_answers: bytes) -> None:
    """The daemon runs, logged no error, serves promptly, leaked no token."""
    wait = timed_token(daemon)
    token = daemon.token()

    assert daemon.returncode is None
    assert wait < PROMPT
    assert token.encode() not in abuse_answers
    assert " ERROR " not in daemon.output()
    assert "Traceback" not in daemon.output()


def timed_token(daemon: Daemon) -> float:
    """Seconds a fresh connection takes to get the token."""
    started = time.monotonic()
    reply = daemon.get("/token")
    assert reply.status == 200, reply.body
    return time.monotonic() - started


def exchange(daemon: Daemon, payloads: list[bytes]) -> list[bytes]:
    """Send each payload on a connection of its own; what came back on each.

    All connections are read together until the daemon closes them or
    `EXCHANGE_TIMEOUT` passes, so a payload the parser waits on costs the
    test one timeout, not one each.
    """
    answers = [b""] * len(payloads)
    with (
        connections(daemon, len(payloads)) as socks,
        selectors.DefaultSelector() as sel,
    ):
        for n, (sock, payload) in enumerate(zip(socks, payloads, strict=True)):
            _send_what_is_taken(sock, payload)
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, n)

        deadline = time.monotonic() + EXCHANGE_TIMEOUT
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.1):
                chunk = _receive(socks[key.data])
                if chunk == b"":
                    sel.unregister(key.fileobj)
                elif chunk is not None:
                    answers[key.data] += chunk
    return answers


@contextmanager
def connections(daemon: Daemon, count: int) -> Iterator[list[socket.socket]]:
    """`count` open TCP connections to the daemon, all closed on the way out."""
    address = urlsplit(daemon.url)
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            opened.append(
                socket.create_connection(
                    (address.hostname, address.port), timeout=EXCHANGE_TIMEOUT
                )
            )
        yield opened
    finally:
        for sock in opened:
            sock.close()


def open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def _send_what_is_taken(sock: socket.socket, payload: bytes) -> None:
    # The daemon may answer 400 and close before a long payload is sent.
    with suppress(OSError):
        sock.sendall(payload)


def _receive(sock: socket.socket) -> bytes | None:
    """The next bytes; b"" once the daemon has closed, None if none yet."""
    try:
        return sock.recv(65_536)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _pending(sock: socket.socket) -> bytes:
    """Whatever the daemon sent on `sock` so far, without waiting."""
    sock.setblocking(False)
    try:
        return sock.recv(65_536)
    except BlockingIOError:
        return b""
