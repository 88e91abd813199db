"""Opens the Redis client that fleet mode talks through, from TOKEND_REDIS_URL.

The URL forms are redis-py's own (``redis://``, ``rediss://`` for TLS,
``unix://``), plus one for Sentinel, which redis-py has no URL for:

    redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/service[/db]

Sentinels listen on 26379 unless a port is given; the user and password
are sent to the sentinels and to the master they name. The ``redis``
package is imported only here and only when fleet mode is asked for, so
the daemon runs without it otherwise.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from daemon.errors import ConfigError
from daemon.redaction import redactor

if TYPE_CHECKING:
    from redis.asyncio import Redis

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379

_SENTINEL_FORM = "redis+sentinel://host:26379[,host:26379...]/service[/db]"


@dataclass(frozen=True)
class SentinelTarget:
    """The sentinels to ask and the service (master) to ask them for."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


def parse_sentinel_url(text: str) -> SentinelTarget:
    """The parts of a ``redis+sentinel://`` URL; ValueError names what is wrong.

    Messages never repeat the URL: it may hold a password.
    """
    scheme, _, rest = text.partition("://")
    if scheme.lower() != SENTINEL_SCHEME or not rest:
        raise ValueError(f"a Sentinel URL has the form {_SENTINEL_FORM}")

    location, _, path = rest.partition("/")
    userinfo, _, hosts = location.rpartition("@")
    username, _, password = userinfo.partition(":")

    sentinels = tuple(_sentinel_address(part) for part in hosts.split(","))
    service, _, db = path.split("?")[0].strip("/").partition("/")
    if not service:
        raise ValueError(f"a Sentinel URL names the service: {_SENTINEL_FORM}")
    if db and not db.isdigit():
        raise ValueError("the database after the service must be a number")

    return SentinelTarget(
        sentinels=sentinels,
        service=unquote(service),
        db=int(db or 0),
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def open_redis(url: str, *, timeout: float) -> Redis:
    """A client for `url` whose every command gives up after `timeout` seconds.

    Nothing is connected yet: redis-py connects on the first command.
    """
    redis = _import_redis()
    password = _password_in(url)
    if password:
        redactor.add(password)

    # One quick retry mends a pooled connection that a Redis restart left
    # dead; more would only delay the fallback to refreshing alone.
    retry = redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 1)
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": retry,
        "health_check_interval": max(1, round(timeout * 3)),
        "decode_responses": True,
    }

    if url.lower().startswith(SENTINEL_SCHEME + "://"):
        target = parse_sentinel_url(url)
        credentials = {"username": target.username, "password": target.password}
        sentinel = redis.asyncio.sentinel.Sentinel(
            list(target.sentinels),
            sentinel_kwargs={**options, **credentials},
            **options,
            **credentials,
        )
        client: Redis = sentinel.master_for(target.service, db=target.db)
        return client
    client = redis.asyncio.Redis.from_url(url, **options)
    return client


def _import_redis() -> ModuleType:
    try:
        redis = importlib.import_module("redis")
        for part in ("asyncio", "asyncio.retry", "asyncio.sentinel", "backoff"):
            importlib.import_module(f"redis.{part}")
    except ImportError:
        raise ConfigError(
            "TOKEND_REDIS_URL is set, but the redis package is not installed: "
            "pip install 'tokend[redis]'"
        ) from None
    return redis


def _sentinel_address(text: str) -> tuple[str, int]:
    host, port = text, ""
    if text.startswith("["):
        host, _, after = text[1:].partition("]")
        port = after.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")

    if not host:
        raise ValueError(f"a Sentinel URL lists host:port pairs: {_SENTINEL_FORM}")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError("a sentinel's port must be a number from 1 to 65535")
    return host, int(port or SENTINEL_PORT)


def _password_in(url: str) -> str | None:
    if url.lower().startswith(SENTINEL_SCHEME + "://"):
        return parse_sentinel_url(url).password
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return None
    if password:
        return unquote(password)
    # redis-py also reads ``?password=...``.
    return next(iter(parse_qs(parts.query).get("password", [])), None)
