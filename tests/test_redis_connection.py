"""TOKEND_REDIS_URL: its forms, passwords, TLS and Sentinel, on private servers."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon import config
from daemon.errors import ConfigError
from daemon.redaction import redactor
from daemon.stores.fleet_link import FleetKeys, FleetLink, LinkDown
from daemon.stores.redis_connection import open_redis, parse_sentinel_url
from tests.private_redis import PrivateRedis, free_port

CREDENTIALS = {
    "TOKEND_CLIENT_ID": "client-1",
    "TOKEND_CLIENT_SECRET": "secret-1",
    "TOKEND_REFRESH_TOKEN": "refresh-1",
}
PASSWORD = "s3cret-redis-pass"


def link_to(url: str) -> FleetLink:
    return FleetLink(open_redis(url, timeout=1.0), FleetKeys("tokend", "account"))


async def round_trip(link: FleetLink) -> str | None:
    """Claim, write and read back a record: every command fleet mode sends."""
    claim = await link.claim(5.0, time.time())
    assert claim.generation is not None
    await link.write("a-token-value", time.time() + 60, claim.generation)
    record = await link.read()
    return record.value if record else None


def test_a_sentinel_url_names_sentinels_service_and_database() -> None:
    """Every part of the Sentinel form is read, with its default where left out."""

    target = parse_sentinel_url(
        "redis+sentinel://app:pa%40ss@s1:26380,s2,[::1]:26381/cache/3"
    )

    assert target.sentinels == (("s1", 26380), ("s2", 26379), ("::1", 26381))
    assert (target.service, target.db) == ("cache", 3)
    assert (target.username, target.password) == ("app", "pa@ss")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        (f"redis+sentinel://:{PASSWORD}@s1:26379", "names the service"),
        (f"redis+sentinel://:{PASSWORD}@s1:port/mymaster", "port must be a number"),
        (f"redis+sentinel://:{PASSWORD}@s1/mymaster/zero", "must be a number"),
    ],
)
def test_a_bad_sentinel_url_is_refused_without_its_password(
    url: str, complaint: str
) -> None:
    """Each mistake gets its own message, and none repeats the password."""

    with pytest.raises(ValueError, match=complaint) as caught:
        parse_sentinel_url(url)

    assert PASSWORD not in str(caught.value)


def test_settings_refuse_a_bad_sentinel_url_by_name() -> None:
    """A malformed Sentinel URL stops start-up naming the variable, not the password."""
    environ = {**CREDENTIALS, "TOKEND_REDIS_URL": f"redis+sentinel://:{PASSWORD}@s1"}

    with pytest.raises(ConfigError) as caught:
        config.load({}, environ)

    assert str(caught.value).startswith("TOKEND_REDIS_URL")
    assert PASSWORD not in str(caught.value)


def test_the_lease_is_a_duration_setting() -> None:
    """TOKEND_REDIS_LEASE takes a duration, defaults to 15s and refuses zero."""

    default = config.load({}, CREDENTIALS)
    given = config.load({}, {**CREDENTIALS, "TOKEND_REDIS_LEASE": "2s"})

    assert (default.redis_lease, given.redis_lease) == (15.0, 2.0)
    with pytest.raises(ConfigError, match="TOKEND_REDIS_LEASE"):
        config.load({}, {**CREDENTIALS, "TOKEND_REDIS_LEASE": "0"})


def test_fleet_mode_without_the_redis_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With redis-py missing, asking for fleet mode is a clear ConfigError."""
    monkeypatch.setitem(sys.modules, "redis", None)

    with pytest.raises(ConfigError, match=r"pip install 'tokend\[redis\]'"):
        open_redis("redis://127.0.0.1:6379/0", timeout=1.0)


def test_the_password_in_the_url_is_masked_in_logs() -> None:
    """Opening a client registers the URL's password with the redactor."""

    open_redis(f"redis://:{PASSWORD}@127.0.0.1:6379/0", timeout=1.0)

    assert PASSWORD not in redactor.mask(f"connecting with {PASSWORD}")


@pytest.mark.asyncio
async def test_a_password_in_the_url_opens_a_protected_redis(tmp_path: Path) -> None:
    """The password given in the URL is sent to a Redis that requires one."""
    server = PrivateRedis(tmp_path, "--requirepass", PASSWORD)
    server.start()
    link = link_to(f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0")

    try:
        value = await round_trip(link)
    finally:
        await link.close()
        server.stop()

    assert value == "a-token-value"


@pytest.mark.asyncio
async def test_a_wrong_password_is_reported_without_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused credentials raise LinkDown, whose text holds no password."""
    server = PrivateRedis(tmp_path, "--requirepass", PASSWORD)
    server.start()
    link = link_to(f"redis://:wrong-{PASSWORD}@127.0.0.1:{server.port}/0")

    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(LinkDown) as caught:
            await link.read()
    finally:
        await link.close()
        server.stop()

    assert "AuthenticationError" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in caplog.text


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.mark.asyncio
async def test_rediss_speaks_tls(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    """A rediss:// URL with the server's CA reaches a TLS-only Redis."""
    cert, key = certificate
    port = free_port()
    tls = ["--tls-port", str(port), "--port", "0", "--tls-auth-clients", "no"]
    files = ["--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    server = PrivateRedis(tmp_path, *tls, *files, port=port)
    server.start()
    link = link_to(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}")

    try:
        value = await round_trip(link)
    finally:
        await link.close()
        server.stop()

    assert value == "a-token-value"


@pytest.mark.asyncio
async def test_a_sentinel_url_reaches_the_master_it_names(tmp_path: Path) -> None:
    """Through a redis+sentinel:// URL the record lands on the monitored master."""
    master = PrivateRedis(tmp_path)
    master.start()
    monitor = f"sentinel monitor mymaster 127.0.0.1 {master.port} 1"
    sentinel = PrivateRedis(tmp_path, monitor, mode="sentinel")
    sentinel.start()
    link = link_to(f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster")
    direct = link_to(master.url)

    try:
        value = await round_trip(link)
        on_master = await direct.read()
    finally:
        await link.close()
        await direct.close()
        sentinel.stop()
        master.stop()

    assert value == "a-token-value"
    assert on_master is not None
    assert on_master.value == value
