"""The aiohttp application: the token for local clients, health and metrics.

``GET /token`` is the hot path. It reads the supervisor's held token (never
a call upstream), and the parts of its answer that stay the same while one
token is held are built once per token (the JSON body once per second).
Every failure, 404 and 405 included, is answered with a JSON object
``{"error", "message"}``. No middleware runs: aiohttp would add two
coroutine calls to every request for it, a good part of the hot path's
cost. Unknown paths and other methods go to a catch-all route instead, and
each handler is wrapped to answer an unexpected failure with a JSON 500.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler

from daemon.clock import Clock, rfc3339
from daemon.metrics import CONTENT_TYPE, Metrics
from daemon.redaction import redactor
from daemon.stores.fleet_health import FleetView, fleet_document
from daemon.supervisor import Status
from daemon.token import AccessToken

log = logging.getLogger("tokend.server")

GUARD_HEADER = "Tokend-Request"

_NO_STORE = {"Cache-Control": "no-store"}
_JSON_TOKEN = {"Content-Type": "application/json", **_NO_STORE}
_PLAIN_TOKEN = {"Content-Type": "text/plain", **_NO_STORE}
_ALLOWED = "GET,HEAD"
_PROXY_HEADERS = ("X-Forwarded-For", "Forwarded")


class Holder(Protocol):
    """What the endpoints read from the supervisor."""

    @property
    def alive(self) -> bool: ...

    def current(self) -> AccessToken | None: ...

    def retry_in(self) -> float: ...

    def status(self) -> Status: ...


class _Answer:
    """The answer to ``GET /token`` for one token, mostly built in advance."""

    __slots__ = ("_body", "_head", "_left", "_tail", "expiry", "plain", "token")

    def __init__(self, token: AccessToken, clock: Clock) -> None:
        self.token = token
        self.expiry = token.expiry
        self.plain = token.value.encode()
        expires_at = rfc3339(clock.to_wall(token.expiry))
        self._head = (
            '{"access_token": ' + json.dumps(token.value) + ', "token_type": '
            '"Bearer", "expires_in": '
        )
        self._tail = f', "expires_at": "{expires_at}"}}'
        self._left = -1
        self._body = b""

    def json(self, now: float) -> bytes:
        # Whole seconds left, rounded down: a client never over-trusts it.
        left = int(self.expiry - now)
        if left != self._left:
            self._left = left
            self._body = f"{self._head}{left}{self._tail}".encode()
        return self._body


class Endpoints:
    """The request handlers, bound to one supervisor, clock and metrics."""

    def __init__(
        self,
        holder: Holder,
        clock: Clock,
        metrics: Metrics,
        fleet: FleetView | None = None,
    ) -> None:
        self._holder = holder
        self._fleet = fleet
        self._clock = clock
        self._metrics = metrics
        self._answer: _Answer | None = None

    async def token(self, request: web.Request) -> web.Response:
        headers = request.headers
        # The guard spelled out here rather than called: this is the hot
        # path, and a call is a good part of its cost. `_refusal` says why.
        if (
            headers.get(GUARD_HEADER) != "1"
            or "X-Forwarded-For" in headers
            or "Forwarded" in headers
        ):
            self._metrics.token_served(403)
            return _refusal(headers)

        token = self._holder.current()
        if token is None:
            self._metrics.token_served(503)
            return self._unavailable()

        answer = self._answer
        if answer is None or answer.token is not token:
            answer = self._answer = _Answer(token, self._clock)
        self._metrics.token_served(200)

        # The bare token for text/plain alone; JSON for anything else.
        accept = headers.get("Accept", "")
        if "text/plain" in accept and "application/json" not in accept:
            return web.Response(body=answer.plain, headers=_PLAIN_TOKEN)
        return web.Response(body=answer.json(self._clock.now()), headers=_JSON_TOKEN)

    async def healthz(self, request: web.Request) -> web.Response:
        if self._holder.alive:
            return _json(200, {"alive": True})
        return _json(
            503,
            {
                "alive": False,
                "error": "refresh_loop_stopped",
                "message": "the refresh loop has stopped; restart tokend",
            },
        )

    async def readyz(self, request: web.Request) -> web.Response:
        status = self._holder.status()
        document = status_document(status)
        if self._fleet is not None:
            document["fleet"] = fleet_document(self._fleet.fleet_status())
        return _json(200 if status.ready else 503, document)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE}
        )

    def _unavailable(self) -> web.Response:
        # Never 0: a client told to retry at once would spin.
        wait = max(1, math.ceil(self._holder.retry_in()))
        return error(
            503,
            "no_token",
            f"no servable token is held yet or any more; retry in {wait}s "
            "(see /readyz for the last error)",
            headers={**_NO_STORE, "Retry-After": str(wait)},
        )


def make_app(endpoints: Endpoints, *, serve_token: bool = True) -> web.Application:
    """The application; without `serve_token`, for the health listener only."""
    routes = {
        "/healthz": endpoints.healthz,
        "/readyz": endpoints.readyz,
        "/metrics": endpoints.metrics,
    }
    if serve_token:
        routes = {"/token": endpoints.token, **routes}

    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, _json_on_failure(handler))
    # Added last, so it takes only what no route above does.
    app.router.add_route("*", "/{unknown:.*}", _elsewhere(tuple(routes)))
    return app


def status_document(status: Status) -> dict[str, Any]:
    """The supervisor's status as JSON: state and times, never the token."""
    last_error = redactor.mask(status.last_error) if status.last_error else None
    last_success = (
        rfc3339(status.last_success) if status.last_success is not None else None
    )
    return {
        "ready": status.ready,
        "state": status.state,
        "fingerprint": status.fingerprint,
        "expires_in": _whole(status.expires_in),
        "servable_for": _whole(status.servable_for),
        "refresh_in": _whole(status.refresh_in),
        "last_error": last_error,
        "consecutive_failures": status.consecutive_failures,
        "last_success": last_success,
    }


def error(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return _json(status, {"error": code, "message": message}, headers)


def _json(
    status: int, document: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(document).encode(),
        content_type="application/json",
        headers=headers,
    )


def _whole(seconds: float | None) -> int | None:
    return None if seconds is None else math.floor(seconds)


def _refusal(headers: Mapping[str, str]) -> web.Response:
    """The 403 for a request that is proxied or not asked on purpose (SSRF)."""
    for name in _PROXY_HEADERS:
        if name in headers:
            return error(
                403,
                "proxied_request",
                f"a request carrying {name} came through a proxy; ask tokend "
                "directly from the same host or pod",
                _NO_STORE,
            )
    return error(
        403,
        "missing_guard_header",
        f"send the header '{GUARD_HEADER}: 1' to ask for the token",
        _NO_STORE,
    )


def _json_on_failure(handler: Handler) -> Handler:
    """`handler`, answering an unexpected failure with a JSON 500."""

    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Exception:
            log.exception(
                "unexpected error answering %s %s", request.method, request.path
            )
            return error(500, "internal", "tokend failed to answer; see its log")

    return answer


def _elsewhere(paths: tuple[str, ...]) -> Handler:
    """The catch-all: 405 for another method on a path served, else 404."""
    not_found = "no such endpoint; this listener answers GET " + ", ".join(paths)

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.path in paths:
            return error(
                405,
                "method_not_allowed",
                f"this endpoint answers {_ALLOWED} only",
                {"Allow": _ALLOWED},
            )
        return error(404, "not_found", not_found)

    return answer
