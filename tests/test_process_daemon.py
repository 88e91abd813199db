"""A real `tokend serve`: the guard, listeners, stop signals, bad settings."""

from __future__ import annotations

import signal
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.processes import Daemon, Emulator, daemon_env

pytestmark = pytest.mark.process

StartDaemon = Callable[..., Daemon]


@pytest.fixture
def socket_path() -> Iterator[Path]:
    # Short and unique: Unix socket paths are limited to about 100 bytes.
    path = Path("/tmp") / f"tokend-{uuid.uuid4().hex[:12]}.sock"
    yield path
    path.unlink(missing_ok=True)


def test_guard_refuses_unmarked_and_proxied_requests(
    shared_emulator: Emulator, start_daemon: StartDaemon
) -> None:
    """Only a direct request with 'Tokend-Request: 1' gets the token."""
    daemon = start_daemon(daemon_env(shared_emulator))

    unmarked = daemon.get("/token", headers={})
    proxied = daemon.get(
        "/token", headers={"Tokend-Request": "1", "X-Forwarded-For": "10.0.0.1"}
    )
    marked = daemon.get("/token")

    assert unmarked.status == 403
    assert "Tokend-Request: 1" in str(unmarked.document()["message"])
    assert proxied.status == 403
    assert marked.status == 200
    assert shared_emulator.accepts(str(marked.document()["access_token"]))


def test_unix_socket_is_0660_and_removed_at_exit(
    shared_emulator: Emulator, start_daemon: StartDaemon, socket_path: Path
) -> None:
    """On a Unix socket the file is mode 0660, serves the token, and goes at exit."""
    daemon = start_daemon(daemon_env(shared_emulator, listen=f"unix:{socket_path}"))
    mode = stat.S_IMODE(socket_path.stat().st_mode)
    token = daemon.token()

    status, _ = daemon.stop(signal.SIGTERM)

    assert daemon.url == f"unix:{socket_path}"
    assert mode == 0o660
    assert shared_emulator.accepts(token)
    assert status == 0
    assert not socket_path.exists()


def test_stale_socket_after_kill_9_is_replaced(
    shared_emulator: Emulator, start_daemon: StartDaemon, socket_path: Path
) -> None:
    """A daemon killed with SIGKILL leaves its socket; the next one takes it over."""
    env = daemon_env(shared_emulator, listen=f"unix:{socket_path}")
    first = start_daemon(env)
    first.kill()
    first.wait()
    left_behind = socket_path.exists()

    second = start_daemon(env)

    assert left_behind
    assert second.token()


def test_sigterm_exits_0_within_a_second(
    shared_emulator: Emulator, start_daemon: StartDaemon
) -> None:
    """SIGTERM on a serving daemon ends it with status 0 in under a second."""
    daemon = start_daemon(daemon_env(shared_emulator))

    status, seconds = daemon.stop(signal.SIGTERM)

    assert status == 0
    assert seconds < 1.0
    assert any("SIGTERM received" in line for line in daemon.stderr_lines())


def test_sigterm_during_a_hanging_grant_exits_within_a_second(
    emulator: Emulator, start_daemon: StartDaemon
) -> None:
    """A grant the upstream never answers does not hold up a stop."""
    emulator.inject("hang", times=5)
    daemon = start_daemon(daemon_env(emulator, request_timeout="30s"), ready=False)
    daemon.wait_bound()
    daemon.wait_until(
        lambda: any(r["outcome"] == "fault:hang" for r in emulator.requests())
    )

    status, seconds = daemon.stop(signal.SIGTERM)

    assert status == 0
    assert seconds < 1.0


def test_sigterm_during_a_backoff_sleep_exits_within_a_second(
    emulator: Emulator, start_daemon: StartDaemon
) -> None:
    """A daemon waiting out a long backoff stops at once on SIGTERM."""
    emulator.inject("status", times=5, status=503)
    env = daemon_env(emulator, backoff_base="30s", backoff_max="60s")
    daemon = start_daemon(env, ready=False)
    daemon.wait_bound()
    daemon.wait_for_line(r"grant failed .*next attempt in")

    status, seconds = daemon.stop(signal.SIGTERM)

    assert status == 0
    assert seconds < 1.0


def test_health_listener_serves_probes_but_never_the_token(
    shared_emulator: Emulator, start_daemon: StartDaemon
) -> None:
    """The extra listener answers /healthz and /readyz; /token is a 404 there."""
    daemon = start_daemon(daemon_env(shared_emulator, health_listen="127.0.0.1:0"))
    assert daemon.health_url is not None

    health = daemon.get("/healthz", url=daemon.health_url)
    ready = daemon.get("/readyz", url=daemon.health_url)
    token = daemon.get("/token", url=daemon.health_url)

    assert health.status == 200
    assert ready.status == 200
    assert token.status == 404
    assert daemon.token() not in token.body.decode()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "TOKEND_CLIENT_ID"),
        ({"TOKEND_TOKEN_LIFETIME": "forever"}, "TOKEND_TOKEN_LIFETIME"),
    ],
)
def test_bad_configuration_is_status_2_and_one_line(
    start_daemon: StartDaemon, env: dict[str, str], named: str
) -> None:
    """A bad setting stops start-up with exit 2 and one stderr line naming it."""
    settings = env if not env else {**daemon_credentials(), **env}

    daemon = start_daemon(settings, ready=False, listen=False)
    status = daemon.wait()

    assert status == 2
    assert len(daemon.stderr_lines()) == 1
    assert daemon.stderr_lines()[0].startswith("tokend: ")
    assert named in daemon.stderr_lines()[0]


def test_a_secret_given_twice_is_an_error_that_hides_it(
    start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A secret set directly and as a file is refused without showing either."""
    secret_file = tmp_path / "secret"
    secret_file.write_text("secret-from-the-file\n")
    env = {
        **daemon_credentials(),
        "TOKEND_CLIENT_SECRET": "secret-given-directly",
        "TOKEND_CLIENT_SECRET_FILE": str(secret_file),
    }

    daemon = start_daemon(env, ready=False, listen=False)
    status = daemon.wait()

    assert status == 2
    assert daemon.stderr_lines() == [
        "tokend: TOKEND_CLIENT_SECRET and TOKEND_CLIENT_SECRET_FILE both set: "
        "set one of them"
    ]


def test_no_secret_or_token_appears_in_any_output(
    start_emulator: Callable[..., Emulator], start_daemon: StartDaemon
) -> None:
    """Logs, readiness and metrics never show a credential or a served token."""
    client_secret = "client-secret-" + uuid.uuid4().hex
    refresh_token = "refresh-token-" + uuid.uuid4().hex
    emulator = start_emulator(
        "--client-secret", client_secret, "--refresh-token", refresh_token
    )
    emulator.inject("status", status=503, body="upstream trouble")
    emulator.inject("missing", field="expires_in")
    env = {
        **daemon_env(emulator, access_log="true", log_level="debug"),
        "TOKEND_CLIENT_SECRET": client_secret,
        "TOKEND_REFRESH_TOKEN": refresh_token,
    }
    daemon = start_daemon(env)
    plain = {"Tokend-Request": "1", "Accept": "text/plain"}
    tokens = {daemon.token(), daemon.get("/token", plain).body.decode()}
    answers = [daemon.get(path).body.decode() for path in ("/readyz", "/metrics")]

    status, _ = daemon.stop(signal.SIGTERM)

    everything = "\n".join([daemon.output(), *answers])
    assert status == 0
    assert "grant failed" in everything
    for secret in (client_secret, refresh_token, *tokens):
        assert secret not in everything


def daemon_credentials() -> dict[str, str]:
    return {
        "TOKEND_CLIENT_ID": "demo-client",
        "TOKEND_CLIENT_SECRET": "demo-secret",
        "TOKEND_REFRESH_TOKEN": "demo-refresh-token",
        "TOKEND_TOKEN_URL": "http://127.0.0.1:9/oauth/token",
    }
