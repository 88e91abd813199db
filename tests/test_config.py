"""Settings: defaults, sources, and one clear error for each bad value."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import pytest

from daemon import config
from daemon.errors import ConfigError

CREDENTIALS = {
    "TOKEND_CLIENT_ID": "client-1",
    "TOKEND_CLIENT_SECRET": "secret-1",
    "TOKEND_REFRESH_TOKEN": "refresh-1",
}


def load(*flags: str, env: Mapping[str, str] | None = None) -> config.Settings:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    namespace = parser.parse_args(list(flags))
    return config.load(vars(namespace), {**CREDENTIALS, **(env or {})})


def error_of(*flags: str, env: Mapping[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(*flags, env=env)
    return str(caught.value)


def test_defaults_follow_the_design() -> None:
    """With only credentials given, every setting has its documented default."""

    settings = load()

    assert settings.token_url == (
        "https://api-campaign-us-1.goacoustic.com/oauth/token"
    )
    assert str(settings.listen) == "127.0.0.1:8439"
    assert settings.health_listen is None
    assert settings.token_lifetime == 4 * 3600
    assert settings.refresh_after == pytest.approx(3.01 * 3600)
    assert settings.refresh_jitter == 30
    assert settings.expiry_margin == 60
    assert (settings.backoff_base, settings.backoff_max) == (1, 300)
    assert (settings.log_format, settings.log_level) == ("text", "info")
    assert settings.warnings == ()


@pytest.mark.parametrize(
    ("pod", "host"),
    [
        ("us-3", "api-campaign-us-3"),
        ("6", "api-campaign-eu-1"),
        ("9", "api-campaign-us-6"),
        ("a", "api-campaign-ap-1"),
        ("B", "api-campaign-ap-3"),
        ("EU-1", "api-campaign-eu-1"),
    ],
)
def test_pod_names_the_token_host(pod: str, host: str) -> None:
    """A pod given by region or number selects its own API host."""

    settings = load(env={"TOKEND_POD": pod})

    assert settings.token_url == f"https://{host}.goacoustic.com/oauth/token"


def test_token_url_wins_over_the_pod() -> None:
    """A full token URL replaces the one derived from the pod."""

    settings = load(
        env={"TOKEND_POD": "eu-1", "TOKEND_TOKEN_URL": "http://127.0.0.1:9/oauth/token"}
    )

    assert settings.token_url == "http://127.0.0.1:9/oauth/token"


def test_a_flag_wins_over_its_variable() -> None:
    """The flag's value is used when both flag and variable are set."""

    settings = load("--refresh-jitter", "5s", env={"TOKEND_REFRESH_JITTER": "40s"})

    assert settings.refresh_jitter == 5


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10836", 10836),
        ("0.5", 0.5),
        ("250ms", 0.25),
        ("90s", 90),
        ("2m", 120),
        ("3.01h", 10836),
        (" 4h ", 14400),
    ],
)
def test_durations_accept_seconds_and_units(text: str, seconds: float) -> None:
    """A duration is a number of seconds or a number with ms, s, m or h."""

    settings = load(env={"TOKEND_BACKOFF_MAX": text, "TOKEND_BACKOFF_BASE": "1ms"})

    assert settings.backoff_max == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TOKEND_POD": "us-9"}, "TOKEND_POD: unknown pod 'us-9'"),
        ({"TOKEND_REFRESH_AFTER": "3 hours"}, "TOKEND_REFRESH_AFTER: '3 hours' is not"),
        ({"TOKEND_EXPIRY_MARGIN": "-5s"}, "TOKEND_EXPIRY_MARGIN: '-5s' is not"),
        ({"TOKEND_REFRESH_AFTER": "4h"}, "TOKEND_REFRESH_AFTER (4h0m0s) must be"),
        ({"TOKEND_EXPIRY_MARGIN": "1h"}, "TOKEND_EXPIRY_MARGIN (1h0m0s) must be"),
        ({"TOKEND_BACKOFF_MAX": "0.5s"}, "TOKEND_BACKOFF_MAX (500ms) must not"),
        ({"TOKEND_BACKOFF_BASE": "0"}, "TOKEND_BACKOFF_BASE: must be longer"),
        ({"TOKEND_LISTEN": "localhost"}, "TOKEND_LISTEN: 'localhost' is not an"),
        ({"TOKEND_LISTEN": "unix:"}, "TOKEND_LISTEN: unix: needs a socket path"),
        ({"TOKEND_TOKEN_URL": "ftp://x"}, "TOKEND_TOKEN_URL: 'ftp://x' is not an"),
        ({"TOKEND_LOG_FORMAT": "xml"}, "TOKEND_LOG_FORMAT: 'xml' is not one of"),
        ({"TOKEND_ACCESS_LOG": "maybe"}, "TOKEND_ACCESS_LOG: 'maybe' is not a"),
    ],
)
def test_a_bad_value_is_named_with_what_it_accepts(
    env: dict[str, str], expected: str
) -> None:
    """Each malformed setting gives one line naming the variable and the fix."""

    message = error_of(env=env)

    assert message.startswith(expected)
    assert "\n" not in message


def test_missing_credentials_are_named() -> None:
    """Without credentials start-up names each missing variable."""

    parser = argparse.ArgumentParser()
    config.add_arguments(parser)

    with pytest.raises(ConfigError) as caught:
        config.load(vars(parser.parse_args([])), {"TOKEND_CLIENT_ID": "c"})

    assert "TOKEND_CLIENT_SECRET" in str(caught.value)
    assert "TOKEND_REFRESH_TOKEN" in str(caught.value)
    assert "TOKEND_CLIENT_ID " not in str(caught.value)


def test_a_secret_is_read_from_its_file(tmp_path: Path) -> None:
    """A ``_FILE`` variable names a file whose stripped content is the value."""
    secret_file = tmp_path / "secret"
    secret_file.write_text("  from-file\n")
    env = {"TOKEND_CLIENT_SECRET_FILE": str(secret_file)}

    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    settings = config.load(
        vars(parser.parse_args([])),
        {
            k: v
            for k, v in {**CREDENTIALS, **env}.items()
            if k != "TOKEND_CLIENT_SECRET"
        },
    )

    assert settings.client_secret.get() == "from-file"


def test_a_secret_file_is_read_again_for_rotation(tmp_path: Path) -> None:
    """A rotated secret file is seen on the next read; a vanished one keeps the last."""
    secret_file = tmp_path / "secret"
    secret_file.write_text("old")
    secret = config.Secret("old", secret_file)

    secret_file.write_text("new\n")
    rotated = secret.get()
    secret_file.unlink()
    after_removal = secret.get()

    assert rotated == "new"
    assert after_removal == "new"


def test_a_value_given_both_ways_is_an_error(tmp_path: Path) -> None:
    """A value given directly and as a file is refused rather than guessed."""
    secret_file = tmp_path / "secret"
    secret_file.write_text("x")

    message = error_of(env={"TOKEND_CLIENT_SECRET_FILE": str(secret_file)})
    flag_message = error_of(
        "--refresh-token", "a", "--refresh-token-file", str(secret_file)
    )

    assert message.startswith("TOKEND_CLIENT_SECRET and TOKEND_CLIENT_SECRET_FILE")
    assert flag_message.startswith("--refresh-token and --refresh-token-file")


def test_an_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    """A secret file that cannot be read stops start-up with its path and reason."""
    missing = tmp_path / "absent"
    env = {**CREDENTIALS, "TOKEND_CLIENT_SECRET_FILE": str(missing)}
    del env["TOKEND_CLIENT_SECRET"]
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)

    with pytest.raises(ConfigError) as caught:
        config.load(vars(parser.parse_args([])), env)

    assert str(caught.value) == (
        f"TOKEND_CLIENT_SECRET_FILE: cannot read {missing}: No such file or directory"
    )


def test_an_empty_secret_is_refused(tmp_path: Path) -> None:
    """An empty credential is an error, not an empty form field upstream."""

    message = error_of(env={"TOKEND_REFRESH_TOKEN": ""})

    assert message == "TOKEND_REFRESH_TOKEN: the OAuth refresh token is empty"


def test_a_secret_flag_is_warned_about() -> None:
    """A secret on the command line is accepted with a warning about `ps`."""

    settings = load("--client-secret", "on-the-command-line")

    assert len(settings.warnings) == 1
    assert "--client-secret puts a secret in the process list" in settings.warnings[0]


def test_a_refresh_under_the_provider_floor_is_warned_about() -> None:
    """Refreshing the real provider faster than every 3.01 h is warned about."""

    settings = load(env={"TOKEND_REFRESH_AFTER": "1h"})

    assert any("under the provider's 3.01h floor" in w for w in settings.warnings)


def test_secrets_never_reach_repr() -> None:
    """The settings' repr names where secrets come from, never their values."""

    text = repr(load())

    for value in CREDENTIALS.values():
        assert value not in text


@pytest.mark.parametrize(
    ("text", "listen"),
    [
        ("0.0.0.0:8440", config.Listen("0.0.0.0", 8440)),
        ("[::1]:0", config.Listen("::1", 0)),
        (":9000", config.Listen("127.0.0.1", 9000)),
        ("unix:/run/tokend.sock", config.Listen(path=Path("/run/tokend.sock"))),
    ],
)
def test_listen_addresses(text: str, listen: config.Listen) -> None:
    """An address is host:port (IPv6 in brackets) or a Unix socket path."""

    parsed = config.parse_listen(text)

    assert parsed == listen
