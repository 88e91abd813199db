"""The `tokend` command in-process: exit statuses and one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon import client
from daemon.cli import main
from daemon.errors import ConfigError
from tests.support.processes import free_port


@pytest.fixture(autouse=True)
def _no_tokend_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own TOKEND_* variables never reach these tests."""
    for name in [n for n in os.environ if n.startswith("TOKEND_")]:
        monkeypatch.delenv(name)


def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKEND_CLIENT_ID", "client-id")
    monkeypatch.setenv("TOKEND_CLIENT_SECRET", "client-secret")
    monkeypatch.setenv("TOKEND_REFRESH_TOKEN", "refresh-token")


def test_missing_credentials_are_status_2_and_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`tokend serve` without credentials names the variables in one line."""

    status = main(["serve"])

    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert err.startswith("tokend: missing TOKEND_CLIENT_ID")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--listen", "localhost"], "--listen"),
        (["--token-lifetime", "4 days"], "--token-lifetime"),
        (["--refresh-after", "5h"], "TOKEND_REFRESH_AFTER"),
        (["--pod", "mars-1"], "--pod"),
    ],
)
def test_a_bad_flag_value_is_status_2_naming_it(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    named: str,
) -> None:
    """A malformed setting stops `serve` with one line that names the setting."""
    credentials(monkeypatch)

    status = main(["serve", *args])

    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert named in err


def test_an_unreadable_secret_file_is_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A _FILE naming a missing file is refused with the path and the reason."""
    credentials(monkeypatch)
    monkeypatch.delenv("TOKEND_CLIENT_SECRET")
    monkeypatch.setenv("TOKEND_CLIENT_SECRET_FILE", str(tmp_path / "absent"))

    status = main(["serve"])

    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1
    assert "TOKEND_CLIENT_SECRET_FILE" in err
    assert "No such file" in err


@pytest.mark.parametrize("argv", [[], ["serve", "--no-such-flag"], ["launch"]])
def test_usage_errors_are_status_2_and_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """A missing or unknown command or flag is one line and status 2, no usage block."""

    with pytest.raises(SystemExit) as exited:
        main(argv)

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.count("\n") == 1
    assert err.startswith("tokend: ")


@pytest.mark.parametrize("command", ["token", "check"])
def test_client_commands_fail_clearly_when_nothing_listens(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """`token` and `check` against a closed port exit 1 naming the address."""
    url = f"http://127.0.0.1:{free_port()}"

    status = main([command, "--url", url, "--timeout", "2"])

    captured = capsys.readouterr()
    assert status == 1
    assert captured.out == ""
    assert f"cannot reach tokend at {url}" in captured.err
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        (None, "http://127.0.0.1:8439"),
        ("127.0.0.1:9000", "http://127.0.0.1:9000"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000"),
        ("[::]:9000", "http://[::1]:9000"),
        ("unix:/run/tokend/tokend.sock", "unix:/run/tokend/tokend.sock"),
    ],
)
def test_the_default_url_follows_tokend_listen(listen: str | None, url: str) -> None:
    """The client commands find the daemon where TOKEND_LISTEN says it listens."""
    environ = {} if listen is None else {"TOKEND_LISTEN": listen}

    found = client.default_url(environ)

    assert found == url


def test_a_bad_tokend_listen_is_a_config_error() -> None:
    """A malformed TOKEND_LISTEN is reported against its name."""

    with pytest.raises(ConfigError, match="TOKEND_LISTEN"):
        client.default_url({"TOKEND_LISTEN": "nowhere"})
