"""Settings from flags, ``TOKEND_*`` variables and ``*_FILE`` secrets.

Each setting has a variable (``TOKEND_CLIENT_ID``) and a flag
(``--client-id``); a flag wins over the variable. Secrets may instead name
a file (``TOKEND_CLIENT_SECRET_FILE``, ``--client-secret-file``) whose
stripped content is the value, re-read before every grant so that a rotated
Kubernetes Secret reaches the daemon. A bad value raises `ConfigError` with
one line naming the variable and what it accepts.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from daemon.durations import format_duration, parse_duration
from daemon.errors import ConfigError
from daemon.pods import token_url
from daemon.stores.redis_connection import parse_sentinel_url

log = logging.getLogger("tokend.config")

# The provider's floor between two grants: 3.01 hours.
PROVIDER_REFRESH_FLOOR = 10836.0


class Secret:
    """A secret value, from a setting or a file; never shown by `repr`."""

    def __init__(self, value: str, path: Path | None = None) -> None:
        self._value = value
        self.path = path

    def get(self) -> str:
        """The value; a file is read again, keeping the last value if it fails."""
        if self.path is None:
            return self._value
        try:
            fresh = self.path.read_text().strip()
        except OSError as exc:
            log.warning(
                "cannot re-read %s (%s); using the value read before",
                self.path,
                exc.strerror,
            )
            return self._value
        if fresh:
            self._value = fresh
        return self._value

    def __repr__(self) -> str:
        source = f"file {str(self.path)!r}" if self.path else "value"
        return f"Secret(<{source}>)"


@dataclass(frozen=True)
class Listen:
    """Where to accept connections: TCP `host` and `port`, or a Unix `path`."""

    host: str = "127.0.0.1"
    port: int = 8439
    path: Path | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    """Everything `tokend serve` needs, validated."""

    client_id: Secret
    client_secret: Secret
    refresh_token: Secret
    token_url: str
    listen: Listen = field(default_factory=Listen)
    health_listen: Listen | None = None
    token_lifetime: float = 4 * 3600.0
    refresh_after: float = PROVIDER_REFRESH_FLOOR
    refresh_jitter: float = 30.0
    expiry_margin: float = 60.0
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    connect_timeout: float = 5.0
    request_timeout: float = 30.0
    state_file: Path | None = None
    redis_url: Secret | None = None
    redis_prefix: str = "tokend"
    redis_lease: float = 15.0
    log_format: str = "text"
    log_level: str = "info"
    access_log: bool = False
    warnings: tuple[str, ...] = ()


def parse_listen(text: str) -> Listen:
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if not path:
            raise ValueError("unix: needs a socket path, e.g. unix:/run/tokend.sock")
        return Listen(path=Path(path))

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(
            f"{text!r} is not an address: give host:port (127.0.0.1:8439, "
            "[::1]:8439, port 0 for any) or unix:/path/to/socket"
        )
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    return Listen(host=host, port=int(port))


def parse_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    return text


def parse_redis_url(text: str) -> str:
    if urlsplit(text).scheme not in ("redis", "rediss", "unix", "redis+sentinel"):
        # The URL may hold a password: it is not repeated in the message.
        raise ValueError("give a redis://, rediss://, unix:// or redis+sentinel:// URL")
    if text.lower().startswith("redis+sentinel:"):
        parse_sentinel_url(text)
    return text


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean: give true or false")


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"{text!r} is not one of: {', '.join(allowed)}")
        return value

    return parse


def parse_prefix(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"{text!r} is not a key prefix: give a word with no spaces")
    return text


@dataclass(frozen=True)
class Option:
    """One setting: its name, parser, default, and whether it is a secret."""

    name: str
    parse: Callable[[str], Any]
    default: str | None
    help: str
    secret: bool = False

    @property
    def variable(self) -> str:
        return "TOKEND_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS = (
    Option("client_id", str, None, "OAuth client id", secret=True),
    Option("client_secret", str, None, "OAuth client secret", secret=True),
    Option("refresh_token", str, None, "OAuth refresh token", secret=True),
    Option("pod", token_url, "us-1", "Acoustic pod: us-1 ... or 1 ... 9, A, B"),
    Option("token_url", parse_url, None, "full token URL (wins over the pod)"),
    Option("listen", parse_listen, "127.0.0.1:8439", "host:port or unix:/path"),
    Option("health_listen", parse_listen, None, "listener for probes only"),
    Option("token_lifetime", parse_duration, "4h", "how long a token lives"),
    Option("refresh_after", parse_duration, "3.01h", "least time between grants"),
    Option("refresh_jitter", parse_duration, "30s", "random delay added to a refresh"),
    Option(
        "expiry_margin", parse_duration, "60s", "stop serving this long before expiry"
    ),
    Option("backoff_base", parse_duration, "1s", "first retry wait"),
    Option("backoff_max", parse_duration, "5m", "longest retry wait"),
    Option("connect_timeout", parse_duration, "5s", "connect timeout upstream"),
    Option("request_timeout", parse_duration, "30s", "whole-request timeout upstream"),
    Option("state_file", Path, None, "keep the token here across restarts"),
    Option(
        "redis_url", parse_redis_url, None, "share the token through Redis", secret=True
    ),
    Option("redis_prefix", parse_prefix, "tokend", "Redis key prefix"),
    Option("redis_lease", parse_duration, "15s", "fleet refresh lease, unrenewed"),
    Option("log_format", choice("text", "json"), "text", "text or json"),
    Option("log_level", choice("debug", "info", "warning", "error"), "info", "level"),
    Option("access_log", parse_bool, "false", "log every request (off: hot path)"),
)

_REQUIRED = ("client_id", "client_secret", "refresh_token")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every option (and a ``-file`` flag for each secret)."""
    for option in OPTIONS:
        parser.add_argument(
            option.flag, dest=option.name, metavar="VALUE", help=option.help
        )
        if option.secret:
            parser.add_argument(
                option.flag + "-file",
                dest=option.name + "_file",
                metavar="PATH",
                help=f"file holding the {option.help}",
            )


def load(flags: Mapping[str, str | None], environ: Mapping[str, str]) -> Settings:
    """Validated settings from parsed flags and the environment."""
    warnings: list[str] = []
    values: dict[str, Any] = {}

    for option in OPTIONS:
        raw, origin = _pick(option, flags, environ, warnings)
        if raw is None:
            continue
        if isinstance(raw, Secret):
            values[option.name] = _parse_secret(option, raw, origin)
            continue
        try:
            values[option.name] = option.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{origin}: {exc}") from None

    missing = [o for o in OPTIONS if o.name in _REQUIRED and o.name not in values]
    if missing:
        names = ", ".join(f"{o.variable} (or {o.variable}_FILE)" for o in missing)
        raise ConfigError(f"missing {names}: the account's OAuth credentials")

    url = values.pop("token_url", None) or values.pop("pod")
    values.pop("pod", None)
    settings = Settings(token_url=url, warnings=tuple(warnings), **values)
    _check_timing(settings)
    return _with_timing_warnings(settings)


def _pick(
    option: Option,
    flags: Mapping[str, str | None],
    environ: Mapping[str, str],
    warnings: list[str],
) -> tuple[str | Secret | None, str]:
    """The raw value and where it came from; flags first, then variables."""
    flag_value = flags.get(option.name)
    flag_file = flags.get(option.name + "_file") if option.secret else None
    env_value = environ.get(option.variable)
    env_file = environ.get(option.variable + "_FILE") if option.secret else None

    if flag_value is not None or flag_file is not None:
        if flag_value is not None and flag_file is not None:
            raise ConfigError(
                f"{option.flag} and {option.flag}-file both given: pass one of them"
            )
        if flag_value is not None and option.secret:
            warnings.append(
                f"{option.flag} puts a secret in the process list, visible to every "
                f"local user; prefer {option.variable}_FILE or {option.flag}-file"
            )
        return _secret_or_text(option, flag_value, flag_file), option.flag

    if env_value is not None and env_file is not None:
        raise ConfigError(
            f"{option.variable} and {option.variable}_FILE both set: set one of them"
        )
    if env_value is None and env_file is None:
        return option.default, option.variable
    return _secret_or_text(option, env_value, env_file), option.variable


def _secret_or_text(
    option: Option, value: str | None, path: str | None
) -> str | Secret | None:
    if not option.secret:
        return value
    if path is not None:
        return Secret("", Path(path))
    return Secret(value or "")


def _parse_secret(option: Option, secret: Secret, origin: str) -> Secret:
    if secret.path is not None:
        try:
            text = secret.path.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"{origin}_FILE: cannot read {secret.path}: {exc.strerror}"
                if origin.startswith("TOKEND_")
                else f"{origin}-file: cannot read {secret.path}: {exc.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"{origin}: {secret.path} is not UTF-8 text") from None
        secret = Secret(text, secret.path)

    value = secret.get()
    if not value:
        raise ConfigError(f"{origin}: the {option.help} is empty")
    if option.name == "redis_url":
        try:
            option.parse(value)
        except ValueError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
    return secret


def _check_timing(s: Settings) -> None:
    def name(field_name: str) -> str:
        return "TOKEND_" + field_name.upper()

    if s.token_lifetime <= 0:
        raise ConfigError(f"{name('token_lifetime')}: must be longer than 0")
    if s.refresh_after <= 0:
        raise ConfigError(f"{name('refresh_after')}: must be longer than 0")
    if s.refresh_after >= s.token_lifetime:
        lifetime = format_duration(s.token_lifetime)
        raise ConfigError(
            f"{name('refresh_after')} ({format_duration(s.refresh_after)}) must be "
            f"shorter than {name('token_lifetime')} ({lifetime})"
        )

    # The successor must be due while the current token is still served.
    slack = s.token_lifetime - s.refresh_after - s.refresh_jitter
    if s.expiry_margin >= slack:
        raise ConfigError(
            f"{name('expiry_margin')} ({format_duration(s.expiry_margin)}) must be "
            "shorter than TOKEND_TOKEN_LIFETIME - TOKEND_REFRESH_AFTER - "
            f"TOKEND_REFRESH_JITTER ({format_duration(max(slack, 0))}), or the token "
            "would stop being served before its refresh is due"
        )
    if s.backoff_base <= 0:
        raise ConfigError(f"{name('backoff_base')}: must be longer than 0")
    if s.backoff_max < s.backoff_base:
        raise ConfigError(
            f"{name('backoff_max')} ({format_duration(s.backoff_max)}) must not be "
            f"shorter than {name('backoff_base')} ({format_duration(s.backoff_base)})"
        )
    for timeout in ("connect_timeout", "request_timeout", "redis_lease"):
        if getattr(s, timeout) <= 0:
            raise ConfigError(f"{name(timeout)}: must be longer than 0")


def _with_timing_warnings(s: Settings) -> Settings:
    host = urlsplit(s.token_url).hostname or ""
    if s.refresh_after < PROVIDER_REFRESH_FLOOR and host.endswith("goacoustic.com"):
        note = (
            f"TOKEND_REFRESH_AFTER is {format_duration(s.refresh_after)}, under the "
            "provider's 3.01h floor: grants will return the same token and the "
            "account risks being blocked"
        )
        return Settings(**{**s.__dict__, "warnings": (*s.warnings, note)})
    return s
