"""docs/openapi.yaml against the application: every promise kept, every route named.

Each answer the document promises (a path, a method, a status, a media
type) is produced by the real application over a loopback socket and
checked against the document's schemas and headers. The supervisor is
played by a stand-in whose state each case sets: holding a token, holding
none, a dead refresh loop, or a bug behind every read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from daemon.clock import Clock
from daemon.metrics import Metrics
from daemon.server import Endpoints, make_app
from daemon.stores.fleet import FleetStatus, Role
from daemon.supervisor import Status
from daemon.token import AccessToken
from tests.support.openapi import METHODS, UNKNOWN, Answer, Contract, Promise

Client = TestClient[web.Request, web.Application]

CONTRACT = Contract.load()

TOKEN_VALUE = "access-token-for-the-contract"
GUARD = {"Tokend-Request": "1"}
NOT_ALLOWED = tuple(m for m in METHODS if m not in ("get", "head"))


@dataclass(frozen=True)
class Case:
    """How to make the application give one answer."""

    state: str = "holding"
    headers: dict[str, str] = field(default_factory=dict)
    health_listener: bool = False
    path: str | None = None


def _cases() -> dict[tuple[str, str, int, str | None], Case]:
    """The way to each promised answer, keyed as `Promise` fields are."""
    json = "application/json"
    prometheus = "text/plain; version=0.0.4; charset=utf-8"
    cases = {
        ("/token", "get", 200, json): Case(headers=GUARD),
        ("/token", "get", 200, "text/plain"): Case(
            headers={**GUARD, "Accept": "text/plain"}
        ),
        ("/token", "get", 403, json): Case(),
        ("/token", "get", 404, json): Case(headers=GUARD, health_listener=True),
        ("/token", "get", 500, json): Case("broken", GUARD),
        ("/token", "get", 503, json): Case("empty", GUARD),
        ("/token", "head", 200, None): Case(headers=GUARD),
        ("/token", "head", 403, None): Case(headers={**GUARD, "Forwarded": "for=x"}),
        ("/token", "head", 404, None): Case(headers=GUARD, health_listener=True),
        ("/token", "head", 500, None): Case("broken", GUARD),
        ("/token", "head", 503, None): Case("empty", GUARD),
        ("/metrics", "get", 200, prometheus): Case(),
        ("/metrics", "get", 500, json): Case("broken"),
        ("/metrics", "head", 200, None): Case(),
        ("/metrics", "head", 500, None): Case("broken"),
    }
    for probe in ("/healthz", "/readyz"):
        not_ready = "stopped" if probe == "/healthz" else "empty"
        cases[(probe, "get", 200, json)] = Case(health_listener=True)
        cases[(probe, "get", 500, json)] = Case("broken")
        cases[(probe, "get", 503, json)] = Case(not_ready)
        cases[(probe, "head", 200, None)] = Case()
        cases[(probe, "head", 500, None)] = Case("broken")
        cases[(probe, "head", 503, None)] = Case(not_ready)
    for method in METHODS:
        unknown = Case(path="/no/such/path", headers=GUARD)
        cases[(UNKNOWN, method, 404, None if method == "head" else json)] = unknown
    for path in ("/token", "/healthz", "/readyz", "/metrics"):
        for method in NOT_ALLOWED:
            cases[(path, method, 405, json)] = Case(headers=GUARD)
    return cases


CASES = _cases()


class StandIn:
    """Plays the supervisor (and, holding a token, a fleet store) for a case."""

    def __init__(self, state: str, clock: Clock) -> None:
        self._state = state
        self._token = AccessToken(TOKEN_VALUE, clock.now() + 3600, 14400)
        self._success = clock.wall_now()

    @property
    def alive(self) -> bool:
        self._fail_if_broken()
        return self._state != "stopped"

    def current(self) -> AccessToken | None:
        self._fail_if_broken()
        return self._token if self._state == "holding" else None

    def retry_in(self) -> float:
        return 2.5

    def status(self) -> Status:
        self._fail_if_broken()
        if self._state != "holding":
            return Status(
                state="failing",
                fingerprint=None,
                expires_in=None,
                servable_for=None,
                refresh_in=4.2,
                last_error="transport: connection refused",
                consecutive_failures=3,
                last_success=None,
                alive=True,
            )

        return Status(
            state="fresh",
            fingerprint=self._token.fingerprint,
            expires_in=3600.0,
            servable_for=3540.0,
            refresh_in=1200.4,
            last_error=None,
            consecutive_failures=0,
            last_success=self._success,
            alive=True,
        )

    def fleet_status(self) -> FleetStatus:
        return FleetStatus(Role.HOLDER, 7, redis_errors=0, fenced_writes=0)

    def _fail_if_broken(self) -> None:
        if self._state == "broken":
            raise RuntimeError("a bug behind the endpoint")


Connect = Callable[[Case], Any]


@pytest_asyncio.fixture
async def connect() -> AsyncIterator[Connect]:
    """Opens a client of the application in the state a case asks for."""
    clients: list[Client] = []

    async def open_client(case: Case) -> Client:
        clock = Clock()
        holder = StandIn(case.state, clock)
        metrics = Metrics(clock)
        metrics.watch(holder)
        fleet = holder if case.state == "holding" else None
        endpoints = Endpoints(holder, clock, metrics, fleet)
        app = make_app(endpoints, serve_token=not case.health_listener)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


def test_the_document_is_valid_openapi_3_1() -> None:
    """docs/openapi.yaml passes the OpenAPI 3.1 specification's own schema."""
    document = CONTRACT.document

    validate(document)

    assert document["openapi"].startswith("3.1.")


@pytest.mark.asyncio
@pytest.mark.parametrize("promise", list(CONTRACT.promises()), ids=str)
async def test_every_documented_answer_is_given(
    promise: Promise, connect: Connect
) -> None:
    """Each promised answer is produced live and matches the document."""
    key = (promise.path, promise.method, promise.status, promise.media)
    assert key in CASES, f"no case in this module produces {promise}"
    case = CASES[key]
    client = await connect(case)

    response = await client.request(
        promise.method.upper(), case.path or promise.path, headers=case.headers
    )
    answer = Answer(response.status, dict(response.headers), await response.read())

    kept = CONTRACT.check(case.path or promise.path, promise.method, answer)
    assert kept == promise


def test_every_case_is_a_documented_answer() -> None:
    """No case here stands for an answer the document no longer promises."""
    promised = {(p.path, p.method, p.status, p.media) for p in CONTRACT.promises()}

    stale = set(CASES) - promised

    assert not stale


@pytest.mark.parametrize("serve_token", [True, False], ids=["token", "health"])
def test_every_registered_route_is_documented(serve_token: bool) -> None:
    """Each route aiohttp registers, on either listener, is in the document."""
    app = make_app(_idle_endpoints(), serve_token=serve_token)

    routes = {
        (route.resource.canonical, method)
        for route in app.router.routes()
        if route.resource is not None
        # A route for any method ("*") stands for each the document can name.
        for method in (METHODS if route.method == "*" else [route.method.lower()])
    }

    assert routes
    assert routes <= CONTRACT.operations


def test_every_documented_path_is_registered() -> None:
    """The paths the document lists are exactly those of the token listener."""
    app = make_app(_idle_endpoints())

    registered = {r.canonical for r in app.router.resources()}
    documented = {path for path, _ in CONTRACT.operations}

    assert registered == documented


def _idle_endpoints() -> Endpoints:
    # Routes are read, never called: no loop is running here.
    clock = Clock(monotonic=lambda: 0.0)
    holder = StandIn("holding", clock)
    return Endpoints(holder, clock, Metrics(clock))
