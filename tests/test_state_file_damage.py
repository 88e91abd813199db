"""A state file that cannot be trusted is reported once and never served from."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.oauth import Credentials
from tests.lifecycle import LIFETIME, TOKEN_URL
from tests.statefile_rig import (
    EPOCH,
    make_daemon,
    make_provider,
    read_state,
    token_calls,
    write_state,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

# A token the provider never issued: serving it would be the bug.
FOREIGN_VALUE = "token-from-somewhere-else-0123456789"


def foreign_token(issued_at: float = EPOCH) -> dict[str, object]:
    return {
        "access_token": FOREIGN_VALUE,
        "issued_at": issued_at,
        "expires_at": issued_at + LIFETIME,
    }


def missing(path: Path) -> None:
    return None


def unreadable(path: Path) -> None:
    # A folder in its place: unreadable as a file even by root.
    path.mkdir()


def truncated(path: Path) -> None:
    write_state(path, token=foreign_token())
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def not_an_object(path: Path) -> None:
    path.write_text("[1, 2, 3]\n")


def wrong_types(path: Path) -> None:
    write_state(path, token={"access_token": FOREIGN_VALUE, "issued_at": "soon"})


def newer_format(path: Path) -> None:
    write_state(path, format=2, token=foreign_token())


def other_credentials(path: Path) -> None:
    other = Credentials("another-client", "its-secret", "its-refresh-token")
    write_state(path, account=other.fingerprint(TOKEN_URL), token=foreign_token())


def from_the_future(path: Path) -> None:
    later = EPOCH + 3600
    write_state(path, written_at=later, token=foreign_token(later))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (missing, "does not exist"),
    "unreadable": (unreadable, "cannot be read"),
    "truncated": (truncated, "is not JSON"),
    "not-an-object": (not_an_object, "is not a JSON object"),
    "wrong-types": (wrong_types, "has a token.issued_at that is not epoch seconds"),
    "newer-format": (newer_format, "is not in format 1"),
    "other-credentials": (other_credentials, "other credentials"),
    "from-the-future": (from_the_future, "1h0m0s in the future"),
}


def read_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "tokend.statefile" and "going on without it" in r.getMessage()
    ]


@pytest.mark.parametrize("kind", DAMAGE)
async def test_a_bad_state_file_is_reported_once_and_a_token_is_granted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """Each kind of bad file gives one warning naming it; the token comes upstream."""
    path = tmp_path / "state.json"
    damage, problem = DAMAGE[kind]
    damage(path)
    provider = make_provider()

    daemon = make_daemon(path, provider)
    await daemon.supervisor.start()
    served_at_start = daemon.supervisor.current()
    token = await daemon.supervisor.wait_ready()
    await daemon.supervisor.stop()

    (warning,) = read_warnings(caplog)
    assert problem in warning.getMessage()
    assert warning.exc_info is None
    assert served_at_start is None
    assert token.value != FOREIGN_VALUE
    assert provider.is_valid(token.value)
    assert len(token_calls(provider)) == 1


@pytest.mark.parametrize("kind", [k for k in DAMAGE if k != "unreadable"])
async def test_a_bad_state_file_is_replaced_by_a_sound_one(
    tmp_path: Path, kind: str
) -> None:
    """After the first grant the file holds that token, whatever was there before."""
    path = tmp_path / "state.json"
    damage, _ = DAMAGE[kind]
    damage(path)
    daemon = make_daemon(path, make_provider())

    await daemon.supervisor.start()
    token = await daemon.supervisor.wait_ready()
    await daemon.supervisor.stop()

    kept = read_state(path)["token"]
    assert isinstance(kept, dict)
    assert kept["access_token"] == token.value


async def test_an_unwritable_state_file_warns_and_the_token_is_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With no folder to write in, each write warns and the grant is still served."""
    path = tmp_path / "not-mounted" / "state.json"
    provider = make_provider()

    daemon = make_daemon(path, provider)
    await daemon.supervisor.start()
    token = await daemon.supervisor.wait_ready()
    await daemon.supervisor.stop()

    write_failures = [
        r for r in caplog.records if "cannot write state file" in r.getMessage()
    ]
    assert provider.is_valid(token.value)
    # One before the request is sent, one with its token.
    assert len(write_failures) == 2
    assert all(r.levelno == logging.WARNING for r in write_failures)


async def test_the_state_file_and_its_lock_are_private_whatever_the_umask(
    tmp_path: Path,
) -> None:
    """Written under umask 000, the state file and the lock file have mode 0600."""
    path = tmp_path / "state.json"
    daemon = make_daemon(path, make_provider())
    previous = os.umask(0)
    try:
        await daemon.supervisor.start()
        await daemon.supervisor.wait_ready()
        await daemon.supervisor.stop()
    finally:
        os.umask(previous)

    lock = path.with_name("state.json.lock")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


async def test_a_state_file_open_to_others_is_tightened_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A kept file with mode 0644 is set to 0600, said once, and still adopted."""
    path = tmp_path / "state.json"
    provider = make_provider()
    first = make_daemon(path, provider)
    await first.supervisor.start()
    kept = await first.supervisor.wait_ready()
    await first.supervisor.stop()
    path.chmod(0o644)
    caplog.clear()

    second = make_daemon(path, provider)
    await second.supervisor.start()
    served = second.supervisor.current()
    await second.supervisor.stop()

    mode_warnings = [r for r in caplog.records if "0644" in r.getMessage()]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(mode_warnings) == 1
    assert served is not None
    assert served.value == kept.value
