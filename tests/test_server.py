"""The HTTP routes: the token, the guard, the 503, health, readiness, errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from daemon.clock import Clock
from daemon.metrics import Metrics
from daemon.server import Endpoints, make_app
from daemon.supervisor import Status
from daemon.token import AccessToken

Client = TestClient[web.Request, web.Application]

GUARD = {"Tokend-Request": "1"}
TOKEN_VALUE = "access-token-for-route-tests"

# Loop time 1000 is wall time 1_767_225_600 (2026-01-01T00:00:00Z).
LOOP_START = 1000.0
WALL_OFFSET = 1_767_225_600.0 - LOOP_START


class FakeClock:
    """A loop clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = LOOP_START

    def __call__(self) -> float:
        return self.now


class FakeHolder:
    """Stands in for the supervisor: a held token and a status, set by tests."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.token: AccessToken | None = None
        self.alive = True
        self.wait = 0.0
        self.failure: Exception | None = None
        self.base_status = Status(
            state="starting",
            fingerprint=None,
            expires_in=None,
            servable_for=None,
            refresh_in=None,
            last_error=None,
            consecutive_failures=0,
            last_success=None,
            alive=True,
        )

    def current(self) -> AccessToken | None:
        if self.failure is not None:
            raise self.failure
        return self.token

    def retry_in(self) -> float:
        return self.wait

    def status(self) -> Status:
        return self.base_status


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def holder(fake_clock: FakeClock) -> FakeHolder:
    return FakeHolder(fake_clock)


@pytest.fixture
def clock(fake_clock: FakeClock) -> Clock:
    return Clock(monotonic=fake_clock, wall=lambda: fake_clock.now + WALL_OFFSET)


@pytest.fixture
def metrics(clock: Clock) -> Metrics:
    return Metrics(clock)


@pytest_asyncio.fixture
async def http(
    holder: FakeHolder, clock: Clock, metrics: Metrics
) -> AsyncIterator[Client]:
    """A client of the full application, over a loopback socket."""
    metrics.watch(holder)
    app = make_app(Endpoints(holder, clock, metrics))
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest_asyncio.fixture
async def health_http(
    holder: FakeHolder, clock: Clock, metrics: Metrics
) -> AsyncIterator[Client]:
    """A client of the health listener's application."""
    app = make_app(Endpoints(holder, clock, metrics), serve_token=False)
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.mark.asyncio
async def test_token_answers_json_with_whole_seconds_and_wall_expiry(
    http: Client, holder: FakeHolder, fake_clock: FakeClock
) -> None:
    """A held token comes back as JSON, expiry in whole seconds and RFC 3339."""
    holder.token = AccessToken(TOKEN_VALUE, expiry=LOOP_START + 3600, lifetime=14400)
    fake_clock.now += 0.4

    response = await http.get("/token", headers=GUARD)
    document = await response.json()

    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert document == {
        "access_token": TOKEN_VALUE,
        "token_type": "Bearer",
        "expires_in": 3599,
        "expires_at": "2026-01-01T01:00:00Z",
    }


@pytest.mark.asyncio
async def test_token_follows_a_replaced_token(http: Client, holder: FakeHolder) -> None:
    """After the supervisor installs a new token, the next answer carries it."""
    holder.token = AccessToken("first-token-value", LOOP_START + 60, 14400)
    await http.get("/token", headers=GUARD)
    holder.token = AccessToken("second-token-value", LOOP_START + 7200, 14400)

    response = await http.get("/token", headers=GUARD)
    document = await response.json()

    assert document["access_token"] == "second-token-value"
    assert document["expires_in"] == 7200


@pytest.mark.asyncio
async def test_plain_text_accept_gives_the_bare_token(
    http: Client, holder: FakeHolder
) -> None:
    """With Accept: text/plain the body is the token and nothing else."""
    holder.token = AccessToken(TOKEN_VALUE, LOOP_START + 3600, 14400)

    response = await http.get("/token", headers={**GUARD, "Accept": "text/plain"})

    assert response.status == 200
    assert response.content_type == "text/plain"
    assert await response.text() == TOKEN_VALUE
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.asyncio
@pytest.mark.parametrize("headers", [{}, {"Tokend-Request": "yes"}])
async def test_guard_refuses_without_the_header(
    http: Client, holder: FakeHolder, headers: dict[str, str]
) -> None:
    """Without 'Tokend-Request: 1' the answer is 403 saying what to send."""
    holder.token = AccessToken(TOKEN_VALUE, LOOP_START + 3600, 14400)

    response = await http.get("/token", headers=headers)
    body = await response.text()

    assert response.status == 403
    assert json.loads(body)["error"] == "missing_guard_header"
    assert "Tokend-Request: 1" in json.loads(body)["message"]
    assert TOKEN_VALUE not in body


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "proxy_header",
    [{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}],
)
async def test_guard_refuses_proxied_requests(
    http: Client, holder: FakeHolder, proxy_header: dict[str, str]
) -> None:
    """A request relayed by a proxy is refused even with the guard header."""
    holder.token = AccessToken(TOKEN_VALUE, LOOP_START + 3600, 14400)

    response = await http.get("/token", headers={**GUARD, **proxy_header})
    body = await response.text()

    assert response.status == 403
    assert json.loads(body)["error"] == "proxied_request"
    assert next(iter(proxy_header)) in json.loads(body)["message"]
    assert TOKEN_VALUE not in body


@pytest.mark.asyncio
@pytest.mark.parametrize(("retry_in", "header"), [(0.0, "1"), (2.2, "3"), (90, "90")])
async def test_no_servable_token_is_503_with_retry_after(
    http: Client, holder: FakeHolder, retry_in: float, header: str
) -> None:
    """Without a servable token: 503, Retry-After in whole seconds, at least 1."""
    holder.wait = retry_in

    response = await http.get("/token", headers=GUARD)
    document = await response.json()

    assert response.status == 503
    assert response.headers["Retry-After"] == header
    assert document["error"] == "no_token"


@pytest.mark.asyncio
async def test_healthz_follows_the_refresh_loop(
    http: Client, holder: FakeHolder
) -> None:
    """Liveness is 200 while the loop runs and 503 once it has died."""
    alive = await http.get("/healthz")
    holder.alive = False

    dead = await http.get("/healthz")

    assert alive.status == 200
    assert dead.status == 503
    assert (await dead.json())["error"] == "refresh_loop_stopped"


@pytest.mark.asyncio
async def test_healthz_ignores_a_failing_upstream(
    http: Client, holder: FakeHolder
) -> None:
    """No token and a run of failures still leave the daemon alive."""
    holder.base_status = replace(
        holder.base_status, state="failing", consecutive_failures=7
    )

    response = await http.get("/healthz")

    assert response.status == 200


@pytest.mark.asyncio
async def test_readyz_reports_the_status_without_the_token(
    http: Client, holder: FakeHolder
) -> None:
    """Readiness is 200 with state and times, and never the token's value."""
    holder.token = AccessToken(TOKEN_VALUE, LOOP_START + 3600, 14400)
    holder.base_status = replace(
        holder.base_status,
        state="fresh",
        fingerprint=holder.token.fingerprint,
        expires_in=3600.0,
        servable_for=3540.5,
        refresh_in=120.9,
        last_success=1_767_225_600.0,
    )

    response = await http.get("/readyz")
    body = await response.text()

    assert response.status == 200
    assert json.loads(body) == {
        "ready": True,
        "state": "fresh",
        "fingerprint": holder.token.fingerprint,
        "expires_in": 3600,
        "servable_for": 3540,
        "refresh_in": 120,
        "last_error": None,
        "consecutive_failures": 0,
        "last_success": "2026-01-01T00:00:00Z",
    }
    assert TOKEN_VALUE not in body


@pytest.mark.asyncio
async def test_readyz_is_503_with_the_last_error(
    http: Client, holder: FakeHolder
) -> None:
    """Without a servable token readiness is 503 and names the last error."""
    holder.base_status = replace(
        holder.base_status,
        state="failing",
        last_error="transport: cannot connect",
        consecutive_failures=3,
    )

    response = await http.get("/readyz")
    document = await response.json()

    assert response.status == 503
    assert document["ready"] is False
    assert document["last_error"] == "transport: cannot connect"
    assert document["consecutive_failures"] == 3


@pytest.mark.asyncio
async def test_unknown_path_is_a_json_404(http: Client) -> None:
    """A path tokend does not serve gets a JSON 404 listing what it does."""

    response = await http.get("/admin")
    document = await response.json()

    assert response.status == 404
    assert document["error"] == "not_found"
    assert "/token" in document["message"]


@pytest.mark.asyncio
async def test_wrong_method_is_a_json_405(http: Client) -> None:
    """POST to /token gets a JSON 405 with the allowed methods."""

    response = await http.post("/token", headers=GUARD)
    document = await response.json()

    assert response.status == 405
    assert document["error"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


@pytest.mark.asyncio
async def test_unexpected_failure_is_a_json_500_without_a_traceback(
    http: Client, holder: FakeHolder
) -> None:
    """A bug behind a route answers 500 as JSON, with no internals in it."""
    holder.failure = RuntimeError("internal detail")

    response = await http.get("/token", headers=GUARD)
    body = await response.text()

    assert response.status == 500
    assert json.loads(body)["error"] == "internal"
    assert "internal detail" not in body
    assert "Traceback" not in body


@pytest.mark.asyncio
async def test_health_listener_never_serves_the_token(
    health_http: Client, holder: FakeHolder
) -> None:
    """On the health listener /token is a 404 and the probes still answer."""
    holder.token = AccessToken(TOKEN_VALUE, LOOP_START + 3600, 14400)

    token = await health_http.get("/token", headers=GUARD)
    token_body = await token.text()
    health = await health_http.get("/healthz")

    assert token.status == 404
    assert TOKEN_VALUE not in token_body
    assert "/token" not in json.loads(token_body)["message"]
    assert health.status == 200


@pytest.mark.asyncio
async def test_metrics_count_tokens_served_by_status(
    http: Client, holder: FakeHolder
) -> None:
    """/metrics is Prometheus text counting GET /token answers by status."""
    await http.get("/token", headers=GUARD)
    holder.token = AccessToken(TOKEN_VALUE, LOOP_START + 3600, 14400)
    await http.get("/token", headers=GUARD)
    await http.get("/token", headers=GUARD)
    await http.get("/token")

    response = await http.get("/metrics")
    text = await response.text()

    assert response.status == 200
    assert response.content_type == "text/plain"
    assert 'tokend_token_requests_total{status="200"} 2.0' in text
    assert 'tokend_token_requests_total{status="503"} 1.0' in text
    assert 'tokend_token_requests_total{status="403"} 1.0' in text
    assert TOKEN_VALUE not in text
